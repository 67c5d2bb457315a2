"""gRPC side of the shard: the ShardService servicer and its request/reply mapping."""
