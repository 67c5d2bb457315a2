"""Packed hits (`coordinator.core.packed`) into the public reply's `Hit` messages.

This is the one place a vector search makes a message per hit: the reply's.
The columns are turned into Python lists once per batch (`tolist`), not read
element by element from numpy.
"""

from collections.abc import Sequence
from typing import cast

from coordinator.core.packed import PackedBatch, PackedHits
from shoal.v1 import common_pb2, shoal_pb2


def add_packed_hits(
    target: shoal_pb2.SearchResult | shoal_pb2.SearchResponse, hits: PackedHits
) -> None:
    """One query's hits into a reply message."""
    _add(target, hits.ids, hits.scores.tolist(), hits.distances.tolist(), hits.documents)


def add_packed_results(response: shoal_pb2.SearchBatchResponse, batch: PackedBatch) -> None:
    """Every query's hits into a batch reply, `results[i]` answering query i."""
    ids, documents = batch.ids, batch.documents
    scores, distances = batch.scores.tolist(), batch.distances.tolist()
    add_result = response.results.add
    start = 0
    for count in batch.counts.tolist():
        stop = start + count
        part = None if documents is None else documents[start:stop]
        _add(add_result(), ids[start:stop], scores[start:stop], distances[start:stop], part)
        start = stop


def _add(
    target: shoal_pb2.SearchResult | shoal_pb2.SearchResponse,
    ids: Sequence[str],
    scores: Sequence[float],
    distances: Sequence[float],
    documents: Sequence[object] | None,
) -> None:
    add = target.hits.add
    if documents is None:
        for doc_id, score, distance in zip(ids, scores, distances, strict=True):
            add(id=doc_id, score=score, distance=distance).document.id = doc_id
        return
    for doc_id, score, distance, document in zip(ids, scores, distances, documents, strict=True):
        add(
            id=doc_id,
            score=score,
            distance=distance,
            document=cast(common_pb2.Document, document),
        )
