"""Public protobuf messages <-> the coordinator's domain types.

Vectors are read with `np.frombuffer` when they come as bytes, never element by
element. Metadata is checked here (an empty `Value` is a malformed message) and
then passed on as the protobuf map it is; hits and documents coming back from
shards are already the public messages and go out as they are.
"""

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from coordinator.api.packed_replies import add_packed_hits
from coordinator.core.model import (
    DEFAULT_ALPHA,
    DEFAULT_RRF_K,
    ClusterInfo,
    Coverage,
    DocumentInput,
    Explanation,
    FusedHit,
    Fusion,
    GroupBy,
    GroupedHits,
    HybridOptions,
    QueryInput,
    ReadConsistency,
    SearchMode,
    SearchOptions,
    WriteConsistency,
)
from coordinator.core.packed import PackedHit, PackedHits
from coordinator.core.ports import (
    CollectionConfig,
    DocumentMessage,
    Health,
    HitMessage,
    Include,
    RankedHits,
    Vector,
    WriteOp,
)
from coordinator.core.verify import VerifyReport
from coordinator.proto_config import config_from_proto, include_from_proto
from shoal import limits
from shoal.errors import InvalidArgument
from shoal.runtime.proto_values import metric_from_proto
from shoal.v1 import common_pb2, shard_pb2, shoal_pb2
from shoal.vectors import vector_from_fields

#: RRF's constant; beyond this every rank weighs about the same.
MAX_RRF_K = 100_000

_CONSISTENCY: dict[int, WriteConsistency] = {
    shoal_pb2.WRITE_CONSISTENCY_UNSPECIFIED: WriteConsistency.QUORUM,
    shoal_pb2.WRITE_CONSISTENCY_ONE: WriteConsistency.ONE,
    shoal_pb2.WRITE_CONSISTENCY_QUORUM: WriteConsistency.QUORUM,
    shoal_pb2.WRITE_CONSISTENCY_ALL: WriteConsistency.ALL,
}
_READ_CONSISTENCY: dict[int, ReadConsistency] = {
    shoal_pb2.READ_CONSISTENCY_UNSPECIFIED: ReadConsistency.ONE,
    shoal_pb2.READ_CONSISTENCY_ONE: ReadConsistency.ONE,
    shoal_pb2.READ_CONSISTENCY_QUORUM: ReadConsistency.QUORUM,
    shoal_pb2.READ_CONSISTENCY_ALL: ReadConsistency.ALL,
}
_HEALTH: dict[Health, shoal_pb2.ReplicaHealth.ValueType] = {
    Health.SERVING: shoal_pb2.REPLICA_HEALTH_SERVING,
    Health.NOT_SERVING: shoal_pb2.REPLICA_HEALTH_NOT_SERVING,
    Health.UNREACHABLE: shoal_pb2.REPLICA_HEALTH_UNREACHABLE,
    Health.DEGRADED: shoal_pb2.REPLICA_HEALTH_DEGRADED,
}


def consistency_from_proto(value: int) -> WriteConsistency:
    consistency = _CONSISTENCY.get(value)
    if consistency is None:
        raise InvalidArgument(f"write consistency {value} is unknown; use ONE, QUORUM or ALL")
    return consistency


def read_consistency_from_proto(value: int) -> ReadConsistency:
    consistency = _READ_CONSISTENCY.get(value)
    if consistency is None:
        raise InvalidArgument(f"read consistency {value} is unknown; use ONE, QUORUM or ALL")
    return consistency


def create_config_from_proto(config: common_pb2.CollectionConfig) -> CollectionConfig:
    """A create request's config; zero fields are left for the defaults."""
    metric = metric_from_proto(config.metric)
    if metric is None:
        raise InvalidArgument(f"metric {config.metric} is unknown; use COSINE, L2 or INNER_PRODUCT")
    return config_from_proto(config, metric)


def _optional_vector(values: Sequence[float], f32: bytes, what: str) -> Vector | None:
    if not f32 and not values:
        return None
    return vector_from_fields(values, f32, what)


