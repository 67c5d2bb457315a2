"""A shard's Search reply, and both lists of its HybridSearch reply, as `PackedBatch`es.

The coordinator core fuses hybrid candidate lists as columns only; a shard
that predates the packed hybrid form answers a `Hit` per candidate, read here
into the same columns (`packed_from_hits`).

The coordinator asks for the packed form (`ShardSearchRequest.packed`) and every
shard answers in it, chunking collections included: their hits' best chunks
(index and span) come as int32 columns beside the scores, the chunks' texts as
one repeated string when text was asked for. The columns are read with
`np.frombuffer`, without a Python object per hit.
"""

from collections.abc import Sequence

import numpy as np

from coordinator.core.packed import NO_CHUNK, ChunkColumns, PackedBatch
from coordinator.core.ports import HybridAnswer, Include
from shoal.errors import Internal
from shoal.keyword import TermStatistics
from shoal.v1 import common_pb2, shard_pb2


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
    reply: shard_pb2.ShardHybridSearchResponse,
    vector_queries: int,
    keyword_queries: int,
    include: Include,
) -> HybridAnswer:
    """A hybrid (or keyword) reply: each list as a `PackedBatch`, read from the columns
    where the shard packed it, else from its `Hit` messages (a shard that predates
    the packed form)."""
    vector = (
        packed_from_reply(reply.vector_packed, vector_queries)
        if reply.HasField("vector_packed")
        else packed_from_hits(reply.vector_results, vector_queries, include)
    )
    keyword = (
        packed_from_reply(reply.keyword_packed, keyword_queries)
        if reply.HasField("keyword_packed")
        else packed_from_hits(reply.keyword_results, keyword_queries, include)
    )
    stats = reply.statistics
    return HybridAnswer(
        vector,
        keyword,
        TermStatistics(stats.documents, stats.total_length, list(stats.frequencies)),
    )


def packed_from_hits(
    results: Sequence[shard_pb2.ShardSearchResult], queries: int, include: Include
) -> PackedBatch:
    """Per-hit answers to `queries` queries as the columns a packed reply holds: stored
    fields when `include` asks for any, chunk columns when some hit has a chunk."""
    if len(results) != queries:
        raise Internal(f"the shard answered {len(results)} of {queries} queries")
    hits = [hit for result in results for hit in result.hits]
    scores = np.array([hit.score for hit in hits], dtype=np.float32)
    distances = np.array([hit.distance for hit in hits], dtype=np.float32)
    stored = include.vector or include.text or include.metadata
    return PackedBatch.from_counts(
        [len(result.hits) for result in results],
        [hit.id for hit in hits],
        scores,
        distances,
        [hit.document for hit in hits] if stored else None,
        _chunks_of_hits(hits, include.text),
    )


def _chunks_of_hits(hits: Sequence[common_pb2.Hit], with_text: bool) -> ChunkColumns | None:
    """The hits' best chunks as columns (NO_CHUNK for a hit without); None when no
    hit has one."""
    if not any(hit.HasField("chunk") for hit in hits):
        return None
    missing = (NO_CHUNK, NO_CHUNK, NO_CHUNK)
    rows = [
        (hit.chunk, hit.chunk_span.start, hit.chunk_span.end) if hit.HasField("chunk") else missing
        for hit in hits
    ]
    chunks, starts, ends = np.array(rows, dtype=np.int32).T
    return ChunkColumns(
        chunks, starts, ends, [hit.chunk_text for hit in hits] if with_text else None
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
