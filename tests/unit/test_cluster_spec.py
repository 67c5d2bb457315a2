"""What a LocalCluster will start, checked without starting it: ports and flags."""

from collections.abc import Sequence
from pathlib import Path

import pytest

from shoal.cli.local_cluster import ClusterSpec, LocalCluster


def flag(args: Sequence[str], name: str) -> str | None:
    found = list(args)
    return found[found.index(name) + 1] if name in found else None


def test_base_port_numbers_every_service_in_order(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, ClusterSpec(groups=2, replicas=3, base_port=7000))
    ports = {service.name: service.port for service in cluster.services}
    assert ports == {
        "coordinator": 7000,
        "embedder": 7001,
        "shard-0-0": 7002,
        "shard-0-1": 7003,
        "shard-0-2": 7004,
        "shard-1-0": 7005,
        "shard-1-1": 7006,
        "shard-1-2": 7007,
    }


def test_without_a_base_port_only_the_coordinator_port_is_fixed(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, ClusterSpec(coordinator_port=50051))
    assert [service.port for service in cluster.services] == [50051, 0, 0, 0, 0, 0]


def test_metrics_ports_follow_the_same_order(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, ClusterSpec(base_port=7000, metrics_port_base=9100))
    metrics = [int(flag(service.args, "--metrics-port") or 0) for service in cluster.services]
    assert metrics == [9100 + index for index in range(6)]


@pytest.mark.parametrize(
    "spec",
    [
        {"base_port": 0},
        {"base_port": 65532},  # 6 services: 65532-65537
        {"base_port": 7000, "coordinator_port": 7001},
        {"embedder_threads": 0},
    ],
)
def test_impossible_port_and_thread_settings_are_refused(spec: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ClusterSpec(**spec)  # type: ignore[arg-type]


def test_the_local_embedder_takes_its_own_thread_default_unless_told(tmp_path: Path) -> None:
    default = LocalCluster(tmp_path, ClusterSpec())
    assert flag(default.embedder.args, "--torch-threads") is None
    chosen = LocalCluster(tmp_path, ClusterSpec(embedder_threads=3))
    assert flag(chosen.embedder.args, "--torch-threads") == "3"
