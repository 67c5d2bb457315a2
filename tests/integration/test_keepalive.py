"""Idle connections between Shoal services and to the coordinator stay up.

Clients ping every keepalive interval; servers used to allow one ping per five
minutes and closed the connection (GOAWAY ENHANCE_YOUR_CALM "too_many_pings")
after the third. Here every service pings every second, so an idle connection
lives through several intervals within a few seconds of test.
"""

import asyncio
import contextlib
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.runtime.keepalive import Keepalive
from shoal.runtime.server import channel_options
from tests.conftest import StartCluster

INTERVAL_MS = 1_000
#: A server that allows too few pings closes the connection after about four.
IDLE_S = 6 * INTERVAL_MS / 1000


async def idle_without_reconnecting(address: str) -> None:
    """One call, then idle for IDLE_S: the channel must stay READY on the same
    connection (a GOAWAY would send it to IDLE), and the next call succeed."""
    options = channel_options(Keepalive(INTERVAL_MS))
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        await check(health_pb2.HealthCheckRequest(), timeout=10)
        assert channel.get_state() is grpc.ChannelConnectivity.READY
        with contextlib.suppress(TimeoutError):  # no change for IDLE_S: as it should be
            await asyncio.wait_for(
                channel.wait_for_state_change(grpc.ChannelConnectivity.READY), IDLE_S
            )
        assert channel.get_state() is grpc.ChannelConnectivity.READY, "the connection was closed"
        reply: health_pb2.HealthCheckResponse = await check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def goaways(cluster: LocalCluster) -> list[str]:
    logs = sorted(Path(cluster.root / "run").glob("*.log"))
    return [
        f"{log.name}: {line}"
        for log in logs
        for line in log.read_text(errors="replace").splitlines()
        if "too_many_pings" in line or "GOAWAY" in line
    ]


def test_idle_connections_are_not_closed_for_pinging(
    start_cluster: StartCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOAL_KEEPALIVE_MS", str(INTERVAL_MS))  # every service started below
    cluster = start_cluster(groups=1, replicas=2, model="hash-8")
    with Client(cluster.address, timeout=30) as client:
        # Opens the coordinator's connections to both shards and the embedder.
        client.create_collection("texts", embedding_model="hash-8")
        client.upsert("texts", [{"id": "a", "text": "alpha"}], "all")
        assert client.search("texts", text="alpha", k=1).hits[0].id == "a"

    asyncio.run(idle_without_reconnecting(cluster.address))

    with Client(cluster.address, timeout=30) as client:
        assert client.search("texts", text="alpha", k=1).hits[0].id == "a"
    assert goaways(cluster) == []
