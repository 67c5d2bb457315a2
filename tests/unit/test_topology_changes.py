"""A topology that changes while the cluster runs: the partition map, a shard's
refusal of a write routed with an old version, and the coordinator routing again."""

import json

import numpy as np
import pytest

from coordinator.core.model import DocumentInput, WriteConsistency
from coordinator.core.routing import Routing
from shard.core.ownership import PartitionOwnership
from shoal.errors import FailedPrecondition, PartitionMoved, Unavailable
from shoal.partitioning import partition_of
from shoal.runtime.status import TOPOLOGY_TRAILER, trailers_of
from shoal.topology import Topology, TopologyError
from tests.unit.coordinator_fakes import FakeCluster, FakeShard, deadline

PARTITIONS = 4
DIM = 8


def ids_in(partition: int, count: int) -> list[str]:
    ids = (f"doc-{n}" for n in range(10_000))
    return [i for i in ids if partition_of(i, PARTITIONS) == partition][:count]


def documents(ids: list[str]) -> list[DocumentInput]:
    rng = np.random.default_rng(len(ids))
    return [DocumentInput(i, rng.standard_normal(DIM).astype(np.float32)) for i in ids]


def moved(topology: Topology, partition: int, group: int) -> Topology:
    return Topology(topology.version + 1, topology.groups, {partition: group})


# -- the partition map -------------------------------------------------------------


def test_a_partition_named_in_partition_groups_goes_to_that_group() -> None:
    topology = Topology.from_dict(
        {
            "version": 3,
            "groups": [{"replicas": ["h:1"]}, {"replicas": ["h:2"]}, {"replicas": ["h:3"]}],
            "partition_groups": {"4": 0, "5": 2, "6": 0},  # 6 mod 3 is 0: no entry needed
        }
    )
    assert dict(topology.partition_groups) == {4: 0}  # 5 -> 2 is the default too
    assert [topology.group_of_partition(p) for p in range(7)] == [0, 1, 2, 0, 0, 2, 0]
    ids = [f"doc-{n}" for n in range(500)]
    for group, positions in topology.split_by_group(ids, 8).items():
        assert all(topology.group_of(ids[p], 8) == group for p in positions)
    assert Topology.from_dict(topology.to_dict()) == topology


@pytest.mark.parametrize(
    ("partition_groups", "message"),
    [
        ({"x": 0}, "'x' is not a partition number"),
        ({"4096": 0}, "'4096' is not a partition number"),
        ({"1": 2}, "the topology has groups 0-1"),
        ({"1": True}, "the topology has groups 0-1"),
        ([1], "must map partition numbers"),
    ],
)
def test_a_partition_map_that_names_no_group_is_refused(
    partition_groups: object, message: str
) -> None:
    data = {"groups": [{"replicas": ["h:1"]}, {"replicas": ["h:2"]}]}
    with pytest.raises(TopologyError, match=message):
        Topology.from_dict({**data, "partition_groups": partition_groups})


# -- a shard's refusal ---------------------------------------------------------------


def test_a_shard_refuses_only_writes_routed_before_its_partition_moved_away() -> None:
    before = Topology.of([["h:1"], ["h:2"]], version=4)
    after = moved(before, 2, 1)
    held = [after]
    ownership = PartitionOwnership(lambda: held[0], lambda: "h:1")
    [in_two] = ids_in(2, 1)
    [in_zero] = ids_in(0, 1)
    with pytest.raises(PartitionMoved) as refused:
        ownership.check("c", PARTITIONS, [in_zero, in_two], routed=4)
    assert str(refused.value).startswith(
        "partition 2 of collection 'c' moved to shard group 1 at topology version 5"
    )
    assert refused.value.topology == after
    ownership.check("c", PARTITIONS, [in_zero], routed=4)  # partition 0 stayed
    ownership.check("c", PARTITIONS, [in_two], routed=5)  # routed with the new map
    ownership.check("c", PARTITIONS, [in_two], routed=0)  # not routed: a read repair
    held[0] = Topology.of([["h:2"], ["h:3"]], version=6)  # h:1 left the topology
    with pytest.raises(PartitionMoved, match=r"this replica \(h:1\) is in no shard group"):
        ownership.check("c", PARTITIONS, [in_zero], routed=5)


