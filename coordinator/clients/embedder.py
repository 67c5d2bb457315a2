"""EmbedderService over gRPC."""

from collections.abc import Sequence

import grpc
import grpc.aio
import numpy as np

from coordinator.clients.contracts import EmbedderInfo, Health, Vector
from coordinator.clients.health import HealthProbe
from shoal.logs import outgoing_metadata
from shoal.status import from_rpc_error
from shoal.v1 import embedder_pb2, embedder_pb2_grpc


class GrpcEmbedderClient:
    def __init__(self, address: str, channel: grpc.aio.Channel) -> None:
        self._address = address
        self._stub = embedder_pb2_grpc.EmbedderServiceStub(channel)
        self._health = HealthProbe(channel)

    @property
    def address(self) -> str:
        return self._address

    async def info(self, timeout_s: float) -> EmbedderInfo:
        try:
            reply = await self._stub.GetInfo(
                embedder_pb2.GetInfoRequest(), timeout=timeout_s, metadata=outgoing_metadata()
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return EmbedderInfo(
            model=reply.model,
            dimension=reply.dimension,
            max_batch=reply.max_batch,
            max_input_chars=reply.max_input_chars,
        )

    async def embed(self, texts: Sequence[str], model: str, timeout_s: float) -> Vector:
        request = embedder_pb2.EmbedRequest(texts=texts, model=model)
        try:
            reply = await self._stub.Embed(request, timeout=timeout_s, metadata=outgoing_metadata())
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        vectors = np.frombuffer(reply.vectors_f32, dtype="<f4")
        return vectors.reshape(len(texts), -1) if texts else vectors.reshape(0, reply.dimension)

    async def health(self, timeout_s: float) -> Health:
        return await self._health.check(timeout_s)
