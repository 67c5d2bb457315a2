"""Shoal benchmarks: the services measured side by side with the engines inside them.

`python -m bench` runs every suite (search, ingest, embedding, memory) on the
same data in one run and writes the medians, the ratios to in-process hnswlib
and `SentenceTransformer.encode`, and the plots into docs/benchmarks.md. The
ratios are the headline because absolute figures move from machine to machine.
"""
