"""What the SDK hands back: plain values (dataclasses, lists, Python metadata), made
from the public API's reply messages once, here. Search, get and scroll results
hold their hits and documents as columns (`shoal.sdk.columnar`) and make these
per-hit and per-document values from the messages only when asked."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoal.chunking import ChunkingSettings
from shoal.keyword import KeywordSettings
from shoal.runtime.proto_values import (
    Metadata,
    chunking_from_proto,
    keyword_from_proto,
    metadata_from_proto,
    value_from_proto,
)
from shoal.v1 import common_pb2

#: The metrics by the names the SDK and the CLI use.
METRIC_NAMES: dict[common_pb2.Metric.ValueType, str] = {
    common_pb2.METRIC_COSINE: "cosine",
    common_pb2.METRIC_L2: "l2",
    common_pb2.METRIC_INNER_PRODUCT: "ip",
}


@dataclass(frozen=True)
class Collection:
    name: str
    dimension: int
    metric: str
    hnsw_m: int
    hnsw_ef_construction: int
    hnsw_ef: int
    embedding_model: str
    partitions: int
    document_count: int | None = None
    keyword: KeywordSettings = field(default_factory=KeywordSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    #: Indexed vectors (chunks, and 1 per unchunked document); from get_collection only.
    chunk_count: int | None = None


@dataclass
class Document:
    id: str
    vector: list[float] | None = None
    text: str | None = None
    metadata: Metadata = field(default_factory=dict)
    #: A chunked document's chunks as (start, end) character spans of its text.
    chunks: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Explanation:
    """Where a hybrid hit's score came from: its rank (from 1) and score in the vector
    and keyword candidate lists; None where the list did not hold it."""

    vector_rank: int | None
    vector_score: float | None
    keyword_rank: int | None
    keyword_score: float | None


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    distance: float
    metadata: Metadata
    text: str | None
    vector: list[float] | None
    explanation: Explanation | None = None
    #: In a chunking collection: the best chunk's index, (start, end) span of the
    #: text, and its text (when text was included).
    chunk: int | None = None
    chunk_span: tuple[int, int] | None = None
    chunk_text: str | None = None
    #: With group_by: the value of the key that this hit's group shares.
    group: object = None


@dataclass(frozen=True)
class Coverage:
    groups_asked: int
    groups_answered: int

    @property
    def complete(self) -> bool:
        return self.groups_answered == self.groups_asked


@dataclass(frozen=True)
class WriteResult:
    count: int
    replicas_acknowledged: int
    replicas: int


DocumentLike = Document | Mapping[str, Any]


def collection_from_proto(
    config: common_pb2.CollectionConfig, count: int | None = None, chunks: int | None = None
) -> Collection:
    return Collection(
        name=config.name,
        dimension=config.dimension,
        metric=METRIC_NAMES.get(config.metric, "cosine"),
        hnsw_m=config.hnsw_m,
        hnsw_ef_construction=config.hnsw_ef_construction,
        hnsw_ef=config.hnsw_ef,
        embedding_model=config.embedding_model,
        partitions=config.partitions,
        document_count=count,
        keyword=keyword_from_proto(config.keyword),
        chunking=chunking_from_proto(config.chunking),
        chunk_count=chunks,
    )


def vector_list(document: common_pb2.Document) -> list[float] | None:
    if document.vector_f32:
        return np.frombuffer(document.vector_f32, dtype="<f4").tolist()  # type: ignore[no-any-return]
    return list(document.vector) or None


def document_from_proto(document: common_pb2.Document) -> Document:
    return Document(
        id=document.id,
        vector=vector_list(document),
        text=document.text if document.HasField("text") else None,
        metadata=metadata_from_proto(document.metadata),
        chunks=[(span.start, span.end) for span in document.chunks],
    )


def explanation_from_proto(hit: common_pb2.Hit) -> Explanation | None:
    if not hit.HasField("explanation"):
        return None
    e = hit.explanation
    return Explanation(
        e.vector_rank if e.HasField("vector_rank") else None,
        e.vector_score if e.HasField("vector_score") else None,
        e.keyword_rank if e.HasField("keyword_rank") else None,
        e.keyword_score if e.HasField("keyword_score") else None,
    )


def hit_from_proto(hit: common_pb2.Hit) -> Hit:
    document = document_from_proto(hit.document)
    return Hit(
        hit.id,
        hit.score,
        hit.distance,
        document.metadata,
        document.text,
        document.vector,
        explanation_from_proto(hit),
        hit.chunk if hit.HasField("chunk") else None,
        (hit.chunk_span.start, hit.chunk_span.end) if hit.HasField("chunk_span") else None,
        hit.chunk_text or None,
        value_from_proto(hit.group) if hit.HasField("group") else None,
    )


def coverage_from_proto(coverage: common_pb2.Coverage) -> Coverage:
    return Coverage(coverage.groups_asked, coverage.groups_answered)
