"""The Shoal coordinator: the public API in front of the shard groups and the embedder."""
