"""The top k of several groups' packed answers, per query, with numpy.

The same answer as `merge.merge_top_k` (higher score first, ties to the lower
id), without a Python object per hit: each group's columns are laid out as an
(n queries x its widest answer) matrix padded with -inf, the groups' matrices
side by side, and one stable argsort per batch ranks every query's candidates.
A stable sort keeps equal scores in the order the groups came, not in id order,
so the rows where two of the first k + 1 scores are equal (rare with float
scores) are ranked again by (score, id) in Python.
"""

from collections.abc import Sequence
from itertools import chain

import numpy as np

from coordinator.core.packed import ChunkColumns, Offsets, PackedBatch
from coordinator.core.ports import DocumentMessage


def merge_packed(batches: Sequence[PackedBatch], k: int) -> PackedBatch:
    """Per query, the k best hits of all `batches` (each one group's answer to the
    same n queries), best first."""
    if not batches:
        raise ValueError("merge_packed needs at least one group's answer")
    queries = len(batches[0])
    if any(len(batch) != queries for batch in batches):
        raise ValueError("every group must answer every query")
    if len(batches) == 1:
        return top_k(batches[0], k)
    widths = [int(batch.counts.max(initial=0)) for batch in batches]
    width = sum(widths)
    scores = np.full((queries, width), -np.inf, dtype=np.float32)
    positions = np.full((queries, width), -1, dtype=np.int64)  # into the joined columns
    column = base = 0
    for batch, batch_width in zip(batches, widths, strict=True):
        rows, columns = _cells(batch.offsets)
        scores[rows, columns + column] = batch.scores
        positions[rows, columns + column] = np.arange(base, base + len(rows))
        column += batch_width
        base += len(rows)
    order = np.argsort(-scores, axis=1, kind="stable")
    chosen = np.take_along_axis(positions, order[:, :k], axis=1)
    _rank_ties_by_id(scores, positions, order, chosen, batches, k)
    kept = chosen >= 0
    picked = chosen[kept]  # row by row: query after query
    return _select(batches, picked, kept.sum(axis=1))


def top_k(batch: PackedBatch, k: int) -> PackedBatch:
    """One group's answer cut to k hits per query (the batch itself when none has more)."""
    counts = batch.counts
    if not len(counts) or int(counts.max()) <= k:
        return batch
    _, columns = _cells(batch.offsets)
    picked = np.flatnonzero(columns < k)
    return _select([batch], picked, np.minimum(counts, k))


def _cells(offsets: Offsets) -> tuple[Offsets, Offsets]:
    """For every hit of a batch, its query (row) and its place in that query's list."""
    counts = np.diff(offsets)
    rows = np.repeat(np.arange(len(counts)), counts)
    columns = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], counts)
    return rows, columns


def _rank_ties_by_id(
    scores: np.ndarray,
    positions: Offsets,
    order: Offsets,
    chosen: Offsets,
    batches: Sequence[PackedBatch],
    k: int,
) -> None:
    """Redo, in `chosen`, the rows whose top k + 1 hold equal scores: ties go to the lower id."""
    head = np.take_along_axis(scores, order[:, : k + 1], axis=1)
    tied = ((head[:, 1:] == head[:, :-1]) & np.isfinite(head[:, 1:])).any(axis=1)
    rows = np.flatnonzero(tied)
    if not len(rows):
        return
    ids = list(chain.from_iterable(batch.ids for batch in batches))
    for row in rows.tolist():
        candidates = positions[row][positions[row] >= 0].tolist()
        row_scores = scores[row][positions[row] >= 0].tolist()
        ranked = sorted(
            zip(candidates, row_scores, strict=True), key=lambda hit: (-hit[1], ids[hit[0]])
        )[:k]
        chosen[row] = -1
        chosen[row, : len(ranked)] = [position for position, _ in ranked]


def _select(batches: Sequence[PackedBatch], picked: Offsets, counts: Offsets) -> PackedBatch:
    """The hits at `picked` (positions into the batches' joined columns), as a batch."""
    if len(batches) == 1:
        ids: Sequence[str] = batches[0].ids
        all_scores, all_distances = batches[0].scores, batches[0].distances
    else:
        ids = list(chain.from_iterable(batch.ids for batch in batches))
        all_scores = np.concatenate([batch.scores for batch in batches])
        all_distances = np.concatenate([batch.distances for batch in batches])
    positions = picked.tolist()
    documents: list[DocumentMessage] | None = None
    if any(batch.documents is not None for batch in batches):
        # A group that found nothing answered no documents (its batch reads as one
        # without stored fields): it adds none, the others' still follow their hits.
        every = list(chain.from_iterable(batch.documents or () for batch in batches))
        if len(every) != len(ids):
            raise ValueError(f"{len(every)} documents for {len(ids)} hits")
        documents = [every[position] for position in positions]
    chunks: ChunkColumns | None = None
    if any(batch.chunks is not None for batch in batches):  # a chunking collection
        joined = (
            batches[0].chunks
            if len(batches) == 1 and batches[0].chunks is not None
            else ChunkColumns.join([b.chunks for b in batches], [len(b.ids) for b in batches])
        )
        chunks = joined.take(picked)
    return PackedBatch.from_counts(
        counts,
        [ids[position] for position in positions],
        all_scores[picked],
        all_distances[picked],
        documents,
        chunks,
    )
