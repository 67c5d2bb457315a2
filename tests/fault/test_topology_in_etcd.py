"""The topology in etcd, changed while the cluster runs (issue 17), on real processes.

A partition moved through the admin API is routed to its new group by every
coordinator without a restart; a replica refuses a write routed with the old
version for a partition its group lost, storing none of it; and a coordinator
that cannot reach etcd learns the move from the refusal and retries there by
itself, so its caller sees nothing.
"""

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from shoal import Client
from shoal.cli.app import main as cli
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.errors import FailedPrecondition, InvalidArgument
from shoal.etcd.client import EtcdClient
from shoal.etcd.topology_store import EtcdTopology
from shoal.partitioning import partition_of
from shoal.runtime.status import TOPOLOGY_TRAILER
from shoal.runtime.wait import wait_for
from shoal.topology import Topology
from shoal.v1 import shard_pb2
from tests.conftest import StartCluster, StartEtcd
from tests.fault import replicas

COLLECTION = "moving"
PARTITIONS = 4
#: The partition these tests move from its default group (0) to group 1.
MOVED = 2
TIMEOUT = 15.0


def in_partition(partition: int, count: int, prefix: str) -> list[str]:
    ids = (f"{prefix}-{n}" for n in range(100_000))
    found = [doc_id for doc_id in ids if partition_of(doc_id, PARTITIONS) == partition]
    return found[:count]


def vector(seed: int) -> list[float]:
    return [1.0, float(seed % 7), 0.5, float(seed % 3)]


def held_by(cluster: LocalCluster, group: int, ids: list[str]) -> list[set[str]]:
    """Per replica of `group`: which of `ids` it holds."""
    return [set(replicas.documents(s.address, COLLECTION, ids)) for s in cluster.shards[group]]


def coordinator(cluster: LocalCluster, name: str, etcd: str | None = None) -> ServiceProcess:
    """Another coordinator of the cluster; `etcd`: reach etcd through these endpoints only."""
    args = list(cluster.coordinator.args)
    if etcd is not None:
        args[args.index("--etcd") + 1] = etcd
    process = ServiceProcess(name, "coordinator", args, cluster.root)
    process.start()
    process.wait_ready(60)
    return process


def refused_write(address: str, doc_id: str, routed: int) -> grpc.RpcError | None:
    """A write of `doc_id` straight to one replica, routed with topology version `routed`."""
    request = shard_pb2.ShardWriteRequest(
        collection=COLLECTION,
        writes=[shard_pb2.ShardWrite(id=doc_id, version=1, vector_f32=b"\0\0\x80?" * 4)],
        topology_version=routed,
    )
    with replicas.shard_stub(address) as stub:
        try:
            stub.Write(request, timeout=30)
        except grpc.RpcError as error:
            return error
    return None


def knows_version(cluster: LocalCluster, group: int, version: int) -> bool:
    """Whether every replica of `group` refuses a write routed before `version` for the
    moved partition (each probe uses an id of its own: one taken is left behind)."""
    probes = iter(in_partition(MOVED, 1_000, f"probe-{version}"))
    return all(
        refused_write(shard.address, next(probes), version - 1) is not None
        for shard in cluster.shards[group]
    )


def test_routing_follows_a_move_and_a_stale_write_is_refused(start_cluster: StartCluster) -> None:
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    other = coordinator(cluster, "coordinator-2")
    try:
        with Client(cluster.address) as client:
            client.create_collection(COLLECTION, dimension=4, partitions=PARTITIONS)
            before = client.get_topology()
            assert before.group_of_partition(MOVED) == 0
            assert [list(g.replicas) for g in before.groups] == [
                [s.address for s in group] for group in cluster.shards
            ]
            moved = client.move_partition(MOVED, 1)
        assert moved.version == before.version + 1
        assert moved.group_of_partition(MOVED) == 1

        # The other coordinator follows etcd's watch: no restart.
        with Client(other.address) as client:
            wait_for(
                lambda: client.get_topology().version == moved.version,
                TIMEOUT,
                "the second coordinator to route with the new topology",
            )
            assert client.cluster_info().topology_version == moved.version
            new_ids = in_partition(MOVED, 20, "after")
            client.upsert(
                COLLECTION, [{"id": i, "vector": vector(n)} for n, i in enumerate(new_ids)], "all"
            )
            assert [d.id for d in client.get(COLLECTION, new_ids)] == new_ids
        assert held_by(cluster, 1, new_ids) == [set(new_ids)] * 2
        assert held_by(cluster, 0, new_ids) == [set(), set()]

        # Replicas of group 0 refuse a write routed with the old version for the
        # moved partition, and store none of it.
        wait_for(lambda: knows_version(cluster, 0, moved.version), TIMEOUT, "group 0 to know")
        [stale] = in_partition(MOVED, 1, "stale")
        for shard in cluster.shards[0]:
            error = refused_write(shard.address, stale, before.version)
            assert error is not None
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert (
                f"partition {MOVED} of collection {COLLECTION!r} moved to shard group 1"
                f" at topology version {moved.version}"
            ) in (error.details() or "")
            trailers = error.trailing_metadata() or ()
            [sent_json] = [item.value for item in trailers if item.key == TOPOLOGY_TRAILER]
            sent = Topology.from_dict(json.loads(sent_json))
            assert sent.version == moved.version
        assert held_by(cluster, 0, [stale]) == [set(), set()]
        # A partition that did not move is taken with the old version as before.
        [kept] = in_partition(0, 1, "kept")
        assert refused_write(cluster.shards[0][0].address, kept, before.version) is None
        assert held_by(cluster, 0, [kept])[0] == {kept}
    finally:
        other.stop()


