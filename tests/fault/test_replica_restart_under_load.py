"""A replica SIGKILLed under a mixed load of upserts, deletes and searches, then restarted.

What must hold: no acknowledged write is lost (every replica ends with the last
acknowledged state of every id), the replicas converge by themselves (hints and
catch-up; VerifyReplicas is only asked, never told to repair) within a bounded
time, and no search or write fails while the replica is down or catching up.

Write consistency: with 2 replicas a QUORUM is both of them, so QUORUM writes
to the victim's group would fail for as long as it is down, and only writes
that failed would test nothing. So the test runs twice: 3 groups x 2 replicas
writing at ONE (acknowledged by a single replica, which is exactly what the
restarted one must catch up on), and 3 groups x 3 replicas writing at QUORUM
(acknowledged by two of three while one is down).
"""

import random
import threading
import time

import numpy as np
import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.errors import ShoalError
from shoal.runtime.wait import wait_for
from shoal.sdk.requests import Consistency
from tests import datasets
from tests.conftest import StartCluster
from tests.fault import replicas

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
PRELOAD = 1000  # documents written at ALL before the load starts
POOL = 1500  # the load upserts and deletes among the first POOL documents
BATCH = 5
MAX_OPS = 2_000
MAX_SEARCHES = 20_000
MAX_SECONDS = 150.0
CONVERGE_SECONDS = 60.0


class Workload(threading.Thread):
    """Upserts (75%) and deletes (25%) of random ids, one call at a time, bounded in
    count and time. Remembers the last acknowledged state of every id."""

    def __init__(self, address: str, consistency: Consistency, seed: int) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.consistency = consistency
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.ops = 0
        self.acked: dict[str, int | None] = {}  # id -> round of its last upsert; None: deleted
        self.uncertain: set[str] = set()  # ids whose last write failed
        self.failures: list[str] = []

    def run(self) -> None:
        data = datasets.load()
        ids = data.ids[:POOL]
        deadline = time.monotonic() + MAX_SECONDS
        with Client(self.address, timeout=10) as client:
            while not self.stop_event.is_set() and self.ops < MAX_OPS:
                if time.monotonic() > deadline:
                    self.failures.append("the load ran out of time")
                    return
                rows = self.rng.sample(range(POOL), BATCH)
                chosen = [ids[row] for row in rows]
                round_ = self.ops + 1
                try:
                    if self.rng.random() < 0.75:
                        client.upsert(
                            COLLECTION,
                            [
                                {
                                    "id": ids[row],
                                    "vector": data.document_vectors[row],
                                    "metadata": {"round": round_},
                                }
                                for row in rows
                            ],
                            self.consistency,
                        )
                        state: int | None = round_
                    else:
                        client.delete(COLLECTION, chosen, consistency=self.consistency)
                        state = None
                except ShoalError as error:
                    self.failures.append(f"write {round_}: {error!r}")
                    self.uncertain.update(chosen)
                else:
                    for doc_id in chosen:
                        self.acked[doc_id] = state
                        self.uncertain.discard(doc_id)
                self.ops += 1


class Searches(threading.Thread):
    """Searches until stopped, bounded in count and time; every failure is kept."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.stop_event = threading.Event()
        self.done = 0
        self.failures: list[str] = []

    def run(self) -> None:
        queries = datasets.load().query_vectors
        deadline = time.monotonic() + MAX_SECONDS
        with Client(self.address, timeout=10) as client:
            while not self.stop_event.is_set() and self.done < MAX_SEARCHES:
                if time.monotonic() > deadline:
                    self.failures.append("the searches ran out of time")
                    return
                try:
                    result = client.search(COLLECTION, queries[self.done % len(queries)], k=10)
                    if not result.coverage.complete or len(result.hits) != 10:
                        self.failures.append(f"search {self.done}: {result.coverage}")
                except ShoalError as error:
                    self.failures.append(f"search {self.done}: {error!r}")
                self.done += 1


def converged(cluster: LocalCluster) -> bool:
    """VerifyReplicas finds every replica of every group answering, with equal digests."""
    with Client(cluster.address, timeout=60) as client:
        report = client.verify_replicas(COLLECTION)
    return report.differing == 0 and all(
        not group.partitions and not group.unreachable for group in report.groups
    )


def check_acknowledged(cluster: LocalCluster, load: Workload) -> int:
    """Every replica holds the last acknowledged state of every id; how many were checked."""
    data = datasets.load()
    rows = {doc_id: row for row, doc_id in enumerate(data.ids)}
    expected: dict[str, int | None] = {doc_id: 0 for doc_id in data.ids[:PRELOAD]}
    expected.update(load.acked)
    for doc_id in load.uncertain:
        expected.pop(doc_id, None)
    ids = sorted(expected)
    checked = 0
    for group in cluster.shards:
        per_replica = [replicas.documents(s.address, COLLECTION, ids) for s in group]
        for doc_id in ids:
            state = expected[doc_id]
            present = [doc_id in held for held in per_replica]
            if state is None:
                assert not any(present), f"deleted {doc_id} is back in group {group[0].name}"
                continue
            if not any(present):
                continue  # another group's document
            assert all(present), f"{doc_id} is missing on a replica of {group[0].name}"
            for held in per_replica:
                stored = held[doc_id]
                round_ = stored.metadata["round"].int_value if "round" in stored.metadata else 0
                assert round_ == state, f"{doc_id}: round {round_}, acknowledged {state}"
                vector = np.frombuffer(stored.vector, dtype="<f4")
                assert np.array_equal(vector, data.document_vectors[rows[doc_id]])
            checked += 1
    live = sum(state is not None for state in expected.values())
    assert checked == live, f"{live - checked} acknowledged documents are on no replica"
    return checked


@pytest.mark.parametrize(
    ("replicas_per_group", "consistency"),
    [(2, "one"), (3, "quorum")],
    ids=["3x2-write-one", "3x3-write-quorum"],
)
def test_killed_replica_catches_up_and_nothing_acknowledged_is_lost(
    start_cluster: StartCluster, replicas_per_group: int, consistency: Consistency
) -> None:
    data = datasets.load()
    cluster = start_cluster(
        groups=3,
        replicas=replicas_per_group,
        model="hash-8",
        shard_args=("--anti-entropy-interval-s", "3"),
    )
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384)
        for start in range(0, PRELOAD, 500):
            client.upsert(COLLECTION, datasets.with_vectors(data, start, start + 500), "all")

    load = Workload(cluster.address, consistency, seed=replicas_per_group)
    searches = Searches(cluster.address)
    load.start()
    searches.start()
    try:
        wait_for(lambda: load.ops >= 40 or not load.is_alive(), 60, "writes before the kill")
        victim = cluster.shards[0][-1]
        victim.kill()
        killed_at = load.ops
        wait_for(lambda: load.ops >= killed_at + 80 or not load.is_alive(), 60, "writes while down")
        victim.start()
        victim.wait_ready()
        restarted_at = load.ops
        wait_for(lambda: load.ops >= restarted_at + 40 or not load.is_alive(), 60, "writes after")
    finally:
        load.stop_event.set()
        searches.stop_event.set()
        load.join()
        searches.join()

    print(
        f"{load.ops} writes ({killed_at} before the kill, {restarted_at - killed_at} while"
        f" down), {searches.done} searches"
    )
    assert load.failures == []
    assert searches.failures == []
    wait_for(lambda: converged(cluster), CONVERGE_SECONDS, "replicas to converge")
    checked = check_acknowledged(cluster, load)
    print(f"{checked} acknowledged live documents on every replica of their group")
