"""Fusing vector and keyword candidate lists: RRF, relative scores, alpha, threshold, ties."""

import numpy as np
import pytest

from coordinator.core.fusion import fuse
from coordinator.core.model import Explanation, Fusion, HybridOptions
from coordinator.core.packed import PackedHits


def columns(ids: list[str], scores: list[float]) -> PackedHits:
    values = np.asarray(scores, dtype=np.float32)
    return PackedHits(ids, values, -values)


# Scores a float32 holds exactly, so explanations compare equal.
VECTOR = columns(["a", "b", "c"], [0.875, 0.75, 0.5])
KEYWORD = columns(["c", "d", "a"], [12.0, 6.0, 3.0])
EMPTY = columns([], [])


def test_rrf_adds_weighted_reciprocal_ranks() -> None:
    fused = fuse(VECTOR, KEYWORD, 10, HybridOptions())
    scores = {hit.id: hit.score for hit in fused}
    assert scores["a"] == pytest.approx(0.5 / 61 + 0.5 / 63)
    assert scores["c"] == pytest.approx(0.5 / 63 + 0.5 / 61)
    assert scores["b"] == pytest.approx(0.5 / 62)
    assert [hit.id for hit in fused] == ["a", "c", "b", "d"]  # a and c tie: by id
    assert fused[0].explanation == Explanation(1, 0.875, 3, 3.0)
    assert fused[2].explanation == Explanation(2, 0.75, None, None)


def test_relative_score_normalizes_each_list() -> None:
    options = HybridOptions(Fusion.RELATIVE_SCORE, alpha=0.25)
    scores = {hit.id: hit.score for hit in fuse(VECTOR, KEYWORD, 10, options)}
    assert scores["a"] == pytest.approx(0.25 * 1.0 + 0.75 * 0.0)
    assert scores["b"] == pytest.approx(0.25 * (0.25 / 0.375))
    assert scores["c"] == pytest.approx(0.25 * 0.0 + 0.75 * 1.0)
    assert scores["d"] == pytest.approx(0.75 * (3.0 / 9.0))


@pytest.mark.parametrize("fusion", list(Fusion))
def test_alpha_zero_and_one_keep_one_list(fusion: Fusion) -> None:
    keyword_only = fuse(VECTOR, KEYWORD, 10, HybridOptions(fusion, alpha=0.0))
    assert [hit.id for hit in keyword_only] == ["c", "d", "a"]
    vector_only = fuse(VECTOR, KEYWORD, 10, HybridOptions(fusion, alpha=1.0))
    assert [hit.id for hit in vector_only] == ["a", "b", "c"]


def test_threshold_applies_to_the_fused_score_and_k_cuts() -> None:
    fused = fuse(VECTOR, KEYWORD, 10, HybridOptions())
    kept = fuse(VECTOR, KEYWORD, 10, HybridOptions(), score_threshold=fused[1].score)
    assert [hit.id for hit in kept] == ["a", "c"]  # b and d score less
    assert len(fuse(VECTOR, KEYWORD, 2, HybridOptions())) == 2
    assert fuse(EMPTY, EMPTY, 5, HybridOptions()) == []
