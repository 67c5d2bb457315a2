"""Partition moves: how fast a rebalance copies, and what it costs searches and upserts.

    python -m bench.reshard                                  # debian-20k, 2 -> 3 groups
    python -m bench.reshard --dataset debian-dev --documents 2000 --queries 50  # tiny
    python -m bench.reshard --dataset gen-100k

A cluster of `--groups` x `--replicas` (etcd, the fake embedder: every call
carries its vector) is loaded with the set, then one more group is started,
added (`Client.add_group`) and rebalanced onto (`Client.rebalance`). Meanwhile
one thread searches one query at a time and another upserts batches of
existing ids; the same runs for `--seconds` before the moves and after them.

Reports: per move and for the whole rebalance, records copied per second and
MB/s (the records' ids, vectors and texts as the mover counts them); search
p50/p99 and recall@10 and upsert documents/s before, during and after.
Prints Markdown; the numbers are for `docs/benchmarks.md`.
"""

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import datasets, services
from bench.stats import Latency
from shoal.cli.local_cluster import ClusterSpec, LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.moves import FINAL
from shoal.sdk.client import Client

COLLECTION = "reshard"
K = 10
MOVES_TIMEOUT_S = 3600.0


@dataclass
class Window:
    """What the searching and upserting threads saw in one stretch of time."""

    latencies: list[float] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)
    upserted: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0


class Traffic:
    """A searching and an upserting thread; `switch` starts a new window."""

    def __init__(self, address: str, data: datasets.VectorSet, batch: int) -> None:
        self._address = address
        self._data = data
        self._batch = batch
        self._stop = threading.Event()
        self.window = Window()
        self._threads = [
            threading.Thread(target=self._search, name="search"),
            threading.Thread(target=self._upsert, name="upsert"),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def switch(self) -> Window:
        done, self.window = self.window, Window()
        done.ended = time.monotonic()
        return done

    def stop(self) -> Window:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)
        return self.switch()

    def _search(self) -> None:
        queries, truth = self._data.queries, self._data.truth
        with Client(self._address, timeout=60) as client:
            row = 0
            while not self._stop.is_set():
                row = (row + 1) % len(queries)
                started = time.perf_counter()
                try:
                    hits = client.search(COLLECTION, queries[row], k=K, include=()).hits
                except Exception as error:
                    self.window.failures += 1
                    self.window.errors.append(f"{type(error).__name__}: {error}")
                    continue
                self.window.latencies.append(time.perf_counter() - started)
                found = {int(hit.id) for hit in hits}
                self.window.recalls.append(len(found & set(truth[row].tolist())) / K)

    def _upsert(self) -> None:
        rng = np.random.default_rng(1)
        documents = self._data.documents
        with Client(self._address, timeout=60) as client:
            while not self._stop.is_set():
                rows = rng.choice(len(documents), self._batch, replace=False)
                try:
                    client.upsert(
                        COLLECTION,
                        [{"id": str(r), "vector": documents[r]} for r in rows],
                        consistency="quorum",
                    )
                except Exception as error:
                    self.window.failures += 1
                    self.window.errors.append(f"{type(error).__name__}: {error}")
                    continue
                self.window.upserted += len(rows)


def _start_group(cluster: LocalCluster, group: int, replicas: int) -> list[ServiceProcess]:
    assert cluster.etcd is not None
    shards = []
    for replica in range(replicas):
        name = f"shard-{group}-{replica}"
        args = [
            "--data-dir", str(cluster.root / "data" / name),
            "--topology", str(cluster.topology_path),
            "--etcd", cluster.etcd.endpoints_flag,
        ]  # fmt: skip
        shard = ServiceProcess(name, "shard", args, cluster.log_dir)
        shard.start()
        shards.append(shard)
    for shard in shards:
        shard.wait_ready(services.READY_TIMEOUT_S)
    return shards


def _row(name: str, window: Window) -> str:
    seconds = max(window.ended - window.started, 1e-9)
    latency = Latency.of(window.latencies) if window.latencies else None
    recall = float(np.mean(window.recalls)) if window.recalls else float("nan")
    p50 = f"{latency.p50:.1f}" if latency else "-"
    p99 = f"{latency.p99:.1f}" if latency else "-"
    return (
        f"| {name} | {seconds:.1f} | {len(window.latencies)} | {p50} | {p99} | {recall:.3f}"
        f" | {window.upserted / seconds:.0f} | {window.failures} |"
    )


