"""The benchmark's arithmetic: recall@k, percentiles, and the recall-matched comparison."""

import numpy as np
import pytest

from bench.recall import recall_at_k
from bench.stats import CurvePoint, Latency, best_at_recall, median, median_or_none, ratio


def test_recall_counts_the_exact_neighbours_found() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at_k([[1, 2, 3, 4], [5, 6, 7, 8]], truth, k=4) == 1.0
    assert recall_at_k([[4, 3, 2, 1], [8, 9, 10, 11]], truth, k=4) == pytest.approx(5 / 8)


def test_recall_counts_missing_hits_as_misses_and_looks_only_at_the_top_k() -> None:
    truth = np.array([[1, 2, 3, 4]])
    assert recall_at_k([[1, 2]], truth, k=4) == 0.5
    # Only the first k of an answer count, against only the first k of the truth.
    assert recall_at_k([[9, 1, 2, 3]], truth, k=2) == 0.5


def test_recall_rejects_mismatched_input() -> None:
    truth = np.array([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="2 queries"):
        recall_at_k([[1, 2]], truth, k=2)
    with pytest.raises(ValueError, match="fewer than k"):
        recall_at_k([[1], [3]], truth, k=3)
    with pytest.raises(ValueError, match="no queries"):
        recall_at_k([], np.zeros((0, 2), dtype=np.int64), k=2)


def test_latency_percentiles_are_in_milliseconds() -> None:
    summary = Latency.of([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert summary.p50 == pytest.approx(50.5)
    assert summary.p90 == pytest.approx(90.1)
    assert summary.p99 == pytest.approx(99.01)
    assert summary.mean == pytest.approx(50.5)
    with pytest.raises(ValueError):
        Latency.of([])


def test_best_at_recall_is_the_fastest_point_that_reaches_the_target() -> None:
    curve = [
        CurvePoint(ef=16, recall=0.93, qps=9000.0),
        CurvePoint(ef=32, recall=0.96, qps=6000.0),
        CurvePoint(ef=64, recall=0.99, qps=4000.0),
    ]
    assert best_at_recall(curve, 0.95) == curve[1]
    assert best_at_recall(curve, 0.90) == curve[0]
    assert best_at_recall(curve, 0.995) is None
    # A noisy curve: the faster of two eligible points wins, whatever its ef.
    noisy = [CurvePoint(ef=32, recall=0.96, qps=5000.0), CurvePoint(ef=64, recall=0.99, qps=5100.0)]
    assert best_at_recall(noisy, 0.95) == noisy[1]


def test_ratios_and_medians_tolerate_missing_values() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(None, 4.0) is None
    assert ratio(3.0, 0.0) is None
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert median_or_none([None, 4.0, 2.0]) == 3.0
    assert median_or_none([None]) is None
    with pytest.raises(ValueError):
        median([])
