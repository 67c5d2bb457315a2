"""gRPC clients of other services the shard calls: its peers (the other replicas of its group)."""
