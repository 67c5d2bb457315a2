"""A vector search's hits as columns, for the packed reply: no list or object per query.

`search.search` ranks each query's hits into a `QueryHits` of Python lists, which
the packed reply then joins again into columns; for a batch of 100 queries of
10 hits that is most of the shard's own Python work per query (hnswlib aside).
When the search asks for no stored fields and the collection does not chunk its
documents, the same ranking is done on the whole n x width matrix at once:
scores and distances with numpy (the same float64 arithmetic as `_rank_hits`,
then float32, as the packed reply carries them), the ids in one flat list. Only
rows whose distances are not strictly increasing (ties, the exact scan's
unsorted rows) are sorted in Python, by (distance, id) as before, so the answer
is the same to the bit.
"""

from dataclasses import dataclass
from itertools import chain

import numpy as np
import numpy.typing as npt

from shard.core.collection.search import Neighbours, checked_queries, find_neighbours
from shard.core.collection.state import CollectionState
from shard.core.filters import ValidFilter
from shoal.distance_metric import Metric
from shoal.errors import Internal

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class HitColumns:
    """Every query's hits, best first (ties by id), one query after the other:
    `counts[i]` hits for query i; scores and distances little-endian float32."""

    counts: list[int]
    ids: list[str]
    scores: Floats
    distances: Floats


def search_columns(
    state: CollectionState,
    queries: npt.NDArray[np.float32],
    k: int,
    ef: int,
    valid: ValidFilter | None = None,
    score_threshold: float | None = None,
    *,
    wait: bool = True,
) -> HitColumns:
    """`search.search` with no stored fields, as columns (see `Collection.search_columns`)."""
    matrix = checked_queries(state, queries, k, ef, score_threshold)
    with state.life.use():
        neighbours = find_neighbours(state, matrix, k, ef, valid, wait)
    if neighbours.chunks is not None:
        raise Internal("hits of chunked documents need their chunks; search them with `search`")
    return rank_columns(state.config.metric, neighbours, score_threshold)


def rank_columns(
    metric: Metric, neighbours: Neighbours, score_threshold: float | None
) -> HitColumns:
    """Each query's hits best first, ties by id, scoring at least `score_threshold`:
    what `search._rank_hits` answers, as columns."""
    raw = neighbours.distances.astype(np.float64)
    if metric is Metric.L2:
        distances = np.sqrt(np.maximum(raw, 0.0))  # hnswlib gives the squared distance
        scores = -distances
    else:
        distances = raw  # 1 - cosine similarity, or 1 - dot product
        scores = 1.0 - raw
    rows = neighbours.ids
    unsorted = np.flatnonzero((np.diff(distances, axis=1) <= 0).any(axis=1)).tolist()
    if unsorted:
        rows = list(rows)
        for row in unsorted:
            ids, row_distances = rows[row], distances[row].tolist()
            order = sorted(range(len(ids)), key=lambda i: (row_distances[i], ids[i]))
            rows[row] = [ids[i] for i in order]
            distances[row] = distances[row][order]
            scores[row] = scores[row][order]
    width = distances.shape[1]
    if score_threshold is None:
        counts = [width] * len(distances)
        flat = list(chain.from_iterable(rows))
        return HitColumns(
            counts, flat, scores.ravel().astype("<f4"), distances.ravel().astype("<f4")
        )
    # Scores fall along a sorted row: the hits kept are a prefix of each row.
    kept = (scores >= score_threshold).sum(axis=1)
    mask = np.arange(width) < kept[:, None]
    counts = kept.tolist()
    flat = list(chain.from_iterable(ids[:count] for ids, count in zip(rows, counts, strict=True)))
    return HitColumns(counts, flat, scores[mask].astype("<f4"), distances[mask].astype("<f4"))
