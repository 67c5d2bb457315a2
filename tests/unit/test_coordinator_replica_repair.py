"""Get at QUORUM / ALL with read repair, and VerifyReplicas with and without repair."""

import time
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from coordinator.core.model import DocumentInput, ReadConsistency, WriteConsistency
from coordinator.core.observer import NO_REPLICATION_OBSERVER, ReplicationObserver
from coordinator.core.ports import Include, WriteOp
from coordinator.core.read_repair import choose
from shoal.errors import DataLoss, NotFound, Unavailable
from shoal.partitioning import partition_of
from tests.unit.coordinator_fakes import FakeCluster, FakeShard, deadline

DIM = 8
EVERYTHING = Include(metadata=True, text=True, vector=True)


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def op(doc_id: str, version: int, deleted: bool = False) -> WriteOp:
    return WriteOp(doc_id, version, deleted=deleted, vector_f32=b"" if deleted else b"v" * 4)


# -- the choice ---------------------------------------------------------------


def test_choose_answers_with_the_newest_record_and_repairs_every_replica_behind() -> None:
    answers = {
        "a": [op("x", 5), op("y", 2), op("z", 1)],
        "b": [op("x", 3), op("y", 4, deleted=True)],
        "c": [op("x", 5), op("y", 2), op("z", 1)],
    }
    choice = choose(answers)
    assert {i: (o.version, o.deleted) for i, o in choice.newest.items()} == {
        "x": (5, False),
        "y": (4, True),
        "z": (1, False),
    }
    assert {r: [(o.id, o.version) for o in ops] for r, ops in choice.repairs.items()} == {
        "b": [("x", 5), ("z", 1)],
        "a": [("y", 4)],
        "c": [("y", 4)],
    }


def test_choose_repairs_nothing_when_replicas_agree() -> None:
    same = [op("x", 5), op("y", 7, deleted=True)]
    choice = choose({"a": same, "b": list(same)})
    assert choice.repairs == {}
    assert set(choice.newest) == {"x", "y"}


# -- get at QUORUM / ALL ------------------------------------------------------


async def stale_cluster(
    observer: ReplicationObserver = NO_REPLICATION_OBSERVER,
) -> tuple[FakeCluster, FakeShard]:
    """One group of three; the last replica missed an update and a delete (and the
    hints for it are never replayed here)."""
    cluster = FakeCluster(groups=1, replicas=3, replication_observer=observer)
    await cluster.create("c", DIM)
    writer = cluster.core.writer
    first = [DocumentInput(f"d{i}", vector(i), metadata={"round": 1}) for i in range(6)]
    await writer.upsert("c", first, WriteConsistency.ALL, deadline())
    stale = cluster.shards[0][-1]
    stale.fail = Unavailable("down")
    second = [DocumentInput("d1", vector(100), metadata={"round": 2})]
    await writer.upsert("c", second, WriteConsistency.QUORUM, deadline())
    await writer.delete("c", ["d2"], WriteConsistency.QUORUM, deadline())
    stale.fail = None
    await cluster.core.background.drain(1)
    return cluster, stale


async def test_get_at_all_answers_with_the_newest_and_repairs_the_stale_replica() -> None:
    cluster, stale = await stale_cluster()
    assert stale.documents["c"]["d1"].op.metadata == {"round": 1}
    found = await cluster.core.reader.get(
        "c", ["d1", "d2", "d3"], EVERYTHING, False, deadline(), ReadConsistency.ALL
    )
    documents = {d.id: d for d in found.documents}
    assert set(documents) == {"d1", "d3"}  # d2's tombstone is newer than its live copy
    d1 = documents["d1"]
    assert isinstance(d1, WriteOp) and d1.metadata == {"round": 2}
    await cluster.core.background.drain(1)
    assert stale.documents["c"]["d1"].op.metadata == {"round": 2}
    assert stale.documents["c"]["d2"].op.deleted


def incarnate(cluster: FakeCluster, incarnation: int) -> None:
    """Give collection "c" an incarnation on every replica, as the catalog does."""
    for group in cluster.shards:
        for shard in group:
            shard.collections["c"] = replace(shard.collections["c"], incarnation=incarnation)
            shard.incarnations.clear()
    cluster.core.catalog.invalidate("c")


async def test_read_repair_and_verify_repair_carry_the_incarnation() -> None:
    """Repairs wrote with no incarnation, which a replica cannot check: a repair
    that raced a drop and recreate could carry the old collection's records into
    the new one."""

    cluster, stale = await stale_cluster()
    incarnate(cluster, 7)
    await cluster.core.reader.get(
        "c", ["d1", "d2"], EVERYTHING, False, deadline(), ReadConsistency.ALL
    )
    await cluster.core.background.drain(1)
    assert stale.documents["c"]["d1"].op.metadata == {"round": 2}
    assert stale.incarnations == [7]

    cluster, stale = await stale_cluster()
    incarnate(cluster, 9)
    report = await cluster.core.verifier.verify("c", repair=True, deadline=deadline())
    assert report.repaired == 2
    assert stale.incarnations and set(stale.incarnations) == {9}  # a write per partition


async def test_get_at_quorum_reads_a_majority_and_fails_over() -> None:
    cluster, _ = await stale_cluster()
    cluster.shards[0][0].fail = Unavailable("down")
    found = await cluster.core.reader.get(
        "c", ["d1"], EVERYTHING, False, deadline(), ReadConsistency.QUORUM
    )
    # Of the two that answer one is stale: the newest version still wins.
    assert [d.id for d in found.documents] == ["d1"]
    d1 = found.documents[0]
    assert isinstance(d1, WriteOp) and d1.metadata == {"round": 2}
    asked = [shard for shard in cluster.shards[0] if "fetch" in shard.calls]
    assert len(asked) == 3  # the failed one, then its replacement


