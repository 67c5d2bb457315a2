"""Proto <-> domain conversion for the shard service.

A document's text and metadata travel through the core as one opaque payload:
the bytes of a `Document` holding only those two fields, serialized
deterministically (so replicas given the same write store the same bytes and
last-writer-wins ties break the same way everywhere). A read that asks for both
merges the payload straight into the reply, with no per-field conversion.
"""

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from shard.core.config import CollectionConfig
from shard.core.documents import Include, QueryHits, StoredDocument, WriteOp
from shard.core.keyword_index import KeywordQuery
from shoal.convert import keyword_from_proto, keyword_to_proto, metric_from_proto, metric_to_proto
from shoal.errors import DataLoss, InvalidArgument
from shoal.limits import MAX_METADATA_KEYS, MAX_TEXT_CHARS
from shoal.v1 import common_pb2, shard_pb2


def config_from_proto(
    config: common_pb2.CollectionConfig, incarnation: int = 0
) -> CollectionConfig:
    metric = metric_from_proto(config.metric)
    if metric is None:
        raise InvalidArgument(f"unknown metric {config.metric}; use cosine, l2 or inner product")
    return CollectionConfig(
        name=config.name,
        dimension=config.dimension,
        metric=metric,
        hnsw_m=config.hnsw_m,
        hnsw_ef_construction=config.hnsw_ef_construction,
        hnsw_ef=config.hnsw_ef,
        embedding_model=config.embedding_model,
        partitions=config.partitions,
        keyword=keyword_from_proto(config.keyword),
        incarnation=incarnation,
    )


def config_to_proto(config: CollectionConfig) -> common_pb2.CollectionConfig:
    return common_pb2.CollectionConfig(
        name=config.name,
        dimension=config.dimension,
        metric=metric_to_proto(config.metric),
        hnsw_m=config.hnsw_m,
        hnsw_ef_construction=config.hnsw_ef_construction,
        hnsw_ef=config.hnsw_ef,
        embedding_model=config.embedding_model,
        partitions=config.partitions,
        keyword=keyword_to_proto(config.keyword),
    )


def _payload(write: shard_pb2.ShardWrite) -> bytes:
    has_text = write.HasField("text")
    if not has_text and not write.metadata:
        return b""
    if has_text and len(write.text) > MAX_TEXT_CHARS:
        raise InvalidArgument(
            f"document {write.id!r}: text has {len(write.text)} characters;"
            f" the limit is {MAX_TEXT_CHARS}"
        )
    if len(write.metadata) > MAX_METADATA_KEYS:
        raise InvalidArgument(
            f"document {write.id!r}: {len(write.metadata)} metadata keys;"
            f" the limit is {MAX_METADATA_KEYS}"
        )
    for key, value in write.metadata.items():
        if value.WhichOneof("kind") is None:
            raise InvalidArgument(f"document {write.id!r}: metadata {key!r} has no value")
    document = common_pb2.Document(metadata=write.metadata)
    if has_text:
        document.text = write.text
    return document.SerializeToString(deterministic=True)


def metadata_from_payload(payload: bytes) -> Mapping[str, object]:
    """The metadata of a stored payload as Python values (the core's MetadataReader)."""
    try:
        document = common_pb2.Document.FromString(payload)
    except DecodeError as error:
        raise DataLoss("stored text/metadata of a document is corrupt") from error
    result: dict[str, object] = {}
    for key, value in document.metadata.items():
        kind = value.WhichOneof("kind")
        if kind is None:
            continue
        field = getattr(value, kind)
        result[key] = list(field.values) if kind.endswith("_list") else field
    return result


def text_from_payload(payload: bytes) -> str | None:
    """The text of a stored payload (the core's TextReader)."""
    try:
        document = common_pb2.Document.FromString(payload)
    except DecodeError as error:
        raise DataLoss("stored text/metadata of a document is corrupt") from error
    return document.text if document.HasField("text") else None


def write_from_proto(write: shard_pb2.ShardWrite) -> WriteOp:
    if write.deleted:
        return WriteOp(write.id, write.version, True, b"", b"")
    return WriteOp(write.id, write.version, False, write.vector_f32, _payload(write))


def queries_from_proto(data: bytes) -> npt.NDArray[np.float32]:
    """n x dimension little-endian float32 bytes as a flat array (the core checks the shape)."""
    if len(data) % 4:
        raise InvalidArgument(f"queries_f32 has {len(data)} bytes, not a multiple of 4 (float32)")
    return np.frombuffer(data, dtype="<f4")


def keyword_query_from_proto(query: shard_pb2.KeywordQuery) -> KeywordQuery:
    return KeywordQuery(list(query.terms), list(query.weights))


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


def document_to_proto(stored: StoredDocument, include: common_pb2.Include) -> common_pb2.Document:
    document = common_pb2.Document(id=stored.id)
    fill_document(document, stored, include)
    return document


def hits_to_proto(
    hits: QueryHits, include: common_pb2.Include, target: shard_pb2.ShardSearchResult
) -> None:
    """One query's hits into `target`, one `add` per hit (this runs for every hit served)."""
    add = target.hits.add
    for doc_id, score, distance in zip(hits.ids, hits.scores, hits.distances, strict=True):
        add(id=doc_id, score=score, distance=distance).document.id = doc_id
    if hits.documents is not None:
        for hit, stored in zip(target.hits, hits.documents, strict=True):
            fill_document(hit.document, stored, include)
