"""Dynamic batching: many small concurrent requests become a few full batches.

A model encodes 64 texts in far less than 64 times the cost of one, so the
batcher queues texts from concurrent calls and hands the encoder up to
`max_batch` of them at a time. Only one batch encodes at a time (the model
already uses every core), and requests that arrive meanwhile pile up into the
next batch, so batches grow by themselves under load.

Right after a batch that answered several callers, the next one waits for a
full batch (`max_batch` texts), at most `max_wait` after that batch finished or
after its oldest text arrived, whichever is later: the callers just answered
tend to send their next texts at once, and waiting for them keeps batches full
under steady load. Otherwise (after a lone caller's batch, or when the last
batch is older than `max_wait`) texts go at once, so a lone caller never waits.

A request larger than `max_batch` is cut across consecutive batches and answered
as one array. A failed batch fails only the requests with texts in it. A request
whose caller has gone (cancelled) or whose deadline has passed is dropped before
its texts are encoded.
"""

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from embedder.core.encoder import Encoder
from shoal.errors import DeadlineExceeded, Internal, ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

ENCODE_FAILED = "encoding failed; the details are in the embedder log"


class BatchObserver(Protocol):
    """Where batch figures go (embedder.metrics.EmbedderMetrics fits); optional."""

    def observe_embed_batch(self, size: int, encode_seconds: float) -> None: ...

    def observe_queue_wait(self, seconds: float) -> None: ...