def document_from_proto(document: common_pb2.Document) -> DocumentInput:
    what = f"document {document.id!r}"
    metadata = document.metadata
    for key, value in metadata.items():
        if value.WhichOneof("kind") is None:
            raise InvalidArgument(f"{what}: metadata {key!r} has no value")
    return DocumentInput(
        id=document.id,
        vector=_optional_vector(document.vector, document.vector_f32, what),
        text=document.text if document.HasField("text") else None,
        metadata=metadata,
    )


def documents_from_proto(documents: Sequence[common_pb2.Document]) -> list[DocumentInput]:
    return [document_from_proto(document) for document in documents]


def query_from_proto(query: shoal_pb2.Query, what: str) -> QueryInput:
    return QueryInput(
        vector=_optional_vector(query.vector, query.vector_f32, what),
        text=query.text or None,
        like_id=query.like_id or None,
    )


def queries_from_proto(queries: Sequence[shoal_pb2.Query]) -> list[QueryInput] | Vector:
    """The queries one by one, or, when all of them are float32 bytes of one
    length (what the SDK sends), as one matrix read from the joined bytes."""
    blobs = [query.vector_f32 for query in queries]
    size = len(blobs[0]) if blobs else 0
    if (
        size
        and size % 4 == 0
        and all(len(blob) == size for blob in blobs)
        and not any(query.text or query.like_id or len(query.vector) for query in queries)
    ):
        return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), size // 4)
    return [query_from_proto(query, f"query {i}") for i, query in enumerate(queries)]


def batch_queries(request: shoal_pb2.SearchBatchRequest) -> list[QueryInput] | Vector:
    """A SearchBatch's queries: its query matrix (`queries_f32` rows of `dimension`
    float32s), or its `queries`."""
    if not request.queries_f32:
        return queries_from_proto(request.queries)
    if request.queries:
        raise InvalidArgument("give the queries as `queries` or as `queries_f32`, not both")
    size, dimension = len(request.queries_f32), request.dimension
    if not dimension or size % (4 * dimension):
        raise InvalidArgument(
            f"queries_f32 holds {size} bytes, not rows of `dimension` ({dimension}) float32s"
        )
    return np.frombuffer(request.queries_f32, dtype="<f4").reshape(-1, dimension)


def filter_from_proto(message: Any) -> common_pb2.Filter | None:
    """The request's filter, if it has one (passed on to the shards as it is)."""
    return message.filter if message.HasField("filter") else None


_MODES: dict[int, SearchMode] = {
    shoal_pb2.SEARCH_MODE_UNSPECIFIED: SearchMode.VECTOR,
    shoal_pb2.SEARCH_MODE_VECTOR: SearchMode.VECTOR,
    shoal_pb2.SEARCH_MODE_KEYWORD: SearchMode.KEYWORD,
    shoal_pb2.SEARCH_MODE_HYBRID: SearchMode.HYBRID,
}
_FUSIONS: dict[int, Fusion] = {
    shoal_pb2.FUSION_UNSPECIFIED: Fusion.RRF,
    shoal_pb2.FUSION_RRF: Fusion.RRF,
    shoal_pb2.FUSION_RELATIVE_SCORE: Fusion.RELATIVE_SCORE,
}


def hybrid_from_proto(message: shoal_pb2.HybridOptions) -> HybridOptions:
    fusion = _FUSIONS.get(message.fusion)
    if fusion is None:
        raise InvalidArgument(
            f"hybrid.fusion {message.fusion} is unknown; use FUSION_RRF or FUSION_RELATIVE_SCORE"
        )
    alpha = message.alpha if message.HasField("alpha") else DEFAULT_ALPHA
    if not math.isfinite(alpha) or not 0 <= alpha <= 1:
        raise InvalidArgument(f"hybrid.alpha is {alpha}; it must be between 0 and 1")
    if message.candidates > limits.MAX_K:
        raise InvalidArgument(
            f"hybrid.candidates is {message.candidates}; the limit is {limits.MAX_K}"
        )
    if message.rrf_k > MAX_RRF_K:
        raise InvalidArgument(f"hybrid.rrf_k is {message.rrf_k}; the limit is {MAX_RRF_K}")
    return HybridOptions(
        fusion=fusion,
        alpha=alpha,
        rrf_k=message.rrf_k or DEFAULT_RRF_K,
        candidates=message.candidates,
    )


