"""EmbedderService over gRPC: parse the request, call the core, build the reply.

Domain errors raised by the core become gRPC statuses in shoal.runtime.status's error
mapping, so nothing here deals with status codes.
"""

from typing import Any

import grpc.aio

from embedder.core.service import EmbeddingService
from shoal.v1 import embedder_pb2, embedder_pb2_grpc
from shoal.vectors import vector_to_f32

Context = grpc.aio.ServicerContext[Any, Any]


class EmbedderServicer(embedder_pb2_grpc.EmbedderServiceServicer):
    def __init__(self, service: EmbeddingService) -> None:
        self._service = service

    async def Embed(
        self, request: embedder_pb2.EmbedRequest, context: Context
    ) -> embedder_pb2.EmbedResponse:
        result = await self._service.embed(
            list(request.texts), request.model, time_left=context.time_remaining()
        )
        return embedder_pb2.EmbedResponse(
            model=result.model,
            dimension=result.dimension,
            vectors_f32=vector_to_f32(result.vectors),
        )

    async def EmbedChunks(
        self, request: embedder_pb2.EmbedChunksRequest, context: Context
    ) -> embedder_pb2.EmbedChunksResponse:
        result = await self._service.embed_chunks(
            list(request.texts),
            request.chunk_tokens,
            request.overlap_tokens,
            request.model,
            time_left=context.time_remaining(),
        )
        return embedder_pb2.EmbedChunksResponse(
            model=result.model,
            dimension=result.dimension,
            texts=[
                embedder_pb2.ChunkedText(
                    starts=[chunk.start for chunk in chunks], ends=[chunk.end for chunk in chunks]
                )
                for chunks in result.chunks
            ],
            vectors_f32=vector_to_f32(result.vectors),
        )

    async def GetInfo(
        self, request: embedder_pb2.GetInfoRequest, context: Context
    ) -> embedder_pb2.GetInfoResponse:
        info = self._service.info()
        return embedder_pb2.GetInfoResponse(
            model=info.model,
            dimension=info.dimension,
            # The proto's max_batch is the per-call limit callers must chunk by.
            max_batch=info.max_texts,
            max_input_chars=info.max_input_chars,
            max_seq_tokens=info.max_seq_tokens,
        )
