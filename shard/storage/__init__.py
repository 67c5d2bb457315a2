"""RocksDB records, the hnswlib index, checkpoints and the data directory layout."""
