"""Partition moves on a coordinator core over fake shards: phases, plans, searches.

The fake shards refuse writes the way real ones do (`PartitionOwnership`), and
learn each topology as soon as it is stored, so these tests show the protocol:
dual writes while a partition moves, a copy that misses nothing written
meanwhile, searches that count every document once, and a clean source.
"""

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from coordinator.core.clock import HybridLogicalClock
from coordinator.core.coordinator import Coordinator
from coordinator.core.model import (
    DocumentInput,
    QueryInput,
    SearchMode,
    SearchOptions,
    WriteConsistency,
)
from coordinator.core.move_runner import MoveRunner
from coordinator.core.mover import PartitionMover, drive
from coordinator.core.ports import CollectionConfig, Include, WriteAck
from shoal.distance_metric import Metric
from shoal.errors import FailedPrecondition, InvalidArgument
from shoal.moves import (
    MoveRecord,
    PlannedMove,
    abort_move,
    begin_move,
    owner_counts,
    plan_rebalance,
    switch_move,
    with_group_added,
    with_group_removed,
    with_replica_added,
    with_replica_removed,
    with_replica_replaced,
)
from shoal.partitioning import partition_of
from shoal.topology import Topology
from shoal.topology_store import TopologyFollower
from shoal.v1 import common_pb2
from tests.unit.coordinator_fakes import FakeEmbedder, FakeShard, deadline

PARTITIONS = 8
DIMENSION = 8


class MemoryTopologyStore:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    async def read(self) -> tuple[Topology | None, int]:
        return self.topology, self.topology.version

    async def seed(self, topology: Topology) -> Topology:
        return self.topology

    async def update(self, expected_version: int, topology: Topology) -> Topology:
        if expected_version != self.topology.version:
            raise FailedPrecondition(f"not at the expected version {expected_version}")
        self.topology = topology.with_version(expected_version + 1)
        return self.topology

    async def watch(self, after_revision: int) -> AsyncIterator[Topology]:
        await asyncio.Event().wait()
        yield self.topology


class MemoryMoveStore:
    def __init__(self) -> None:
        self.records: dict[str, MoveRecord] = {}

    async def list(self) -> list[MoveRecord]:
        return [self.records[key] for key in sorted(self.records)]

    async def put(self, record: MoveRecord) -> None:
        self.records[record.id] = record

    async def delete_finished(self) -> int:
        done = [key for key, record in self.records.items() if record.finished]
        for key in done:
            del self.records[key]
        return len(done)


class AlwaysHeld:
    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class Cluster:
    """`groups` x 2 fake replicas, and a third group's replicas ready to be added."""

    def __init__(self, groups: int = 2, spare_groups: int = 1) -> None:
        self.shards = [
            [FakeShard(f"10.0.{g}.{r}:7000") for r in range(2)]
            for g in range(groups + spare_groups)
        ]
        topology = Topology.of([[s.address for s in group] for group in self.shards[:groups]])
        self.store = MemoryTopologyStore(topology)
        self.follower = TopologyFollower(self.store)
        self.follower.add_listener(self._tell_shards)
        self.moves = MemoryMoveStore()
        self.core = Coordinator.build(
            topology,
            {s.address: s for group in self.shards for s in group},
            FakeEmbedder(),
            HybridLogicalClock(3),
            topology_follower=self.follower,
            move_store=self.moves,
            move_lock=AlwaysHeld(),
        )
        self.mover = PartitionMover(self.core.routing, self.core.catalog, settle_s=0)
        assert self.core.moves is not None
        self.runner: MoveRunner = self.core.moves

    def _tell_shards(self, topology: Topology) -> None:
        for group in self.shards:
            for shard in group:
                shard.topology = topology

    @property
    def topology(self) -> Topology:
        return self.core.routing.topology

    async def start(self) -> None:
        await self.follower.offer(self.store.topology)
        config = CollectionConfig(
            name="c", dimension=DIMENSION, metric=Metric.COSINE, partitions=PARTITIONS
        )
        await self.core.catalog.create(config, deadline())
        # As a real shard would from the catalog.
        for shard in self.shards[len(self.topology.groups)]:
            await shard.create_collection(self.shards[0][0].collections["c"], 5)

    async def add_group(self) -> None:
        current = self.topology
        added = with_group_added(
            current, [s.address for s in self.shards[len(current.groups)]], PARTITIONS
        )
        await self.core.routing.update(current.version, added)

    async def run_moves(self, moves: list[PlannedMove]) -> list[MoveRecord]:
        records = await self.runner.submit(moves)
        done = []
        for record in records:
            done.append(await drive(self.mover, record, self.moves.put, self._fresh))
        return done

    async def _fresh(self, record: MoveRecord) -> MoveRecord:
        stored = self.moves.records[record.id]
        return record.at(record.phase, cancel=record.cancel or stored.cancel)


