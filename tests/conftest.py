"""Fixtures that start real Shoal processes on 127.0.0.1:0 and always stop them."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shoal.cli.local_cluster import ClusterSpec, LocalCluster
from shoal.etcd.server import EtcdCluster

StartCluster = Callable[..., LocalCluster]


def _cluster_starter(root: Path) -> Iterator[StartCluster]:
    clusters: list[LocalCluster] = []

    def start(**spec: object) -> LocalCluster:
        cluster = LocalCluster(root / f"cluster-{len(clusters)}", ClusterSpec(**spec))  # type: ignore[arg-type]
        clusters.append(cluster)
        cluster.start()
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[StartCluster]:
    """Start a LocalCluster (ClusterSpec fields as keywords), stopped after the test."""
    yield from _cluster_starter(tmp_path)


@pytest.fixture(scope="module")
def start_module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartCluster]:
    """Like start_cluster, shared by the tests of one module."""
    yield from _cluster_starter(tmp_path_factory.mktemp("cluster"))


StartEtcd = Callable[..., EtcdCluster]


@pytest.fixture
def start_etcd(tmp_path: Path) -> Iterator[StartEtcd]:
    """Start a real etcd on loopback (`size` members), stopped after the test."""
    clusters: list[EtcdCluster] = []

    def start(size: int = 1) -> EtcdCluster:
        cluster = EtcdCluster(tmp_path / f"etcd-{len(clusters)}", size)
        clusters.append(cluster)
        cluster.start()
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()