@dataclass(eq=False)
class _Request:
    texts: Sequence[str]
    rows: Vectors
    future: asyncio.Future[Vectors]
    deadline: float | None  # on the event loop's clock
    pending: int  # rows not encoded yet

    @property
    def finished(self) -> bool:
        """Answered, failed, or abandoned by its caller (a cancelled future is done)."""
        return self.future.done()

    def fail(self, error: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(eq=False)
class _Slice:
    """Texts [start, stop) of one request, queued or in a batch."""

    request: _Request
    start: int
    stop: int
    queued_at: float

    @property
    def size(self) -> int:
        return self.stop - self.start


class DynamicBatcher:
    """Queues texts from concurrent `embed` calls and encodes them in batches.

    Call `start` inside the running event loop before `embed`, and `stop` to
    fail whatever is still queued.
    """

    def __init__(
        self,
        encoder: Encoder,
        executor: Executor,
        max_batch: int,
        max_wait_seconds: float,
        max_queued: int,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if max_wait_seconds < 0:
            raise ValueError(f"max_wait_seconds must not be negative, not {max_wait_seconds}")
        self._encoder = encoder
        self._executor = executor
        self._max_batch = max_batch
        self._max_wait = max_wait_seconds
        self._max_queued = max_queued
        self._observer = observer
        self._queue: deque[_Slice] = deque()
        self._queued = 0  # texts in the queue, abandoned ones included until dropped
        self._arrived = asyncio.Event()
        self._last_batch_done = -math.inf  # on the event loop's clock
        self._last_batch_requests = 1
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: Batches and texts encoded so far: their ratio is the mean batch size.
        self.batches_encoded = 0
        self.texts_encoded = 0

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the batcher is already running")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="embed-batcher")

    async def stop(self) -> None:
        """Stop batching and fail queued requests; the batch in flight is not awaited."""
        self._closed = True
        if self.batches_encoded:
            log.info(
                "encoded %d texts in %d batches (mean batch %.1f)",
                self.texts_encoded,
                self.batches_encoded,
                self.texts_encoded / self.batches_encoded,
            )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            self._queue.popleft().request.fail(Unavailable("the embedder is shutting down"))
        self._queued = 0

    async def embed(self, texts: Sequence[str], deadline: float | None = None) -> Vectors:
        """Rows (len(texts), dimension) for `texts`, encoded with other callers' texts.

        `deadline` is a time on the event loop's clock (`loop.time()`) after which
        the texts are no longer worth encoding.
        """
        if self._closed or self._task is None:
            raise Unavailable("the embedder is not running")
        if not texts:
            return np.zeros((0, self._encoder.dimension), dtype=np.float32)
        if self._queued + len(texts) > self._max_queued:
            raise ResourceExhausted(
                f"the embedder is overloaded: {self._queued} texts are waiting "
                f"(at most {self._max_queued}); retry later"
            )
        loop = asyncio.get_running_loop()
        request = _Request(
            texts=texts,
            rows=np.empty((len(texts), self._encoder.dimension), dtype=np.float32),
            future=loop.create_future(),
            deadline=deadline,
            pending=len(texts),
        )
        self._queue.append(_Slice(request, 0, len(texts), queued_at=loop.time()))
        self._queued += len(texts)
        self._arrived.set()
        # A caller that gives up cancels the future, which tells the batcher to skip it.
        return await request.future

    async def _run(self) -> None:
        while True:
            try:
                await self._wait_for_batch()
                batch = self._take_batch()
                if batch:
                    await self._encode(batch)
            except Exception:  # a bug here must not stop every later request
                log.exception("the embedding batcher failed; it keeps running")

    async def _wait_for_batch(self) -> None:
        """Return once max_batch texts are queued, or as many requests as are worth
        waiting for, or max_wait has passed since the oldest text arrived (or since
        the last batch finished, if later)."""
        loop = asyncio.get_running_loop()
        while True:
            self._drop_finished_head()
            if self._queued >= self._max_batch or len(self._queue) >= self._expected():
                return
            if self._queue:
                since = max(self._queue[0].queued_at, self._last_batch_done)
                remaining = since + self._max_wait - loop.time()
                if remaining <= 0:
                    return
            else:
                remaining = None
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _expected(self) -> int:
        """Requests worth waiting for: a full batch right after a batch of several
        callers, else just the first."""
        oldest = self._queue[0].queued_at if self._queue else math.inf
        if self._last_batch_requests > 1 and oldest - self._last_batch_done <= self._max_wait:
            return self._max_batch
        return 1

    def _drop_finished_head(self) -> None:
        while self._queue and self._queue[0].request.finished:
            self._queued -= self._queue.popleft().size

    def _take_batch(self) -> list[_Slice]:
        """Up to max_batch queued texts, oldest first, cutting a large request if needed."""
        now = asyncio.get_running_loop().time()
        batch: list[_Slice] = []
        room = self._max_batch
        while room and self._queue:
            head = self._queue[0]
            request = head.request
            if request.finished:
                self._queued -= self._queue.popleft().size
                continue
            if request.deadline is not None and now >= request.deadline:
                self._queued -= self._queue.popleft().size
                request.fail(DeadlineExceeded("the deadline passed before the texts were encoded"))
                continue
            if head.size <= room:
                self._queue.popleft()
                taken = head
            else:
                taken = _Slice(request, head.start, head.start + room, head.queued_at)
                head.start += room
            batch.append(taken)
            self._queued -= taken.size
            room -= taken.size
        return batch

    async def _encode(self, batch: list[_Slice]) -> None:
        texts = [text for part in batch for text in part.request.texts[part.start : part.stop]]
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self._observer is not None:
            for part in batch:
                self._observer.observe_queue_wait(started - part.queued_at)
        try:
            vectors = await loop.run_in_executor(self._executor, self._encoder.encode, texts)
            expected = (len(texts), self._encoder.dimension)
            if vectors.shape != expected:
                raise RuntimeError(f"the encoder returned shape {vectors.shape}, not {expected}")
        except asyncio.CancelledError:  # stopping: these callers get no rows
            for part in batch:
                part.request.fail(Unavailable("the embedder is shutting down"))
            raise
        except Exception:
            log.exception("encoding a batch of %d texts failed", len(texts))
            for part in batch:
                part.request.fail(Internal(ENCODE_FAILED))
            return
        self._last_batch_done = loop.time()
        self._last_batch_requests = len(batch)
        encode_seconds = self._last_batch_done - started
        log.debug("encoded %d texts in %.1f ms", len(texts), encode_seconds * 1000)
        if self._observer is not None:
            self._observer.observe_embed_batch(len(texts), encode_seconds)
        self.batches_encoded += 1
        self.texts_encoded += len(texts)
        offset = 0
        for part in batch:
            request = part.request
            if not request.finished:
                request.rows[part.start : part.stop] = vectors[offset : offset + part.size]
                request.pending -= part.size
                if request.pending == 0:
                    request.future.set_result(request.rows)
            offset += part.size
