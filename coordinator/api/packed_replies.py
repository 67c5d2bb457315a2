"""Packed hits (`coordinator.core.packed`) into the public reply's `Hit` messages.

A batch's hits are written straight in protobuf's wire format with numpy
(`results_wire_bytes`) and parsed into the reply by protobuf's C code, which
costs a fraction of a Python `add` per hit. Stored fields, chunks (a chunking
collection's hits), long ids and small answers take the plain path: a `Hit`
added per hit, from columns turned into Python lists once (`tolist`), not read
element by element from numpy.
"""

from collections.abc import Sequence
from typing import cast

import numpy as np
import numpy.typing as npt

from coordinator.core.packed import ChunkColumns, PackedBatch, PackedHits
from shoal.v1 import common_pb2, shoal_pb2


def add_packed_hits(
    target: shoal_pb2.SearchResult | shoal_pb2.SearchResponse, hits: PackedHits
) -> None:
    """One query's hits into a reply message."""
    _add(target, hits.ids, hits.scores.tolist(), hits.distances.tolist(), hits.documents)
    if hits.chunks is not None:
        _add_chunks(target.hits, hits.chunks)


def add_packed_results(response: shoal_pb2.SearchBatchResponse, batch: PackedBatch) -> None:
    """Every query's hits into a batch reply, `results[i]` answering query i."""
    if len(batch.ids) >= WIRE_MIN_HITS:
        encoded = results_wire_bytes(batch)
        if encoded is not None:
            response.MergeFromString(encoded)
            return
    ids, documents, chunks = batch.ids, batch.documents, batch.chunks
    scores, distances = batch.scores.tolist(), batch.distances.tolist()
    add_result = response.results.add
    start = 0
    for count in batch.counts.tolist():
        stop = start + count
        part = None if documents is None else documents[start:stop]
        result = add_result()
        _add(result, ids[start:stop], scores[start:stop], distances[start:stop], part)
        if chunks is not None:
            _add_chunks(result.hits, chunks.part(start, stop))
        start = stop


def _add_chunks(hits: Sequence[common_pb2.Hit], chunks: ChunkColumns) -> None:
    """Each hit's best chunk: its index, its span, and its text when there is one;
    nothing for a hit whose document has no chunks."""
    texts: Sequence[str | None] = chunks.texts if chunks.texts is not None else [None] * len(hits)
    starts, ends = chunks.starts.tolist(), chunks.ends.tolist()
    for hit, chunk, start, end, text in zip(
        hits, chunks.chunks.tolist(), starts, ends, texts, strict=True
    ):
        if chunk < 0:
            continue
        hit.chunk = chunk
        hit.chunk_span.SetInParent()
        hit.chunk_span.start = start
        hit.chunk_span.end = end
        if text:
            hit.chunk_text = text


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


#: Below this many hits a batch takes the plain path: numpy's fixed cost per call
#: outweighs a few `add`s.
WIRE_MIN_HITS = 64

#: The longest id (UTF-8 bytes) whose hit fits one-byte lengths throughout: a hit is
#: 16 + 2 x id bytes long, and one-byte varints hold up to 127.
_WIRE_MAX_ID = 55

# Wire tags: (field number << 3) | wire type (0: varint, 2: length-delimited, 5: 32-bit).
_LEN_1 = 0x0A  # field 1, length-delimited: SearchResult.hits, Hit.id, Document.id
_SCORE = 0x15  # Hit.score, field 2, fixed32
_DISTANCE = 0x1D  # Hit.distance, field 3, fixed32
_DOCUMENT = 0x22  # Hit.document, field 4, length-delimited

Ints = npt.NDArray[np.int64]


def results_wire_bytes(batch: PackedBatch) -> bytes | None:
    """`SearchBatchResponse.results` of `batch` serialized (field 1, a `SearchResult`
    per query, each hit with its id, score, distance and a document holding the id);
    None when the batch needs the plain path (stored fields, chunks, an id over 55 bytes)."""
    if batch.documents is not None or batch.chunks is not None:
        return None
    encoded = [doc_id.encode() for doc_id in batch.ids]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    if len(lengths) and int(lengths.max()) > _WIRE_MAX_ID:
        return None
    counts = batch.counts
    queries = len(counts)
    rows = np.repeat(np.arange(queries), counts)
    hit_body = 16 + 2 * lengths
    hit_size = hit_body + 2
    result_body = np.bincount(rows, weights=hit_size, minlength=queries).astype(np.int64)
    if queries and int(result_body.max()) >= 1 << 21:
        return None
    header = 2 + (result_body >= 1 << 7) + (result_body >= 1 << 14)
    # The reply is the queries' headers, each followed by its hits: place both.
    sizes = np.empty(queries + len(lengths), dtype=np.int64)
    header_at = batch.offsets[:-1] + np.arange(queries)
    hit_at = np.arange(len(lengths)) + rows + 1
    sizes[header_at] = header
    sizes[hit_at] = hit_size
    starts = np.cumsum(sizes) - sizes
    out = np.zeros(int(sizes.sum()), dtype=np.uint8)
    _write_headers(out, starts[header_at], result_body)
    _write_hits(out, starts[hit_at], lengths, hit_body, encoded, batch)
    return out.tobytes()


def _write_headers(out: npt.NDArray[np.uint8], at: Ints, length: Ints) -> None:
    """Tag and length (a varint of one to three bytes) of each query's `SearchResult`."""
    out[at] = _LEN_1
    two, three = length >= 1 << 7, length >= 1 << 14
    out[at + 1] = (length & 0x7F) | (two << 7)
    out[at[two] + 2] = ((length[two] >> 7) & 0x7F) | (three[two] << 7)
    out[at[three] + 3] = length[three] >> 14


def _write_hits(
    out: npt.NDArray[np.uint8],
    at: Ints,
    lengths: Ints,
    body: Ints,
    encoded: list[bytes],
    batch: PackedBatch,
) -> None:
    """Each hit: its tag and length, the id, the score, the distance, the document (the id)."""
    out[at] = _LEN_1
    out[at + 1] = body
    out[at + 2] = _LEN_1
    out[at + 3] = lengths
    out[at + 4 + lengths] = _SCORE
    out[at + 9 + lengths] = _DISTANCE
    out[at + 14 + lengths] = _DOCUMENT
    out[at + 15 + lengths] = lengths + 2
    out[at + 16 + lengths] = _LEN_1
    out[at + 17 + lengths] = lengths
    four = np.arange(4)
    out[(at + 5 + lengths)[:, None] + four] = (
        batch.scores.astype("<f4").view(np.uint8).reshape(-1, 4)
    )
    out[(at + 10 + lengths)[:, None] + four] = (
        batch.distances.astype("<f4").view(np.uint8).reshape(-1, 4)
    )
    total = int(lengths.sum())
    if total:
        id_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        first = np.repeat(at + 4, lengths) + within
        out[first] = id_bytes
        out[first + 14 + np.repeat(lengths, lengths)] = id_bytes
