"""LocalCluster with real processes: fixed ports, quiet restarts, one owner per data dir,
and a demo set that is imported once.
"""

from pathlib import Path
from unittest import mock

import pytest

from shoal import Client
from shoal.cli.demo import DEMO_COLLECTION, load_demo
from shoal.cli.local_cluster import ClusterSpec, LocalCluster
from shoal.cli.service_process import ServiceFailed, ServiceProcess
from shoal.topology import Topology
from tests.integration.shoal_up import free_port_range

FAKE_MODEL = "hash-384"  # the demo set is text only: any model embeds it
TIMEOUT = 60.0


def warnings_in(services: list[ServiceProcess]) -> list[str]:
    """Warnings and errors, but for the one every plaintext server logs at start
    (shoal.runtime.server: anyone who reaches its port can call it)."""
    return [
        line
        for service in services
        for line in service.log_path.read_text().splitlines()
        if (" WARNING " in line or " ERROR " in line) and " plaintext on " not in line
    ]


def restart(cluster: LocalCluster) -> LocalCluster:
    """Stop the cluster and start a new one on its root, as a second `shoal up` would."""
    cluster.stop()
    again = LocalCluster(cluster.root, cluster.spec)
    again.start()
    return again


def test_a_restart_warns_about_nothing(tmp_path: Path) -> None:
    """The last run's topology, on other ports, made every shard warn 'not in topology'."""
    cluster = LocalCluster(tmp_path, ClusterSpec(model=FAKE_MODEL))
    cluster.start()
    try:
        with Client(cluster.address) as client:
            client.create_collection("kept", dimension=4)
            client.upsert("kept", [{"id": "a", "vector": [1.0, 0, 0, 0]}])
        cluster = restart(cluster)
        with Client(cluster.address) as client:
            assert client.count("kept") == 1
            # The coordinator follows etcd, as the shards do: it sees their leases.
            info = client.cluster_info()
            replicas = [replica for group in info.groups for replica in group.replicas]
            assert [replica.HasField("member") and replica.member for replica in replicas] == [
                True
            ] * len(cluster.all_shards)
    finally:
        cluster.stop()
    assert warnings_in(cluster.all_shards) == []


def test_base_port_fixes_every_port_across_restarts(tmp_path: Path) -> None:
    spec = ClusterSpec(model=FAKE_MODEL, groups=2, replicas=2, base_port=free_port_range(6))
    assert spec.base_port is not None
    cluster = LocalCluster(tmp_path, spec)
    cluster.start()
    try:
        expected = list(range(spec.base_port, spec.base_port + 6))
        assert [service.port for service in cluster.services] == expected
        assert cluster.address == f"127.0.0.1:{spec.base_port}"
        topology = Topology.load(cluster.topology_path)
        assert topology.addresses == [f"127.0.0.1:{port}" for port in expected[2:]]

        cluster = restart(cluster)
        assert [service.port for service in cluster.services] == expected
        with Client(cluster.address) as client:
            assert client.list_collections() == []
    finally:
        cluster.stop()
    assert warnings_in(cluster.all_shards) == []


def test_a_shard_refuses_a_data_dir_another_shard_holds(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = ServiceProcess("first", "shard", ["--data-dir", str(data_dir)], tmp_path)
    second = ServiceProcess("second", "shard", ["--data-dir", str(data_dir)], tmp_path)
    first.start()
    try:
        first.wait_ready(TIMEOUT)
        assert first.process is not None
        second.start()
        with pytest.raises(ServiceFailed):
            second.wait_ready(TIMEOUT)
        assert second.process is not None
        assert second.process.wait(TIMEOUT) != 0
        assert f"is in use by process {first.process.pid} (shard" in second.log_tail()
        assert first.running
    finally:
        second.kill()
        first.stop()


def test_the_demo_set_is_imported_once(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, ClusterSpec(model=FAKE_MODEL, groups=1, replicas=1))
    cluster.start()
    try:
        with Client(cluster.address, timeout=TIMEOUT) as client:
            load_demo(client, FAKE_MODEL)
            assert client.count(DEMO_COLLECTION) == 1000

            with mock.patch.object(client, "upsert", wraps=client.upsert) as upsert:
                load_demo(client, FAKE_MODEL)  # a restart: everything is there
            assert upsert.call_count == 0

            client.delete(DEMO_COLLECTION, ["abgate"])  # an import cut short
            with mock.patch.object(client, "upsert", wraps=client.upsert) as upsert:
                load_demo(client, FAKE_MODEL)
            assert upsert.call_count > 0
            assert client.count(DEMO_COLLECTION) == 1000
    finally:
        cluster.stop()