# -- the coordinator routing again ------------------------------------------------


async def test_a_refused_write_is_routed_again_with_the_topology_the_shard_passed_back() -> None:
    cluster = FakeCluster(groups=2, replicas=2)
    newer = moved(cluster.topology, 2, 1)
    for shard in cluster.all_shards:
        shard.topology = newer  # the shards learnt of the move; the coordinator did not
    ids = ids_in(2, 10)

    await cluster.create("c", DIM, partitions=PARTITIONS)
    result = await cluster.core.writer.upsert("c", documents(ids), WriteConsistency.ALL, deadline())
    assert (result.written, result.acknowledged) == (10, 2)
    assert cluster.core.routing.topology == newer
    assert [set(s.documents["c"]) for s in cluster.shards[1]] == [set(ids)] * 2
    assert [set(s.documents["c"]) for s in cluster.shards[0]] == [set(), set()]
    assert cluster.shards[0][0].routed_with == [cluster.topology.version]
    assert cluster.shards[1][0].routed_with == [newer.version]


async def test_without_a_newer_topology_to_learn_the_write_fails_unavailable() -> None:
    cluster = FakeCluster(groups=2, replicas=1)
    for shard in cluster.shards[0]:
        shard.topology = moved(cluster.topology, 2, 1)

    await cluster.create("c", DIM, partitions=PARTITIONS)
    # The refusal comes without its topology, and there is no etcd to read.
    for shard in cluster.shards[0]:
        shard.passes_topology = False
    with pytest.raises(Unavailable, match="no newer topology could be learnt"):
        await cluster.core.writer.upsert(
            "c", documents(ids_in(2, 3)), WriteConsistency.ALL, deadline()
        )
    assert cluster.shards[0][0].documents["c"] == {}
    assert cluster.shards[1][0].documents["c"] == {}


def test_routing_keeps_replicas_that_stay_and_connects_to_new_ones() -> None:
    old = Topology.of([["h:1", "h:2"]], version=1)
    shards = {a: FakeShard(a) for a in ("h:1", "h:2")}
    connected: list[str] = []

    def connect(address: str) -> FakeShard:
        connected.append(address)
        return FakeShard(address)

    routing = Routing(old, shards, connect)
    kept = routing.groups[0].replicas[0]
    assert not routing.install(old)  # the same version again
    assert routing.install(Topology.of([["h:1"], ["h:3"]], version=2))
    assert routing.groups[0].replicas[0] is kept
    assert connected == ["h:3"]
    assert not routing.install(Topology.of([["h:9"]], version=1))  # older: ignored
    assert routing.client("h:2") is shards["h:2"]  # hints for it still reach it


async def test_without_etcd_the_topology_cannot_be_changed() -> None:
    topology = Topology.of([["h:1"]])
    routing = Routing(topology, {"h:1": FakeShard("h:1")})
    with pytest.raises(FailedPrecondition, match="runs without etcd"):
        await routing.update(topology.version, topology)


def test_a_refusal_passes_its_topology_back_unless_it_is_too_large() -> None:
    small = Topology.of([["h:1"], ["h:2"]], version=3)
    [(key, value)] = trailers_of(PartitionMoved("moved", small))
    assert key == TOPOLOGY_TRAILER and Topology.from_dict(json.loads(value)) == small
    large = Topology(3, small.groups, {p: 1 for p in range(0, 4000, 2)})
    assert trailers_of(PartitionMoved("moved", large)) == ()  # etcd has it; 8 KiB would not
