"""What TLS on the public API, mTLS inside and API keys cost: search and upsert
throughput, single and batch, plaintext against TLS + mTLS + API keys, in the
same run.

    python -m bench.security                                  # 1 group x 2 replicas
    python -m bench.security --documents 2000 --seconds 2 --runs 1   # a quick look

Two local clusters of the same shape start side by side (shoal.cli.local_cluster:
etcd, the fake `hash-D` embedder, shards, a coordinator): one plaintext, one
with `secure=True` (TLS to the coordinator, mTLS from it to every shard and
between replicas, certificates of a local CA) and a keys file (the
coordinator checks the key every call carries, as `authorization: Bearer`
metadata; the key's role is admin, which the collection's creation needs).
Both are loaded with the same random vectors; then, alternating between them
`--runs` times, each workload runs for at most `--seconds`: Search one call at
a time and `--in-flight` calls outstanding, SearchBatch of `--batch` queries, Upsert of one document
one at a time and in flight, and Upsert of `--batch` documents (write
consistency QUORUM). Calls go out as pre-serialized bytes (bench.loadgen), so
the client's own protobuf work is not what is measured; TLS connections are
made once, before the clock starts, as a long-lived client's are.

Prints the command it ran and a Markdown table: medians of the runs, and the
secure figure as a share of the plaintext one.
"""

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench import loadgen
from bench.stats import Latency
from shoal.access import Role
from shoal.api_keys import generate_key, key_entry
from shoal.cli.local_cluster import ClusterSpec, LocalCluster
from shoal.runtime.tls import ClientTls
from shoal.sdk.client import Client
from shoal.v1 import common_pb2, shoal_pb2

Matrix = npt.NDArray[np.float32]
COLLECTION = "bench"
SEARCH = "/shoal.v1.ShoalService/Search"
SEARCH_BATCH = "/shoal.v1.ShoalService/SearchBatch"
UPSERT = "/shoal.v1.ShoalService/Upsert"
NOTHING = common_pb2.Include()
K = 10
PLAINTEXT = "plaintext"
SECURE = "TLS + mTLS + API keys"


@dataclass(frozen=True)
class Workload:
    name: str
    method: str
    #: Requests for one measurement, given a run number (upserts need fresh ids).
    requests: Callable[[int], list[bytes]]
    in_flight: int  # 0: one call at a time
    #: Queries or documents per call.
    items: int


def _vectors(rng: np.random.Generator, count: int, dimension: int) -> Matrix:
    vectors = rng.standard_normal((count, dimension), dtype=np.float32)
    normalized: Matrix = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalized


def _documents(vectors: Matrix, first_id: int) -> list[common_pb2.Document]:
    return [
        common_pb2.Document(id=f"d{first_id + i}", vector_f32=v.astype("<f4").tobytes())
        for i, v in enumerate(vectors)
    ]


