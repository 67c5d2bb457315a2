"""Read requests and replies of the shard service <-> the core's types: queries,
which fields to return, and hits and documents filled from stored payloads
(see shard.proto_records for the payload's format).
"""

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from shard.core.documents import Include, QueryHits, StoredDocument
from shard.core.keyword_index import KeywordQuery
from shoal.errors import DataLoss, InvalidArgument
from shoal.v1 import common_pb2, shard_pb2


def queries_from_proto(data: bytes) -> npt.NDArray[np.float32]:
    """n x dimension little-endian float32 bytes as a flat array (the core checks the shape)."""
    if len(data) % 4:
        raise InvalidArgument(f"queries_f32 has {len(data)} bytes, not a multiple of 4 (float32)")
    return np.frombuffer(data, dtype="<f4")


def keyword_query_from_proto(query: shard_pb2.KeywordQuery) -> KeywordQuery:
    return KeywordQuery(list(query.terms), list(query.weights), list(query.occurrences))


def include_from_proto(include: common_pb2.Include) -> Include:
    return Include(vector=include.vector, payload=include.text or include.metadata)


def fill_document(
    target: common_pb2.Document, stored: StoredDocument, include: common_pb2.Include
) -> None:
    """Set `target` (which has its id) to the stored fields `include` asks for."""
    if include.vector:
        target.vector_f32 = stored.vector
    if not stored.payload or not (include.text or include.metadata):
        return
    try:
        if include.text and include.metadata:
            target.MergeFromString(stored.payload)
            return
        extra = common_pb2.Document.FromString(stored.payload)
    except DecodeError as error:
        raise DataLoss(f"stored text/metadata of document {stored.id!r} is corrupt") from error
    if include.text and extra.HasField("text"):
        target.text = extra.text
    if include.metadata:
        target.metadata.MergeFrom(extra.metadata)
    target.chunks.extend(extra.chunks)


def document_to_proto(stored: StoredDocument, include: common_pb2.Include) -> common_pb2.Document:
    document = common_pb2.Document(id=stored.id)
    fill_document(document, stored, include)
    return document


def hits_to_proto(
    hits: QueryHits,
    include: common_pb2.Include,
    target: shard_pb2.ShardSearchResult,
    document_ids: bool = True,
) -> None:
    """One query's hits into `target`, one `add` per hit (this runs for every hit served).
    Without `document_ids` (and no stored fields) a hit's Document stays unset."""
    add = target.hits.add
    zipped = zip(hits.ids, hits.scores, hits.distances, strict=True)
    if not document_ids and hits.documents is None:
        for doc_id, score, distance in zipped:
            add(id=doc_id, score=score, distance=distance)
        return
    for doc_id, score, distance in zipped:
        add(id=doc_id, score=score, distance=distance).document.id = doc_id
    if hits.documents is not None:
        for hit, stored in zip(target.hits, hits.documents, strict=True):
            fill_document(hit.document, stored, include)
        if hits.chunks is not None:
            _add_chunks(target, hits.chunks, hits.documents, include.text)


def _add_chunks(
    target: shard_pb2.ShardSearchResult,
    chunks: list[int],
    documents: list[StoredDocument],
    with_text: bool,
) -> None:
    """Each hit's best chunk: its index, its span of the text, and its text if asked."""
    for hit, chunk, stored in zip(target.hits, chunks, documents, strict=True):
        document = stored_chunks(stored)
        # A document replaced, between the index's answer and this read, by one with
        # fewer chunks has no chunk `chunk` any more: its hit goes without a chunk
        # rather than failing the search.
        if not 0 <= chunk < len(document.chunks):
            continue
        span = document.chunks[chunk]
        hit.chunk = chunk
        hit.chunk_span.CopyFrom(span)
        if with_text:
            hit.chunk_text = document.text[span.start : span.end]


def stored_chunks(stored: StoredDocument) -> common_pb2.Document:
    """The stored payload's text and chunk spans (empty when it has none)."""
    if not stored.payload:
        return common_pb2.Document()
    try:
        return common_pb2.Document.FromString(stored.payload)
    except DecodeError as error:
        raise DataLoss(f"stored text/metadata of document {stored.id!r} is corrupt") from error
