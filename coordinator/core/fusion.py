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

import heapq
from collections.abc import Sequence

import numpy as np

from coordinator.core.model import Explanation, FusedHit, Fusion, HybridOptions
from coordinator.core.ports import HitMessage


def explained(hits: Sequence[HitMessage], keyword: bool) -> list[FusedHit]:
    """One list's hits as they are (their stored fields and best chunks kept), each
    with its rank and score in the explanation."""
    return [
        FusedHit(
            hit.id,
            hit.score,
            Explanation(keyword_rank=rank, keyword_score=hit.score)
            if keyword
            else Explanation(vector_rank=rank, vector_score=hit.score),
            hit.document,
            None if keyword else hit,
        )
        for rank, hit in enumerate(hits, 1)
    ]


def _normalized(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high <= low:
        return [1.0] * len(scores)
    return [(score - low) / (high - low) for score in scores]


def _by_fused_score(item: tuple[str, float]) -> tuple[float, str]:
    return -item[1], item[0]


def fuse(
    vector: Sequence[HitMessage],
    keyword: Sequence[HitMessage],
    k: int,
    options: HybridOptions,
    score_threshold: float | None = None,
    explain: bool = True,
) -> list[FusedHit]:
    """The fused top k of two best-first lists, each hit explained (when `explain`).

    Each hit's id and score are read once (they are protobuf fields, which cost a
    Python object per read), and only the top k are sorted and explained.
    """
    alpha = options.alpha
    vector_ids = [hit.id for hit in vector]
    keyword_ids = [hit.id for hit in keyword]
    vector_scores = [hit.score for hit in vector]
    keyword_scores = [hit.score for hit in keyword]
    if options.fusion is Fusion.RRF:
        rrf_k = options.rrf_k
        vector_parts = [alpha / (rrf_k + rank) for rank in range(1, len(vector_ids) + 1)]
        keyword_parts = [(1 - alpha) / (rrf_k + rank) for rank in range(1, len(keyword_ids) + 1)]
    else:
        vector_parts = [alpha * value for value in _normalized(vector_scores)]
        keyword_parts = [(1 - alpha) * value for value in _normalized(keyword_scores)]
    fused: dict[str, float] = {}
    if alpha > 0:
        fused.update(zip(vector_ids, vector_parts, strict=True))
    if alpha < 1:
        get = fused.get
        for doc_id, part in zip(keyword_ids, keyword_parts, strict=True):
            fused[doc_id] = get(doc_id, 0.0) + part
    ranked = heapq.nsmallest(k, fused.items(), key=_by_fused_score)
    if score_threshold is not None:
        # Judged in float32, as the caller receives scores and sends thresholds, so a
        # hit's own score used as the threshold keeps that hit. Scores fall along the
        # ranking, so what is kept is a prefix of the top k.
        threshold = np.float32(score_threshold)
        ranked = [(doc_id, score) for doc_id, score in ranked if np.float32(score) >= threshold]
    if not explain:
        return [FusedHit(doc_id, score) for doc_id, score in ranked]
    vector_rank = {doc_id: rank for rank, doc_id in enumerate(vector_ids)}
    keyword_rank = {doc_id: rank for rank, doc_id in enumerate(keyword_ids)}
    result = []
    for doc_id, score in ranked:
        v = vector_rank.get(doc_id)
        w = keyword_rank.get(doc_id)
        result.append(
            FusedHit(
                doc_id,
                score,
                Explanation(
                    None if v is None else v + 1,
                    None if v is None else float(vector_scores[v]),
                    None if w is None else w + 1,
                    None if w is None else float(keyword_scores[w]),
                ),
            )
        )
    return result
