"""A vector search's answer in the packed form of `ShardSearchResponse`.

A message per hit costs the shard a Python call to build and the coordinator a
Python object to read, more than hnswlib spends finding the hit (see
docs/benchmarks.md). The packed form carries every query's hits as columns:
counts per query, ids as one repeated string, scores and distances as float32
bytes made by numpy. Only the stored fields a search asked for still come as a
`Document` per hit.

A chunking collection's hits carry three more columns (int32): the chunk that
scored each hit and that chunk's span of the text, read from the stored
payload's chunk spans, and the chunks' texts when text was asked for. A
collection without chunking leaves them empty, at no cost.
"""

from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np

from shard.api.proto_reads import fill_document, stored_chunks
from shard.core.collection.search_columns import HitColumns
from shard.core.documents import QueryHits
from shoal.errors import Internal
from shoal.v1 import common_pb2, shard_pb2

#: A hit's chunk columns where its document was stored without chunks.
NO_CHUNK = -1


def packed_response(
    results: Sequence[QueryHits], include: common_pb2.Include, chunked: bool = False
) -> shard_pb2.ShardSearchResponse:
    """Every query's hits, in query order, as one packed response. `chunked`: the
    collection chunks its documents, and `results` hold their stored payloads
    (for the chunks' spans)."""
    response = shard_pb2.ShardSearchResponse()
    fill_packed(response, results, include, chunked)
    return response


def fill_packed(
    response: shard_pb2.ShardSearchResponse,
    results: Sequence[QueryHits],
    include: common_pb2.Include,
    chunked: bool = False,
) -> None:
    """`packed_response` written into `response` (an empty message, such as a hybrid
    answer's `vector_packed` or `keyword_packed`), so nothing is copied."""
    response.SetInParent()  # present even with no queries: the caller sees the form
    response.hit_counts.extend([len(hits.ids) for hits in results])
    response.ids.extend(chain.from_iterable(hits.ids for hits in results))
    response.scores_f32 = _float32_bytes(hits.scores for hits in results)
    response.distances_f32 = _float32_bytes(hits.distances for hits in results)
    if include.vector or include.text or include.metadata:
        add = response.documents.add
        for hits in results:
            for doc_id, stored in zip(hits.ids, hits.documents or (), strict=True):
                document = add(id=doc_id)
                fill_document(document, stored, include)
    if chunked:
        _add_chunk_columns(response, results, include.text)


def columns_response(columns: HitColumns) -> shard_pb2.ShardSearchResponse:
    """A search's hits that came as columns already (no stored fields, no chunks)."""
    return shard_pb2.ShardSearchResponse(
        hit_counts=columns.counts,
        ids=columns.ids,
        scores_f32=columns.scores.astype("<f4", copy=False).tobytes(),
        distances_f32=columns.distances.astype("<f4", copy=False).tobytes(),
    )


def _add_chunk_columns(
    response: shard_pb2.ShardSearchResponse, results: Sequence[QueryHits], with_text: bool
) -> None:
    """Each hit's best chunk (index and span, and text if asked) as columns."""
    chunks: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    texts: list[str] = []
    for hits in results:
        if hits.documents is None:
            raise Internal("a chunking collection's hits came without their stored payloads")
        # Without a chunk per hit no document held more than one: each hit is chunk 0.
        best = hits.chunks if hits.chunks is not None else [0] * len(hits.ids)
        for chunk, stored in zip(best, hits.documents, strict=True):
            document = stored_chunks(stored)
            # The index answered before the store was read: a document replaced in
            # between by one with fewer chunks has no chunk `chunk` any more. Its hit
            # goes without a chunk rather than failing the search.
            if not 0 <= chunk < len(document.chunks):
                chunks.append(NO_CHUNK)
                starts.append(NO_CHUNK)
                ends.append(NO_CHUNK)
                texts.append("")
                continue
            span = document.chunks[chunk]
            chunks.append(chunk)
            starts.append(span.start)
            ends.append(span.end)
            if with_text:
                texts.append(document.text[span.start : span.end])
    response.chunks_i32 = np.asarray(chunks, dtype="<i4").tobytes()
    response.chunk_starts_i32 = np.asarray(starts, dtype="<i4").tobytes()
    response.chunk_ends_i32 = np.asarray(ends, dtype="<i4").tobytes()
    if with_text:
        response.chunk_texts.extend(texts)


def _float32_bytes(rows: Iterable[Sequence[float]]) -> bytes:
    """One array made of all rows' values: one numpy call per response, not per query."""
    return np.asarray(list(chain.from_iterable(rows)), dtype="<f4").tobytes()
