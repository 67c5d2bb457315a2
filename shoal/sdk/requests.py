"""The public API's request messages, made from the plain values the SDK takes.

Names the caller gives (metrics, consistency levels, search modes, fields) are
checked here, with messages that list what is allowed.
"""

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from shoal.errors import InvalidArgument
from shoal.keyword import KeywordSettings
from shoal.runtime.proto_values import keyword_to_proto, metadata_to_proto
from shoal.sdk.results import METRIC_NAMES, Document, DocumentLike
from shoal.sdk.where import Where, combined_filter
from shoal.v1 import common_pb2, shoal_pb2
from shoal.vectors import VectorLike, vector_to_f32

MetricName = Literal["cosine", "l2", "ip"]
Consistency = Literal["one", "quorum", "all"]
Field = Literal["metadata", "text", "vector"]
SearchModeName = Literal["vector", "keyword", "hybrid"]
FusionName = Literal["rrf", "relative"]

METRICS: dict[str, common_pb2.Metric.ValueType] = {
    name: value for value, name in METRIC_NAMES.items()
}
CONSISTENCY: dict[str, shoal_pb2.WriteConsistency.ValueType] = {
    "one": shoal_pb2.WRITE_CONSISTENCY_ONE,
    "quorum": shoal_pb2.WRITE_CONSISTENCY_QUORUM,
    "all": shoal_pb2.WRITE_CONSISTENCY_ALL,
}
READ_CONSISTENCY: dict[str, shoal_pb2.ReadConsistency.ValueType] = {
    "one": shoal_pb2.READ_CONSISTENCY_ONE,
    "quorum": shoal_pb2.READ_CONSISTENCY_QUORUM,
    "all": shoal_pb2.READ_CONSISTENCY_ALL,
}

MODES: dict[str, shoal_pb2.SearchMode.ValueType] = {
    "vector": shoal_pb2.SEARCH_MODE_VECTOR,
    "keyword": shoal_pb2.SEARCH_MODE_KEYWORD,
    "hybrid": shoal_pb2.SEARCH_MODE_HYBRID,
}
FUSIONS: dict[str, shoal_pb2.Fusion.ValueType] = {
    "rrf": shoal_pb2.FUSION_RRF,
    "relative": shoal_pb2.FUSION_RELATIVE_SCORE,
}


def document_to_proto(document: DocumentLike) -> common_pb2.Document:
    if isinstance(document, Document):
        document = document.__dict__
    unknown = set(document) - {"id", "vector", "text", "metadata"}
    if unknown:
        raise InvalidArgument(f"unknown document fields {sorted(unknown)}")
    message = common_pb2.Document(
        id=str(document["id"]), metadata=metadata_to_proto(document.get("metadata") or {})
    )
    if document.get("vector") is not None:
        message.vector_f32 = vector_to_f32(document["vector"])
    if document.get("text") is not None:
        message.text = document["text"]
    return message


def query_to_proto(
    vector: VectorLike | None, text: str | None, mode: str = "vector"
) -> shoal_pb2.Query:
    if mode == "hybrid" and text is not None:
        # A hybrid query's vector (if any) is for the vector side, its text for both.
        if vector is None:
            return shoal_pb2.Query(text=text)
        return shoal_pb2.Query(text=text, vector_f32=vector_to_f32(vector))
    if vector is not None and text is None:
        return shoal_pb2.Query(vector_f32=vector_to_f32(vector))
    if text is not None and vector is None:
        return shoal_pb2.Query(text=text)
    if mode == "hybrid":
        raise InvalidArgument(
            "hybrid search needs a text (and a vector if the server cannot embed)"
        )
    raise InvalidArgument("give a vector or a text to search with, not both")


def keyword_config(keyword: bool | Mapping[str, Any] | None) -> common_pb2.KeywordConfig:
    if keyword is None or keyword is True:
        return common_pb2.KeywordConfig()
    if keyword is False:
        return common_pb2.KeywordConfig(enabled=False)
    unknown = set(keyword) - {"enabled", "language", "stemming", "stop_words", "k1", "b"}
    if unknown:
        raise InvalidArgument(
            f"keyword: unknown settings {sorted(unknown)}; use enabled, language, stemming,"
            " stop_words, k1, b"
        )
    return keyword_to_proto(KeywordSettings(**keyword))


def chunking_config(chunking: bool | Mapping[str, int] | None) -> common_pb2.ChunkingConfig:
    if not chunking:
        return common_pb2.ChunkingConfig()
    if chunking is True:
        return common_pb2.ChunkingConfig(enabled=True)
    unknown = set(chunking) - {"chunk_tokens", "overlap_tokens"}
    if unknown:
        raise InvalidArgument(
            f"chunking: unknown settings {sorted(unknown)}; use chunk_tokens, overlap_tokens"
        )
    return common_pb2.ChunkingConfig(
        enabled=True,
        chunk_tokens=int(chunking.get("chunk_tokens", 0)),
        overlap_tokens=int(chunking.get("overlap_tokens", 0)),
    )


def search_fields(
    k: int,
    ef: int,
    include: Iterable[Field],
    where: Where | None,
    where_document: Where | None,
    score_threshold: float | None,
    allow_partial: bool,
    mode: SearchModeName,
    fusion: FusionName,
    alpha: float | None,
    rrf_k: int,
    candidates: int,
    explain: bool,
) -> dict[str, Any]:
    """The fields a `SearchRequest` and a `SearchBatchRequest` share, besides the queries."""
    if mode not in MODES:
        raise InvalidArgument(f"mode {mode!r}: use one of {sorted(MODES)}")
    if fusion not in FUSIONS:
        raise InvalidArgument(f"fusion {fusion!r}: use one of {sorted(FUSIONS)}")
    hybrid = shoal_pb2.HybridOptions(
        fusion=FUSIONS[fusion], alpha=alpha, rrf_k=rrf_k, candidates=candidates
    )
    return {
        "k": k,
        "ef": ef,
        "include": include_to_proto(include),
        "filter": combined_filter(where, where_document),
        "score_threshold": score_threshold,
        "allow_partial": allow_partial,
        "mode": MODES[mode],
        "hybrid": hybrid,
        "explain": explain,
        # Columns instead of a message per hit where the server has them (see
        # shoal.sdk.columnar, which reads either form).
        "packed": True,
    }


def include_to_proto(fields: Iterable[Field]) -> common_pb2.Include:
    wanted = set(fields)
    unknown = wanted - {"metadata", "text", "vector"}
    if unknown:
        raise InvalidArgument(f"include: unknown fields {sorted(unknown)}")
    return common_pb2.Include(
        metadata="metadata" in wanted, text="text" in wanted, vector="vector" in wanted
    )
