"""Turning texts into vectors through the embedder service.

Texts are sent in batches of the embedder's own limit, a few batches at a time;
the embedder batches concurrent calls together again on its side.
"""

import asyncio
import time
from collections.abc import Callable, Sequence

import numpy as np

from coordinator.core.deadline import Deadline
from coordinator.core.ports import (
    ChunkedText,
    CollectionConfig,
    EmbedderClient,
    EmbedderInfo,
    Vector,
)
from shoal.errors import DataLoss, DeadlineExceeded, Internal, ShoalError, Unavailable

#: How long the embedder's GetInfo answer is trusted before asking again.
INFO_TTL_S = 30.0
#: Embed calls in flight for one request.
PARALLEL_BATCHES = 4
#: Texts per EmbedChunks call: a long text makes many chunks, and the embedder
#: bounds the chunks one call may queue.
CHUNKING_BATCH = 16


class Embedding:
    def __init__(
        self,
        client: EmbedderClient,
        info_ttl: float = INFO_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._info: EmbedderInfo | None = None
        self._info_expires = 0.0
        self._info_ttl = info_ttl
        self._clock = clock

    @property
    def address(self) -> str:
        return self.client.address

    async def info(self, deadline: Deadline) -> EmbedderInfo:
        if self._info is None or self._clock() >= self._info_expires:
            try:
                self._info = await self.client.info(deadline.check("asking the embedder"))
            except ShoalError as error:
                raise self._blame(error) from error
            self._info_expires = self._clock() + self._info_ttl
        return self._info

    async def embed(
        self, texts: Sequence[str], model: str, dimension: int, deadline: Deadline
    ) -> Vector:
        """A (len(texts), dimension) float32 matrix of the texts' embeddings.

        Texts longer than the embedder accepts are cut to its limit first. The
        model reads only its first `max_seq_tokens` tokens anyway, far fewer
        than the character limit, so the cut does not change the vector; the
        document keeps its whole text.
        """
        info = await self.info(deadline)
        if info.max_input_chars > 0:
            limit = info.max_input_chars
            texts = [text if len(text) <= limit else text[:limit] for text in texts]
        size = max(1, info.max_batch)
        batches = [texts[start : start + size] for start in range(0, len(texts), size)]
        gate = asyncio.Semaphore(PARALLEL_BATCHES)

        async def one(batch: Sequence[str]) -> Vector:
            async with gate:
                try:
                    return await self.client.embed(batch, model, deadline.check("embedding texts"))
                except ShoalError as error:
                    raise self._blame(error) from error

        parts = await asyncio.gather(*(one(batch) for batch in batches))
        vectors = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if vectors.shape != (len(texts), dimension):
            raise Internal(
                f"the embedder returned vectors of shape {vectors.shape};"
                f" expected {(len(texts), dimension)}"
            )
        return vectors

    def _blame(self, error: ShoalError) -> ShoalError:
        """Name the embedder in failures that are its own rather than the request's."""
        if isinstance(error, Unavailable | DeadlineExceeded | Internal | DataLoss):
            return type(error)(f"embedder {self.address}: {error}")
        return error

    async def embed_chunks(
        self, texts: Sequence[str], config: CollectionConfig, deadline: Deadline
    ) -> list[ChunkedText]:
        """Each text split by the embedder into chunks of the collection's size (in the
        model's tokens) and every chunk embedded; whole texts go, not cut to the
        embedder's input limit, since each chunk is what the model reads."""
        chunking = config.chunking
        batches = [
            texts[start : start + CHUNKING_BATCH] for start in range(0, len(texts), CHUNKING_BATCH)
        ]
        gate = asyncio.Semaphore(PARALLEL_BATCHES)

        async def one(batch: Sequence[str]) -> list[ChunkedText]:
            async with gate:
                try:
                    return await self.client.embed_chunks(
                        batch,
                        config.embedding_model,
                        chunking.chunk_tokens,
                        chunking.overlap_tokens or 0,
                        deadline.check("chunking and embedding texts"),
                    )
                except ShoalError as error:
                    raise self._blame(error) from error

        parts = await asyncio.gather(*(one(batch) for batch in batches))
        result = [text for part in parts for text in part]
        if len(result) != len(texts) or any(
            text.vectors.shape != (len(text.spans), config.dimension) for text in result
        ):
            raise Internal(
                f"the embedder chunked {len(result)} of {len(texts)} texts, or returned"
                f" vectors of another dimension than {config.dimension}"
            )
        return result