def search_options(
    request: shoal_pb2.SearchRequest | shoal_pb2.SearchBatchRequest,
) -> SearchOptions:
    mode = _MODES.get(request.mode)
    if mode is None:
        raise InvalidArgument(
            f"search mode {request.mode} is unknown; use VECTOR, KEYWORD or HYBRID"
        )
    return SearchOptions(
        k=request.k,
        ef=request.ef,
        include=include_from_proto(request.include),
        allow_partial=request.allow_partial,
        filter=filter_from_proto(request),
        score_threshold=(request.score_threshold if request.HasField("score_threshold") else None),
        mode=mode,
        hybrid=hybrid_from_proto(request.hybrid),
        explain=request.explain,
        group_by=_group_by(request),
    )


def _group_by(request: shoal_pb2.SearchRequest | shoal_pb2.SearchBatchRequest) -> GroupBy | None:
    if not request.group_by:
        return None
    return GroupBy(request.group_by, request.group_size or 1, group_values)


_LIST_KINDS = {
    "string_list": "string_value",
    "int_list": "int_value",
    "float_list": "float_value",
    "bool_list": "bool_value",
}


def group_values(hit: HitMessage, key: str) -> list[tuple[Hashable, object]]:
    """A hit's values of metadata `key`, as (hashable key, `Value` to show): one
    per element of a list value, none when the hit lacks the key."""
    document = cast(common_pb2.Document | None, getattr(hit, "document", None))
    if document is None or key not in document.metadata:
        return []
    value = document.metadata[key]
    kind = value.WhichOneof("kind")
    if kind is None:
        return []
    if kind in _LIST_KINDS:
        scalar = _LIST_KINDS[kind]
        return [
            ((scalar, element), common_pb2.Value(**{scalar: element}))
            for element in getattr(value, kind).values
        ]
    return [((kind, getattr(value, kind)), value)]


def _explanation_to_proto(explanation: Explanation) -> common_pb2.HitExplanation:
    return common_pb2.HitExplanation(
        vector_rank=explanation.vector_rank,
        vector_score=explanation.vector_score,
        keyword_rank=explanation.keyword_rank,
        keyword_score=explanation.keyword_score,
    )


def _fused_to_proto(hit: FusedHit) -> common_pb2.Hit:
    message = common_pb2.Hit(id=hit.id, score=hit.score, distance=hit.distance)
    if hit.document is not None:
        message.document.CopyFrom(cast(common_pb2.Document, hit.document))
    else:
        message.document.id = hit.id
    if hit.explanation is not None:
        message.explanation.CopyFrom(_explanation_to_proto(hit.explanation))
    source = None if hit.chunk_of is None else hit_to_proto(hit.chunk_of)
    if source is not None and source.HasField("chunk"):
        message.chunk = source.chunk
        message.chunk_span.CopyFrom(source.chunk_span)
        message.chunk_text = source.chunk_text
    return message


def _add_grouped(
    target: shoal_pb2.SearchResult | shoal_pb2.SearchResponse,
    result: GroupedHits,
    keep_metadata: bool,
) -> None:
    """Grouped hits, each with its group's value; the metadata fetched for grouping
    is dropped unless the caller asked for it."""
    for hit, value in zip(result.hits, result.groups, strict=True):
        message = common_pb2.Hit()
        message.CopyFrom(hit_to_proto(hit))
        message.group.CopyFrom(cast(common_pb2.Value, value))
        if not keep_metadata:
            message.document.ClearField("metadata")
        target.hits.append(message)


def add_hits(
    target: shoal_pb2.SearchResult | shoal_pb2.SearchResponse,
    result: RankedHits,
    keep_metadata: bool = True,
) -> None:
    """Put one query's hits into a reply message.

    A shard's own answer (no merge was needed) is copied as bytes: a shard's
    `ShardSearchResult` and the public `SearchResult` / `SearchResponse` share
    the wire form of field 1, `repeated Hit hits`, so no Python object is made
    per hit. Merged hits are the shards' `Hit` messages and are copied as such;
    packed hits (a vector search) are written from their columns.
    """
    if isinstance(result, PackedHits):
        add_packed_hits(target, result)
        return
    if isinstance(result, GroupedHits):
        _add_grouped(target, result, keep_metadata)
    elif isinstance(result, shard_pb2.ShardSearchResult):
        target.MergeFromString(result.SerializeToString())
    else:
        target.hits.extend(hit_to_proto(hit) for hit in result.hits)


