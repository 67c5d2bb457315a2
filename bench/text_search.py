"""Text search on the local cluster: is it faster with many callers than with one?

`python -m bench.text_search` starts the cluster `shoal up` starts (2 shard groups
x 2 replicas, the real all-MiniLM-L6-v2 embedder, everything on this machine's
cores), loads debian-dev with its stored vectors, and runs Search(text) through
`shoal.Client` as users call it: first one call at a time, then from 16 threads at
once. It does so once with the embedder on 1 torch thread (the local cluster's
default, `shoal up --embedder-threads`) and once on every core (the embedder's
own default, meant for a machine or pod of its own), and prints the medians.

On a small machine the shards and the coordinator need the cores the embedder's
OpenMP threads would spin on; with one torch thread concurrent callers are
batched together by the embedder and the rest of the cluster still gets CPU.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench import datasets
from shoal.cli.local_cluster import ClusterSpec, LocalCluster
from shoal.sdk.client import Client

COLLECTION = "texts"
MODEL = "all-MiniLM-L6-v2"


def load(client: Client, dataset: str) -> None:
    corpus = [json.loads(line) for line in (datasets.DATA_ROOT / dataset / "corpus.jsonl").open()]
    vectors = np.load(datasets.DATA_ROOT / dataset / "corpus_emb.npy")
    client.create_collection(COLLECTION, embedding_model=MODEL)
    for start in range(0, len(corpus), 500):
        client.upsert(
            COLLECTION,
            [
                {"id": doc["id"], "vector": vectors[start + row], "text": doc["text"]}
                for row, doc in enumerate(corpus[start : start + 500])
            ],
        )


def rate(client: Client, texts: Sequence[str], callers: int) -> float:
    """Searches per second with `callers` threads each calling Search(text) in turn."""

    def search(text: str) -> int:
        return len(client.search(COLLECTION, text=text, k=10).hits)

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        answered = sum(pool.map(search, texts))
    if answered == 0:
        raise RuntimeError("no search returned a hit")
    return len(texts) / (time.perf_counter() - started)


def measure(
    root: Path, threads: int, texts: Sequence[str], runs: int, dataset: str
) -> dict[str, float]:
    spec = ClusterSpec(model=MODEL, embedder_threads=threads, ready_timeout=600)
    cluster = LocalCluster(root, spec)
    cluster.start()
    try:
        with Client(cluster.address, timeout=120) as client:
            load(client, dataset)
            rate(client, texts[:32], 16)  # warm up the model and every channel
            sequential = [rate(client, texts, 1) for _ in range(runs)]
            concurrent = [rate(client, texts, 16) for _ in range(runs)]
    finally:
        cluster.stop()
    return {
        "sequential": statistics.median(sequential),
        "concurrent": statistics.median(concurrent),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.text_search", description=__doc__)
    parser.add_argument("--dataset", default="debian-dev", help="data set (default %(default)s)")
    parser.add_argument("--queries", type=int, default=200, help="texts per measurement")
    parser.add_argument("--runs", type=int, default=3, help="runs; figures are medians")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = datasets.query_texts(args.dataset, args.queries)
    cores = len(os.sched_getaffinity(0))
    rows = []
    for threads in sorted({1, cores}):
        with tempfile.TemporaryDirectory(prefix="shoal-bench-text-") as tmp:
            figures = measure(Path(tmp), threads, texts, args.runs, args.dataset)
        rows.append((threads, figures))
    print(f"Search(text) through shoal.Client, 2 groups x 2 replicas, {cores} cores,")
    print(f"{args.queries} {args.dataset} queries, medians of {args.runs} runs")
    print("| embedder torch threads | 1 caller (q/s) | 16 callers (q/s) | 16 / 1 |")
    print("|---:|---:|---:|---:|")
    for threads, figures in rows:
        ratio = figures["concurrent"] / figures["sequential"]
        print(
            f"| {threads} | {figures['sequential']:.1f} | {figures['concurrent']:.1f}"
            f" | {ratio:.2f}x |"
        )
    print(f"command: python -m bench.text_search --queries {args.queries} --runs {args.runs}")


if __name__ == "__main__":
    main()
