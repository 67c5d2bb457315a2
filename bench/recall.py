"""Recall@k against exact search: the one accuracy measure every suite reports."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def recall_at_k(
    found: Sequence[Sequence[int]], truth: npt.NDArray[np.integer], k: int = 10
) -> float:
    """Mean share of each query's exact top-k that the search returned in its top k.

    `found[i]` are the row numbers a search returned for query i, best first;
    `truth[i]` the exact top-k rows. A query answered with fewer than k hits
    counts the missing ones as misses.
    """
    if len(found) != len(truth):
        raise ValueError(f"{len(found)} answers for {len(truth)} queries")
    if not len(found):
        raise ValueError("no queries")
    if truth.shape[1] < k:
        raise ValueError(f"the ground truth holds {truth.shape[1]} neighbours, fewer than k={k}")
    hits = 0
    for answer, exact in zip(found, truth, strict=True):
        hits += len(set(answer[:k]).intersection(exact[:k].tolist()))
    return hits / (k * len(found))
