"""The Shoal shard server: one replica of one shard group.

Per collection it keeps the documents in RocksDB (the source of truth) and an
hnswlib index derived from them, checkpointed to disk and caught up on start.
"""
