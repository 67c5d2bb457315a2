"""The gRPC face of the embedder: proto <-> domain conversion and the servicer."""
