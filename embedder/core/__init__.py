"""Embedding logic on plain Python and numpy values: limits, model checks, batching."""
