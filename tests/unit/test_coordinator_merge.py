"""Merging per-group top-k lists gives the same ranking as one exact search."""

from dataclasses import dataclass

import numpy as np
import pytest

from coordinator.core.merge import merge_batches, merge_top_k


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    document: None = None


@dataclass(frozen=True)
class Answer:
    hits: list[Hit]


def exact_ranking(ids: list[str], scores: np.ndarray, k: int) -> list[str]:
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))
    return [ids[i] for i in order[:k]]


@pytest.mark.parametrize(("groups", "k"), [(1, 10), (3, 10), (5, 1), (4, 100)])
def test_merged_top_k_equals_exact_search(groups: int, k: int) -> None:
    rng = np.random.default_rng(groups * 1000 + k)
    documents = rng.standard_normal((600, 16)).astype(np.float32)
    documents /= np.linalg.norm(documents, axis=1, keepdims=True)
    queries = rng.standard_normal((25, 16)).astype(np.float32)
    ids = [f"d{i:04d}" for i in range(len(documents))]
    owner = rng.integers(0, groups, len(documents))
    all_scores = queries @ documents.T

    per_group = []
    for group in range(groups):
        rows = np.flatnonzero(owner == group)
        group_hits = []
        for scores in all_scores:
            top = sorted(rows, key=lambda r: (-scores[r], ids[r]))[:k]
            group_hits.append(Answer([Hit(ids[r], float(scores[r])) for r in top]))
        per_group.append(group_hits)

    merged = merge_batches(per_group, k)
    for query, answer in enumerate(merged):
        expected = exact_ranking(ids, all_scores[query], k)
        assert [hit.id for hit in answer.hits] == expected


def test_ties_are_broken_by_id_whatever_the_group_order() -> None:
    a = [Hit("b", 0.5), Hit("d", 0.5)]
    b = [Hit("a", 0.5), Hit("c", 0.4)]
    assert [h.id for h in merge_top_k([a, b], 3)] == ["a", "b", "d"]
    assert [h.id for h in merge_top_k([b, a], 3)] == ["a", "b", "d"]


def test_empty_and_short_lists() -> None:
    assert merge_top_k([[], []], 5) == []
    only = [Hit("x", 0.9), Hit("y", 0.1)]
    assert merge_top_k([[], only], 5) == only
    assert merge_top_k([only, [Hit("z", 0.5)]], 2) == [Hit("x", 0.9), Hit("z", 0.5)]


def test_a_single_groups_answers_are_passed_through_whole() -> None:
    answers = [Answer([Hit("a", 0.9)]), Answer([])]
    merged = merge_batches([answers], 1)
    assert merged[0] is answers[0] and merged[1] is answers[1]
    # Longer than k (a shard that ignored k): cut to k.
    assert [h.id for h in merge_batches([[Answer([Hit("a", 0.9), Hit("b", 0.1)])]], 1)[0].hits] == [
        "a"
    ]


def test_merge_passes_the_hit_objects_through() -> None:
    first, second = Hit("x", 0.9), Hit("y", 0.8)
    merged = merge_top_k([[first], [second]], 2)
    assert merged[0] is first and merged[1] is second
