"""Filtered-search QPS and recall@10 per selectivity next to unfiltered search, on one shard.

Starts `python -m shard` on 127.0.0.1:0 with a Debian set (vectors and real
metadata), then sends single-query Search requests one at a time for each
filter and reports queries per second (median of --repeats runs) and recall@10
against exact filtered search (numpy over the same vectors).

    python bench/shard_filters.py --data debian-20k --queries 300 --repeats 3
    python bench/shard_filters.py --filtered-search graph   # always the filtered walk
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shoal.cli.service_process import ServiceProcess  # noqa: E402
from shoal.runtime.proto_values import metadata_to_proto  # noqa: E402
from shoal.runtime.server import GRPC_OPTIONS  # noqa: E402
from shoal.sdk.where import where_to_filter  # noqa: E402
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc  # noqa: E402

K = 10
NAME = "bench"
Metadata = dict[str, Any]


def load(
    root: Path,
) -> tuple[list[dict[str, Any]], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    with (root / "corpus.jsonl").open() as lines:
        documents = [json.loads(line) for line in lines if line.strip()]
    return documents, np.load(root / "corpus_emb.npy"), np.load(root / "queries_emb.npy")


def size_at_least(documents: list[dict[str, Any]], share: float) -> int:
    sizes = np.array([d["metadata"]["installed_size"] for d in documents])
    return int(np.quantile(sizes, 1 - share))


def rare_sections(documents: list[dict[str, Any]], share: float) -> list[str]:
    """The rarest sections together holding about `share` of the documents."""
    counts: dict[str, int] = {}
    for d in documents:
        counts[d["metadata"]["section"]] = counts.get(d["metadata"]["section"], 0) + 1
    chosen, total = [], 0
    for section, count in sorted(counts.items(), key=lambda item: (item[1], item[0])):
        if total + count > share * len(documents) * 1.2:
            continue
        chosen.append(section)
        total += count
        if total >= share * len(documents) * 0.8:
            break
    return chosen


def cases(
    documents: list[dict[str, Any]],
) -> list[tuple[str, dict[str, Any] | None, Callable[[Metadata], bool]]]:
    result: list[tuple[str, dict[str, Any] | None, Callable[[Metadata], bool]]] = [
        ("unfiltered", None, lambda m: True),
        ("arch == amd64", {"architecture": "amd64"}, lambda m: m["architecture"] == "amd64"),
    ]
    for share in (0.5, 0.1, 0.01, 0.001):
        bound = size_at_least(documents, share)
        result.append(
            (
                f"installed_size >= {bound}",
                {"installed_size": {"$gte": bound}},
                lambda m, bound=bound: m["installed_size"] >= bound,  # type: ignore[misc]
            )
        )
    for share in (0.1, 0.01, 0.001):
        sections = rare_sections(documents, share)
        result.append(
            (
                f"section in {len(sections)} rare",
                {"section": {"$in": sections}},
                lambda m, s=frozenset(sections): m["section"] in s,  # type: ignore[misc]
            )
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="debian-20k")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ef", type=int, default=0, help="search ef (0: the collection's 64)")
    parser.add_argument("--filtered-search", default="auto", choices=["auto", "exact", "graph"])
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (client threads)"
    )
    args = parser.parse_args()

    documents, vectors, all_queries = load(args.data_root / args.data)
    queries = all_queries[: args.queries]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    workdir = Path(tempfile.mkdtemp(prefix="shoal-bench-"))
    shard = ServiceProcess(
        "shard",
        "shard",
        ["--data-dir", str(workdir / "data"), "--filtered-search", args.filtered_search],
        workdir,
    )
    shard.start()
    try:
        shard.wait_ready(120)
        with grpc.insecure_channel(shard.address, options=GRPC_OPTIONS) as channel:
            stub = shard_pb2_grpc.ShardServiceStub(channel)
            config = common_pb2.CollectionConfig(name=NAME, dimension=vectors.shape[1])
            stub.CreateCollection(shard_pb2.ShardCreateCollectionRequest(config=config))
            started = time.perf_counter()
            for start in range(0, len(documents), 1000):
                writes = [
                    shard_pb2.ShardWrite(
                        id=documents[row]["id"],
                        version=1,
                        vector_f32=vectors[row].astype("<f4").tobytes(),
                        metadata=metadata_to_proto(documents[row]["metadata"]),
                    )
                    for row in range(start, min(start + 1000, len(documents)))
                ]
                stub.Write(shard_pb2.ShardWriteRequest(collection=NAME, writes=writes))
            print(
                f"{args.data}: {len(documents)} documents loaded in"
                f" {time.perf_counter() - started:.1f}s; {len(queries)} queries, k={K},"
                f" filtered-search={args.filtered_search}, concurrency={args.concurrency}"
            )
            header = ("filter", "matching", "share", "QPS", "vs unf.", "recall@10")
            print("{:32s} {:>9s} {:>7s} {:>8s} {:>7s} {:>9s}".format(*header))
            baseline = 0.0
            for label, where, matches in cases(documents):
                rows = np.array([r for r, d in enumerate(documents) if matches(d["metadata"])])
                scores = queries @ unit[rows].T
                truth = rows[np.argsort(-scores, axis=1, kind="stable")[:, :K]]
                requests = [
                    shard_pb2.ShardSearchRequest(
                        collection=NAME,
                        queries_f32=query.astype("<f4").tobytes(),
                        k=K,
                        ef=args.ef,
                        filter=where_to_filter(where),
                    )
                    for query in queries
                ]
                runs, found = [], 0
                with ThreadPoolExecutor(args.concurrency) as pool:
                    for _ in range(args.repeats):
                        started = time.perf_counter()
                        responses = list(pool.map(stub.Search, requests))
                        runs.append(len(requests) / (time.perf_counter() - started))
                ids = {d["id"]: row for row, d in enumerate(documents)}
                for response, expected in zip(responses, truth, strict=True):
                    got = {ids[hit.id] for hit in response.results[0].hits}
                    found += len(got & set(expected.tolist()))
                qps = statistics.median(runs)
                baseline = baseline or qps
                recall = found / truth.size
                print(
                    f"{label:32s} {len(rows):9d} {len(rows) / len(documents):7.2%}"
                    f" {qps:8.0f} {qps / baseline:7.2f} {recall:9.4f}"
                )
    finally:
        shard.stop()


if __name__ == "__main__":
    main()
