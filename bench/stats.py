"""Medians, percentiles and the recall-matched comparison the headline figures use.

The machine is shared, so every figure is a median of repeated runs, and
comparisons are made at equal recall, not at equal ef: a service that searches
several smaller shards reaches a given recall at a lower ef than one index does.
"""

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


@dataclass(frozen=True)
class Latency:
    """Per-call latency percentiles in milliseconds."""

    p50: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Latency":
        if not seconds:
            raise ValueError("latency of no calls")
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(float(p50), float(p90), float(p99), float(ms.mean()))


@dataclass(frozen=True)
class CurvePoint:
    """One (recall, throughput) point of a recall/QPS curve, at one ef."""

    ef: int
    recall: float
    qps: float


def best_at_recall(points: Sequence[CurvePoint], target: float) -> CurvePoint | None:
    """The fastest point whose recall reaches `target`, or None if none does."""
    eligible = [point for point in points if point.recall >= target]
    if not eligible:
        return None
    return max(eligible, key=lambda point: (point.qps, -point.ef))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None where either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def median_or_none(values: Sequence[float | None]) -> float | None:
    """The median of the values that exist; None when none does."""
    present = [value for value in values if value is not None]
    return median(present) if present else None
