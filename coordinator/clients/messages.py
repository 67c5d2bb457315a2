"""Conversion between the contract types and protobuf messages.

Used by the clients (shard and embedder calls) and by the api layer, since the
public API and the shard API share `CollectionConfig` and `Include`.
"""

from collections.abc import Mapping
from typing import cast

from coordinator.clients.contracts import CollectionConfig, Filter, Include, WriteOp
from shoal.convert import keyword_from_proto, keyword_to_proto, metric_from_proto, metric_to_proto
from shoal.distance_metric import Metric
from shoal.v1 import common_pb2, shard_pb2


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


def config_from_proto(
    config: common_pb2.CollectionConfig, metric: Metric = Metric.COSINE
) -> CollectionConfig:
    """`metric` stands in for a metric value this build does not know."""
    return CollectionConfig(
        name=config.name,
        dimension=config.dimension,
        metric=metric_from_proto(config.metric) or metric,
        hnsw_m=config.hnsw_m,
        hnsw_ef_construction=config.hnsw_ef_construction,
        hnsw_ef=config.hnsw_ef,
        embedding_model=config.embedding_model,
        partitions=config.partitions,
        keyword=keyword_from_proto(config.keyword),
    )


def include_to_proto(include: Include) -> common_pb2.Include:
    return common_pb2.Include(metadata=include.metadata, text=include.text, vector=include.vector)


def include_from_proto(include: common_pb2.Include) -> Include:
    return Include(metadata=include.metadata, text=include.text, vector=include.vector)


def filter_to_proto(spec: Filter | None) -> common_pb2.Filter | None:
    """The caller's filter message, passed on as it came."""
    return cast(common_pb2.Filter | None, spec)


def write_from_proto(write: shard_pb2.ShardWrite) -> WriteOp:
    """A replica's stored record (from Fetch); its metadata stays the protobuf map."""
    return WriteOp(
        id=write.id,
        version=write.version,
        deleted=write.deleted,
        vector_f32=write.vector_f32,
        text=write.text if write.HasField("text") else None,
        metadata=write.metadata,
    )


def document_from_write(op: WriteOp, include: Include) -> common_pb2.Document:
    """The public document for a live record, with the fields `include` asks for."""
    document = common_pb2.Document(id=op.id)
    if include.vector:
        document.vector_f32 = op.vector_f32
    if include.text and op.text is not None:
        document.text = op.text
    if include.metadata:
        for key, value in cast(Mapping[str, common_pb2.Value], op.metadata).items():
            document.metadata[key].CopyFrom(value)
    return document


def write_to_proto(op: WriteOp) -> shard_pb2.ShardWrite:
    # The metadata is the map of `Value`s the caller sent: copied, not converted.
    metadata = cast(Mapping[str, common_pb2.Value], op.metadata)
    return shard_pb2.ShardWrite(
        id=op.id,
        version=op.version,
        deleted=op.deleted,
        vector_f32=op.vector_f32,
        text=op.text,
        metadata=metadata,
    )
