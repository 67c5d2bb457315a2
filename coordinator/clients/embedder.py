"""EmbedderService over gRPC."""

from collections.abc import Sequence

import grpc.aio
import numpy as np

from coordinator.clients.health import HealthProbe
from coordinator.core.ports import ChunkedText, EmbedderInfo, Health, Vector
from shoal.runtime.status import unary_call
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
        reply: embedder_pb2.GetInfoResponse = await unary_call(
            self._stub.GetInfo, embedder_pb2.GetInfoRequest(), timeout_s
        )
        return EmbedderInfo(
            model=reply.model,
            dimension=reply.dimension,
            max_batch=reply.max_batch,
            max_input_chars=reply.max_input_chars,
            max_seq_tokens=reply.max_seq_tokens,
        )

    async def embed(self, texts: Sequence[str], model: str, timeout_s: float) -> Vector:
        request = embedder_pb2.EmbedRequest(texts=texts, model=model)
        reply: embedder_pb2.EmbedResponse = await unary_call(self._stub.Embed, request, timeout_s)
        vectors = np.frombuffer(reply.vectors_f32, dtype="<f4")
        return vectors.reshape(len(texts), -1) if texts else vectors.reshape(0, reply.dimension)

    async def embed_chunks(
        self,
        texts: Sequence[str],
        model: str,
        chunk_tokens: int,
        overlap_tokens: int,
        timeout_s: float,
    ) -> list[ChunkedText]:
        request = embedder_pb2.EmbedChunksRequest(
            texts=texts, model=model, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens
        )
        reply: embedder_pb2.EmbedChunksResponse = await unary_call(
            self._stub.EmbedChunks, request, timeout_s
        )
        vectors = np.frombuffer(reply.vectors_f32, dtype="<f4").reshape(-1, reply.dimension)
        result: list[ChunkedText] = []
        row = 0
        for text in reply.texts:
            spans = list(zip(text.starts, text.ends, strict=True))
            result.append(ChunkedText(spans, vectors[row : row + len(spans)]))
            row += len(spans)
        return result

    async def health(self, timeout_s: float) -> Health:
        return await self._health.check(timeout_s)
