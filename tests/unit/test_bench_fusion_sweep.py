"""The textbook fusion and MRR the hybrid quality test and `bench.fusion_sweep` use."""

import pytest

from bench.fusion_sweep import mrr, reciprocal_rank_fusion


def test_rrf_sums_reciprocal_ranks_over_the_lists() -> None:
    # b: 1/61 + 1/62; c: 1/62 + 1/61 (= b, the lower id first); a and d: 1/63 each.
    fused = reciprocal_rank_fusion([["b", "c", "d"], ["c", "b", "a"]], depth=3, k=60)
    assert fused == ["b", "c", "a", "d"]


def test_rrf_breaks_ties_by_the_lower_id() -> None:
    assert reciprocal_rank_fusion([["z"], ["y"]], depth=5, k=60) == ["y", "z"]


def test_rrf_reads_only_the_first_depth_of_each_list() -> None:
    # At depth 1 "a" is in one list only and ties with "x"; at depth 2 both lists hold it.
    rankings = [["x", "a"], ["a", "y"]]
    assert reciprocal_rank_fusion(rankings, depth=1, k=60) == ["a", "x"]
    assert reciprocal_rank_fusion(rankings, depth=2, k=60) == ["a", "x", "y"]


def test_rrf_keeps_ten() -> None:
    ranking = [f"d{i:02d}" for i in range(30)]
    assert reciprocal_rank_fusion([ranking], depth=30, k=60) == ranking[:10]


def test_mrr_counts_the_first_relevant_hit_within_ten() -> None:
    found = [["a", "b"], ["x", "y", "z"], [f"n{i}" for i in range(10)] + ["late"]]
    relevant = [{"a"}, {"z", "y"}, {"late"}]
    assert mrr(found, relevant) == pytest.approx((1.0 + 0.5 + 0.0) / 3)
