"""The embedder's dynamic batcher, driven by the hash test encoder.

Batch composition is made deterministic without timing: either the batch fills
to max_batch before a long max_wait, or the encoder is held on a gate while
more requests queue up behind the batch in flight.
"""

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import numpy as np
import numpy.typing as npt
import pytest

from embedder.core.batcher import ENCODE_FAILED, BatchObserver, DynamicBatcher
from embedder.encoders.hashing import HashEncoder
from shoal.errors import DeadlineExceeded, Internal, ResourceExhausted, Unavailable

DIM = 16
LONG_WAIT = 60.0  # seconds; a batch that waits this long would hit the test timeout


class RecordingEncoder(HashEncoder):
    """Records every batch; can hold encoding on a gate and fail on a poisoned text."""

    def __init__(self, poison: str | None = None, gated: bool = False) -> None:
        super().__init__(DIM)
        self.batches: list[list[str]] = []
        self.poison = poison
        self.started = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.batches.append(list(texts))
        self.started.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        if self.poison is not None and self.poison in texts:
            raise RuntimeError("poisoned batch")
        return super().encode(texts)

    @property
    def sizes(self) -> list[int]:
        return [len(batch) for batch in self.batches]

    @property
    def seen(self) -> set[str]:
        return {text for batch in self.batches for text in batch}


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@asynccontextmanager
async def batching(
    encoder: RecordingEncoder,
    executor: ThreadPoolExecutor,
    max_batch: int = 8,
    max_wait: float = LONG_WAIT,
    max_queued: int = 10_000,
    observer: BatchObserver | None = None,
) -> AsyncIterator[DynamicBatcher]:
    """A started batcher; on the way out the encoder's gate opens and the batcher stops."""
    batcher = DynamicBatcher(encoder, executor, max_batch, max_wait, max_queued, observer)
    batcher.start()
    try:
        yield batcher
    finally:
        encoder.gate.set()
        await batcher.stop()


async def wait_until_encoding(encoder: RecordingEncoder) -> None:
    await asyncio.to_thread(encoder.started.wait, 30)
    assert encoder.started.is_set(), "the encoder never started"


def texts(prefix: str, count: int) -> list[str]:
    return [f"{prefix} text number {i}" for i in range(count)]


def expected(rows_for: Sequence[str]) -> npt.NDArray[np.float32]:
    return HashEncoder(DIM).encode(rows_for)


