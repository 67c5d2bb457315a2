"""Starting etcd members on loopback: ports taken by another process in the meantime."""

import json
import socket
from pathlib import Path

import pytest

from shoal.etcd.server import EtcdCluster, EtcdFailed, is_healthy


def occupy(port: int) -> socket.socket:
    """Listen on `port`, as a process that took it after it was probed free would."""
    taker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a stopped etcd's TIME_WAIT
    taker.bind(("127.0.0.1", port))
    taker.listen()
    return taker


@pytest.mark.parametrize("size", [1, 3])
def test_a_new_cluster_chooses_new_ports_when_one_was_taken_before_etcd_bound_it(
    tmp_path: Path, size: int
) -> None:
    cluster = EtcdCluster(tmp_path / "etcd", size)
    taken = cluster.members[-1].peer_port
    with occupy(cluster.members[0].client_port), occupy(taken), cluster:
        assert all(is_healthy(member.client_url) for member in cluster.members)
        ports = {
            port for member in cluster.members for port in (member.client_port, member.peer_port)
        }
        assert taken not in ports
        recorded = json.loads((tmp_path / "etcd" / "ports.json").read_text())
        assert recorded == [[m.client_port, m.peer_port] for m in cluster.members]


def test_a_cluster_with_data_keeps_its_ports_and_says_why_it_cannot_start(tmp_path: Path) -> None:
    with EtcdCluster(tmp_path / "etcd") as first:
        port = first.members[0].client_port
    again = EtcdCluster(tmp_path / "etcd")
    assert again.members[0].client_port == port
    with occupy(port), pytest.raises(EtcdFailed, match="address already in use"):
        again.start(timeout=10)
    assert again.members[0].client_port == port
