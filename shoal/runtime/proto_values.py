"""Conversions between protobuf messages and plain Python values.

Used by the SDK (user values in, user values out) and by the services' api
layers, so each conversion exists once.
"""

from collections.abc import Mapping
from typing import Protocol

from shoal.chunking import ChunkingSettings
from shoal.distance_metric import Metric
from shoal.errors import InvalidArgument
from shoal.keyword import KeywordSettings
from shoal.topology import Topology, TopologyError
from shoal.v1 import common_pb2, shoal_pb2

Scalar = str | int | float | bool
MetadataValue = Scalar | list[str] | list[int] | list[float] | list[bool]
Metadata = dict[str, MetadataValue]

_METRIC_TO_PROTO: dict[Metric, common_pb2.Metric.ValueType] = {
    Metric.COSINE: common_pb2.METRIC_COSINE,
    Metric.L2: common_pb2.METRIC_L2,
    Metric.INNER_PRODUCT: common_pb2.METRIC_INNER_PRODUCT,
}
_METRIC_FROM_PROTO: dict[common_pb2.Metric.ValueType, Metric] = {
    common_pb2.METRIC_UNSPECIFIED: Metric.COSINE,
    **{value: metric for metric, value in _METRIC_TO_PROTO.items()},
}


def metric_to_proto(metric: Metric) -> common_pb2.Metric.ValueType:
    return _METRIC_TO_PROTO[metric]


def metric_from_proto(metric: common_pb2.Metric.ValueType) -> Metric | None:
    """Unspecified is cosine, the default; None for a value this build does not know."""
    return _METRIC_FROM_PROTO.get(metric)


def value_to_proto(key: str, value: object) -> common_pb2.Value:
    """A Python metadata value as a `Value`; lists must hold one type."""
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return common_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return common_pb2.Value(int_value=value)
    if isinstance(value, float):
        return common_pb2.Value(float_value=value)
    if isinstance(value, str):
        return common_pb2.Value(string_value=value)
    if isinstance(value, list | tuple):
        kinds = {type(item) for item in value}
        if kinds <= {bool}:
            return common_pb2.Value(bool_list=common_pb2.BoolList(values=list(value)))
        if kinds <= {int}:
            return common_pb2.Value(int_list=common_pb2.IntList(values=list(value)))
        if kinds <= {int, float}:
            return common_pb2.Value(float_list=common_pb2.FloatList(values=list(value)))
        if kinds <= {str}:
            return common_pb2.Value(string_list=common_pb2.StringList(values=list(value)))
        raise InvalidArgument(
            f"metadata {key!r}: a list must hold only strings, only numbers or only bools"
        )
    raise InvalidArgument(
        f"metadata {key!r}: {type(value).__name__} is not supported; "
        "use str, int, float, bool or a list of one of them"
    )


def value_from_proto(value: common_pb2.Value) -> MetadataValue:
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument("metadata value is empty")
    field = getattr(value, kind)
    if kind.endswith("_list"):
        return list(field.values)
    return field  # type: ignore[no-any-return]


def metadata_to_proto(metadata: Mapping[str, object]) -> dict[str, common_pb2.Value]:
    return {key: value_to_proto(key, value) for key, value in metadata.items()}


def metadata_from_proto(metadata: Mapping[str, common_pb2.Value]) -> Metadata:
    return {key: value_from_proto(value) for key, value in metadata.items()}


def topology_to_proto(topology: Topology) -> shoal_pb2.Topology:
    return shoal_pb2.Topology(
        version=topology.version,
        groups=[shoal_pb2.TopologyGroup(replicas=group.replicas) for group in topology.groups],
        partition_groups=dict(topology.partition_groups),
        moving=dict(topology.moving),
        leaving=dict(topology.leaving),
    )


def topology_from_proto(message: shoal_pb2.Topology) -> Topology:
    """A topology as it arrived; INVALID_ARGUMENT saying what is wrong with it."""
    try:
        return Topology.from_dict(
            {
                "version": message.version,
                "groups": [{"replicas": list(group.replicas)} for group in message.groups],
                "partition_groups": {str(p): g for p, g in message.partition_groups.items()},
                "moving": {str(p): g for p, g in message.moving.items()},
                "leaving": {str(p): g for p, g in message.leaving.items()},
            }
        )
    except TopologyError as error:
        raise InvalidArgument(f"topology: {error}") from None


def _float32(value: float) -> float:
    """A proto float32 as the decimal it was written as (1.2, not 1.2000000476837158)."""
    return float(f"{value:.7g}")


def keyword_from_proto(config: common_pb2.KeywordConfig) -> KeywordSettings:
    """Unset fields stay None (the defaults); the services fill them in."""
    return KeywordSettings(
        enabled=config.enabled if config.HasField("enabled") else None,
        language=config.language,
        stemming=config.stemming if config.HasField("stemming") else None,
        stop_words=config.stop_words if config.HasField("stop_words") else None,
        k1=_float32(config.k1) if config.HasField("k1") else None,
        b=_float32(config.b) if config.HasField("b") else None,
    )


def keyword_to_proto(settings: KeywordSettings) -> common_pb2.KeywordConfig:
    return common_pb2.KeywordConfig(
        enabled=settings.enabled,
        language=settings.language,
        stemming=settings.stemming,
        stop_words=settings.stop_words,
        k1=settings.k1,
        b=settings.b,
    )


class CollectionSettings(Protocol):
    """A collection's settings as a service's core holds them: the coordinator's and
    the shard's `CollectionConfig` both have these fields (the way back from the
    message differs: each fills in its own incarnation and unknown metrics)."""

    @property
    def name(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def metric(self) -> Metric: ...
    @property
    def hnsw_m(self) -> int: ...
    @property
    def hnsw_ef_construction(self) -> int: ...
    @property
    def hnsw_ef(self) -> int: ...
    @property
    def embedding_model(self) -> str: ...
    @property
    def partitions(self) -> int: ...
    @property
    def keyword(self) -> KeywordSettings: ...
    @property
    def chunking(self) -> ChunkingSettings: ...


def config_to_proto(config: CollectionSettings) -> common_pb2.CollectionConfig:
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
        chunking=chunking_to_proto(config.chunking),
    )


def chunking_to_proto(settings: ChunkingSettings) -> common_pb2.ChunkingConfig:
    return common_pb2.ChunkingConfig(
        enabled=settings.enabled,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.overlap_tokens or 0,
    )


def chunking_from_proto(config: common_pb2.ChunkingConfig) -> ChunkingSettings:
    """A zero overlap in a request means "the default" (as every zero field does)."""
    if not config.enabled:
        return ChunkingSettings()
    return ChunkingSettings(
        enabled=True,
        chunk_tokens=config.chunk_tokens,
        overlap_tokens=config.overlap_tokens or None,
    )
