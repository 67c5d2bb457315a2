"""Snapshot and restore throughput, to a directory and to S3, and search p99 while a
snapshot runs.

Starts a local cluster (vectors given: the fake embedder), loads a set, then per
target: `CreateSnapshot` of the collection (documents/s and MB/s of data files
over the whole call, which includes the fixed 1.5 s the cut waits: 0.5 s lead and
1 s settle, see docs/snapshots.md), `RestoreSnapshot` under a new name (checksums
then bulk load), and search latency with one search at a time before and during
a snapshot. S3 is a moto server on loopback (`moto[server]`), so its figures are
those of the protocol and boto3's transfers on this machine, not of a real store.

    python -m bench.snapshot                                  # debian-20k, 2 groups x 1
    python -m bench.snapshot --dataset debian-dev --targets dir
    python -m bench.snapshot --dataset gen-100k --groups 2 --replicas 2
"""

import argparse
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import datasets
from bench.services import FAKE_EMBEDDER, READY_TIMEOUT_S
from shoal import Client
from shoal.cli.local_cluster import ClusterSpec, LocalCluster

COLLECTION = "bench"
BUCKET = "shoal-bench"
UPSERT_BATCH = 1000
MAX_SEARCHES = 100_000


@dataclass
class Timed:
    seconds: float
    documents: int
    megabytes: float

    def row(self, what: str, target: str) -> str:
        return (
            f"| {what} | {target} | {self.documents:,} | {self.seconds:.2f} |"
            f" {self.documents / self.seconds:,.0f} | {self.megabytes / self.seconds:,.1f} |"
        )


class SearchLoop(threading.Thread):
    """One search at a time until stopped (bounded in count), recording latencies."""

    def __init__(self, address: str, queries: datasets.Matrix) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.queries = queries
        self.latencies_ms: list[float] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        with Client(self.address, timeout=60) as client:
            for n in range(MAX_SEARCHES):
                if self.stop_event.is_set():
                    return
                started = time.perf_counter()
                client.search(COLLECTION, self.queries[n % len(self.queries)], k=10)
                self.latencies_ms.append((time.perf_counter() - started) * 1000)


def p99(values: Sequence[float]) -> float:
    return float(np.percentile(values, 99)) if values else float("nan")


@contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free loopback port; the environment that reaches it."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.stop()


def load(address: str, vectors: datasets.Matrix) -> None:
    with Client(address, timeout=600) as client:
        client.create_collection(COLLECTION, dimension=vectors.shape[1])
        for start in range(0, len(vectors), UPSERT_BATCH):
            client.upsert(
                COLLECTION,
                [
                    {"id": f"d{row}", "vector": vectors[row], "metadata": {"row": row}}
                    for row in range(start, min(start + UPSERT_BATCH, len(vectors)))
                ],
                "all",
            )


def measure_target(
    target: str, location: str, env: dict[str, str], args: argparse.Namespace, workdir: Path
) -> list[str]:
    data = datasets.load(args.dataset, args.queries)
    spec = ClusterSpec(
        groups=args.groups,
        replicas=args.replicas,
        model=FAKE_EMBEDDER,
        ready_timeout=READY_TIMEOUT_S,
        coordinator_args=("--snapshot-location", location),
    )
    cluster = LocalCluster(workdir / target, spec)
    cluster.coordinator.env = dict(env)
    cluster.start()
    rows = []
    try:
        load(cluster.address, data.documents)
        with Client(cluster.address, timeout=3600) as client:
            baseline = SearchLoop(cluster.address, data.queries)
            baseline.start()
            time.sleep(args.search_seconds)  # a measurement window, not a wait on a condition
            baseline.stop_event.set()
            baseline.join()

            during = SearchLoop(cluster.address, data.queries)
            during.start()
            started = time.perf_counter()
            snapshot = client.create_snapshot(f"{target}-1", [COLLECTION])
            taken = time.perf_counter() - started
            during.stop_event.set()
            during.join()
            megabytes = snapshot.bytes / 1e6
            rows.append(
                Timed(taken, snapshot.collections[0].documents, megabytes).row("snapshot", target)
            )

            started = time.perf_counter()
            client.restore_snapshot(f"{target}-1", [COLLECTION], new_name="restored")
            restored = time.perf_counter() - started
            rows.append(
                Timed(restored, snapshot.collections[0].documents, megabytes).row("restore", target)
            )
            assert client.count("restored") == snapshot.collections[0].documents
        rows.append(
            f"| search p99 ms | {target} | before: {p99(baseline.latencies_ms):.2f}"
            f" ({len(baseline.latencies_ms)} searches, p50"
            f" {statistics.median(baseline.latencies_ms):.2f}) | during the snapshot:"
            f" {p99(during.latencies_ms):.2f} ({len(during.latencies_ms)} searches, p50"
            f" {statistics.median(during.latencies_ms or [float('nan')]):.2f}) | | |"
        )
    finally:
        cluster.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.snapshot", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default="debian-20k", help="debian-dev, debian-20k, gen-100k")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--targets", nargs="+", choices=["dir", "s3"], default=["dir", "s3"])
    parser.add_argument("--search-seconds", type=float, default=5.0, help="baseline search window")
    parser.add_argument("--label", default="shared machine", help="printed with the figures")
    args = parser.parse_args(argv)
    print(
        f"\n### Snapshot and restore: {args.dataset}, {args.groups} groups x {args.replicas}"
        f" replicas ({args.label})\n"
    )
    print("| what | target | documents | seconds | documents/s | MB/s |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        workdir = Path(tmp)
        for target in args.targets:
            if target == "dir":
                rows = measure_target("dir", str(workdir / "snapshots"), {}, args, workdir)
            else:
                with moto_s3() as env:
                    rows = measure_target("s3", f"s3://{BUCKET}/bench", env, args, workdir)
            for row in rows:
                print(row, flush=True)


if __name__ == "__main__":
    main()
