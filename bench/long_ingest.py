"""Ingest throughput of long documents through the real model, with chunking.

    python -m bench.long_ingest                    # 300 long documents, 1 x 1 cluster
    python -m bench.long_ingest --documents 16     # a tiny smoke run
    python -m bench.long_ingest --no-chunking      # the same documents embedded whole

Starts a local cluster (all-MiniLM-L6-v2, offline; one shard group of one
replica unless told otherwise), creates a collection with chunking at its
defaults and upserts long documents from the long-document set
(bench/long_documents.py, debian-20k) as text, `--batch` per Upsert with
`--concurrency` Upserts in flight: the coordinator has the embedder split and
embed every text (the embedder batches the chunks of concurrent calls into one
encode). Prints documents/s and chunks/s over the whole ingest, and the chunks
per document.
"""

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import long_documents
from bench.datasets import DATA_ROOT
from shoal import Client
from shoal.cli.local_cluster import DEFAULT_MODEL, ClusterSpec, LocalCluster


def _packages(dataset: str) -> list[dict[str, object]]:
    with (DATA_ROOT / dataset / "corpus.jsonl").open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


def run(
    documents: int, batch: int, concurrency: int, chunking: bool, dataset: str
) -> dict[str, float]:
    long = long_documents.build(_packages(dataset)).documents[:documents]
    with tempfile.TemporaryDirectory(prefix="shoal-long-ingest-") as root:
        spec = ClusterSpec(groups=1, replicas=1, model=DEFAULT_MODEL, etcd_members=0)
        with (
            LocalCluster(Path(root), spec) as cluster,
            Client(cluster.address, timeout=1800) as client,
        ):
            client.create_collection("long", embedding_model=DEFAULT_MODEL, chunking=chunking)
            batches = [long[start : start + batch] for start in range(0, len(long), batch)]
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(lambda part: client.upsert("long", part), batches))
            seconds = time.perf_counter() - started
            info = client.get_collection("long")
    chunks = info.chunk_count or 0
    return {
        "documents": len(long),
        "chunks": chunks,
        "seconds": seconds,
        "documents_per_s": len(long) / seconds,
        "chunks_per_s": chunks / seconds,
        "chunks_per_document": chunks / max(1, len(long)),
        "characters_per_document": sum(len(d["text"]) for d in long) / max(1, len(long)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16, help="documents per Upsert")
    parser.add_argument("--concurrency", type=int, default=4, help="Upserts in flight")
    parser.add_argument("--dataset", default="debian-20k")
    parser.add_argument("--no-chunking", action="store_true", help="embed documents whole")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.documents, args.batch, args.concurrency, not args.no_chunking, args.dataset)
    if args.json:
        print(json.dumps(figures))
        return
    mode = "whole documents" if args.no_chunking else "chunking at its defaults"
    print(
        f"{figures['documents']} long documents ({figures['characters_per_document']:.0f}"
        f" characters each on average), {mode}: {figures['chunks']} chunks"
        f" ({figures['chunks_per_document']:.1f} per document) in {figures['seconds']:.1f}s:"
        f" {figures['documents_per_s']:.2f} documents/s, {figures['chunks_per_s']:.1f} chunks/s"
    )


if __name__ == "__main__":
    main()
