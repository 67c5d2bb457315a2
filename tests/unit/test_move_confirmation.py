"""A partition move relies on the replicas' fencing only once every replica of both
groups that answers reports the topology version of its last step (it used to
wait a fixed second instead, and went on whether or not they had seen it)."""

import asyncio

import pytest

from coordinator.core.model import DocumentInput, WriteConsistency
from coordinator.core.mover import PartitionMover
from shoal.errors import Unavailable
from shoal.moves import MoveRecord, PlannedMove
from tests.unit.coordinator_fakes import FakeShard, deadline
from tests.unit.test_partition_moves import Cluster, vector


async def marked_moving(cluster: Cluster) -> MoveRecord:
    """A cluster with documents and a third group, partition 1 marked moving 1 -> 2."""
    await cluster.start()
    await cluster.core.writer.upsert(
        "c",
        [DocumentInput(f"d{n}", vector=vector(n)) for n in range(50)],
        WriteConsistency.ALL,
        deadline(),
    )
    await cluster.add_group()
    [record] = await cluster.runner.submit([PlannedMove(1, 1, 2)])
    record = await cluster.mover.step(record, cluster.moves.put)
    assert record.phase == "copying" and cluster.topology.moving == {1: 2}
    return record


def lag(shard: FakeShard, version: int) -> None:
    """`shard` reports `version` whatever it is told (its watch is behind)."""

    async def behind(timeout_s: float) -> int:
        return version

    shard.topology_version = behind  # type: ignore[method-assign]


async def test_the_copy_waits_until_every_replica_has_seen_the_move() -> None:
    cluster = Cluster()
    record = await marked_moving(cluster)
    source = cluster.shards[1][1]
    lag(source, cluster.topology.version - 1)
    step = asyncio.create_task(cluster.mover.step(record, cluster.moves.put))
    await asyncio.sleep(0.3)
    # A write routed without the move could still reach this source replica alone.
    assert not step.done()
    assert not any("list_versions" in shard.calls for shard in cluster.shards[2])
    del source.topology_version  # it has seen the move now
    record = await asyncio.wait_for(step, 5)
    assert record.phase == "switched" and record.copied > 0


async def test_a_replica_that_stays_behind_fails_the_step_naming_it() -> None:
    cluster = Cluster()
    record = await marked_moving(cluster)
    mover = PartitionMover(cluster.core.routing, cluster.core.catalog, settle_s=0, confirm_s=0.2)
    target = cluster.shards[2][0]
    lag(target, 0)
    with pytest.raises(Unavailable, match=target.address):
        await mover.step(record, cluster.moves.put)
    assert cluster.topology.moving == {1: 2}  # not switched


async def test_a_replica_that_does_not_answer_does_not_hold_the_move_up() -> None:
    """It is down: when it starts it takes no routed write before it has etcd's topology."""
    cluster = Cluster()
    record = await marked_moving(cluster)
    cluster.shards[1][1].fail = Unavailable("down")
    record = await asyncio.wait_for(cluster.mover.step(record, cluster.moves.put), 5)
    assert record.phase == "switched"
