"""Splitting a text into chunks the model reads whole.

The splitting itself is `semantic-text-splitter` (the Rust `text-splitter`
crate): it measures chunks with a callback or a Hugging Face tokenizer and
splits at the highest semantic level that fits (paragraphs, then sentences,
then words, then characters), with a bounded token overlap between
neighbouring chunks. Chosen over `langchain-text-splitters` (which counts with
HF tokenizers too, but splits by a fixed separator list in pure Python and
reports no offsets) and `chonkie` (a larger framework): it is one small
compiled dependency, is fast on long texts, and gives each chunk's character
offset, which the service returns with every hit.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from shoal.chunking import MAX_CHUNKS
from shoal.errors import InvalidArgument


class Splitter(Protocol):
    """What a model's splitter does: (character offset, chunk text) per chunk."""

    def chunk_indices(self, text: str) -> list[tuple[int, str]]: ...


#: Builds a model's splitter for (chunk_tokens, overlap_tokens).
SplitterFactory = Callable[[int, int], Splitter]


@dataclass(frozen=True, slots=True)
class Chunk:
    start: int  # character offsets of the chunk in its text: [start, end)
    end: int
    text: str


class Chunker:
    """Splits texts with one model's splitter per chunk size, made once and kept."""

    def __init__(self, factory: SplitterFactory) -> None:
        self._factory = factory
        self._splitters: dict[tuple[int, int], Splitter] = {}

    def split(
        self, texts: Sequence[str], chunk_tokens: int, overlap_tokens: int
    ) -> list[list[Chunk]]:
        """Each text's chunks, in order; a text without words is one empty chunk, so
        every document has at least one vector."""
        if chunk_tokens < 1 or not 0 <= overlap_tokens < chunk_tokens:
            raise InvalidArgument(
                f"chunk_tokens {chunk_tokens} and overlap_tokens {overlap_tokens}: a chunk"
                " needs at least one token and the overlap must be smaller than a chunk"
            )
        key = (chunk_tokens, overlap_tokens)
        splitter = self._splitters.get(key)
        if splitter is None:
            splitter = self._splitters[key] = self._factory(chunk_tokens, overlap_tokens)
        result = []
        for index, text in enumerate(texts):
            chunks = [
                Chunk(offset, offset + len(piece), piece)
                for offset, piece in splitter.chunk_indices(text)
            ]
            if len(chunks) > MAX_CHUNKS:
                raise InvalidArgument(
                    f"texts[{index}] splits into {len(chunks)} chunks of {chunk_tokens} tokens;"
                    f" the limit is {MAX_CHUNKS} per document: use larger chunks"
                )
            result.append(chunks or [Chunk(0, 0, "")])
        return result
