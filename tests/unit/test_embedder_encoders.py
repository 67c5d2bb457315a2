"""The hash test encoder and the model-name rules (no torch needed)."""

import numpy as np
import pytest

from embedder.encoders import check_model_name, load_encoder
from embedder.encoders.hashing import HashEncoder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_hash_encoder_is_deterministic_and_unit_length() -> None:
    texts = ["Fast vector search", "", "!!!", "a b c d e f g h"]
    first = HashEncoder(384).encode(texts)
    second = HashEncoder(384).encode(texts)
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)


def test_hash_encoder_rows_do_not_depend_on_the_batch() -> None:
    encoder = HashEncoder(64)
    together = encoder.encode(["one text", "another text"])
    np.testing.assert_array_equal(together[1], encoder.encode(["another text"])[0])


def test_hash_encoder_places_similar_texts_closer() -> None:
    query, near, far = HashEncoder(384).encode(
        [
            "fast vector search library",
            "a fast library for vector search",
            "photo editing tool with layers",
        ]
    )
    assert cosine(query, near) > 0.5
    assert cosine(query, near) > cosine(query, far) + 0.3


def test_hash_encoder_ignores_case_and_truncates_long_texts() -> None:
    encoder = HashEncoder(128, max_seq_tokens=3)
    lower, upper, long = encoder.encode(["one two three", "ONE Two THREE", "one two three four"])
    np.testing.assert_array_equal(lower, upper)
    np.testing.assert_array_equal(lower, long)


@pytest.mark.parametrize("model", ["all-MiniLM-L6-v2", "hash-1", "hash-384", "hash-4096"])
def test_known_model_names_are_accepted(model: str) -> None:
    check_model_name(model)


@pytest.mark.parametrize("model", ["", "minilm", "hash-0", "hash-", "hash-x", "hash-5000"])
def test_unknown_model_names_are_refused(model: str) -> None:
    with pytest.raises(ValueError, match=r"model|dimension"):
        check_model_name(model)


def test_load_encoder_builds_hash_encoders() -> None:
    encoder = load_encoder("hash-12", threads=1)
    assert (encoder.model_id, encoder.dimension, encoder.max_seq_tokens) == ("hash-12", 12, 256)
