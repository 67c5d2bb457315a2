"""The benchmark's data: exact ground truth, and generated sets that look like embeddings."""

import numpy as np

from bench.datasets import exact_top_k, generate


def test_exact_top_k_equals_a_full_sort_by_cosine() -> None:
    rng = np.random.default_rng(7)
    documents = rng.standard_normal((500, 24)).astype(np.float32)
    queries = rng.standard_normal((40, 24)).astype(np.float32)
    unit = documents / np.linalg.norm(documents, axis=1, keepdims=True)
    scores = queries @ unit.T  # query norms do not change the order
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    assert np.array_equal(exact_top_k(documents, queries, k=10, chunk=16), expected)


def test_generated_vectors_are_unit_length_clustered_and_repeatable() -> None:
    documents, queries = generate(2000, 50, seed=3, clusters=16)
    assert documents.shape == (2000, 384)
    assert queries.shape == (50, 384)
    assert documents.dtype == np.float32
    assert np.allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-5)
    again, _ = generate(2000, 50, seed=3, clusters=16)
    assert np.array_equal(documents, again)
    # Clustered, not uniform noise: a point's nearest neighbour is far closer than a random one.
    similarity = documents[:200] @ documents[200:].T
    assert similarity.max(axis=1).mean() > similarity.mean() + 0.3
