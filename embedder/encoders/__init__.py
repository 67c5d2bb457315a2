"""The models the embedder can serve, chosen by name at start-up.

`sentence_transformer` imports torch, so it is imported only when a real model
is asked for: processes serving `hash-<dim>` (tests) start in a fraction of a
second and never load torch.
"""

import re

from embedder.core.encoder import Encoder
from embedder.encoders.hashing import MAX_DIMENSION, HashEncoder

MINILM = "all-MiniLM-L6-v2"
_HASH_MODEL = re.compile(r"hash-(\d+)")


def check_model_name(model: str) -> None:
    """Raise ValueError for a model this embedder cannot serve, before loading anything."""
    if model == MINILM:
        return
    match = _HASH_MODEL.fullmatch(model)
    if match is None:
        raise ValueError(f"unknown model {model!r}; choose {MINILM} or hash-<dimension>")
    dimension = int(match.group(1))
    if not 1 <= dimension <= MAX_DIMENSION:
        raise ValueError(f"{model}: the dimension must be 1 to {MAX_DIMENSION}")


def load_encoder(model: str, threads: int) -> Encoder:
    """Load the named model; blocking (seconds for MiniLM), so run it off the event loop."""
    check_model_name(model)
    if model == MINILM:
        from embedder.encoders.sentence_transformer import load_minilm

        return load_minilm(threads)
    return HashEncoder(int(model.removeprefix("hash-")))