def workloads(args: argparse.Namespace, rng: np.random.Generator) -> list[Workload]:
    dim, calls, batch = args.dimension, args.calls, args.batch
    queries = [
        shoal_pb2.Query(vector_f32=v.astype("<f4").tobytes()) for v in _vectors(rng, calls, dim)
    ]
    searches = [
        shoal_pb2.SearchRequest(
            collection=COLLECTION, query=q, k=K, include=NOTHING
        ).SerializeToString()
        for q in queries
    ]
    batches = [
        shoal_pb2.SearchBatchRequest(
            collection=COLLECTION,
            queries=[queries[(start + i) % calls] for i in range(batch)],
            k=K,
            include=NOTHING,
        ).SerializeToString()
        for start in range(0, calls, max(1, calls // 64))
    ]
    upsert_vectors = _vectors(rng, calls, dim)

    def upserts(per_call: int) -> Callable[[int], list[bytes]]:
        def make(run: int) -> list[bytes]:
            # New ids every run (and per mode, see measure): inserts, not overwrites.
            first = args.documents + (run + 1) * 10 * calls * per_call
            return [
                shoal_pb2.UpsertRequest(
                    collection=COLLECTION,
                    documents=_documents(
                        upsert_vectors[np.arange(c * per_call, (c + 1) * per_call) % calls],
                        first + c * per_call,
                    ),
                ).SerializeToString()
                for c in range(max(1, calls // per_call) if per_call > 1 else calls)
            ]

        return make

    return [
        Workload("Search, one at a time", SEARCH, lambda _: searches, 0, 1),
        Workload(f"Search, {args.in_flight} in flight", SEARCH, lambda _: searches,
                 args.in_flight, 1),
        Workload(f"SearchBatch of {batch}, 2 in flight", SEARCH_BATCH, lambda _: batches,
                 2, batch),
        Workload("Upsert 1 document, one at a time", UPSERT, upserts(1), 0, 1),
        Workload(f"Upsert 1 document, {args.in_flight} in flight", UPSERT, upserts(1),
                 args.in_flight, 1),
        Workload(f"Upsert {batch} documents, 2 in flight", UPSERT, upserts(batch), 2, batch),
    ]  # fmt: skip


@dataclass(frozen=True)
class Side:
    """One of the two clusters, and what its clients show it."""

    cluster: LocalCluster
    tls: ClientTls | None
    api_key: str | None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),) if self.api_key else ()


def cluster_spec(
    args: argparse.Namespace, secure: bool, root: Path
) -> tuple[ClusterSpec, str | None]:
    """The plaintext cluster's spec, or the secure one's: TLS + mTLS, and a keys file
    in `root` with one new key (returned), which the coordinator then requires."""
    coordinator_args: tuple[str, ...] = ()
    key = None
    if secure:
        key = generate_key()
        keys_file = root / "bench-api-keys.json"
        keys_file.write_text(json.dumps({"keys": [key_entry(key, "bench", Role.ADMIN)]}))
        coordinator_args = ("--api-keys-file", str(keys_file))
    spec = ClusterSpec(
        groups=args.groups, replicas=args.replicas, model=f"hash-{args.dimension}",
        secure=secure, coordinator_args=coordinator_args,
    )  # fmt: skip
    return spec, key


def load(side: Side, vectors: Matrix) -> None:
    ca = side.tls.ca if side.tls is not None else None
    with Client(side.cluster.address, timeout=300, ca_file=ca, api_key=side.api_key) as client:
        client.create_collection(COLLECTION, dimension=vectors.shape[1])
        for start in range(0, len(vectors), 500):
            chunk = vectors[start : start + 500]
            documents = [{"id": f"d{start + i}", "vector": v} for i, v in enumerate(chunk)]
            client.upsert(COLLECTION, documents)


def measure(workload: Workload, side: Side, run: int, seconds: float) -> tuple[float, Latency]:
    """Items (queries or documents) per second, and the calls' latency."""
    # The secure cluster writes other ids than the plaintext one in the same run.
    requests = workload.requests(2 * run + (side.tls is not None))
    address, tls, metadata = side.cluster.address, side.tls, side.metadata
    if workload.in_flight:
        calls = loadgen.concurrent(
            address, workload.method, requests, workload.in_flight, seconds, tls=tls,
            metadata=metadata,
        )  # fmt: skip
    else:
        calls = loadgen.sequential(
            address, workload.method, requests, seconds, tls=tls, metadata=metadata
        )
    return calls.count * workload.items / calls.seconds, Latency.of(calls.latencies)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.security", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--documents", type=int, default=20_000, help="loaded before measuring")
    parser.add_argument(
        "--calls", type=int, default=5_000, help="requests per measurement, at most"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement, at most")
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="alternations; medians are shown")
    parser.add_argument("--label", default="", help="where it ran, printed with the results")
    args = parser.parse_args(argv)
    print(f"command: python -m bench.security {shlex.join(sys.argv[1:] if argv is None else argv)}")
    rng = np.random.default_rng(7)
    vectors = _vectors(rng, args.documents, args.dimension)
    plans = workloads(args, rng)
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        sides: dict[str, Side] = {}
        try:
            for mode in (PLAINTEXT, SECURE):
                spec, key = cluster_spec(args, mode == SECURE, Path(tmp))
                cluster = LocalCluster(Path(tmp) / mode.split()[0], spec)
                cluster.start()
                sides[mode] = Side(cluster, cluster.client_tls, key)
                load(sides[mode], vectors)
            rates: dict[tuple[str, str], list[float]] = {}
            p50s: dict[tuple[str, str], list[float]] = {}
            for run in range(args.runs):
                for plan in plans:
                    for mode, side in sides.items():
                        rate, latency = measure(plan, side, run, args.seconds)
                        rates.setdefault((plan.name, mode), []).append(rate)
                        p50s.setdefault((plan.name, mode), []).append(latency.p50)
        finally:
            for side in sides.values():
                side.cluster.stop()
    label = f" ({args.label})" if args.label else ""
    print(
        f"\n### {SECURE} against plaintext{label}: {args.groups} group(s) x {args.replicas}"
        f" replicas, {args.documents:,} vectors of {args.dimension}, median of {args.runs}"
        " run(s)\n"
    )
    print(f"| workload | plaintext items/s | {SECURE} items/s | secure / plaintext |"
          " p50 ms plaintext | p50 ms secure |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for plan in plans:
        plain = statistics.median(rates[(plan.name, PLAINTEXT)])
        secure = statistics.median(rates[(plan.name, SECURE)])
        p50_plain = statistics.median(p50s[(plan.name, PLAINTEXT)])
        p50_secure = statistics.median(p50s[(plan.name, SECURE)])
        print(
            f"| {plan.name} | {plain:,.0f} | {secure:,.0f} | {100 * secure / plain:.0f}% |"
            f" {p50_plain:.2f} | {p50_secure:.2f} |"
        )
    print("\nitems: queries for searches, documents for upserts")


if __name__ == "__main__":
    main()