def vector(seed: int) -> "np.typing.NDArray[np.float32]":
    return np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)


def live_in(shard: FakeShard, doc_id: str) -> bool:
    stored = shard.documents["c"].get(doc_id)
    return stored is not None and not stored.op.deleted


def test_a_move_marks_switches_and_aborts_in_the_topology() -> None:
    topology = Topology.of([["h:1"], ["h:2"], ["h:3"]])
    moving = begin_move(topology, 4, 1, 2)
    assert moving.moving == {4: 2} and moving.group_of_partition(4) == 1
    assert moving.write_groups_of_partition(4) == (1, 2)
    assert begin_move(moving, 4, 1, 2) is moving  # again: as it stands
    assert Topology.from_dict(moving.to_dict()).same_layout(moving)
    switched = switch_move(moving, 4, 1, 2)
    assert switched.group_of_partition(4) == 2
    assert switched.moving == {} and switched.leaving == {4: 1}
    assert switched.write_groups_of_partition(4) == (2,)
    assert abort_move(moving, 4).same_layout(topology)
    with pytest.raises(FailedPrecondition, match="owned by shard group 1, not 0"):
        begin_move(topology, 4, 0, 2)


def test_a_rebalance_plan_evens_the_groups_and_a_drain_empties_one() -> None:
    two = Topology.of([["h:1"], ["h:2"]])
    three = with_group_added(two, ["h:3"], 64)
    assert owner_counts(three, 64) == {0: 32, 1: 32, 2: 0}  # pinned: nothing moved yet
    plan = plan_rebalance(three, 64)
    assert len(plan) == 21 and {move.target for move in plan} == {2}
    after = three
    for move in plan:
        after = switch_move(
            begin_move(after, move.partition, move.source, 2), move.partition, move.source, 2
        )
    counts = owner_counts(after, 64)
    assert max(counts.values()) - min(counts.values()) <= 1
    drain = plan_rebalance(after, 64, exclude=[0])
    assert {move.source for move in drain} == {0} and len(drain) == counts[0]
    for move in drain:
        after = switch_move(
            begin_move(after, move.partition, move.source, move.target),
            move.partition,
            move.source,
            move.target,
        )
    after = replace(after, leaving={})
    removed = with_group_removed(after, 0, 64)
    assert len(removed.groups) == 2
    assert owner_counts(removed, 64) == {0: 32, 1: 32}
    with pytest.raises(FailedPrecondition, match="drain it first"):
        with_group_removed(three, 0, 64)


