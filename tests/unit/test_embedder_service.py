"""The embedder's limits, model checks and replies, with the hash test encoder."""

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import numpy as np
import pytest

from embedder.core.service import EmbeddingService, Limits
from embedder.encoders.hashing import HashEncoder
from shoal.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable

LIMITS = Limits(max_batch=4, max_wait_ms=0, max_texts=10, max_input_chars=20)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@asynccontextmanager
async def started(executor: ThreadPoolExecutor) -> AsyncIterator[EmbeddingService]:
    """A started service over the hash encoder, stopped on the way out."""
    service = EmbeddingService(lambda: HashEncoder(32), LIMITS, executor)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_embed_returns_unit_rows_in_order(executor: ThreadPoolExecutor) -> None:
    texts = ["alpha beta", "gamma", "", "alpha beta", "delta epsilon zeta", "eta"]

    async with started(executor) as service:
        result = await service.embed(texts)
        assert (result.model, result.dimension) == ("hash-32", 32)
        assert result.vectors.shape == (len(texts), 32)
        assert result.vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(result.vectors, HashEncoder(32).encode(texts))
        named = await service.embed(["gamma"], model="hash-32")
        np.testing.assert_array_equal(named.vectors[0], result.vectors[1])


async def test_info_reports_the_model_and_limits(executor: ThreadPoolExecutor) -> None:
    async with started(executor) as service:
        info = service.info()
        assert info.model == "hash-32"
        assert info.dimension == 32
        assert info.max_texts == 10
        assert info.max_input_chars == 20
        assert info.max_seq_tokens == 256


@pytest.mark.parametrize(
    ("texts", "model", "error", "message"),
    [
        ([], "", InvalidArgument, "texts is empty"),
        (["x"] * 11, "", ResourceExhausted, "11 texts in one call; the limit is 10"),
        (["ok", "y" * 21], "", InvalidArgument, r"texts\[1\] has 21 characters; the limit is 20"),
        (
            ["x"],
            "all-MiniLM-L6-v2",
            NotFound,
            "model all-MiniLM-L6-v2 is not served; this embedder serves hash-32",
        ),
    ],
    ids=["empty", "too-many", "too-long", "other-model"],
)
async def test_bad_requests_are_refused(
    executor: ThreadPoolExecutor,
    texts: list[str],
    model: str,
    error: type[Exception],
    message: str,
) -> None:
    async with started(executor) as service:
        with pytest.raises(error, match=message):
            await service.embed(texts, model=model)
        assert service.batcher is not None
        assert service.batcher.texts_encoded == 0


async def test_limits_at_the_boundary_are_accepted(executor: ThreadPoolExecutor) -> None:
    async with started(executor) as service:
        result = await service.embed(["y" * 20] * 10)
        assert result.vectors.shape == (10, 32)


async def test_calls_before_the_model_loads_are_unavailable(executor: ThreadPoolExecutor) -> None:
    service = EmbeddingService(lambda: HashEncoder(32), LIMITS, executor)
    with pytest.raises(Unavailable, match="loading"):
        service.info()
    with pytest.raises(Unavailable, match="loading"):
        await service.embed(["x"])


def test_inconsistent_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Limits(max_batch=0)
    with pytest.raises(ValueError, match="max_queued_texts"):
        Limits(max_texts=100, max_queued_texts=50)
