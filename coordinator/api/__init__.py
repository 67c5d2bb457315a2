"""The ShoalService servicer and the proto <-> domain conversion it needs."""