async def test_a_rebalance_under_writes_loses_and_duplicates_nothing() -> None:
    cluster = Cluster()
    await cluster.start()
    writer, reader = cluster.core.writer, cluster.core.reader
    quorum = WriteConsistency.QUORUM
    expected: dict[str, bool] = {}  # id -> live, as last acknowledged
    ids = [f"d{n}" for n in range(400)]
    await writer.upsert(
        "c", [DocumentInput(i, vector=vector(n)) for n, i in enumerate(ids)], quorum, deadline()
    )
    expected.update(dict.fromkeys(ids, True))
    await cluster.add_group()
    plan = plan_rebalance(cluster.topology, PARTITIONS)
    assert plan

    rng = random.Random(5)
    searches = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal searches
        n = 1000
        while not stop.is_set():
            n += 1
            choice = rng.random()
            if choice < 0.4:
                doc_id = f"d{rng.randrange(600)}"
                await writer.upsert(
                    "c", [DocumentInput(doc_id, vector=vector(n))], quorum, deadline()
                )
                expected[doc_id] = True
            elif choice < 0.6:
                doc_id = f"d{rng.randrange(600)}"
                await writer.delete("c", [doc_id], quorum, deadline())
                expected[doc_id] = False
            else:
                query = vector(n).reshape(1, DIMENSION)
                found = await reader.search("c", query, SearchOptions(k=20), deadline())
                hit_ids = [hit.id for hit in found.results[0].hits]
                assert len(hit_ids) == len(set(hit_ids)), hit_ids
                assert all(expected.get(i) for i in hit_ids)
                searches += 1
            await asyncio.sleep(0)

    loader = asyncio.create_task(load())
    done = await cluster.run_moves(plan)
    stop.set()
    await loader
    assert [record.phase for record in done] == ["done"] * len(plan)
    assert searches > 0
    topology = cluster.topology
    assert not topology.moves_in_flight
    counts = owner_counts(topology, PARTITIONS)
    assert max(counts.values()) - min(counts.values()) <= 1
    for doc_id, live in expected.items():
        owner = topology.group_of(doc_id, PARTITIONS)
        for group, shards in enumerate(cluster.shards):
            for shard in shards:
                held = live_in(shard, doc_id)
                assert held == (live and group == owner), (doc_id, group, shard.address)
    assert all(record.copied > 0 for record in done)


async def test_a_cancel_before_the_switch_rolls_back() -> None:
    cluster = Cluster()
    await cluster.start()
    await cluster.core.writer.upsert(
        "c",
        [DocumentInput(f"d{n}", vector=vector(n)) for n in range(50)],
        WriteConsistency.ALL,
        deadline(),
    )
    await cluster.add_group()
    [record] = await cluster.runner.submit([PlannedMove(1, 1, 2)])
    record = await cluster.mover.step(record, cluster.moves.put)  # started -> copying
    assert cluster.topology.moving == {1: 2}
    await cluster.runner.cancel()
    finished = await drive(cluster.mover, record, cluster.moves.put, cluster._fresh)
    assert finished.phase == "cancelled"
    assert not cluster.topology.moves_in_flight
    assert cluster.topology.group_of_partition(1) == 1


async def test_a_cancelled_move_leaves_no_copies_on_the_target() -> None:
    """Writes during the move went to the target too; once cancelled, nothing cuts
    reads to owned partitions any more, so copies left there would be found twice."""
    cluster = Cluster()
    await cluster.start()
    await cluster.add_group()
    [record] = await cluster.runner.submit([PlannedMove(1, 1, 2)])
    record = await cluster.mover.step(record, cluster.moves.put)  # started -> copying
    ids = [f"d{n:03d}" for n in range(80)]
    await cluster.core.writer.upsert(
        "c",
        [DocumentInput(i, vector=vector(n)) for n, i in enumerate(ids)],
        WriteConsistency.ALL,
        deadline(),
    )
    moved = [i for i in ids if partition_of(i, PARTITIONS) == 1]
    assert moved and all(live_in(shard, moved[0]) for shard in cluster.shards[2])
    await cluster.runner.cancel()
    finished = await drive(cluster.mover, record, cluster.moves.put, cluster._fresh)
    assert finished.phase == "cancelled" and not cluster.topology.moves_in_flight
    assert not any(live_in(shard, i) for shard in cluster.shards[2] for i in moved)
    found = await cluster.core.reader.search(
        "c", [QueryInput(vector=vector(0))], SearchOptions(k=200), deadline()
    )
    assert sorted(hit.id for hit in found.results[0].hits) == ids


async def test_a_write_refused_for_a_move_the_watch_brought_meanwhile_is_retried() -> None:
    """The topology that marks a move can reach the coordinator (its watch) after
    a write was routed and before the replica's refusal comes back: the retry
    must go ahead, routed with the newer version, not fail as unlearnable."""
    cluster = Cluster()
    await cluster.start()
    await cluster.add_group()
    before = cluster.topology
    moving = await cluster.store.update(before.version, begin_move(before, 1, 1, 2))
    target = cluster.shards[1][0]
    original = target.write

    async def write_after_the_watch(*args: Any, **kwargs: Any) -> WriteAck:
        target.topology = moving
        await cluster.core.routing.learn(moving)  # as the watch would deliver it
        return await original(*args, **kwargs)

    target.write = write_after_the_watch  # type: ignore[method-assign]
    doc_id = next(f"x{n}" for n in range(1000) if partition_of(f"x{n}", PARTITIONS) == 1)
    result = await cluster.core.writer.upsert(
        "c", [DocumentInput(doc_id, vector=vector(1))], WriteConsistency.QUORUM, deadline()
    )
    assert result.written == 1
    assert all(live_in(shard, doc_id) for shard in cluster.shards[2])


