"""Real Shoal processes for the suites: clusters on 127.0.0.1:0 and a lone shard.

Everything runs as the services' own command lines through shoal.cli.local_cluster, so
the figures include process boundaries, gRPC and serialization exactly as a
deployment has them.
"""

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench import loadgen
from shoal.cli.local_cluster import ClusterSpec, LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.sdk.client import Client

COLLECTION = "bench"
#: The embedder the search and ingest clusters start with: vectors are given, so
#: the real model would only take memory and start-up time.
FAKE_EMBEDDER = "hash-384"
READY_TIMEOUT_S = 600.0  # a shard loading 1M documents takes a while

#: Search clusters never checkpoint in the background, so an index save (seconds
#: of CPU on a large index) cannot land inside a measurement. The ingest suite
#: keeps the shard's default policy, as in production.
NO_CHECKPOINTS = {
    "SHOAL_CHECKPOINT_EVERY_WRITES": "1000000000",
    "SHOAL_CHECKPOINT_INTERVAL_S": "1e9",
}


@contextmanager
def cluster(
    root: Path, groups: int, replicas: int, shard_env: dict[str, str] | None = None
) -> Iterator[LocalCluster]:
    spec = ClusterSpec(
        groups=groups, replicas=replicas, model=FAKE_EMBEDDER, ready_timeout=READY_TIMEOUT_S
    )
    running = LocalCluster(root, spec)
    for shard in running.all_shards:
        shard.env = dict(shard_env or {})
    running.start()
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def running(service: ServiceProcess | None) -> Iterator[ServiceProcess | None]:
    """Start a lone service (if any) and always stop it."""
    if service is None:
        yield None
        return
    service.start()
    try:
        service.wait_ready(READY_TIMEOUT_S)
        yield service
    finally:
        service.stop()


def pid(service: ServiceProcess) -> int:
    if service.process is None:
        raise RuntimeError(f"{service.name} is not running")
    return service.process.pid


def shard_pids(running: LocalCluster) -> list[int]:
    return [pid(shard) for shard in running.all_shards]


def create_collection(
    address: str, name: str, m: int, ef_construction: int, ef: int, dimension: int = 384
) -> None:
    with Client(address) as client:
        client.create_collection(
            name,
            dimension=dimension,
            metric="cosine",
            hnsw_m=m,
            hnsw_ef_construction=ef_construction,
            hnsw_ef=ef,
        )


def drop_collection(address: str, name: str) -> None:
    with Client(address) as client:
        client.delete_collection(name)


def call_all(
    address: str,
    method: str,
    requests: Sequence[bytes],
    pids: Mapping[str, Sequence[int]] | None = None,
) -> loadgen.Calls:
    """Every request once, one at a time, no warm-up (loading data, writes)."""
    return loadgen.sequential(address, method, requests, max_seconds=math.inf, warmup=0, pids=pids)
