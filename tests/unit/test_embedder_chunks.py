"""Chunking in the embedder: texts split into chunks measured in the model's tokens,
on paragraph and sentence boundaries, each chunk embedded; with the hash encoder,
whose tokens are words."""

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embedder.core.chunker import Chunker
from embedder.core.service import EmbeddingService, Limits
from embedder.encoders.hashing import HashEncoder
from shoal.chunking import MAX_CHUNKS, ChunkingSettings
from shoal.errors import InvalidArgument

WORD = re.compile(r"\w+")
PARAGRAPHS = [
    " ".join(f"p{p}w{w}" for w in range(30)) + "." for p in range(6)
]  # 6 paragraphs of 30 words
TEXT = "\n\n".join(PARAGRAPHS)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def test_chunks_fit_the_size_keep_paragraphs_and_point_into_the_text() -> None:
    [chunks] = Chunker(HashEncoder(16).splitter).split([TEXT], 64, 8)
    assert all(len(WORD.findall(chunk.text)) <= 64 for chunk in chunks)
    assert all(TEXT[chunk.start : chunk.end] == chunk.text for chunk in chunks)
    # Two 30-word paragraphs fit in 64 words: the splitter cuts between paragraphs.
    assert [chunk.text for chunk in chunks[:1]] == ["\n\n".join(PARAGRAPHS[:2])]
    covered = set()
    for chunk in chunks:
        covered |= set(range(chunk.start, chunk.end))
    assert all(i in covered for i, char in enumerate(TEXT) if not char.isspace())


def test_an_empty_text_is_one_empty_chunk_and_bad_sizes_are_refused() -> None:
    chunker = Chunker(HashEncoder(16).splitter)
    [chunks] = chunker.split([""], 64, 8)
    assert [(c.start, c.end) for c in chunks] == [(0, 0)]
    with pytest.raises(InvalidArgument, match="overlap"):
        chunker.split(["x"], 8, 8)
    with pytest.raises(InvalidArgument, match="limit"):
        chunker.split(["word " * (MAX_CHUNKS + 5)], 1, 0)


async def test_the_service_embeds_every_chunk(executor: ThreadPoolExecutor) -> None:
    service = EmbeddingService(lambda: HashEncoder(32), Limits(max_wait_ms=0), executor)
    await service.start()
    try:
        result = await service.embed_chunks([TEXT, "short one"], 64, 8)
    finally:
        await service.stop()
    pieces = [chunk.text for chunks in result.chunks for chunk in chunks]
    assert len(result.chunks[1]) == 1 and result.chunks[1][0].text == "short one"
    np.testing.assert_array_equal(result.vectors, HashEncoder(32).encode(pieces))


def test_defaults_follow_the_trained_input_length_or_a_shorter_model_input() -> None:
    settings = ChunkingSettings(enabled=True).with_defaults(256)
    assert (settings.chunk_tokens, settings.overlap_tokens) == (126, 15)
    short = ChunkingSettings(enabled=True).with_defaults(64)
    assert (short.chunk_tokens, short.overlap_tokens) == (62, 7)
    assert ChunkingSettings().with_defaults(256) == ChunkingSettings()
    assert ChunkingSettings(True, 100, 0).with_defaults(256).overlap_tokens == 0