async def test_scrolls_between_switch_and_clean_up_list_each_document_once() -> None:
    """After the switch the source still holds the partition until its clean-up:
    a scroll in small pages lists every document exactly once all the same."""
    cluster = Cluster()
    await cluster.start()
    ids = [f"d{n:03d}" for n in range(120)]
    await cluster.core.writer.upsert(
        "c",
        [DocumentInput(i, vector=vector(n)) for n, i in enumerate(ids)],
        WriteConsistency.ALL,
        deadline(),
    )
    await cluster.add_group()
    [record] = await cluster.runner.submit([PlannedMove(1, 1, 2)])
    record = await cluster.mover.step(record, cluster.moves.put)  # marked moving
    record = await cluster.mover.step(record, cluster.moves.put)  # copied, switched
    assert record.phase == "switched" and cluster.topology.leaving == {1: 1}
    moved = [i for i in ids if partition_of(i, PARTITIONS) == 1]
    assert moved and all(live_in(cluster.shards[1][0], i) for i in moved)  # not cleaned yet
    listed: list[str] = []
    cursor = ""
    for _ in range(100):
        page = await cluster.core.reader.scroll("c", None, 7, cursor, Include(), False, deadline())
        listed += [document.id for document in page.documents]
        cursor = page.cursor
        if not cursor:
            break
    assert listed == ids


async def test_keyword_searches_between_switch_and_clean_up_count_each_document_once() -> None:
    cluster = Cluster()
    await cluster.start()
    ids = [f"d{n:03d}" for n in range(60)]
    await cluster.core.writer.upsert(
        "c",
        [DocumentInput(i, vector=vector(n), text=f"apple pie {n}") for n, i in enumerate(ids)],
        WriteConsistency.ALL,
        deadline(),
    )
    await cluster.add_group()
    [record] = await cluster.runner.submit([PlannedMove(1, 1, 2)])
    record = await cluster.mover.step(record, cluster.moves.put)  # marked moving
    record = await cluster.mover.step(record, cluster.moves.put)  # copied, switched
    assert cluster.topology.leaving == {1: 1}
    found = await cluster.core.reader.search(
        "c",
        [QueryInput(text="apple")],
        SearchOptions(k=100, mode=SearchMode.KEYWORD),
        deadline(),
    )
    hit_ids = [hit.id for hit in found.results[0].hits]
    assert sorted(hit_ids) == ids


def test_replicas_are_added_replaced_and_removed_in_place() -> None:
    topology = Topology.of([["h:1", "h:2"], ["h:3", "h:4"]])
    replaced = with_replica_replaced(topology, "h:2", "h:9")
    assert [g.replicas for g in replaced.groups] == [("h:1", "h:9"), ("h:3", "h:4")]
    added = with_replica_added(replaced, 1, "h:5")
    assert added.groups[1].replicas == ("h:3", "h:4", "h:5")
    assert with_replica_removed(added, "h:3").groups[1].replicas == ("h:4", "h:5")
    with pytest.raises(InvalidArgument, match="is a replica already"):
        with_replica_added(topology, 0, "h:3")
    with pytest.raises(FailedPrecondition, match="no replica left"):
        with_replica_removed(Topology.of([["h:1"], ["h:2"]]), "h:2")


