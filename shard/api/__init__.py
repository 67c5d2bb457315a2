"""gRPC side of the shard: the ShardService servicer and proto <-> domain conversion."""
