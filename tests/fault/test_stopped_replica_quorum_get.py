"""Get at QUORUM with one of three replicas stopped (SIGSTOP: connected, never answering).

The stopped replica used to get the whole deadline of each get that asked it,
leaving none for the third replica: those gets failed DEADLINE_EXCEEDED. Now
the replicas asked share the deadline with the spare, so every get answers.
"""

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from shoal import Client
from shoal.cli.service_process import ServiceProcess
from tests.conftest import StartCluster

COLLECTION = "docs"
DIM = 8
COUNT = 60
GETS = 30
DEADLINE_S = 2.0


@contextmanager
def stopped(service: ServiceProcess) -> Iterator[None]:
    """SIGSTOP the process for the block; SIGCONT whatever happens, so it can be stopped."""
    assert service.process is not None
    os.kill(service.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(service.process.pid, signal.SIGCONT)


def test_get_at_quorum_answers_in_time_with_a_replica_stopped(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(groups=1, replicas=3, model="hash-8")
    vectors = np.random.default_rng(3).standard_normal((COUNT, DIM)).astype(np.float32)
    ids = [f"doc-{i:02d}" for i in range(COUNT)]
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=DIM, partitions=4)
        documents = [{"id": i, "vector": v} for i, v in zip(ids, vectors, strict=True)]
        client.upsert(COLLECTION, documents, "all")

    failures: list[str] = []
    slowest = 0.0
    with stopped(cluster.shards[0][1]), Client(cluster.address, timeout=DEADLINE_S) as client:
        for attempt in range(GETS):
            doc_id = ids[attempt % COUNT]
            started = time.monotonic()
            try:
                found = client.get(COLLECTION, [doc_id], include=[], consistency="quorum")
                assert [document.id for document in found] == [doc_id]
            except Exception as error:  # every failure is counted, whatever its kind
                failures.append(f"get {attempt}: {error!r}")
            slowest = max(slowest, time.monotonic() - started)
    assert failures == [], f"{len(failures)} of {GETS} gets failed: {failures[:3]}"
    print(f"{GETS} gets at QUORUM with a replica stopped: slowest {slowest:.2f}s")
