"""`hash-<dim>`: a deterministic fake model, for tests only.

It is not a language model. Each word is hashed to one coordinate with a sign
(the hashing trick) and the counts are scaled to unit length, so texts that
share words get similar vectors and equal texts get equal vectors, in every
process and on every machine. Tests use it to exercise the service, batching and
search paths without loading torch; search quality on it means nothing.
"""

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from semantic_text_splitter import TextSplitter

from embedder.core.chunker import Splitter

MAX_DIMENSION = 4096
_WORD = re.compile(r"\w+")
_EMPTY_TOKEN = "\x00empty"  # stands in for a text with no words, so its row is unit length too


class HashEncoder:
    """A bag-of-words hashed into `dimension` coordinates (test encoder)."""

    def __init__(self, dimension: int, max_seq_tokens: int = 256) -> None:
        if not 1 <= dimension <= MAX_DIMENSION:
            raise ValueError(f"dimension must be 1 to {MAX_DIMENSION}, not {dimension}")
        self.dimension = dimension
        self.max_seq_tokens = max_seq_tokens
        self.model_id = f"hash-{dimension}"

    def _slot(self, token: str) -> tuple[int, float]:
        digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        return (digest >> 1) % self.dimension, 1.0 if digest & 1 else -1.0

    def splitter(self, chunk_tokens: int, overlap_tokens: int) -> Splitter:
        """Chunks measured in this model's tokens: its words."""
        return TextSplitter.from_callback(
            lambda text: len(_WORD.findall(text)), chunk_tokens, overlap_tokens
        )

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = _WORD.findall(text.lower())[: self.max_seq_tokens]
            for token in tokens:
                index, sign = self._slot(token)
                vectors[row, index] += sign
            if not np.any(vectors[row]):  # no words, or their signs cancelled out
                index, sign = self._slot(_EMPTY_TOKEN)
                vectors[row, index] = sign
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors
