"""Ranked reads of one collection: nearest neighbours (plain, filtered, exact) and BM25.

An unfiltered search walks the HNSW graph inside the read gate at the ef it
asks for; when the walk finds too few live elements it answers exactly from
the index's own vectors. A filtered search evaluates the filter on the payload
index under the gate and lets `search_plan` choose between a filtered HNSW
walk and an exact scan of the matching documents read from the store. Records
the store holds that are newer than the payload index (`PayloadIndex.seq`:
committed, not applied yet) are checked against the filter from their own
payload. Keyword searches score with `keyword_search` under the gate, where the
keyword index, the payload index and the label -> id map agree.
"""

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from shard.core.collection.state import CollectionState
from shard.core.documents import Include, QueryHits
from shard.core.filters import Filter, ValidFilter
from shard.core.gate import WouldBlock
from shard.core.keyword_index import KeywordIndex, KeywordQuery
from shard.core.keyword_search import keyword_stats, locally_weighted, ranked_keyword_hits
from shard.core.payload_columns import Mask
from shard.core.search_plan import SearchPlan, plan
from shard.storage import records
from shard.storage.hnsw_index import Labels, SearchIncomplete, exact_distances, nearest_k
from shoal.distance_metric import Metric
from shoal.errors import DataLoss, InvalidArgument
from shoal.keyword import TermStatistics
from shoal.limits import MAX_BATCH_QUERIES, MAX_EF, check_batch_size, check_ef, check_k

log = logging.getLogger(__name__)

#: Candidates read from the store per step of an exact search.
EXACT_READ_CHUNK = 4096
#: A keyword search that must not block (`wait=False`, on the event loop) reads at
#: most this many postings entries; more is slow work, for the thread pool
#: (numpy scores about 10^7 entries a second, so this is ~1 ms at most).
INLINE_MAX_POSTINGS = 10_000


@dataclass(frozen=True)
class Neighbours:
    """Each query's nearest documents, in no particular order: ids, hnswlib distances."""

    ids: list[list[str]]
    distances: npt.NDArray[np.float32]  # n x width, in hnswlib's convention
    chunks: list[list[int]] | None = None  # per hit, its best chunk (chunked collections)

    @staticmethod
    def none(queries: int) -> "Neighbours":
        return Neighbours([[] for _ in range(queries)], np.empty((queries, 0), np.float32))


@dataclass(frozen=True)
class _PlannedFilter:
    """A filter evaluated under the gate and the search planned on it: the mask is
    valid while the payload index's generation holds."""

    plan: SearchPlan
    mask: Mask
    generation: int
    seq: int  # the store sequence the payload index reflected


def _check_score_threshold(score_threshold: float | None) -> None:
    if score_threshold is not None and not math.isfinite(score_threshold):
        raise InvalidArgument(f"score_threshold is {score_threshold}; it must be finite")


def search(
    state: CollectionState,
    queries: npt.NDArray[np.float32],
    k: int,
    ef: int,
    include: Include,
    valid: ValidFilter | None = None,
    score_threshold: float | None = None,
    *,
    wait: bool = True,
) -> list[QueryHits]:
    """See `Collection.search`."""
    matrix = checked_queries(state, queries, k, ef, score_threshold)
    with state.life.use():
        neighbours = find_neighbours(state, matrix, k, ef, valid, wait)
        hits = _rank_hits(state, neighbours, score_threshold)
        if include.any:
            hits = _with_documents(state, hits, include)
    return hits


def checked_queries(
    state: CollectionState,
    queries: npt.NDArray[np.float32],
    k: int,
    ef: int,
    score_threshold: float | None,
) -> npt.NDArray[np.float32]:
    """The queries as an n x dimension matrix, once k, ef, the threshold and the
    queries themselves are checked."""
    dimension = state.config.dimension
    check_k(k)
    check_ef(ef)
    _check_score_threshold(score_threshold)
    if queries.size == 0 or queries.size % dimension:
        raise InvalidArgument(
            f"queries hold {queries.size} floats, not a whole number of"
            f" {dimension}-dimensional vectors"
        )
    matrix = queries.reshape(-1, dimension)
    check_batch_size(len(matrix), MAX_BATCH_QUERIES, "queries")
    if not np.isfinite(matrix).all():
        raise InvalidArgument("a query vector contains NaN or infinity")
    return matrix


def find_neighbours(
    state: CollectionState,
    matrix: npt.NDArray[np.float32],
    k: int,
    ef: int,
    valid: ValidFilter | None,
    wait: bool,
) -> Neighbours:
    """Each query's k nearest (matching `valid`), in no particular order; inside
    `state.life.use()`."""
    walk_ef = _walk_ef(state, ef or state.config.hnsw_ef, k)
    if valid is None:
        # hnswlib searches with max(ef, k) itself, so requests that differ only in k
        # share the gate.
        with state.gate.read(walk_ef, wait):
            return _nearest(state, matrix, k, wait)
    return _nearest_filtered(state, matrix, k, walk_ef, valid.root)


def _chunk_depth(k: int) -> int:
    """Chunks a walk first returns to find k distinct documents."""
    return max(2 * k, k + 16)


def _walk_ef(state: CollectionState, ef: int, k: int) -> int:
    """The ef a search for k results walks the graph with: `ef` itself, or in a
    chunking collection `ef` grown by the factor its walk returns more results
    (`_chunk_depth(k)` chunks for k documents), so the walk keeps the candidates per
    result the caller chose. Unscaled, a chunking collection found documents less
    accurately than the same ef finds them in a plain collection: on the debian-20k
    long documents at ef 64 and k 10, 0.978 of the exact top-10 documents (by best
    chunk), against 0.985 of the exact top 10 in a plain collection of the packages;
    scaled (ef 167), 0.993."""
    if not state.chunks:
        return ef
    return min(MAX_EF, -(-ef * _chunk_depth(k) // k))


def _nearest(
    state: CollectionState, queries: npt.NDArray[np.float32], k: int, wait: bool
) -> Neighbours:
    """The k nearest per query; runs inside the read gate."""
    live = len(state.labels)
    if live == 0:
        return Neighbours.none(len(queries))
    k = min(k, live)
    if state.chunks:
        return _nearest_documents(state, queries, k, None, wait)
    try:
        labels, distances = state.index.search(queries, k)
    except SearchIncomplete as error:
        # Too few reachable live elements (e.g. after many deletions): answer exactly.
        if not wait:
            raise WouldBlock from error
        log.info("collection %r: exact search fallback (%s)", state.config.name, error)
        live_labels = np.fromiter(state.ids, dtype=np.uint64, count=len(state.ids))
        labels, distances = state.index.exact_search(queries, live_labels, k)
    return _neighbours_by_id(state, labels, distances)


def _nearest_documents(
    state: CollectionState,
    queries: npt.NDArray[np.float32],
    k: int,
    allowed: tuple[bytes, int] | None,
    wait: bool,
) -> Neighbours:
    """The k nearest distinct documents per query, when documents hold several chunks
    (labels): the walk goes deeper, doubling, until every query has k documents or
    every allowed label was returned. `allowed`: the filter's label mask and how many
    labels it allows. Runs inside the read gate."""
    total = len(state.ids) if allowed is None else allowed[1]
    depth = min(total, _chunk_depth(k))
    exact: Labels | None = None
    while True:
        try:
            if exact is not None:
                labels, distances = state.index.exact_search(queries, exact, depth)
            else:
                labels, distances = state.index.search(
                    queries, depth, None if allowed is None else allowed[0]
                )
        except SearchIncomplete as error:
            if exact is not None or (allowed is None and not wait):
                raise WouldBlock from error
            log.info("collection %r: exact search of chunks (%s)", state.config.name, error)
            exact = _allowed_labels(state, allowed)
            continue
        found = _distinct_documents(state, labels, distances, k, whole=depth >= total)
        if found is not None:
            return found
        depth = min(total, depth * 2)


def _allowed_labels(state: CollectionState, allowed: tuple[bytes, int] | None) -> Labels:
    if allowed is None:
        return np.fromiter(state.ids, dtype=np.uint64, count=len(state.ids))
    return np.flatnonzero(np.frombuffer(allowed[0], dtype=np.uint8)).astype(np.uint64)


def _distinct_documents(
    state: CollectionState,
    labels: Labels,
    distances: npt.NDArray[np.float32],
    k: int,
    whole: bool,
) -> Neighbours | None:
    """Per row (nearest first), the first k distinct documents with the chunk that
    reached each; None if a row has fewer and a deeper search may find more (`whole`
    False). With `whole`, rows are cut to the shortest."""
    ids, firsts = state.ids, state.labels
    rows: list[list[tuple[str, float, int]]] = []
    try:
        for row_labels, row_distances in zip(labels.tolist(), distances.tolist(), strict=True):
            seen: dict[str, tuple[str, float, int]] = {}
            for label, distance in zip(row_labels, row_distances, strict=True):
                doc_id = ids[label]
                if doc_id not in seen:
                    seen[doc_id] = (doc_id, distance, label - firsts[doc_id])
                    if len(seen) == k:
                        break
            if len(seen) < k and not whole:
                return None
            rows.append(list(seen.values()))
    except KeyError as error:
        raise DataLoss(f"the index returned label {error} that maps to no document") from None
    width = min(len(row) for row in rows) if rows else 0
    return Neighbours(
        [[doc_id for doc_id, _, _ in row[:width]] for row in rows],
        np.array([[d for _, d, _ in row[:width]] for row in rows], dtype=np.float32).reshape(
            len(rows), width
        ),
        [[chunk for _, _, chunk in row[:width]] for row in rows],
    )


def _chunk_mask(state: CollectionState, mask: Mask) -> tuple[bytes, int]:
    """A filter's mask over documents (their first labels) spread to every chunk's
    label, as hnswlib's allowed bytes covering every label; and how many it allows."""
    size = max(len(mask), state.next_label)
    allowed = np.zeros(size, dtype=np.bool_)
    allowed[: len(mask)] = mask
    firsts, counts = [], []
    for doc_id, chunks in state.chunks.items():
        first = state.labels[doc_id]
        if first < len(mask) and mask[first]:
            firsts.append(first)
            counts.append(chunks)
    if firsts:
        starts = np.repeat(np.array(firsts, dtype=np.int64), counts)
        offsets = np.arange(len(starts)) - np.repeat(np.cumsum(counts) - counts, counts)
        allowed[starts + offsets] = True
    return allowed.view(np.uint8).tobytes(), int(np.count_nonzero(allowed))


def _neighbours_by_id(
    state: CollectionState, labels: Labels, distances: npt.NDArray[np.float32]
) -> Neighbours:
    """hnswlib's answer with the documents' ids in place of labels; runs inside the read gate."""
    ids = state.ids
    try:
        named = [[ids[label] for label in row] for row in labels.tolist()]
    except KeyError as error:
        raise DataLoss(f"the index returned label {error} that maps to no document") from None
    return Neighbours(named, distances)


def _plan_filtered(state: CollectionState, root: Filter, k: int, ef: int) -> _PlannedFilter:
    """Evaluate `root` on the payload index and plan the search; runs inside the read gate."""
    payload = state.payload
    mask, matching = payload.mask(root)
    chosen = plan(matching, payload.live_count, k, ef, state.strategy)
    return _PlannedFilter(chosen, mask, payload.generation, payload.seq)


def _nearest_filtered(
    state: CollectionState, queries: npt.NDArray[np.float32], k: int, ef: int, root: Filter
) -> Neighbours:
    """The k nearest per query among the documents matching `root`."""
    with state.gate.read(None):
        planned = _plan_filtered(state, root, k, ef)
        candidates = state.ids_in_mask(planned.mask) if planned.plan.exact else None
    if candidates is None and planned.plan.matching:
        with state.gate.read(planned.plan.ef):
            if state.payload.generation != planned.generation:  # a write came in between
                planned = _plan_filtered(state, root, k, ef)
            if planned.plan.exact:
                candidates = state.ids_in_mask(planned.mask)
            elif planned.plan.matching and state.chunks:
                try:
                    return _nearest_documents(
                        state,
                        queries,
                        min(k, planned.plan.matching),
                        _chunk_mask(state, planned.mask),
                        True,
                    )
                except WouldBlock:
                    candidates = state.ids_in_mask(planned.mask)
            elif planned.plan.matching:
                allowed = planned.mask.view(np.uint8).tobytes()
                try:
                    labels, distances = state.index.search(
                        queries, min(k, planned.plan.matching), allowed
                    )
                    return _neighbours_by_id(state, labels, distances)
                except SearchIncomplete as error:
                    log.info(
                        "collection %r: filtered walk came up short (%s); exact instead",
                        state.config.name,
                        error,
                    )
                    candidates = state.ids_in_mask(planned.mask)
    if not candidates:
        return Neighbours.none(len(queries))
    return _exact_nearest(state, queries, k, candidates, root, planned.seq)


def _exact_nearest(
    state: CollectionState,
    queries: npt.NDArray[np.float32],
    k: int,
    candidates: list[str],
    root: Filter,
    seq: int,
) -> Neighbours:
    """Exact k nearest among `candidates`, unsorted, with vectors read from the store."""
    space = state.config.metric.value
    dimension = state.config.dimension
    best_ids: list[str] = []
    best = np.empty((len(queries), 0), dtype=np.float32)
    best_rows = np.empty((len(queries), 0), dtype=np.int64)
    best_chunks = np.empty((len(queries), 0), dtype=np.int64)  # per query and candidate
    for start in range(0, len(candidates), EXACT_READ_CHUNK):
        chunk = candidates[start : start + EXACT_READ_CHUNK]
        found: list[tuple[str, bytes]] = []
        # Only headers and vectors are decoded: payloads can be large.
        for doc_id, data in zip(chunk, state.store.get_encoded(chunk), strict=True):
            if data is None:
                continue
            header = records.decode_header(data, doc_id)
            if header.deleted:
                continue
            if not header.vector_bytes or header.vector_bytes % (4 * dimension):
                raise DataLoss(f"record of document {doc_id!r} has a wrong-sized vector")
            # A record newer than the payload index is judged by itself.
            if header.seq > seq and not state.payload_matches(
                root, records.payload_of(data, doc_id)
            ):
                continue
            found.append((doc_id, records.vector_of(data, header)))
        if not found:
            continue
        vectors = np.frombuffer(b"".join(vector for _, vector in found), dtype="<f4")
        distances = exact_distances(space, queries, vectors.reshape(-1, dimension))
        counts = [len(vector) // (4 * dimension) for _, vector in found]
        chunk_of = np.zeros((len(queries), len(found)), dtype=np.int64)
        if len(counts) != distances.shape[1]:  # chunked documents: each by its best chunk
            starts = np.cumsum([0, *counts[:-1]])
            for column, (start, count) in enumerate(zip(starts.tolist(), counts, strict=True)):
                if count > 1:
                    chunk_of[:, column] = distances[:, start : start + count].argmin(axis=1)
            distances = np.minimum.reduceat(distances, starts, axis=1)
        best_chunks = np.concatenate([best_chunks, chunk_of], axis=1)
        rows = np.broadcast_to(np.arange(len(found)) + len(best_ids), distances.shape)
        best_ids.extend(doc_id for doc_id, _ in found)
        best_rows, best = nearest_k(
            np.concatenate([best_rows, rows], axis=1),
            np.concatenate([best, distances], axis=1),
            k,
        )
    return Neighbours(
        [[best_ids[row] for row in rows] for rows in best_rows.tolist()],
        best,
        None
        if not state.chunks
        else [
            [int(best_chunks[query, row]) for row in rows]
            for query, rows in enumerate(best_rows.tolist())
        ],
    )


def _rank_hits(
    state: CollectionState, neighbours: Neighbours, score_threshold: float | None
) -> list[QueryHits]:
    """Each query's hits, best first (ties by id), scoring at least `score_threshold`."""
    raw = neighbours.distances.astype(np.float64)
    if state.config.metric is Metric.L2:
        distances = np.sqrt(np.maximum(raw, 0.0))  # hnswlib gives the squared distance
        scores = -distances
    else:
        distances = raw  # 1 - cosine similarity, or 1 - dot product
        scores = 1.0 - raw
    # hnswlib's rows come sorted; only ties (and the exact search's rows) need a sort.
    unsorted = cast(list[bool], (np.diff(distances, axis=1) <= 0).any(axis=1).tolist())
    kept: list[int] = [distances.shape[1]] * len(distances)
    if score_threshold is not None:  # scores fall along a sorted row: keep a prefix
        kept = (scores >= score_threshold).sum(axis=1).tolist()
    ranked = []
    chunk_rows: list[list[int] | None] = (
        [None] * len(neighbours.ids) if neighbours.chunks is None else list(neighbours.chunks)
    )
    for ids, row_scores, row_distances, sort, keep, chunks in zip(
        neighbours.ids, scores.tolist(), distances.tolist(), unsorted, kept, chunk_rows, strict=True
    ):
        if sort:
            order = sorted(range(len(ids)), key=lambda i: (row_distances[i], ids[i]))
            ids = [ids[i] for i in order]
            row_scores = [row_scores[i] for i in order]
            row_distances = [row_distances[i] for i in order]
            chunks = None if chunks is None else [chunks[i] for i in order]
        ranked.append(
            QueryHits(
                ids[:keep],
                row_scores[:keep],
                row_distances[:keep],
                chunks=None if chunks is None else chunks[:keep],
            )
        )
    return ranked


def _with_documents(
    state: CollectionState, hits: list[QueryHits], include: Include
) -> list[QueryHits]:
    """Hits with their stored fields; a hit deleted since the index answered is dropped."""
    unique = list(dict.fromkeys(doc_id for row in hits for doc_id in row.ids))
    stored = dict(zip(unique, state.store.get(unique), strict=True))
    result = []
    for row in hits:
        kept = [
            (position, record)
            for position, record in enumerate(stored[doc_id] for doc_id in row.ids)
            if record is not None and not record.deleted
        ]
        result.append(
            QueryHits(
                [row.ids[i] for i, _ in kept],
                [row.scores[i] for i, _ in kept],
                [row.distances[i] for i, _ in kept],
                [state.stored_document(row.ids[i], record, include) for i, record in kept],
                None if row.chunks is None else [row.chunks[i] for i, _ in kept],
            )
        )
    return result


# -- keyword (BM25) search, see keyword_search --------------------------------------


def keyword_statistics(
    state: CollectionState, terms: Sequence[str], skip: Sequence[int] = ()
) -> TermStatistics:
    """See `Collection.keyword_statistics`."""
    with state.life.use(), state.gate.read(None):
        return _statistics(state, _keyword_index(state), terms, skip)


def keyword_vocabulary(
    state: CollectionState, limit: int, skip: Sequence[int] = ()
) -> tuple[list[str], TermStatistics] | None:
    """See `Collection.keyword_vocabulary`."""
    with state.life.use(), state.gate.read(None):
        index = _keyword_index(state)
        terms = index.vocabulary(limit)
        if terms is None:
            return None
        # At most MAX_VOCABULARY_LISTED terms: within the batch a statistics call takes.
        return terms, _statistics(state, index, terms, skip)


def _statistics(
    state: CollectionState, index: KeywordIndex, terms: Sequence[str], skip: Sequence[int]
) -> TermStatistics:
    """The statistics of `terms`, documents of the partitions `skip` left out; inside
    the read gate."""
    without = state.skipped_labels(skip, state.payload.label_space) if terms else None
    return keyword_stats(index, terms, without)


def keyword_search(
    state: CollectionState,
    queries: Sequence[KeywordQuery],
    average_length: float,
    k: int,
    include: Include,
    valid: ValidFilter | None = None,
    score_threshold: float | None = None,
    statistics_terms: Sequence[str] = (),
    *,
    wait: bool = True,
    skip: Sequence[int] = (),
    local_statistics: bool = False,
) -> tuple[list[QueryHits], TermStatistics]:
    """See `Collection.keyword_search`. The statistics of `statistics_terms` are read
    under the same gate as the scoring, so they are the ones the scores saw; with
    `local_statistics` the queries carry occurrences and are weighted with them too."""
    check_k(k)
    check_batch_size(len(queries), MAX_BATCH_QUERIES, "queries")
    _check_score_threshold(score_threshold)
    if local_statistics and skip:
        # This replica's statistics are a whole group's: with partitions left out
        # they are no one's, so a caller weighting with them could never check them.
        raise InvalidArgument("local_statistics cannot be combined with skip_partitions")
    root = None if valid is None else valid.root
    index = _keyword_index(state)
    with state.life.use():
        with state.gate.read(None, wait):
            if not wait and sum(index.postings(q.terms) for q in queries) > INLINE_MAX_POSTINGS:
                raise WouldBlock
            if not wait and skip and not state.partition_labels.built:
                raise WouldBlock  # building the map hashes every id: not on the event loop
            statistics = _statistics(state, index, statistics_terms, skip)
            if local_statistics:
                queries, average_length = locally_weighted(index, queries)
            allowed = None if root is None else state.payload.mask(root)[0]
            hits = ranked_keyword_hits(
                index, state.ids, queries, average_length, k, allowed, score_threshold
            )
        if include.any:
            hits = _with_documents(state, hits, include)
    return hits, statistics


def _keyword_index(state: CollectionState) -> KeywordIndex:
    if state.keyword is None:
        raise InvalidArgument(
            f"collection {state.config.name!r} has no keyword index (it was created with"
            " keyword.enabled false); search it with a vector"
        )
    return state.keyword
