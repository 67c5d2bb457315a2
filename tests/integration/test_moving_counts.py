"""Counts and keyword scores while a partition moves, on real shard servers.

The coordinator core runs in the test (its mover driven a step at a time, the
topology in memory) over three real shard processes, one group each: while
partition 1 is copied to the third group (writes reach both), and between the
switch and the clean-up (the source still holds it), Count with and without a
filter, GetCollection's document and chunk counts and the BM25 scores of a
keyword search are those of the cluster after the move: each document counted
once. The unit tests show the same over fake shards
(tests/unit/test_partition_moves.py); this shows the shards' side of it, the
partitions they leave out of their sums, through gRPC.
"""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc.aio
import numpy as np
import pytest

from coordinator.clients.shard import GrpcShardClient
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.coordinator import Coordinator
from coordinator.core.model import (
    DocumentInput,
    QueryInput,
    SearchMode,
    SearchOptions,
    WriteConsistency,
)
from coordinator.core.mover import PartitionMover, drive
from coordinator.core.ports import CollectionConfig, ShardClient
from shoal.cli.service_process import ServiceProcess
from shoal.distance_metric import Metric
from shoal.moves import MoveRecord, PlannedMove, with_group_added
from shoal.partitioning import partition_of
from shoal.runtime.server import GRPC_OPTIONS
from shoal.topology import Topology
from shoal.topology_store import TopologyFollower
from shoal.v1 import common_pb2
from tests.unit.coordinator_fakes import FakeEmbedder, deadline
from tests.unit.test_partition_moves import AlwaysHeld, MemoryMoveStore, MemoryTopologyStore

PARTITIONS = 8
DIMENSION = 8
COLLECTION = "moving"

Snapshot = tuple[int, int, int, dict[str, float]]


@pytest.fixture(scope="module")
def shard_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServiceProcess]]:
    workdir: Path = tmp_path_factory.mktemp("shards")
    shards = [
        ServiceProcess(
            f"shard-{n}",
            "shard",
            ["--data-dir", str(workdir / f"data-{n}"), "--threads", "2"],
            workdir,
        )
        for n in range(3)
    ]
    try:
        for shard in shards:
            shard.start()
        for shard in shards:
            shard.wait_ready(60)
        yield shards
    finally:
        for shard in shards:
            shard.stop()


@pytest.fixture
async def clients(shard_processes: list[ServiceProcess]) -> AsyncIterator[list[ShardClient]]:
    channels = [
        grpc.aio.insecure_channel(shard.address, options=GRPC_OPTIONS) for shard in shard_processes
    ]
    try:
        yield [
            GrpcShardClient(shard.address, channel)
            for shard, channel in zip(shard_processes, channels, strict=True)
        ]
    finally:
        for channel in channels:
            await channel.close()


def documents(numbers: range) -> list[DocumentInput]:
    vectors = np.random.default_rng(16).standard_normal((200, DIMENSION)).astype(np.float32)
    return [
        DocumentInput(
            f"d{n:03d}",
            vector=vectors[n],
            text=f"apple pie {n} " + "crust " * (n % 5) if n % 3 else f"plum tart {n}",
        )
        for n in numbers
    ]


async def counts_and_scores(core: Coordinator) -> Snapshot:
    """Count, count of texts holding "apple", GetCollection's document count, and
    the keyword scores of "apple pie"."""
    every = await core.reader.count(COLLECTION, False, deadline())
    apples = await core.reader.count(
        COLLECTION, False, deadline(), common_pb2.Filter(text_contains="apple")
    )
    found = await core.reader.search(
        COLLECTION,
        [QueryInput(text="apple pie")],
        SearchOptions(k=200, mode=SearchMode.KEYWORD),
        deadline(),
    )
    info = await core.catalog.get(COLLECTION, deadline())
    assert info.chunk_count == info.document_count  # no chunking: one vector each
    scores = {hit.id: hit.score for hit in found.results[0].hits}
    return every.count, apples.count, info.document_count, scores


class UnfencedMover(PartitionMover):
    """These shards run without a topology, so they fence nothing and have no
    version to confirm (tests/unit/test_move_confirmation.py covers that step);
    the counts and scores are what this test is about."""

    async def _confirm(self, record: MoveRecord) -> None:
        return None


async def test_counts_and_keyword_scores_count_a_moving_partition_once(
    clients: list[ShardClient],
) -> None:
    store = MemoryTopologyStore(Topology.of([[clients[0].address], [clients[1].address]]))
    follower = TopologyFollower(store)
    moves = MemoryMoveStore()
    core = Coordinator.build(
        store.topology,
        {client.address: client for client in clients},
        FakeEmbedder(),
        HybridLogicalClock(3),
        topology_follower=follower,
        move_store=moves,
        move_lock=AlwaysHeld(),
    )
    await follower.offer(store.topology)
    config = CollectionConfig(
        name=COLLECTION, dimension=DIMENSION, metric=Metric.COSINE, partitions=PARTITIONS
    )
    created = await core.catalog.create(config, deadline())
    await clients[2].create_collection(created.config, 30.0)  # as a shard would from the catalog
    await core.writer.upsert(COLLECTION, documents(range(90)), WriteConsistency.ALL, deadline())
    current = core.routing.topology
    await core.routing.update(
        current.version, with_group_added(current, [clients[2].address], PARTITIONS)
    )
    mover = UnfencedMover(core.routing, core.catalog, settle_s=0)
    assert core.moves is not None
    [record] = await core.moves.submit([PlannedMove(1, 1, 2)])
    record = await mover.step(record, moves.put)  # marked moving
    assert core.routing.topology.moving == {1: 2}
    # Written to both groups: the target holds these before it owns them.
    await core.writer.upsert(
        COLLECTION, documents(range(90, 150)), WriteConsistency.ALL, deadline()
    )
    moved = [i for i in (f"d{n:03d}" for n in range(90, 150)) if partition_of(i, PARTITIONS) == 1]
    assert moved and await clients[2].count(COLLECTION, 30.0) == len(moved)
    while_copying = await counts_and_scores(core)
    record = await mover.step(record, moves.put)  # copied, switched
    assert core.routing.topology.leaving == {1: 1}
    between_switch_and_clean_up = await counts_and_scores(core)

    async def fresh(record: MoveRecord) -> MoveRecord:
        return record

    await drive(mover, record, moves.put, fresh)
    assert not core.routing.topology.moves_in_flight
    after = await counts_and_scores(core)

    assert after[:3] == (150, 100, 150) and len(after[3]) == 100
    for during in (while_copying, between_switch_and_clean_up):
        assert during[:3] == after[:3]
        assert during[3].keys() == after[3].keys()
        assert all(during[3][i] == pytest.approx(after[3][i], rel=1e-6) for i in after[3])
