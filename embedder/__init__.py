"""The Shoal embedder service: turns text into unit-length vectors.

It owns the model, batches concurrent requests together so the model sees
full batches under load, and enforces the per-call limits.
"""
