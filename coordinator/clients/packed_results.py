"""A shard's Search reply, and both lists of its HybridSearch reply, as `PackedBatch`es.

The coordinator asks for the packed form (`ShardSearchRequest.packed`) and every
shard answers in it, chunking collections included: their hits' best chunks
(index and span) come as int32 columns beside the scores, the chunks' texts as
one repeated string when text was asked for. The columns are read with
`np.frombuffer`, without a Python object per hit.
"""

from collections.abc import Sequence

import numpy as np

from coordinator.core.packed import ChunkColumns, PackedBatch
from coordinator.core.ports import HybridAnswer, RankedHits
from shoal.errors import Internal
from shoal.keyword import TermStatistics
from shoal.v1 import shard_pb2


def packed_from_reply(reply: shard_pb2.ShardSearchResponse, queries: int) -> PackedBatch:
    """The reply to `queries` queries, as columns."""
    if len(reply.hit_counts) != queries:
        raise Internal(
            f"the shard answered {len(reply.hit_counts)} of {queries} queries in the packed"
            f" form{f' ({len(reply.results)} per hit)' if len(reply.results) else ''}"
        )
    ids = list(reply.ids)
    scores = np.frombuffer(reply.scores_f32, dtype="<f4")
    distances = np.frombuffer(reply.distances_f32, dtype="<f4")
    documents = list(reply.documents) if len(reply.documents) else None
    counts = np.fromiter(reply.hit_counts, dtype=np.int64, count=queries)
    try:
        return PackedBatch.from_counts(
            counts, ids, scores, distances, documents, _chunk_columns(reply)
        )
    except ValueError as error:
        raise Internal(f"the shard's packed search reply is malformed: {error}") from None


def hybrid_answer(
    reply: shard_pb2.ShardHybridSearchResponse, vector_queries: int, keyword_queries: int
) -> HybridAnswer:
    """A hybrid (or keyword) reply: each list as a `PackedBatch` where the shard packed
    it, else its `Hit` messages (a shard that predates the packed form)."""
    vector: Sequence[RankedHits] = (
        packed_from_reply(reply.vector_packed, vector_queries)
        if reply.HasField("vector_packed")
        else list(reply.vector_results)
    )
    keyword: Sequence[RankedHits] = (
        packed_from_reply(reply.keyword_packed, keyword_queries)
        if reply.HasField("keyword_packed")
        else list(reply.keyword_results)
    )
    stats = reply.statistics
    return HybridAnswer(
        vector,
        keyword,
        TermStatistics(stats.documents, stats.total_length, list(stats.frequencies)),
    )


def _chunk_columns(reply: shard_pb2.ShardSearchResponse) -> ChunkColumns | None:
    """A chunking collection's chunk columns; None when the reply has none."""
    if not (reply.chunks_i32 or reply.chunk_starts_i32 or reply.chunk_ends_i32):
        return None
    if any(len(c) % 4 for c in (reply.chunks_i32, reply.chunk_starts_i32, reply.chunk_ends_i32)):
        raise Internal("the shard's chunk columns are not whole int32 values")
    return ChunkColumns(
        np.frombuffer(reply.chunks_i32, dtype="<i4"),
        np.frombuffer(reply.chunk_starts_i32, dtype="<i4"),
        np.frombuffer(reply.chunk_ends_i32, dtype="<i4"),
        list(reply.chunk_texts) if len(reply.chunk_texts) else None,
    )
