"""What the keyword index costs a shard's write path, in-process (no gRPC, no coordinator).

    python -m bench.keyword_ingest                       # 3,000 debian-20k documents, 5 runs
    python -m bench.keyword_ingest --documents 1000 --runs 3 --profile
    python -m bench.keyword_ingest --runs 1 --json     # one run's figures, for a driver

Each run opens a fresh collection in a temporary directory and writes the
documents (vectors, texts and metadata, as `ShardWrite`s decoded by the shard's
api layer) in batches through `Collection.write`, once with the keyword index
and once without, alternating, so both see the same machine load. The figures
are medians over the runs; the ratio is what the issue bounds (the index may
cost at most 25% of upsert throughput with vectors given). Also the CPU time
the process spent per document (all threads), which other processes on a
shared machine disturb less than the wall clock. A fresh tokenizer
each run, so every run pays for stemming its vocabulary once, as a new shard
would.

Also the keyword work alone, per document: analyzing the texts (tokenizing
and stemming) and indexing them, the two parts of a write that the index adds.
`--profile` prints cProfile's top functions of one write run with the index.
"""

import argparse
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.datasets import DATA_ROOT
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import WriteOp
from shard.core.keyword_index import KeywordIndex
from shard.proto_records import metadata_from_payload, text_from_payload, write_from_proto
from shard.storage.layout import DataDir
from shoal.keyword import KeywordSettings, tokenizer_for
from shoal.runtime.proto_values import metadata_to_proto
from shoal.v1 import shard_pb2


def _writes(dataset: str, documents: int) -> tuple[list[WriteOp], list[str]]:
    root = DATA_ROOT / dataset
    rows = []
    with (root / "corpus.jsonl").open() as lines:
        for line in lines:
            rows.append(json.loads(line))
            if len(rows) == documents:
                break
    vectors = np.load(root / "corpus_emb.npy")[: len(rows)].astype("<f4")
    ops = [
        write_from_proto(
            shard_pb2.ShardWrite(
                id=str(row["id"]),
                version=1,
                vector_f32=vectors[n].tobytes(),
                text=str(row["text"]),
                metadata=metadata_to_proto(row.get("metadata") or {}),
            )
        )
        for n, row in enumerate(rows)
    ]
    return ops, [str(row["text"]) for row in rows]


def _fresh_tokenizers() -> None:
    """Forget every tokenizer (and its remembered stems), as a new process would."""
    tokenizer_for.cache_clear()


def write_run(
    ops: Sequence[WriteOp], batch: int, keyword: bool, workdir: Path
) -> tuple[float, float]:
    """Seconds spent in Collection.write for all of `ops`, in batches: wall-clock, and
    CPU time of the process (every thread: hnswlib inserts on several)."""
    _fresh_tokenizers()
    registry = Collections(
        DataDir(workdir), read_metadata=metadata_from_payload, read_text=text_from_payload
    )
    registry.load()
    try:
        dimension = len(ops[0].vector) // 4
        settings = KeywordSettings(enabled=keyword)
        registry.create(CollectionConfig("bench", dimension, partitions=16, keyword=settings))
        collection = registry.get("bench")
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(ops), batch):
            collection.write(ops[start : start + batch])
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        registry.close()


def keyword_parts(texts: Sequence[str], batch: int) -> tuple[float, float]:
    """CPU seconds to analyze all texts, and to index them, as the write path does."""
    _fresh_tokenizers()
    index = KeywordIndex(KeywordSettings(), label_space=len(texts))
    analyze_s = put_s = 0.0
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        began = time.process_time()
        analyzed = index.analyze(chunk)
        middle = time.process_time()
        index.put(range(start, start + len(chunk)), analyzed)
        put_s += time.process_time() - middle
        analyze_s += middle - began
    return analyze_s, put_s


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.keyword_ingest", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default="debian-20k", help="a set under the test data")
    parser.add_argument("--documents", type=int, default=3000, help="documents per run")
    parser.add_argument("--batch", type=int, default=100, help="documents per write")
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind (medians)")
    parser.add_argument("--profile", action="store_true", help="cProfile one run with the index")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    ops, texts = _writes(args.dataset, args.documents)
    rates: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}  # µs per document
    parts: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-keyword-ingest-") as tmp:
        for run in range(args.runs):
            for keyword in (True, False):
                seconds, cpu_s = write_run(ops, args.batch, keyword, Path(tmp) / f"{run}-{keyword}")
                rates[keyword].append(len(ops) / seconds)
                cpu[keyword].append(cpu_s / len(ops) * 1e6)
            parts.append(keyword_parts(texts, args.batch))
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            write_run(ops, args.batch, True, Path(tmp) / "profile")
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    cpu_on, cpu_off = statistics.median(cpu[True]), statistics.median(cpu[False])
    analyze = statistics.median(p[0] for p in parts) / len(texts) * 1e6
    put = statistics.median(p[1] for p in parts) / len(texts) * 1e6
    if args.json:
        figures = {
            "on": rates[True],
            "off": rates[False],
            "cpu_on_us": cpu[True],
            "cpu_off_us": cpu[False],
            "analyze_us": analyze,
            "index_us": put,
        }
        print(json.dumps(figures))
        return
    print(
        f"\n### Shard write path, in-process: {len(ops):,} {args.dataset} documents"
        f" (vectors, texts, metadata), batches of {args.batch}, {args.runs} runs\n"
    )
    print("| keyword index | documents/s (median) | runs | CPU µs/document (median) |")
    print("|---|---:|---|---:|")
    print(f"| on | {on:,.0f} | {', '.join(f'{r:,.0f}' for r in rates[True])} | {cpu_on:.0f} |")
    print(f"| off | {off:,.0f} | {', '.join(f'{r:,.0f}' for r in rates[False])} | {cpu_off:.0f} |")
    print(f"\nthe index costs {100 * (1 - on / off):.1f}% of write throughput (bar: <= 25%),")
    print(f"{100 * (1 - cpu_off / cpu_on):.1f}% of the CPU time a write takes")
    print(f"keyword work per document: analyze {analyze:.1f} µs, index {put:.1f} µs (CPU)\n")


if __name__ == "__main__":
    main()
