"""The one interface the embedder needs from a model.

Keeping it this small lets the batching and limits be tested with a fake
encoder, and keeps torch out of every process that does not serve a real model.
"""

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from embedder.core.chunker import Splitter


class Encoder(Protocol):
    """A text model that turns a batch of texts into unit-length float32 rows."""

    @property
    def model_id(self) -> str:
        """The name callers use to ask for this model (e.g. "all-MiniLM-L6-v2")."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_seq_tokens(self) -> int:
        """Tokens the model reads per text; it silently truncates longer texts."""
        ...

    def splitter(self, chunk_tokens: int, overlap_tokens: int) -> Splitter:
        """A text splitter that measures chunks in this model's tokens."""
        ...

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Rows of shape (len(texts), dimension), unit length, row i for texts[i].

        Blocking: the embedder calls it on its encoding thread, one batch at a time.
        """
        ...
