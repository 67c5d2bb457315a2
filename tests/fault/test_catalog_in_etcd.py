"""The collection catalog in etcd, tried on real processes (issue 17).

Concurrent creates of one name through two coordinators leave one setting on
every replica; a dropped and recreated collection never gets a document of the
old one (hints, anti-entropy and a replica restarting included); a replica down
during a create serves the collection soon after it restarts; a coordinator
started late, or cut off from etcd during a drop, answers right once it reaches
etcd.
"""

import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc
import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.errors import NotFound, ShoalError, Unavailable
from shoal.etcd.server import free_port
from shoal.runtime.wait import wait_for
from shoal.v1 import common_pb2, shard_pb2, shoal_pb2, shoal_pb2_grpc
from tests.conftest import StartCluster
from tests.fault import replicas

CREATE_ROUNDS = 50
RECREATE_ROUNDS = 10
CLIENTS = 8


@contextmanager
def shoal_stub(address: str) -> Iterator[shoal_pb2_grpc.ShoalServiceStub]:
    with grpc.insecure_channel(address) as channel:
        yield shoal_pb2_grpc.ShoalServiceStub(channel)


def second_coordinator(cluster: LocalCluster, name: str = "coordinator-2") -> ServiceProcess:
    """Another coordinator on the same topology, embedder and etcd."""
    coordinator = ServiceProcess(name, "coordinator", list(cluster.coordinator.args), cluster.root)
    coordinator.start()
    coordinator.wait_ready(60)
    return coordinator


def listed(address: str) -> dict[str, tuple[int, int]]:
    """(dimension, incarnation) per collection, as one replica holds them."""
    with replicas.shard_stub(address) as stub:
        reply = stub.ListCollections(shard_pb2.ShardListCollectionsRequest(), timeout=30)
    return {c.config.name: (c.config.dimension, c.incarnation) for c in reply.collections}


def test_concurrent_creates_through_two_coordinators_leave_one_setting(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    other = second_coordinator(cluster)
    try:
        addresses = [cluster.address, other.address]
        for round_ in range(CREATE_ROUNDS):
            name = f"race-{round_}"
            with ThreadPoolExecutor(CLIENTS) as pool:
                answers = list(
                    pool.map(lambda i, n=name: _create(addresses[i % 2], n, i + 2), range(CLIENTS))
                )
            created = [
                a.created for a in answers if isinstance(a, shoal_pb2.CreateCollectionResponse)
            ]
            dimensions = [
                a.config.dimension
                for a in answers
                if isinstance(a, shoal_pb2.CreateCollectionResponse)
            ]
            errors = [a for a in answers if isinstance(a, grpc.StatusCode)]
            assert created.count(True) == 1, f"round {round_}: {created} {errors}"
            assert set(errors) <= {grpc.StatusCode.ALREADY_EXISTS}, errors
            assert len(created) + len(errors) == CLIENTS
            (winner,) = set(dimensions)  # every OK answer carries the winner's settings
            on_replicas = {listed(shard.address)[name] for shard in cluster.all_shards}
            assert len(on_replicas) == 1, f"round {round_}: replicas differ: {on_replicas}"
            assert next(iter(on_replicas))[0] == winner
            for address in addresses:
                with Client(address) as client:
                    assert client.get_collection(name).dimension == winner
        print(f"{CREATE_ROUNDS} rounds of {CLIENTS} concurrent creates: one winner each")
    finally:
        other.stop()


def _create(
    address: str, name: str, dimension: int
) -> shoal_pb2.CreateCollectionResponse | grpc.StatusCode:
    config = common_pb2.CollectionConfig(name=name, dimension=dimension, partitions=8)
    with shoal_stub(address) as stub:
        try:
            reply: shoal_pb2.CreateCollectionResponse = stub.CreateCollection(
                shoal_pb2.CreateCollectionRequest(config=config), timeout=30
            )
        except grpc.RpcError as error:
            return error.code()
    return reply


def documents(prefix: str, count: int) -> list[dict[str, object]]:
    return [
        {"id": f"{prefix}-{i}", "vector": [float(i % 7 + 1), 1.0, float(i % 3), 0.5]}
        for i in range(count)
    ]


def test_a_recreated_collection_never_holds_documents_of_the_dropped_one(
    start_cluster: StartCluster,
) -> None:
    metrics_base = free_port()
    cluster = start_cluster(
        groups=1,
        replicas=2,
        model="hash-8",
        metrics_port_base=metrics_base,  # the coordinator's is the first
        shard_args=("--anti-entropy-interval-s", "0.5", "--catch-up-wait-s", "5"),
    )
    peer, victim = cluster.shards[0]
    name = "recreated"
    dropped_hints = 0.0
    with Client(cluster.address, timeout=30) as client:
        client.create_collection(name, dimension=4, partitions=8)
        for round_ in range(RECREATE_ROUNDS):
            victim.kill()
            # Hints pile up for the stopped replica, then the collection is dropped.
            client.upsert(name, documents(f"old{round_}", 300), "one")
            client.delete_collection(name)
            victim.start()  # restarts while the collection is created again
            client.create_collection(name, dimension=4, partitions=8)
            victim.wait_ready(60)
            wait_for(
                _writes_all(client, name), 30, "the coordinator to reach the restarted replica"
            )
            # Every hint for the replica was replayed or dropped: none is pending.
            hints = wait_for(
                _hints_settled(metrics_base, victim.address), 30, "the hints to be settled"
            )
            assert hints is not None
            dropped_hints = hints["dropped"]
            new = documents(f"new{round_}", 20)
            client.upsert(name, new, "all")
            new_ids = [str(d["id"]) for d in new]
            # Anti-entropy has run once both replicas hold the new documents alone.
            for shard in (peer, victim):
                wait_for(
                    _holds(shard.address, name, len(new) + 1),
                    20,
                    f"{shard.name} to hold only the new documents",
                )
            old_ids = [str(d["id"]) for r in range(round_ + 1) for d in documents(f"old{r}", 300)]
            for shard in (peer, victim):
                assert not replicas.documents(shard.address, name, old_ids), shard.name
                assert set(replicas.documents(shard.address, name, new_ids)) == set(new_ids)
            assert replicas.digests(victim.address, name) == replicas.digests(peer.address, name)
    assert dropped_hints >= RECREATE_ROUNDS * 300  # the old incarnation's hints were refused
    print(
        f"{RECREATE_ROUNDS} drop/recreate rounds: {dropped_hints:.0f} hinted writes for dropped"
        " incarnations refused; no document of a dropped incarnation came back"
    )


def _writes_all(client: Client, name: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            client.upsert(name, [{"id": "probe", "vector": [1.0, 0.0, 0.0, 0.0]}], "all")
        except Unavailable:
            return False
        return True

    return probe


def _hints_settled(port: int, replica: str) -> Callable[[], dict[str, float] | None]:
    def settled() -> dict[str, float] | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        counts = {"queued": 0.0, "replayed": 0.0, "dropped": 0.0}
        for line in text.splitlines():
            if line.startswith("shoal_hinted_writes_total{") and f'replica="{replica}"' in line:
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                counts[outcome] = float(line.rsplit(" ", 1)[1])
        pending = counts["queued"] - counts["replayed"] - counts["dropped"]
        return counts if counts["queued"] and pending == 0 else None

    return settled


def _holds(address: str, name: str, count: int) -> Callable[[], bool]:
    return lambda: replicas.count(address, name) == count


def test_a_replica_down_during_create_serves_the_collection_soon_after_restart(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(groups=1, replicas=2, model="hash-8")
    _, victim = cluster.shards[0]
    victim.kill()
    with Client(cluster.address, timeout=30) as client:
        client.create_collection("late", dimension=4, partitions=8)
        client.upsert("late", documents("doc", 50), "one")
        victim.start()
        victim.wait_ready(60)
        started = time.monotonic()
        wait_for(
            lambda: replicas.count(victim.address, "late") == 50,
            10,
            "the restarted replica to serve the collection and its documents",
        )
        print(f"served 'late' {time.monotonic() - started:.2f}s after the restart was ready")
        assert client.count("late") == 50


def test_coordinators_started_late_or_cut_off_from_etcd_answer_right_once_back(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(groups=1, replicas=2, model="hash-8", etcd_members=3)
    assert cluster.etcd is not None
    with Client(cluster.address, timeout=30) as client:
        client.create_collection("kept", dimension=4, partitions=8)
        client.create_collection("churn", dimension=4, partitions=8)
        client.upsert("churn", documents("old", 30), "all")

    # A coordinator started after the collections exist knows them at once.
    late = second_coordinator(cluster, "coordinator-late")
    # One that reaches etcd through one member only, which is then cut off.
    args = list(cluster.coordinator.args)
    args[args.index("--etcd") + 1] = cluster.etcd.members[2].endpoint
    cut_off = ServiceProcess("coordinator-cut", "coordinator", args, cluster.root)
    cut_off.start()
    cut_off.wait_ready(60)
    try:
        with Client(late.address, timeout=30) as client:
            assert sorted(c.name for c in client.list_collections()) == ["churn", "kept"]
            assert client.count("churn") == 30
        with Client(cut_off.address, timeout=30) as client:
            assert client.get_collection("churn").dimension == 4
        cluster.etcd.kill_member(2)
        with Client(cluster.address, timeout=30) as client:
            client.delete_collection("churn")  # two of three members: DDL goes on
            client.create_collection("churn", dimension=6, partitions=8)
        # It missed the drop; the replicas refuse its writes for the old incarnation.
        with Client(cut_off.address, timeout=30) as client, pytest.raises(NotFound):
            client.upsert("churn", documents("stale", 5), "all")
        cluster.etcd.start_member(2)
        cluster.etcd.wait_member(2)
        with Client(cut_off.address, timeout=30) as client:
            wait_for(
                lambda: client.get_collection("churn").dimension == 6,
                15,
                "the cut-off coordinator to see the recreated collection",
            )
            assert client.get_collection("churn").document_count == 0
            client.upsert("churn", [{"id": "x", "vector": [1.0] * 6}], "all")
            assert client.count("churn") == 1
    finally:
        cut_off.stop()
        late.stop()


def test_etcd_losing_a_member_or_all_of_them(start_cluster: StartCluster) -> None:
    """One of three members killed mid-loop: no failed write, DDL goes on. All of
    etcd stopped: searches and upserts go on, DDL is UNAVAILABLE; back: all resumes."""
    cluster = start_cluster(groups=2, replicas=2, model="hash-8", etcd_members=3)
    etcd = cluster.etcd
    assert etcd is not None
    failed_writes = 0
    ddl = 0
    with Client(cluster.address, timeout=30) as client:
        client.create_collection("steady", dimension=4, partitions=8)
        for step in range(40):
            if step == 10:
                etcd.kill_member(0)
            try:
                client.upsert("steady", documents(f"s{step}", 20), "all")
            except ShoalError:
                failed_writes += 1
            client.create_collection(f"ddl-{step}", dimension=4, partitions=8)
            client.delete_collection(f"ddl-{step}")
            ddl += 2
        assert failed_writes == 0
        print(f"one etcd member killed: {ddl} DDL calls and 40 upserts, {failed_writes} failed")
        etcd.start_member(0)
        etcd.wait_member(0)

        etcd.stop()
        searches = upserts = 0
        for step in range(20):
            client.upsert("steady", documents(f"down{step}", 10), "quorum")
            upserts += 1
            result = client.search("steady", vector=[1.0, 1.0, 0.0, 0.5], k=5)
            assert len(result.hits) == 5
            searches += 1
        with pytest.raises(Unavailable, match="etcd"):
            client.create_collection("while-down", dimension=4, partitions=8)
        print(f"etcd stopped: {upserts} upserts and {searches} searches, none failed; DDL refused")

        etcd.start()
        wait_for(
            lambda: _creates(client, "after-etcd"),
            30,
            "DDL to work again once etcd is back",
        )
        assert client.count("steady") == 40 * 20 + 20 * 10


def _creates(client: Client, name: str) -> bool:
    try:
        client.create_collection(name, dimension=4, partitions=8)
    except Unavailable:
        return False
    return True


def test_a_killed_replica_leaves_the_members_and_comes_back(start_cluster: StartCluster) -> None:
    cluster = start_cluster(groups=1, replicas=2, model="hash-8")
    _, victim = cluster.shards[0]

    def members(client: Client) -> dict[str, bool | None]:
        info = client.cluster_info()
        return {
            r.address: (r.member if r.HasField("member") else None)
            for g in info.groups
            for r in g.replicas
        }

    with Client(cluster.address, timeout=30) as client:
        client.create_collection("live", dimension=4, partitions=8)
        client.upsert("live", documents("doc", 40), "all")
        wait_for(lambda: all(members(client).values()), 15, "every replica to register")
        victim.kill()  # SIGKILL: no goodbye, its lease runs out
        killed = time.monotonic()
        wait_for(lambda: members(client)[victim.address] is False, 15, "the lease to expire")
        gone_after = time.monotonic() - killed
        assert client.count("live") == 40  # reads go to the live replica
        victim.start()
        victim.wait_ready(60)
        wait_for(lambda: members(client)[victim.address] is True, 15, "the replica to register")
    print(f"a killed replica left the members {gone_after:.1f}s after SIGKILL (lease TTL 5s)")
