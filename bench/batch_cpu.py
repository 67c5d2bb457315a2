"""`python -m bench.batch_cpu`: CPU per query of SearchBatch through the SDK, per process.

Where a batch's time goes on the path `shoal.Client.search_batch` -> coordinator ->
shard (1 group, replication 1), measured as CPU, not QPS, so it can be read on a
machine others share: over a fixed set of batches (one call in flight, as the
SDK benchmark's SearchBatch row), each process's CPU time from its CPU clock
(`bench.procfs`), and in-process hnswlib's CPU for the same batches as the
reference. The raw-bytes client (requests serialized before, replies parsed
after) runs the same batches, so SDK and service can be told apart.

With one call in flight the processes take turns; hnswlib alone uses both
cores. The report estimates the QPS ratio that implies: in-process hnswlib's
wall time per query is its CPU over the cores, the service's is every
process's CPU outside hnswlib plus hnswlib's CPU over the cores (`--cores`),
plus the latency of the two round trips (`--round-trip-us`, per call); the
measured wall time per batch is printed too, to show idle time (it is only
meaningful on a quiet machine).

    python -m bench.batch_cpu --passes 5
    python -m bench.batch_cpu --py-spy /tmp/batch-profile   # plus py-spy per process
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import datasets, loadgen, messages, services
from bench.inprocess import InProcessIndex
from bench.procfs import cpu_seconds, own_cpu_seconds
from bench.recall import recall_at_k
from shoal.sdk.client import Client
from shoal.v1 import shoal_pb2

K = 10


def _rows(ids: Sequence[Sequence[object]]) -> list[list[int]]:
    return [[int(str(i)) for i in row if i != ""] for row in ids]


def _pass(
    client: Client, queries: np.ndarray, batch: int, ef: int, pids: dict[str, int]
) -> tuple[dict[str, float], list[float], list[list[int]]]:
    """One pass over `queries` through the SDK: CPU seconds per process, wall per batch."""
    start = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own = own_cpu_seconds()
    walls: list[float] = []
    rows: list[list[int]] = []
    results = []
    for first in range(0, len(queries), batch):
        began = time.perf_counter()
        result = client.search_batch(
            services.COLLECTION, queries[first : first + batch], k=K, ef=ef, include=[]
        )
        walls.append(time.perf_counter() - began)
        results.append(result)
    used = {name: cpu_seconds(pid) - start[name] for name, pid in pids.items()}
    used["client"] = own_cpu_seconds() - own
    for result in results:
        rows.extend(_rows(result.ids.tolist()))
    return used, walls, rows


def _raw_pass(
    address: str, requests: list[bytes], pids: dict[str, int]
) -> tuple[dict[str, float], list[float]]:
    calls = loadgen.sequential(
        address,
        messages.SEARCH_BATCH,
        requests,
        max_seconds=1e9,
        warmup=0,
        pids={name: [pid] for name, pid in pids.items()},
    )
    return calls.cpu, calls.latencies


def _py_spy(
    pids: dict[str, int], out: Path, seconds: int, native: bool
) -> list[subprocess.Popen[bytes]]:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    out.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                "250",
                "--format",
                "raw",
                "--threads",
                # py-spy reads native stacks only from a stopped process.
                *(["--native"] if native else ["--nonblocking"]),
                "--output",
                str(out / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def _perf(pids: dict[str, int], out: Path) -> list[subprocess.Popen[bytes]]:
    """perf record of each process (every thread, hnswlib's included) until SIGINT."""
    perf = shutil.which("perf")
    if perf is None:
        raise SystemExit("perf is not installed")
    out.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [perf, "record", "-F", "1999", "-g", "-p", str(pid), "-o", str(out / f"{name}.data")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_cpu", description=__doc__)
    parser.add_argument("--dataset", default="debian-20k", choices=datasets.REAL)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--ef", type=int, default=32)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--round-trip-us", type=float, default=300.0)
    parser.add_argument(
        "--idle-seconds", type=float, default=3.0, help="measure CPU without load this long"
    )
    parser.add_argument("--py-spy", type=Path, default=None, help="profile every process here")
    parser.add_argument("--native", action="store_true", help="py-spy with native frames")
    parser.add_argument(
        "--perf", type=Path, default=None, help="perf record (cpu-clock) every process here"
    )
    args = parser.parse_args(argv)
    data = datasets.load(args.dataset, args.queries)
    queries = data.queries
    reference = InProcessIndex(data.documents, 16, 200, args.cores)
    requests = [
        request + shoal_pb2.SearchBatchRequest(packed=True).SerializeToString()
        for request in messages.search_batch_requests(
            services.COLLECTION, queries, K, args.ef, args.batch
        )
    ]
    sdk: list[dict[str, float]] = []
    raw: list[dict[str, float]] = []
    hnsw: list[float] = []
    walls: list[float] = []
    hnsw_walls: list[float] = []
    recall = 0.0
    with (
        tempfile.TemporaryDirectory(prefix="bench-batch-cpu-") as tmp,
        services.cluster(Path(tmp), 1, 1, services.NO_CHECKPOINTS) as running,
    ):
        address = running.address
        services.create_collection(address, services.COLLECTION, 16, 200, args.ef)
        services.call_all(
            address,
            messages.UPSERT,
            messages.upsert_requests(services.COLLECTION, data.documents, 1000),
        )
        pids = {"coordinator": services.pid(running.coordinator)}
        pids["shard"] = services.shard_pids(running)[0]
        with Client(address, timeout=loadgen.CALL_TIMEOUT_S) as client:
            _pass(client, queries[: 10 * args.batch], args.batch, args.ef, pids)  # warm-up
            idle = {name: cpu_seconds(pid) for name, pid in pids.items()}
            time.sleep(args.idle_seconds)
            idle = {
                name: (cpu_seconds(pid) - idle[name]) / args.idle_seconds
                for name, pid in pids.items()
            }
            spies = []
            if args.py_spy is not None:
                seconds = max(1, int(args.passes * len(queries) / 5000))
                spies = _py_spy(pids | {"client": os.getpid()}, args.py_spy, seconds, args.native)
            if args.perf is not None:
                spies = _perf(pids, args.perf)
            for _ in range(args.passes):
                used, wall, rows = _pass(client, queries, args.batch, args.ef, pids)
                sdk.append(used)
                walls.extend(wall)
                recall = recall_at_k(rows, data.truth[: len(rows)], K)
                cpu = own_cpu_seconds()
                measured = reference.batches(queries, K, args.ef, args.batch)
                hnsw.append(own_cpu_seconds() - cpu)
                hnsw_walls.append(measured.seconds)
                if args.py_spy is None:
                    raw.append(_raw_pass(address, requests, pids)[0])
            for spy in spies:
                if args.perf is not None:
                    spy.send_signal(signal.SIGINT)
                spy.wait()
    n = len(queries)

    def us(values: list[dict[str, float]], name: str) -> float:
        return statistics.median(v[name] for v in values) / n * 1e6

    hnsw_us = statistics.median(hnsw) / n * 1e6
    names = ("client", "coordinator", "shard")
    print(
        f"# SearchBatch CPU per query: {args.dataset}, {n} queries, batches of {args.batch},"
        f" ef {args.ef}, k {K}, 1 group, replication 1; medians of {args.passes} passes"
    )
    print()
    print("| | client | coordinator | shard | total | in-process hnswlib |")
    print("|---|---:|---:|---:|---:|---:|")
    totals = {}
    for label, values in (("shoal.Client", sdk), ("raw client", raw)):
        if not values:
            continue
        figures = [us(values, name) for name in names]
        totals[label] = figures
        cells = " | ".join(f"{f:.1f}" for f in figures)
        print(f"| {label} | {cells} | {sum(figures):.1f} | {hnsw_us:.1f} |")
    print()
    batches = args.batch
    wall_us = statistics.median(walls) / batches * 1e6
    hnsw_wall_us = statistics.median(hnsw_walls) / n * 1e6
    print(f"recall@10 {recall:.3f}")
    print(
        "CPU without load (background work), share of a core: "
        + ", ".join(f"{name} {share:.1%}" for name, share in idle.items())
    )
    print(
        f"wall per query (median batch / {batches}): SDK {wall_us:.1f} µs,"
        f" in-process hnswlib {hnsw_wall_us:.1f} µs (ratio {hnsw_wall_us / wall_us:.0%});"
        " meaningful on a quiet machine only"
    )
    for label, figures in totals.items():
        outside = sum(figures) - hnsw_us  # the shard's hnswlib share taken as in-process's
        estimate = outside + hnsw_us / args.cores + 2 * args.round_trip_us / batches
        print(
            f"{label}: CPU outside hnswlib {outside:.1f} µs/query; estimated QPS ratio"
            f" {hnsw_us / args.cores / estimate:.0%} (hnswlib on {args.cores} cores,"
            f" {args.round_trip_us:.0f} µs per round trip)"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