def hit_to_proto(hit: HitMessage) -> common_pb2.Hit:
    """A hit as the public `Hit`: a shard's message as it is, a hit the coordinator
    fused or read out of packed columns (more-like-this, group search) built."""
    if isinstance(hit, common_pb2.Hit):
        return hit
    if isinstance(hit, FusedHit):
        return _fused_to_proto(hit)
    if isinstance(hit, PackedHit):
        message = common_pb2.Hit(id=hit.id, score=hit.score, distance=hit.distance)
        if hit.document is not None:
            message.document.CopyFrom(cast(common_pb2.Document, hit.document))
        else:
            message.document.id = hit.id
        if hit.chunk is not None:  # a chunking collection's hit: its best chunk
            message.chunk = hit.chunk
            if hit.chunk_span is not None:
                start, end = hit.chunk_span
                message.chunk_span.CopyFrom(common_pb2.ChunkSpan(start=start, end=end))
            if hit.chunk_text:
                message.chunk_text = hit.chunk_text
        return message
    raise TypeError(f"a hit of unknown kind: {type(hit).__name__}")


def coverage_to_proto(coverage: Coverage) -> common_pb2.Coverage:
    return common_pb2.Coverage(groups_asked=coverage.asked, groups_answered=coverage.answered)


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


def documents_to_proto(
    documents: list[DocumentMessage], include: Include | None = None
) -> list[common_pb2.Document]:
    """The shard client hands back the shards' own `Document` messages, except for a
    get at QUORUM or ALL, which answers with the replicas' records (`WriteOp`s):
    those are cut down to the fields `include` asks for."""
    if include is None or not any(isinstance(document, WriteOp) for document in documents):
        return cast(list[common_pb2.Document], documents)
    return [
        document_from_write(document, include)
        if isinstance(document, WriteOp)
        else cast(common_pb2.Document, document)
        for document in documents
    ]


def verify_report_to_proto(report: VerifyReport) -> shoal_pb2.VerifyReplicasResponse:
    return shoal_pb2.VerifyReplicasResponse(
        groups=[
            shoal_pb2.GroupReport(
                group=group.group,
                partitions=[
                    shoal_pb2.PartitionReport(
                        partition=partition.partition,
                        replicas=[
                            shoal_pb2.ReplicaDigest(
                                address=replica.address, records=replica.records, hash=replica.hash
                            )
                            for replica in partition.replicas
                        ],
                        differing=partition.differing,
                        repaired=partition.repaired,
                    )
                    for partition in group.partitions
                ],
                partitions_compared=group.partitions_compared,
                unreachable=group.unreachable,
            )
            for group in report.groups
        ],
        differing=report.differing,
        repaired=report.repaired,
    )


def cluster_info_to_proto(info: ClusterInfo) -> shoal_pb2.GetClusterInfoResponse:
    return shoal_pb2.GetClusterInfoResponse(
        topology_version=info.topology_version,
        replication_factor=info.replication_factor,
        groups=[
            shoal_pb2.ShardGroupInfo(
                group=group.group,
                replicas=[
                    shoal_pb2.ReplicaInfo(
                        address=replica.address,
                        health=_HEALTH[replica.health],
                        collections=[
                            shoal_pb2.CollectionCount(collection=name, documents=count)
                            for name, count in replica.collections
                        ],
                        failed_collections=[
                            shoal_pb2.FailedCollection(collection=name, reason=reason)
                            for name, reason in replica.failed
                        ],
                        member=replica.member,
                    )
                    for replica in group.replicas
                ],
            )
            for group in info.groups
        ],
        embedder_address=info.embedder_address,
        embedder_health=_HEALTH[info.embedder_health],
    )
