"""The embedder's use cases: check a request against the limits, then batch it.

The model loads in `start`, off the event loop, so the server can answer health
checks (NOT_SERVING) while a real model takes its seconds to load; until then
every call is refused as Unavailable, which callers may retry.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from embedder.core.batcher import BatchObserver, DynamicBatcher, Vectors
from embedder.core.chunker import Chunk, Chunker
from embedder.core.encoder import Encoder
from shoal.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from shoal.limits import MAX_TEXT_CHARS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """How the embedder batches and what it accepts per call."""

    max_batch: int = 64  # texts per encoder call
    max_wait_ms: float = 10.0  # the longest a text waits for the batch to fill
    max_texts: int = 256  # texts per Embed call
    max_input_chars: int = 8192  # characters per text
    max_queued_texts: int = 16_384  # texts waiting across all calls before refusing more

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_texts", "max_input_chars", "max_queued_texts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, not {self.max_wait_ms}")
        if self.max_queued_texts < self.max_texts:
            raise ValueError(
                f"max_queued_texts ({self.max_queued_texts}) must be at least "
                f"max_texts ({self.max_texts})"
            )


@dataclass(frozen=True)
class ModelInfo:
    model: str
    dimension: int
    max_texts: int
    max_input_chars: int
    max_seq_tokens: int


@dataclass(frozen=True)
class ChunkedEmbeddings:
    model: str
    dimension: int
    chunks: list[list[Chunk]]  # per text, in order
    vectors: Vectors  # (all chunks, dimension), text after text


@dataclass(frozen=True)
class Embeddings:
    model: str
    dimension: int
    vectors: Vectors  # (len(texts), dimension) float32, unit rows


class EmbeddingService:
    """Serves one model: validates calls and feeds them to a `DynamicBatcher`."""

    def __init__(
        self,
        load_encoder: Callable[[], Encoder],
        limits: Limits,
        executor: Executor,
        observer: BatchObserver | None = None,
    ) -> None:
        self._load_encoder = load_encoder
        self._observer = observer
        self._limits = limits
        self._executor = executor
        self._encoder: Encoder | None = None
        self._chunker: Chunker | None = None
        self._batcher: DynamicBatcher | None = None

    @property
    def batcher(self) -> DynamicBatcher | None:
        return self._batcher

    async def start(self) -> None:
        """Load the model on the encoding thread and start batching."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        encoder = await loop.run_in_executor(self._executor, self._load_encoder)
        log.info(
            "model %s ready in %.1fs: dimension %d, max_seq_tokens %d",
            encoder.model_id,
            loop.time() - started,
            encoder.dimension,
            encoder.max_seq_tokens,
        )
        batcher = DynamicBatcher(
            encoder,
            self._executor,
            max_batch=self._limits.max_batch,
            max_wait_seconds=self._limits.max_wait_ms / 1000,
            max_queued=self._limits.max_queued_texts,
            observer=self._observer,
        )
        batcher.start()
        self._encoder, self._batcher = encoder, batcher
        self._chunker = Chunker(encoder.splitter)

    async def stop(self) -> None:
        if self._batcher is not None:
            await self._batcher.stop()
            self._batcher = None

    def _ready(self) -> tuple[Encoder, DynamicBatcher]:
        if self._encoder is None or self._batcher is None:
            raise Unavailable("the embedder is still loading its model")
        return self._encoder, self._batcher

    def info(self) -> ModelInfo:
        encoder, _ = self._ready()
        return ModelInfo(
            model=encoder.model_id,
            dimension=encoder.dimension,
            max_texts=self._limits.max_texts,
            max_input_chars=self._limits.max_input_chars,
            max_seq_tokens=encoder.max_seq_tokens,
        )

    def check(self, texts: Sequence[str], model: str = "") -> None:
        """Refuse a call the embedder will not serve, before it takes a queue slot."""
        encoder, _ = self._ready()
        if model and model != encoder.model_id:
            raise NotFound(f"model {model} is not served; this embedder serves {encoder.model_id}")
        if not texts:
            raise InvalidArgument("texts is empty; give at least one text")
        limits = self._limits
        if len(texts) > limits.max_texts:
            raise ResourceExhausted(
                f"{len(texts)} texts in one call; the limit is {limits.max_texts} per call"
            )
        for index, text in enumerate(texts):
            if len(text) > limits.max_input_chars:
                raise InvalidArgument(
                    f"texts[{index}] has {len(text)} characters; "
                    f"the limit is {limits.max_input_chars}"
                )

    async def embed(
        self, texts: Sequence[str], model: str = "", time_left: float | None = None
    ) -> Embeddings:
        """Unit vectors for `texts`, row i for texts[i].

        `time_left` is the caller's remaining time in seconds: texts not yet encoded
        when it runs out are dropped rather than encoded for nobody.
        """
        self.check(texts, model)
        encoder, batcher = self._ready()
        loop = asyncio.get_running_loop()
        deadline = None if time_left is None else loop.time() + time_left
        vectors = await batcher.embed(texts, deadline)
        return Embeddings(model=encoder.model_id, dimension=encoder.dimension, vectors=vectors)

    async def embed_chunks(
        self,
        texts: Sequence[str],
        chunk_tokens: int,
        overlap_tokens: int,
        model: str = "",
        time_left: float | None = None,
    ) -> ChunkedEmbeddings:
        """Each text split into chunks of at most `chunk_tokens` model tokens, and every
        chunk embedded (through the batcher, with everyone else's texts).

        Texts may be as long as a document (MAX_TEXT_CHARS), not just what one
        embedding call takes: their chunks are what the model reads.
        """
        encoder, batcher = self._ready()
        if model and model != encoder.model_id:
            raise NotFound(f"model {model} is not served; this embedder serves {encoder.model_id}")
        if not texts:
            raise InvalidArgument("texts is empty; give at least one text")
        if len(texts) > self._limits.max_texts:
            raise ResourceExhausted(
                f"{len(texts)} texts in one call; the limit is {self._limits.max_texts} per call"
            )
        for index, text in enumerate(texts):
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidArgument(
                    f"texts[{index}] has {len(text)} characters; the limit is {MAX_TEXT_CHARS}"
                )
        chunker = self._chunker
        assert chunker is not None
        loop = asyncio.get_running_loop()
        deadline = None if time_left is None else loop.time() + time_left
        # Tokenizing long texts takes a while: off the event loop, beside the encoder.
        chunks = await asyncio.to_thread(chunker.split, texts, chunk_tokens, overlap_tokens)
        pieces = [chunk.text for text_chunks in chunks for chunk in text_chunks]
        if len(pieces) > self._limits.max_queued_texts:
            raise ResourceExhausted(
                f"{len(pieces)} chunks in one call; the limit is"
                f" {self._limits.max_queued_texts}: send fewer texts per call"
            )
        vectors = await batcher.embed(pieces, deadline)
        return ChunkedEmbeddings(encoder.model_id, encoder.dimension, chunks, vectors)
