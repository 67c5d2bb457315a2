"""What reading a SearchBatch reply costs the SDK, in-process (no server): per query.

    python -m bench.sdk_decode                   # seconds; a Markdown table

A reply of `--queries` queries with `--k` hits each (ids only, as `include=[]`
gives), read three ways: into a `Hit` object per hit (what the SDK did before
its results became columns), into a `SearchBatchResult` from the per-hit reply,
and into one from the packed reply (`PackedHits`). Parsing the bytes is
included; the figures are process CPU time, the best of `--repeat` timeit runs.
"""

import argparse
import time
import timeit
from collections.abc import Callable, Sequence

import numpy as np

from shoal.sdk.columnar import SearchBatchResult
from shoal.sdk.results import coverage_from_proto, hit_from_proto
from shoal.v1 import common_pb2, shoal_pb2


def replies(queries: int, k: int) -> tuple[bytes, bytes]:
    """The same hits as a per-hit reply and as a packed one."""
    rng = np.random.default_rng(0)
    coverage = common_pb2.Coverage(groups_asked=1, groups_answered=1)
    per_hit = shoal_pb2.SearchBatchResponse(coverage=coverage)
    for _ in range(queries):
        result = per_hit.results.add()
        for _ in range(k):
            doc_id = str(rng.integers(1_000_000))
            hit = result.hits.add(id=doc_id, score=rng.random(), distance=rng.random())
            hit.document.id = doc_id
    hits = [hit for result in per_hit.results for hit in result.hits]
    packed = shoal_pb2.SearchBatchResponse(
        coverage=coverage,
        packed=shoal_pb2.PackedHits(
            counts=[k] * queries,
            ids=[hit.id for hit in hits],
            scores_f32=np.array([hit.score for hit in hits], dtype="<f4").tobytes(),
            distances_f32=np.array([hit.distance for hit in hits], dtype="<f4").tobytes(),
        ),
    )
    return per_hit.SerializeToString(), packed.SerializeToString()


def per_query_us(read: Callable[[], object], queries: int, number: int, repeat: int) -> float:
    runs = timeit.repeat(read, number=number, repeat=repeat, timer=time.process_time)
    return min(runs) / number / queries * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_decode", description=__doc__)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--number", type=int, default=100, help="replies per timeit run")
    parser.add_argument("--repeat", type=int, default=7, help="timeit runs; the best counts")
    args = parser.parse_args(argv)
    per_hit, packed = replies(args.queries, args.k)
    parse = shoal_pb2.SearchBatchResponse.FromString

    def objects() -> object:
        reply = parse(per_hit)
        coverage_from_proto(reply.coverage)
        return [[hit_from_proto(hit) for hit in result.hits] for result in reply.results]

    cases = [
        ("a Hit per hit (the SDK before)", len(per_hit), objects),
        (
            "columns from the per-hit reply",
            len(per_hit),
            lambda: SearchBatchResult([parse(per_hit)]),
        ),
        ("columns from the packed reply", len(packed), lambda: SearchBatchResult([parse(packed)])),
    ]
    print(f"{args.queries} queries x {args.k} hits, ids and scores (include=[])\n")
    print("| read into | reply bytes | CPU µs per query |")
    print("|---|---:|---:|")
    for name, size, read in cases:
        us = per_query_us(read, args.queries, args.number, args.repeat)
        print(f"| {name} | {size:,} | {us:.2f} |")


if __name__ == "__main__":
    main()
