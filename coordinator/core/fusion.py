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

The lists are columns (`PackedHits`, as the shards answer; see
`coordinator.clients.packed_results`): the fused scores are computed with numpy
in float64, and Python objects are made only for the top k. Only the
candidates scoring at least the k-th best score are sorted in Python, so ties
(frequent under RRF: equal ranks in the two lists give equal parts) still break
by id. The fused hits also carry what the candidates brought: the stored fields
a candidate came with (its vector hit's, else its keyword hit's) and, in a
chunking collection, the vector hit's best chunk.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from coordinator.core.model import Explanation, FusedHit, Fusion, HybridOptions
from coordinator.core.packed import PackedHit, PackedHits
from coordinator.core.ports import DocumentMessage, HitMessage

Float64s = npt.NDArray[np.float64]


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


def _parts(hits: PackedHits, weight: float, options: HybridOptions) -> Float64s:
    """Each candidate's share of the fused score."""
    count = len(hits.ids)
    if options.fusion is Fusion.RRF:
        # alpha / (rrf_k + rank): an integer sum, then a float division.
        return weight / (options.rrf_k + np.arange(1, count + 1, dtype=np.int64))
    if not count:
        return np.empty(0, dtype=np.float64)
    scores = hits.scores.astype(np.float64)
    low, high = scores.min(), scores.max()
    if high <= low:
        return weight * np.ones(count, dtype=np.float64)
    normalized: Float64s = (scores - low) / (high - low)
    return weight * normalized


def fuse(
    vector: PackedHits,
    keyword: PackedHits,
    k: int,
    options: HybridOptions,
    score_threshold: float | None = None,
    explain: bool = True,
    documents: bool = False,
    chunks: bool = False,
) -> list[FusedHit]:
    """The fused top k of two best-first lists, each hit explained (when `explain`);
    with `documents` each hit carries the stored fields its candidate came with,
    with `chunks` (a chunking collection) its vector hit's best chunk as `chunk_of`."""
    alpha = options.alpha
    vector_ids, keyword_ids = vector.ids, keyword.ids
    vector_at: dict[str, int] | None = None
    if alpha > 0 and alpha < 1:
        vector_at = {doc_id: position for position, doc_id in enumerate(vector_ids)}
        found = [vector_at.get(doc_id, -1) for doc_id in keyword_ids]
        new = [position for position, at in enumerate(found) if at < 0]
        union: list[str] = [*vector_ids, *(keyword_ids[position] for position in new)]
        targets = np.asarray(found, dtype=np.int64)
        targets[new] = np.arange(len(vector_ids), len(union), dtype=np.int64)
        fused = np.zeros(len(union), dtype=np.float64)
        fused[: len(vector_ids)] = _parts(vector, alpha, options)
        np.add.at(fused, targets, _parts(keyword, 1 - alpha, options))
    elif alpha > 0:  # vector only
        union, fused = list(vector_ids), _parts(vector, alpha, options)
    else:  # keyword only
        union, fused = list(keyword_ids), _parts(keyword, 1 - alpha, options)
    ranked = _top(union, fused, k)
    if score_threshold is not None:
        # Judged in float32, as the caller receives scores and sends thresholds, so a
        # hit's own score used as the threshold keeps that hit. Scores fall along the
        # ranking, so what is kept is a prefix of the top k.
        threshold = np.float32(score_threshold)
        scores32 = np.asarray([score for _, score in ranked], dtype=np.float64).astype(np.float32)
        ranked = ranked[: int(np.count_nonzero(scores32 >= threshold))]
    if not (explain or documents or chunks):
        return [FusedHit(doc_id, score) for doc_id, score in ranked]
    if vector_at is None:
        vector_at = {doc_id: position for position, doc_id in enumerate(vector_ids)}
    keyword_at = {doc_id: position for position, doc_id in enumerate(keyword_ids)}
    result = []
    for doc_id, score in ranked:
        v, w = vector_at.get(doc_id), keyword_at.get(doc_id)
        explanation = None
        if explain:
            explanation = Explanation(
                None if v is None else v + 1,
                None if v is None else float(vector.scores[v]),
                None if w is None else w + 1,
                None if w is None else float(keyword.scores[w]),
            )
        document = _document(vector, keyword, v, w) if documents else None
        chunk_of = _chunk_of(vector, v) if chunks and v is not None else None
        result.append(FusedHit(doc_id, score, explanation, document, chunk_of))
    return result


def _top(union: Sequence[str], fused: Float64s, k: int) -> list[tuple[str, float]]:
    """The k best (id, score) by score, ties to the lower id, sorting only the few
    candidates scoring at least the k-th best score."""
    count = len(union)
    if not count or k <= 0:
        return []
    keep = min(k, count)
    kth = np.partition(fused, count - keep)[count - keep]
    candidates = np.flatnonzero(fused >= kth)
    pairs = [
        (union[position], score)
        for position, score in zip(candidates.tolist(), fused[candidates].tolist(), strict=True)
    ]
    pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    del pairs[k:]
    return pairs


def _document(
    vector: PackedHits, keyword: PackedHits, v: int | None, w: int | None
) -> DocumentMessage | None:
    """The stored fields a candidate carried: its vector hit's, else its keyword hit's."""
    if v is not None and vector.documents is not None:
        return vector.documents[v]
    if w is not None and keyword.documents is not None:
        return keyword.documents[w]
    return None


def _chunk_of(vector: PackedHits, v: int) -> PackedHit | None:
    """The vector hit at `v` with its best chunk (what the reply copies the chunk from)."""
    if vector.chunks is None:
        return None
    return PackedHit(
        vector.ids[v],
        float(vector.scores[v]),
        float(vector.distances[v]),
        None,
        *vector.chunks.hit(v),
    )