async def test_concurrent_requests_merge_into_one_batch(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder()
    inputs = [[f"request {i}"] for i in range(8)]

    async with batching(encoder, executor, max_batch=8) as batcher:
        results = await asyncio.gather(*(batcher.embed(one) for one in inputs))
        for one, rows in zip(inputs, results, strict=True):
            np.testing.assert_array_equal(rows, expected(one))
    assert encoder.sizes == [8]


async def test_requests_queue_behind_the_batch_in_flight(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder(gated=True)

    async with batching(encoder, executor, max_batch=8, max_wait=0.0) as batcher:
        first = asyncio.create_task(batcher.embed(["first"]))
        await wait_until_encoding(encoder)
        later = [asyncio.create_task(batcher.embed([f"later {i}"])) for i in range(5)]
        await asyncio.sleep(0)  # let each task queue its text
        encoder.gate.set()
        await first
        for i, task in enumerate(later):
            np.testing.assert_array_equal(await task, expected([f"later {i}"]))
    assert encoder.sizes == [1, 5]


async def test_after_a_batch_of_several_callers_the_next_batch_waits_to_fill(
    executor: ThreadPoolExecutor,
) -> None:
    encoder = RecordingEncoder()

    async with batching(encoder, executor, max_batch=8) as batcher:
        # A lone caller is served at once, however long max_wait is.
        await batcher.embed(["alone"])
        await asyncio.gather(*(batcher.embed([f"first {i}"]) for i in range(4)))
        assert encoder.sizes == [1, 4]
        later = [asyncio.create_task(batcher.embed([f"later {i}"])) for i in range(7)]
        for _ in range(10):
            await asyncio.sleep(0)
        assert encoder.sizes == [1, 4], "seven texts went out before the batch was full"
        later.append(asyncio.create_task(batcher.embed(["later 7"])))
        for i, task in enumerate(later):
            np.testing.assert_array_equal(await task, expected([f"later {i}"]))
    assert encoder.sizes == [1, 4, 8]


async def test_a_large_request_is_split_and_answered_as_one(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder()
    big = texts("big", 10)

    async with batching(encoder, executor, max_batch=4, max_wait=0.0) as batcher:
        rows = await batcher.embed(big)
        assert rows.shape == (10, DIM)
        np.testing.assert_array_equal(rows, expected(big))
    assert encoder.sizes == [4, 4, 2]


async def test_mixed_requests_get_their_own_rows(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder(gated=True)
    requests = [texts("a", 3), texts("b", 6), texts("c", 1), texts("d", 5)]

    async with batching(encoder, executor, max_batch=4, max_wait=0.0) as batcher:
        blocker = asyncio.create_task(batcher.embed(["blocker"]))
        await wait_until_encoding(encoder)
        tasks = [asyncio.create_task(batcher.embed(request)) for request in requests]
        await asyncio.sleep(0)
        encoder.gate.set()
        await blocker
        for request, task in zip(requests, tasks, strict=True):
            np.testing.assert_array_equal(await task, expected(request))
    assert encoder.sizes == [1, 4, 4, 4, 3]  # 15 queued texts packed into full batches
    assert all(size <= 4 for size in encoder.sizes)


async def test_a_failed_batch_fails_only_its_requests(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder(poison="boom", gated=True)

    async with batching(encoder, executor, max_batch=2, max_wait=0.0) as batcher:
        blocker = asyncio.create_task(batcher.embed(["blocker"]))
        await wait_until_encoding(encoder)
        # max_batch 2: ["x", "boom"] is one batch; "y" is then dropped, not encoded.
        poisoned = asyncio.create_task(batcher.embed(["x", "boom", "y"]))
        healthy = asyncio.create_task(batcher.embed(["fine"]))
        await asyncio.sleep(0)
        encoder.gate.set()
        await blocker
        with pytest.raises(Internal, match=ENCODE_FAILED):
            await poisoned
        np.testing.assert_array_equal(await healthy, expected(["fine"]))
        # The batcher keeps serving after the failure.
        np.testing.assert_array_equal(await batcher.embed(["after"]), expected(["after"]))
    assert encoder.batches[1] == ["x", "boom"]
    # The rest of the failed request is not encoded for nobody.
    assert encoder.batches[2] == ["fine"]


async def test_a_wrongly_shaped_encoder_result_is_an_internal_error(
    executor: ThreadPoolExecutor,
) -> None:
    class Truncating(RecordingEncoder):
        def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            return super().encode(texts)[:-1]

    async with batching(Truncating(), executor, max_wait=0.0) as batcher:
        with pytest.raises(Internal):
            await batcher.embed(["one", "two"])


async def test_a_cancelled_request_is_not_encoded(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder(gated=True)

    async with batching(encoder, executor, max_wait=0.0) as batcher:
        blocker = asyncio.create_task(batcher.embed(["blocker"]))
        await wait_until_encoding(encoder)
        gone = asyncio.create_task(batcher.embed(["caller went away"]))
        kept = asyncio.create_task(batcher.embed(["caller waits"]))
        await asyncio.sleep(0)
        gone.cancel()
        encoder.gate.set()
        await blocker
        np.testing.assert_array_equal(await kept, expected(["caller waits"]))
        with pytest.raises(asyncio.CancelledError):
            await gone
    assert "caller went away" not in encoder.seen
    assert encoder.sizes == [1, 1]


async def test_a_request_past_its_deadline_is_not_encoded(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder()

    async with batching(encoder, executor, max_wait=0.0) as batcher:
        past = asyncio.get_running_loop().time() - 1.0
        with pytest.raises(DeadlineExceeded):
            await batcher.embed(["too late"], deadline=past)
        await batcher.embed(["in time"], deadline=asyncio.get_running_loop().time() + 60)
    assert encoder.seen == {"in time"}


async def test_stop_fails_queued_requests(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder()

    async with batching(encoder, executor, max_batch=8, max_wait=LONG_WAIT) as batcher:
        # max_wait is long and the batch is not full, so the request stays queued.
        queued = asyncio.create_task(batcher.embed(["waiting"]))
        await asyncio.sleep(0)
        await batcher.stop()
        with pytest.raises(Unavailable):
            await queued
        with pytest.raises(Unavailable):
            await batcher.embed(["after stop"])
    assert encoder.batches == []


async def test_an_overfull_queue_refuses_new_texts(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder(gated=True)

    async with batching(encoder, executor, max_wait=0.0, max_queued=4) as batcher:
        blocker = asyncio.create_task(batcher.embed(["blocker"]))
        await wait_until_encoding(encoder)
        queued = asyncio.create_task(batcher.embed(texts("q", 3)))
        await asyncio.sleep(0)
        with pytest.raises(ResourceExhausted, match="overloaded"):
            await batcher.embed(texts("r", 2))
        encoder.gate.set()
        await blocker
        np.testing.assert_array_equal(await queued, expected(texts("q", 3)))


class RecordingObserver:
    def __init__(self) -> None:
        self.batches: list[tuple[int, float]] = []
        self.waits: list[float] = []

    def observe_embed_batch(self, size: int, encode_seconds: float) -> None:
        self.batches.append((size, encode_seconds))

    def observe_queue_wait(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_the_observer_sees_every_batch_and_wait(executor: ThreadPoolExecutor) -> None:
    encoder = RecordingEncoder()
    observer = RecordingObserver()

    async with batching(encoder, executor, max_batch=4, max_wait=0.0, observer=observer) as batcher:
        await batcher.embed(texts("t", 10))
    assert [size for size, _ in observer.batches] == [4, 4, 2]
    assert all(seconds >= 0 for _, seconds in observer.batches)
    assert len(observer.waits) == 3  # one per slice of the request
    assert all(wait >= 0 for wait in observer.waits)
