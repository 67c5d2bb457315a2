"""The coordinator's embedder channel balances per call, not per connection.

Behind a headless Service the embedder's name resolves to every pod; with
gRPC's default pick_first policy one connection would carry every call and the
other embedders would idle. Two embedder servers stand in for two pods here,
named by one target that resolves to both (gRPC's ipv4: scheme lists them).
"""

from typing import Any

import grpc.aio
import numpy as np

from coordinator.clients.channels import open_balanced_channel
from coordinator.clients.embedder import GrpcEmbedderClient
from shoal.runtime.balancing import dns_target
from shoal.v1 import embedder_pb2, embedder_pb2_grpc
from shoal.vectors import vector_to_f32

CALLS = 40
DIMENSION = 4


class CountingEmbedder(embedder_pb2_grpc.EmbedderServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def Embed(
        self, request: embedder_pb2.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> embedder_pb2.EmbedResponse:
        self.calls += 1
        vectors = np.ones((len(request.texts), DIMENSION), dtype=np.float32)
        return embedder_pb2.EmbedResponse(
            model="fake", dimension=DIMENSION, vectors_f32=vector_to_f32(vectors)
        )

    async def EmbedChunks(
        self, request: embedder_pb2.EmbedChunksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> embedder_pb2.EmbedChunksResponse:
        raise NotImplementedError("not called by this test")

    async def GetInfo(
        self, request: embedder_pb2.GetInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> embedder_pb2.GetInfoResponse:
        return embedder_pb2.GetInfoResponse(model="fake", dimension=DIMENSION)


async def _serve(servicer: CountingEmbedder) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    embedder_pb2_grpc.add_EmbedderServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_calls_are_spread_over_every_embedder_address() -> None:
    embedders = [CountingEmbedder(), CountingEmbedder()]
    served = [await _serve(embedder) for embedder in embedders]
    target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for _, port in served)
    channel = open_balanced_channel(target)
    try:
        client = GrpcEmbedderClient(target, channel)
        for _ in range(CALLS):
            vectors = await client.embed(["text"], "", timeout_s=10)
            assert vectors.shape == (1, DIMENSION)
    finally:
        await channel.close()
        for server, _ in served:
            await server.stop(None)
    calls = [embedder.calls for embedder in embedders]
    assert sum(calls) == CALLS
    # round_robin alternates once both connections are up; pick_first sends all to one.
    assert min(calls) >= CALLS // 4, calls


def test_plain_addresses_become_dns_targets() -> None:
    name = "embedder.shoal.svc.cluster.local:50071"
    assert dns_target(name) == f"dns:///{name}"
    assert dns_target("127.0.0.1:50071") == "dns:///127.0.0.1:50071"
    for target in (f"dns:///{name}", "ipv4:127.0.0.1:1,127.0.0.1:2", "unix:/tmp/s"):
        assert dns_target(target) == target
