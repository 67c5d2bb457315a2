"""gRPC clients for the services the coordinator calls: shards and the embedder."""
