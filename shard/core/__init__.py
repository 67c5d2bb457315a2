"""Shard logic on domain types: collections, last-writer-wins, search, checkpoints.

Never imports grpc or the generated protobuf code.
"""