async def test_a_partition_moved_back_before_the_tombstones_are_purged_keeps_its_documents() -> (
    None
):
    """The clean-up leaves tombstones one version above each record on the old
    group. Moving the partition back before they are purged must not let them
    hide the documents (which nobody wrote since, so their versions are lower)."""
    cluster = Cluster()
    await cluster.start()
    ids = [f"d{n:03d}" for n in range(80)]
    await cluster.core.writer.upsert(
        "c",
        [DocumentInput(i, vector=vector(n)) for n, i in enumerate(ids)],
        WriteConsistency.ALL,
        deadline(),
    )
    await cluster.add_group()
    there = await cluster.run_moves([PlannedMove(1, 1, 2)])
    back = await cluster.run_moves([PlannedMove(1, 2, 1)])
    assert [r.phase for r in there + back] == ["done", "done"]
    moved = [i for i in ids if partition_of(i, PARTITIONS) == 1]
    assert moved
    for shard in cluster.shards[1]:
        assert all(live_in(shard, i) for i in moved)
    for shard in cluster.shards[2]:
        assert not any(live_in(shard, i) for i in moved)
    found = await cluster.core.reader.get("c", moved, Include(), False, deadline())
    assert sorted(d.id for d in found.documents) == moved


Snapshot = tuple[int, int, int, dict[str, float]]


async def _counts_and_scores(cluster: Cluster) -> Snapshot:
    """Count, count of texts holding "apple", GetCollection's document count, and
    the keyword scores of "apple pie"."""
    reader = cluster.core.reader
    every = await reader.count("c", False, deadline())
    apples = await reader.count("c", False, deadline(), common_pb2.Filter(text_contains="apple"))
    found = await reader.search(
        "c",
        [QueryInput(text="apple pie")],
        SearchOptions(k=200, mode=SearchMode.KEYWORD),
        deadline(),
    )
    scores = {hit.id: hit.score for hit in found.results[0].hits}
    info = await cluster.core.catalog.get("c", deadline())
    return every.count, apples.count, info.document_count, scores


async def _through_a_move() -> tuple[Snapshot, Snapshot, Snapshot]:
    """`_counts_and_scores` while partition 1 is copied (writes made meanwhile reach
    both groups), between the switch and the clean-up, and after the move."""
    cluster = Cluster()
    await cluster.start()

    def documents(numbers: range) -> list[DocumentInput]:
        return [
            DocumentInput(
                f"d{n:03d}",
                vector=vector(n),
                text=f"apple pie {n} " + "crust " * (n % 5) if n % 3 else f"plum tart {n}",
            )
            for n in numbers
        ]

    await cluster.core.writer.upsert("c", documents(range(90)), WriteConsistency.ALL, deadline())
    await cluster.add_group()
    [record] = await cluster.runner.submit([PlannedMove(1, 1, 2)])
    record = await cluster.mover.step(record, cluster.moves.put)  # marked moving
    assert cluster.topology.moving == {1: 2}
    # Written to both groups: the target holds these before it owns them.
    await cluster.core.writer.upsert(
        "c", documents(range(90, 150)), WriteConsistency.ALL, deadline()
    )
    moved = [f"d{n:03d}" for n in range(90, 150) if partition_of(f"d{n:03d}", PARTITIONS) == 1]
    assert moved and all(live_in(cluster.shards[2][0], i) for i in moved)
    while_copying = await _counts_and_scores(cluster)
    record = await cluster.mover.step(record, cluster.moves.put)  # copied, switched
    assert cluster.topology.leaving == {1: 1}
    between_switch_and_clean_up = await _counts_and_scores(cluster)
    await drive(cluster.mover, record, cluster.moves.put, cluster._fresh)
    assert not cluster.topology.moves_in_flight
    after = await _counts_and_scores(cluster)
    return while_copying, between_switch_and_clean_up, after


async def test_counts_during_a_move_count_each_document_once() -> None:
    """Count, with and without a filter, and GetCollection's document count while
    partition 1 is copied and between the switch and the clean-up: each document
    once, as after the move."""
    while_copying, between_switch_and_clean_up, after = await _through_a_move()
    assert after[:3] == (150, 100, 150)
    assert while_copying[:3] == after[:3]
    assert between_switch_and_clean_up[:3] == after[:3]


async def test_keyword_scores_during_a_move_are_the_clusters_without_one() -> None:
    """The BM25 statistics (documents, total length, document frequencies) count each
    document once during a move: every score equals the one after the move."""
    while_copying, between_switch_and_clean_up, after = await _through_a_move()
    assert len(after[3]) == 100
    for during in (while_copying, between_switch_and_clean_up):
        assert during[3].keys() == after[3].keys()
        assert all(during[3][i] == pytest.approx(after[3][i], rel=1e-6) for i in after[3])