def test_a_coordinator_cut_off_from_etcd_retries_to_the_new_owner(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(groups=2, replicas=2, model="hash-8", etcd_members=3)
    assert cluster.etcd is not None
    cut_off = coordinator(cluster, "coordinator-cut", etcd=cluster.etcd.members[2].endpoint)
    try:
        with Client(cluster.address) as client:
            client.create_collection(COLLECTION, dimension=4, partitions=PARTITIONS)
        with Client(cut_off.address) as client:
            before = client.get_topology()
        cluster.etcd.kill_member(2)  # the cut-off coordinator keeps its topology
        with Client(cluster.address) as client:
            moved = client.move_partition(MOVED, 1)
        wait_for(lambda: knows_version(cluster, 0, moved.version), TIMEOUT, "group 0 to know")

        ids = in_partition(MOVED, 30, "retried")
        with Client(cut_off.address) as client:
            assert client.get_topology().version == before.version  # it missed the move
            result = client.upsert(
                COLLECTION, [{"id": i, "vector": vector(n)} for n, i in enumerate(ids)], "all"
            )
            assert (result.count, result.replicas_acknowledged) == (len(ids), 2)
            # It took the topology the refusing replica passed back.
            assert client.get_topology().version == moved.version
            assert [d.id for d in client.get(COLLECTION, ids)] == ids
        assert held_by(cluster, 1, ids) == [set(ids)] * 2
        assert held_by(cluster, 0, ids) == [set(), set()]
        log = cut_off.log_path.read_text()
        assert f"routing again with topology version {moved.version}" in log
    finally:
        cut_off.stop()


def test_a_change_made_from_an_old_version_is_refused(start_cluster: StartCluster) -> None:
    cluster = start_cluster(groups=2, replicas=1, model="hash-8")
    with Client(cluster.address) as client:
        start = client.get_topology()
        first = client.move_partition(MOVED, 1)
        # A second operator who read the topology before the first change landed.
        late = Topology(start.version, start.groups, {3: 0})
        with pytest.raises(FailedPrecondition, match=f"is at version {first.version}"):
            client.update_topology(late, start.version)
        assert client.get_topology() == first
        # Made from the current version it lands.
        second = client.update_topology(late, first.version)
        assert second.version == first.version + 1
        assert dict(second.partition_groups) == {3: 0}
        with pytest.raises(InvalidArgument, match="groups 0-1"):
            client.update_topology(Topology(0, start.groups, {1: 5}), second.version)


def test_shoal_topology_shows_moves_and_sets(
    start_cluster: StartCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = start_cluster(groups=2, replicas=1, model="hash-8")

    def shoal(*argv: str) -> str:
        capsys.readouterr()
        cli([*argv, "--address", cluster.address])
        return capsys.readouterr().out

    shown = shoal("topology", "show")
    assert "partition p belongs to group p mod 2" in shown
    assert cluster.shards[1][0].address in shown
    moved = shoal("topology", "move", str(MOVED), "1")
    assert f"partition {MOVED} belongs to shard group 1 as of topology version" in moved
    assert "stored documents do not move" in moved

    edited = json.loads(shoal("topology", "show", "--json"))
    assert edited["partition_groups"] == {str(MOVED): 1}
    edited["partition_groups"] = {"3": 0}
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(edited))
    stored = json.loads(shoal("topology", "set", str(path), "--json"))
    assert stored["version"] == edited["version"] + 1
    assert stored["partition_groups"] == {"3": 0}  # the move of MOVED undone, 3 moved
    # The same file again: made from a version that is no longer current.
    with pytest.raises(SystemExit) as exit_info:
        shoal("topology", "set", str(path))
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert f"is at version {stored['version']}, not at the expected version" in error


def test_a_coordinator_seeds_an_empty_etcd_from_its_topology_file(
    start_cluster: StartCluster, start_etcd: StartEtcd
) -> None:
    """As in Kubernetes: the ConfigMap's topology.json is stored by the first
    coordinator that finds etcd holding none."""
    cluster = start_cluster(groups=2, replicas=1, model="hash-8")
    empty = start_etcd()
    seeder = coordinator(cluster, "coordinator-seeder", etcd=empty.endpoints_flag)
    try:
        with Client(seeder.address) as client:
            assert client.get_topology() == Topology.load(cluster.topology_path)

        async def stored() -> Topology | None:
            etcd = EtcdClient(empty.endpoints)
            try:
                return (await EtcdTopology(etcd).read())[0]
            finally:
                await etcd.close()

        assert asyncio.run(stored()) == Topology.load(cluster.topology_path)
    finally:
        seeder.stop()