async def test_get_at_quorum_with_a_hung_replica_answers_within_the_deadline() -> None:
    """A stopped replica (SIGSTOP) took the whole deadline of every QUORUM get
    that asked it, leaving none for a spare: whichever replica hangs, the get
    answers, well within its deadline, with the newest version."""

    cluster, _ = await stale_cluster()
    for hung in cluster.shards[0]:
        for shard in cluster.shards[0]:
            shard.hang = shard is hung
        for _ in range(3):
            started = time.monotonic()
            found = await cluster.core.reader.get(
                "c", ["d1"], EVERYTHING, False, deadline(1.0), ReadConsistency.QUORUM
            )
            assert time.monotonic() - started < 0.9
            d1 = found.documents[0]
            assert isinstance(d1, WriteOp) and d1.metadata == {"round": 2}


async def test_get_at_quorum_fails_over_from_a_replica_that_lost_the_collection() -> None:
    cluster, _ = await stale_cluster()
    cluster.shards[0][0].fail = DataLoss("collection 'c' could not be loaded")
    for _ in range(3):
        found = await cluster.core.reader.get(
            "c", ["d1"], EVERYTHING, False, deadline(), ReadConsistency.QUORUM
        )
        assert [d.id for d in found.documents] == ["d1"]


async def test_get_fails_when_too_few_replicas_answer_unless_partial_is_allowed() -> None:
    cluster, _ = await stale_cluster()
    cluster.shards[0][0].fail = Unavailable("down")
    with pytest.raises(Unavailable, match="read consistency all needs 3"):
        await cluster.core.reader.get(
            "c", ["d1"], EVERYTHING, False, deadline(), ReadConsistency.ALL
        )
    found = await cluster.core.reader.get(
        "c", ["d1"], EVERYTHING, True, deadline(), ReadConsistency.ALL
    )
    assert found.documents == [] and found.coverage.answered == 0


async def test_get_at_one_is_the_plain_read() -> None:
    cluster, _ = await stale_cluster()
    await cluster.core.reader.get("c", ["d1"], EVERYTHING, False, deadline())
    assert not any("fetch" in shard.calls for shard in cluster.shards[0])


# -- VerifyReplicas ------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.divergence: Counter[int] = Counter()
        self.repairs: Counter[tuple[int, str]] = Counter()

    def record_hints(self, replica: str, outcome: str, writes: int) -> None:
        pass

    def record_divergence(self, group: int, documents: int) -> None:
        self.divergence[group] += documents

    def record_repairs(self, group: int, source: str, documents: int) -> None:
        self.repairs[(group, source)] += documents

    def record_repairs_skipped(self, group: int, source: str, documents: int) -> None:
        pass


async def test_verify_counts_differing_documents_and_repairs_them() -> None:
    recorder = Recorder()
    cluster, stale = await stale_cluster(recorder)
    verifier = cluster.core.verifier
    report = await verifier.verify("c", repair=False, deadline=deadline())
    assert report.differing == 2 and report.repaired == 0
    (group,) = report.groups
    assert group.unreachable == []
    partitions = {partition_of(i, 16) for i in ("d1", "d2")}
    assert {p.partition for p in group.partitions} == partitions
    for partition in group.partitions:
        assert [r.address for r in partition.replicas] == [s.address for s in cluster.shards[0]]
        digests = {(r.records, r.hash) for r in partition.replicas}
        assert len(digests) == 2  # two replicas agree, the stale one does not
    assert recorder.divergence[0] == 2

    report = await verifier.verify("c", repair=True, deadline=deadline())
    assert (report.differing, report.repaired) == (2, 2)
    assert recorder.repairs[(0, "verify")] == 2
    assert stale.documents["c"]["d1"].op.metadata == {"round": 2}
    assert stale.documents["c"]["d2"].op.deleted

    report = await verifier.verify("c", repair=False, deadline=deadline())
    assert report.differing == 0 and report.groups[0].partitions == []
    assert report.groups[0].partitions_compared == len(
        {partition_of(f"d{i}", 16) for i in range(6)}
    )


async def test_verify_lists_unreachable_replicas_and_compares_the_rest() -> None:
    cluster, stale = await stale_cluster()
    stale.fail = Unavailable("down")
    report = await cluster.core.verifier.verify("c", repair=True, deadline=deadline())
    assert report.groups[0].unreachable == [stale.address]
    assert report.differing == 0


async def test_verify_of_an_unknown_collection_is_not_found() -> None:
    cluster = FakeCluster(groups=2, replicas=2)
    await cluster.create("c", DIM)
    with pytest.raises(NotFound):
        await cluster.core.verifier.verify("nope", repair=False, deadline=deadline())


async def test_verify_repairs_a_replica_that_lost_everything() -> None:
    cluster = FakeCluster(groups=2, replicas=2)
    await cluster.create("c", DIM)
    documents = [DocumentInput(f"d{i}", vector(i)) for i in range(40)]
    await cluster.core.writer.upsert("c", documents, WriteConsistency.ALL, deadline())
    await cluster.core.writer.delete("c", ["d0", "d1"], WriteConsistency.ALL, deadline())
    empty = cluster.shards[1][0]
    lost = len(empty.documents["c"])
    empty.documents["c"].clear()
    report = await cluster.core.verifier.verify("c", repair=True, deadline=deadline())
    assert report.differing == lost and report.repaired == lost
    assert empty.documents["c"] == cluster.shards[1][1].documents["c"]