def run(args: argparse.Namespace, workdir: Path) -> None:
    data = datasets.load(args.dataset, args.queries)
    if args.documents:
        keep = args.documents
        data = datasets.VectorSet(
            data.name,
            data.documents[:keep],
            data.queries,
            datasets.exact_top_k(data.documents[:keep], data.queries),
            data.source,
        )
    spec = ClusterSpec(
        groups=args.groups,
        replicas=args.replicas,
        model=services.FAKE_EMBEDDER,
        ready_timeout=services.READY_TIMEOUT_S,
    )
    cluster = LocalCluster(workdir / "cluster", spec)
    cluster.start()
    added: list[ServiceProcess] = []
    try:
        added = _start_group(cluster, args.groups, args.replicas)
        with Client(cluster.address, timeout=120) as client:
            client.create_collection(
                COLLECTION, dimension=data.documents.shape[1], partitions=args.partitions
            )
            for start in range(0, data.size, 500):
                rows = range(start, min(start + 500, data.size))
                client.upsert(
                    COLLECTION, [{"id": str(r), "vector": data.documents[r]} for r in rows]
                )
            traffic = Traffic(cluster.address, data, args.upsert_batch)
            traffic.start()
            time.sleep(args.seconds)
            before = traffic.switch()
            client.add_group([shard.address for shard in added])
            started = time.monotonic()
            statuses = client.rebalance()
            ids = {status.id for status in statuses}
            deadline = started + MOVES_TIMEOUT_S
            while time.monotonic() < deadline:
                statuses = [s for s in client.moves() if s.id in ids]
                if all(s.phase in FINAL for s in statuses):
                    break
                time.sleep(0.2)
            rebalance_s = time.monotonic() - started
            during = traffic.switch()
            time.sleep(args.seconds)
            after = traffic.stop()
    finally:
        for shard in added:
            shard.stop()
        cluster.stop()

    copied = sum(s.copied for s in statuses)
    megabytes = sum(s.copied_bytes for s in statuses) / 1e6
    print(f"## Rebalance {args.groups} -> {args.groups + 1} groups, {data.name}")
    print(f"\n{data.size:,} documents, {args.partitions} partitions, replication {args.replicas}")
    print("\n| move | partition | records copied | MB | seconds | records/s | MB/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for status in statuses:
        seconds = max(status.updated_s - (status.started_s or status.created_s), 1e-9)
        print(
            f"| {status.move.source} -> {status.move.target} | {status.move.partition}"
            f" | {status.copied} | {status.copied_bytes / 1e6:.1f} | {seconds:.1f}"
            f" | {status.copied / seconds:.0f} | {status.copied_bytes / 1e6 / seconds:.1f} |"
        )
    print(
        f"| all ({len(statuses)} moves) | | {copied} | {megabytes:.1f} | {rebalance_s:.1f}"
        f" | {copied / rebalance_s:.0f} | {megabytes / rebalance_s:.1f} |"
    )
    print(
        "\nseconds per move include the two confirmations that every replica has"
        " the new topology version (before the copy, and before the last copy and clean-up)."
    )
    print(
        "\n| window | seconds | searches | p50 ms | p99 ms | recall@10 | upserted docs/s"
        " | failed calls |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, window in (("before", before), ("during moves", during), ("after", after)):
        print(_row(name, window))
    errors = sorted({e[:200] for w in (before, during, after) for e in w.errors})
    if errors:
        print("\nfailures:", *errors[:5], sep="\n- ")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reshard", description=__doc__)
    parser.add_argument("--dataset", default="debian-20k", help="debian-dev, debian-20k, gen-100k")
    parser.add_argument("--documents", type=int, default=0, help="only the first N (0: all)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--groups", type=int, default=2, help="groups before the new one")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0, help="traffic before and after")
    parser.add_argument("--upsert-batch", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-reshard-") as workdir:
        run(args, Path(workdir))


if __name__ == "__main__":
    main()
