"""Fusing a vector and a keyword candidate list into one ranking.

Both fusions weigh the lists with alpha as Weaviate does (0: keyword only,
1: vector only):

- RRF (reciprocal rank fusion): alpha / (rrf_k + vector rank) +
  (1 - alpha) / (rrf_k + keyword rank), a list that lacks the document adding
  nothing. Ranks only, so the two score scales never meet.
- Relative score: each list's scores min-max normalized over the list (best 1,
  worst 0; all equal: 1), then alpha * vector + (1 - alpha) * keyword.

A document only in a list whose weight is 0 is left out, so alpha 0 and 1 give
exactly one list's documents. Ties break by id, as everywhere in Shoal.
"""

from collections.abc import Sequence

import numpy as np

from coordinator.core.model import Explanation, FusedHit, Fusion, HybridOptions
from coordinator.core.ports import HitMessage


def explained(hits: Sequence[HitMessage], keyword: bool) -> list[FusedHit]:
    """One list's hits as they are, each with its rank and score in the explanation."""
    return [
        FusedHit(
            hit.id,
            hit.score,
            Explanation(keyword_rank=rank, keyword_score=hit.score)
            if keyword
            else Explanation(vector_rank=rank, vector_score=hit.score),
        )
        for rank, hit in enumerate(hits, 1)
    ]


def _normalized(hits: Sequence[HitMessage]) -> list[float]:
    if not hits:
        return []
    scores = [hit.score for hit in hits]
    low, high = min(scores), max(scores)
    if high <= low:
        return [1.0] * len(scores)
    return [(score - low) / (high - low) for score in scores]


def fuse(
    vector: Sequence[HitMessage],
    keyword: Sequence[HitMessage],
    k: int,
    options: HybridOptions,
    score_threshold: float | None = None,
) -> list[FusedHit]:
    """The fused top k of two best-first lists, each hit explained."""
    alpha = options.alpha
    if options.fusion is Fusion.RRF:
        vector_parts = [alpha / (options.rrf_k + rank) for rank in range(1, len(vector) + 1)]
        keyword_parts = [
            (1 - alpha) / (options.rrf_k + rank) for rank in range(1, len(keyword) + 1)
        ]
    else:
        vector_parts = [alpha * value for value in _normalized(vector)]
        keyword_parts = [(1 - alpha) * value for value in _normalized(keyword)]
    fused: dict[str, float] = {}
    found: dict[str, list[float | int | None]] = {}
    for rank, (hit, part) in enumerate(zip(vector, vector_parts, strict=True), 1):
        if alpha > 0:
            fused[hit.id] = part
        found[hit.id] = [rank, hit.score, None, None]
    for rank, (hit, part) in enumerate(zip(keyword, keyword_parts, strict=True), 1):
        if alpha < 1:
            fused[hit.id] = fused.get(hit.id, 0.0) + part
        entry = found.setdefault(hit.id, [None, None, None, None])
        entry[2], entry[3] = rank, hit.score
    ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
    if score_threshold is not None:
        # Judged in float32, as the caller receives scores and sends thresholds, so a
        # hit's own score used as the threshold keeps that hit.
        threshold = np.float32(score_threshold)
        ranked = [(doc_id, score) for doc_id, score in ranked if np.float32(score) >= threshold]
    result = []
    for doc_id, score in ranked[:k]:
        vector_rank, vector_score, keyword_rank, keyword_score = found[doc_id]
        result.append(
            FusedHit(
                doc_id,
                score,
                Explanation(
                    None if vector_rank is None else int(vector_rank),
                    None if vector_score is None else float(vector_score),
                    None if keyword_rank is None else int(keyword_rank),
                    None if keyword_score is None else float(keyword_score),
                ),
            )
        )
    return result
