"""The Python SDK: `shoal.Client` speaks the public gRPC API with plain values.

Metadata goes in and comes out as Python values, vectors as lists or numpy
arrays, and failures are raised as `shoal.errors` exceptions (NotFound,
InvalidArgument, Unavailable, ...) carrying the server's message.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeVar

import grpc
import numpy as np
import numpy.typing as npt

from shoal.errors import InvalidArgument
from shoal.keyword import KeywordSettings
from shoal.runtime.balancing import ROUND_ROBIN_OPTIONS
from shoal.runtime.proto_values import (
    Metadata,
    keyword_from_proto,
    keyword_to_proto,
    metadata_from_proto,
    metadata_to_proto,
    topology_from_proto,
    topology_to_proto,
)
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.status import from_rpc_error
from shoal.sdk.where import Where, combined_filter
from shoal.topology import Topology
from shoal.v1 import common_pb2, shoal_pb2, shoal_pb2_grpc
from shoal.vectors import VectorLike, vector_to_f32

DEFAULT_ADDRESS = "127.0.0.1:50051"

MetricName = Literal["cosine", "l2", "ip"]
Consistency = Literal["one", "quorum", "all"]
Field = Literal["metadata", "text", "vector"]
SearchModeName = Literal["vector", "keyword", "hybrid"]
FusionName = Literal["rrf", "relative"]

_METRICS: dict[str, common_pb2.Metric.ValueType] = {
    "cosine": common_pb2.METRIC_COSINE,
    "l2": common_pb2.METRIC_L2,
    "ip": common_pb2.METRIC_INNER_PRODUCT,
}
_METRIC_NAMES = {value: name for name, value in _METRICS.items()}
_CONSISTENCY: dict[str, shoal_pb2.WriteConsistency.ValueType] = {
    "one": shoal_pb2.WRITE_CONSISTENCY_ONE,
    "quorum": shoal_pb2.WRITE_CONSISTENCY_QUORUM,
    "all": shoal_pb2.WRITE_CONSISTENCY_ALL,
}
_READ_CONSISTENCY: dict[str, shoal_pb2.ReadConsistency.ValueType] = {
    "one": shoal_pb2.READ_CONSISTENCY_ONE,
    "quorum": shoal_pb2.READ_CONSISTENCY_QUORUM,
    "all": shoal_pb2.READ_CONSISTENCY_ALL,
}

_MODES: dict[str, shoal_pb2.SearchMode.ValueType] = {
    "vector": shoal_pb2.SEARCH_MODE_VECTOR,
    "keyword": shoal_pb2.SEARCH_MODE_KEYWORD,
    "hybrid": shoal_pb2.SEARCH_MODE_HYBRID,
}
_FUSIONS: dict[str, shoal_pb2.Fusion.ValueType] = {
    "rrf": shoal_pb2.FUSION_RRF,
    "relative": shoal_pb2.FUSION_RELATIVE_SCORE,
}

R = TypeVar("R")


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


@dataclass
class Document:
    id: str
    vector: list[float] | None = None
    text: str | None = None
    metadata: Metadata = field(default_factory=dict)


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


@dataclass(frozen=True)
class Coverage:
    groups_asked: int
    groups_answered: int

    @property
    def complete(self) -> bool:
        return self.groups_answered == self.groups_asked


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    coverage: Coverage


@dataclass(frozen=True)
class WriteResult:
    count: int
    replicas_acknowledged: int
    replicas: int


DocumentLike = Document | Mapping[str, Any]


def _collection(config: common_pb2.CollectionConfig, count: int | None = None) -> Collection:
    return Collection(
        name=config.name,
        dimension=config.dimension,
        metric=_METRIC_NAMES.get(config.metric, "cosine"),
        hnsw_m=config.hnsw_m,
        hnsw_ef_construction=config.hnsw_ef_construction,
        hnsw_ef=config.hnsw_ef,
        embedding_model=config.embedding_model,
        partitions=config.partitions,
        document_count=count,
        keyword=keyword_from_proto(config.keyword),
    )


def _vector_list(document: common_pb2.Document) -> list[float] | None:
    if document.vector_f32:
        return np.frombuffer(document.vector_f32, dtype="<f4").tolist()  # type: ignore[no-any-return]
    return list(document.vector) or None


def _document(document: common_pb2.Document) -> Document:
    return Document(
        id=document.id,
        vector=_vector_list(document),
        text=document.text if document.HasField("text") else None,
        metadata=metadata_from_proto(document.metadata),
    )


def _explanation(hit: common_pb2.Hit) -> Explanation | None:
    if not hit.HasField("explanation"):
        return None
    e = hit.explanation
    return Explanation(
        e.vector_rank if e.HasField("vector_rank") else None,
        e.vector_score if e.HasField("vector_score") else None,
        e.keyword_rank if e.HasField("keyword_rank") else None,
        e.keyword_score if e.HasField("keyword_score") else None,
    )


def _hit(hit: common_pb2.Hit) -> Hit:
    document = _document(hit.document)
    return Hit(
        hit.id,
        hit.score,
        hit.distance,
        document.metadata,
        document.text,
        document.vector,
        _explanation(hit),
    )


def _coverage(coverage: common_pb2.Coverage) -> Coverage:
    return Coverage(coverage.groups_asked, coverage.groups_answered)


def _document_proto(document: DocumentLike) -> common_pb2.Document:
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


def _query(vector: VectorLike | None, text: str | None, mode: str = "vector") -> shoal_pb2.Query:
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


def _filter(where: Where | None, where_document: Where | None = None) -> common_pb2.Filter | None:
    return combined_filter(where, where_document)


def _keyword_config(keyword: bool | Mapping[str, Any] | None) -> common_pb2.KeywordConfig:
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


def _search_mode(
    mode: SearchModeName,
    fusion: FusionName,
    alpha: float | None,
    rrf_k: int,
    candidates: int,
) -> tuple[shoal_pb2.SearchMode.ValueType, shoal_pb2.HybridOptions]:
    if mode not in _MODES:
        raise InvalidArgument(f"mode {mode!r}: use one of {sorted(_MODES)}")
    if fusion not in _FUSIONS:
        raise InvalidArgument(f"fusion {fusion!r}: use one of {sorted(_FUSIONS)}")
    hybrid = shoal_pb2.HybridOptions(
        fusion=_FUSIONS[fusion], alpha=alpha, rrf_k=rrf_k, candidates=candidates
    )
    return _MODES[mode], hybrid


def _include(fields: Iterable[Field]) -> common_pb2.Include:
    wanted = set(fields)
    unknown = wanted - {"metadata", "text", "vector"}
    if unknown:
        raise InvalidArgument(f"include: unknown fields {sorted(unknown)}")
    return common_pb2.Include(
        metadata="metadata" in wanted, text="text" in wanted, vector="vector" in wanted
    )


class Client:
    """A connection to a Shoal coordinator.

    `timeout` is the deadline in seconds each call gets; the services pass the
    time that remains on to every shard and to the embedder.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, timeout: float = 30.0) -> None:
        self.address = address
        self.timeout = timeout
        # Round robin over every address the name resolves to: in Kubernetes, give
        # the coordinators' headless Service to balance calls over all of them.
        self._channel = grpc.insecure_channel(
            address, options=[*GRPC_OPTIONS, *ROUND_ROBIN_OPTIONS]
        )
        self._stub = shoal_pb2_grpc.ShoalServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: Callable[..., R], request: object) -> R:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # Collections

    def create_collection(
        self,
        name: str,
        dimension: int = 0,
        metric: MetricName = "cosine",
        embedding_model: str = "",
        hnsw_m: int = 0,
        hnsw_ef_construction: int = 0,
        hnsw_ef: int = 0,
        partitions: int = 0,
        keyword: bool | Mapping[str, Any] | None = None,
    ) -> Collection:
        """Create a collection; zeros take the server's defaults.

        With `embedding_model` set, documents and queries may be given as text
        and `dimension` may be left 0 to take the model's.
        `keyword` sets up the keyword (BM25) index of the document texts: None
        or True for the defaults (English, stemming, stop words, k1 1.2, b 0.75),
        False for none, or a dict of `enabled`, `language`, `stemming`,
        `stop_words`, `k1`, `b`.
        """
        if metric not in _METRICS:
            raise InvalidArgument(f"metric {metric!r}: use one of {sorted(_METRICS)}")
        config = common_pb2.CollectionConfig(
            name=name,
            dimension=dimension,
            metric=_METRICS[metric],
            embedding_model=embedding_model,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
            hnsw_ef=hnsw_ef,
            partitions=partitions,
            keyword=_keyword_config(keyword),
        )
        reply = self._call(
            self._stub.CreateCollection, shoal_pb2.CreateCollectionRequest(config=config)
        )
        return _collection(reply.config)

    def get_collection(self, name: str) -> Collection:
        reply = self._call(self._stub.GetCollection, shoal_pb2.GetCollectionRequest(name=name))
        return _collection(reply.config, reply.document_count)

    def list_collections(self) -> list[Collection]:
        reply = self._call(self._stub.ListCollections, shoal_pb2.ListCollectionsRequest())
        return [_collection(config) for config in reply.collections]

    def delete_collection(self, name: str) -> None:
        self._call(self._stub.DeleteCollection, shoal_pb2.DeleteCollectionRequest(name=name))

    # Documents

    def upsert(
        self,
        collection: str,
        documents: Iterable[DocumentLike],
        consistency: Consistency = "quorum",
    ) -> WriteResult:
        """Insert or replace documents (dicts with id, vector, text, metadata)."""
        request = shoal_pb2.UpsertRequest(
            collection=collection,
            documents=[_document_proto(document) for document in documents],
            consistency=_CONSISTENCY[consistency],
        )
        reply = self._call(self._stub.Upsert, request)
        return WriteResult(reply.upserted, reply.replicas_acknowledged, reply.replicas)

    def get(
        self,
        collection: str,
        ids: Sequence[str],
        include: Iterable[Field] = ("metadata", "text", "vector"),
        consistency: Consistency = "one",
    ) -> list[Document]:
        """The documents that exist among `ids`, in the order asked.

        At "quorum" or "all" the coordinator reads that many replicas of each
        shard group, answers with the newest version and repairs stale replicas.
        """
        request = shoal_pb2.GetRequest(
            collection=collection,
            ids=ids,
            include=_include(include),
            consistency=_READ_CONSISTENCY[consistency],
        )
        reply = self._call(self._stub.Get, request)
        return [_document(document) for document in reply.documents]

    def delete(
        self,
        collection: str,
        ids: Sequence[str] = (),
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        consistency: Consistency = "quorum",
    ) -> WriteResult:
        """Delete documents by id, or every document matching a `where` (and/or
        `where_document`) filter."""
        filtered = where is not None or where_document is not None
        if bool(ids) == filtered:
            raise InvalidArgument("give ids or a where filter to delete, not both")
        request = shoal_pb2.DeleteRequest(
            collection=collection,
            ids=ids,
            filter=_filter(where, where_document),
            consistency=_CONSISTENCY[consistency],
        )
        reply = self._call(self._stub.Delete, request)
        return WriteResult(reply.deleted, reply.replicas_acknowledged, reply.replicas)

    def count(
        self, collection: str, where: Where | None = None, where_document: Where | None = None
    ) -> int:
        """Live documents, or those matching `where` and `where_document`."""
        request = shoal_pb2.CountRequest(
            collection=collection, filter=_filter(where, where_document)
        )
        return self._call(self._stub.Count, request).count

    def scroll(
        self,
        collection: str,
        where: Where | None = None,
        *,
        page_size: int = 100,
        include: Iterable[Field] = ("metadata",),
        where_document: Where | None = None,
    ) -> Iterator[Document]:
        """Every document (matching `where` and `where_document`) once, in id order,
        fetched a page at a time."""
        cursor = ""
        while True:
            request = shoal_pb2.ScrollRequest(
                collection=collection,
                filter=_filter(where, where_document),
                page_size=page_size,
                cursor=cursor,
                include=_include(include),
            )
            reply = self._call(self._stub.Scroll, request)
            yield from (_document(document) for document in reply.documents)
            if not reply.next_cursor:
                return
            cursor = reply.next_cursor

    # Search

    def search(
        self,
        collection: str,
        vector: VectorLike | None = None,
        *,
        text: str | None = None,
        k: int = 10,
        ef: int = 0,
        include: Iterable[Field] = ("metadata",),
        where: Where | None = None,
        score_threshold: float | None = None,
        allow_partial: bool = False,
        where_document: Where | None = None,
        mode: SearchModeName = "vector",
        fusion: FusionName = "rrf",
        alpha: float | None = None,
        rrf_k: int = 0,
        candidates: int = 0,
        explain: bool = False,
    ) -> SearchResult:
        """The k best documents for a vector or a text.

        `mode`: "vector" (default) ranks by similarity to the vector, or to the
        text the server embeds; "keyword" ranks the document texts by BM25 with
        the text (scores use the whole cluster's statistics); "hybrid" fuses
        both rankings: `fusion` "rrf" (reciprocal rank, constant `rrf_k`,
        default 60) or "relative" (min-max normalized scores), weighted by
        `alpha` (0: keyword only, 1: vector only, default 0.5), from candidate
        lists `candidates` deep (default 2k + rrf_k). A hybrid text is embedded
        for the vector side unless `vector` is given too.
        `where` keeps only documents whose metadata match (Chroma-style:
        `{"section": "sound"}`, `{"size": {"$gte": 100}}`, `$and`, `$or`, ...),
        `where_document` those whose text matches (`{"$contains": "phrase"}`);
        `score_threshold` drops hits scoring below it (BM25 in keyword mode,
        the fused score in hybrid mode); `explain` sets each hit's `explanation`.
        """
        search_mode, hybrid = _search_mode(mode, fusion, alpha, rrf_k, candidates)
        request = shoal_pb2.SearchRequest(
            collection=collection,
            query=_query(vector, text, mode),
            k=k,
            ef=ef,
            include=_include(include),
            filter=_filter(where, where_document),
            score_threshold=score_threshold,
            allow_partial=allow_partial,
            mode=search_mode,
            hybrid=hybrid,
            explain=explain,
        )
        reply = self._call(self._stub.Search, request)
        return SearchResult([_hit(hit) for hit in reply.hits], _coverage(reply.coverage))

    def search_batch(
        self,
        collection: str,
        vectors: Sequence[VectorLike] | npt.NDArray[np.floating] | None = None,
        *,
        texts: Sequence[str] | None = None,
        k: int = 10,
        ef: int = 0,
        include: Iterable[Field] = ("metadata",),
        where: Where | None = None,
        score_threshold: float | None = None,
        allow_partial: bool = False,
        where_document: Where | None = None,
        mode: SearchModeName = "vector",
        fusion: FusionName = "rrf",
        alpha: float | None = None,
        rrf_k: int = 0,
        candidates: int = 0,
        explain: bool = False,
    ) -> list[SearchResult]:
        """Many searches in one call; result i answers query i (options as in `search`;
        hybrid takes texts, and vectors too when the server cannot embed)."""
        if mode == "hybrid" and texts is not None:
            if vectors is not None and len(vectors) != len(texts):
                raise InvalidArgument(f"{len(texts)} texts but {len(vectors)} vectors")
            queries = [
                _query(None if vectors is None else vectors[i], text, mode)
                for i, text in enumerate(texts)
            ]
        elif vectors is not None and texts is None:
            queries = [shoal_pb2.Query(vector_f32=vector_to_f32(vector)) for vector in vectors]
        elif texts is not None and vectors is None:
            queries = [shoal_pb2.Query(text=text) for text in texts]
        else:
            raise InvalidArgument("give vectors or texts to search with, not both")
        search_mode, hybrid = _search_mode(mode, fusion, alpha, rrf_k, candidates)
        request = shoal_pb2.SearchBatchRequest(
            collection=collection,
            queries=queries,
            k=k,
            ef=ef,
            include=_include(include),
            filter=_filter(where, where_document),
            score_threshold=score_threshold,
            allow_partial=allow_partial,
            mode=search_mode,
            hybrid=hybrid,
            explain=explain,
        )
        reply = self._call(self._stub.SearchBatch, request)
        coverage = _coverage(reply.coverage)
        return [
            SearchResult([_hit(hit) for hit in result.hits], coverage) for result in reply.results
        ]

    def verify_replicas(
        self, collection: str, repair: bool = False
    ) -> shoal_pb2.VerifyReplicasResponse:
        """Compare the replicas of every shard group by partition (and repair them)."""
        request = shoal_pb2.VerifyReplicasRequest(collection=collection, repair=repair)
        return self._call(self._stub.VerifyReplicas, request)

    def cluster_info(self) -> shoal_pb2.GetClusterInfoResponse:
        """Shard groups, replicas, their health and document counts."""
        return self._call(self._stub.GetClusterInfo, shoal_pb2.GetClusterInfoRequest())

    # Topology

    def get_topology(self) -> Topology:
        """The partition -> shard group -> replica map the coordinator routes with."""
        reply = self._call(self._stub.GetTopology, shoal_pb2.GetTopologyRequest())
        return topology_from_proto(reply.topology)

    def update_topology(self, topology: Topology, expected_version: int) -> Topology:
        """Replace the topology (in etcd) with `topology`'s groups and partition map;
        the new one, at version `expected_version + 1`. FailedPrecondition when the
        current version is not `expected_version` (someone changed it first) or the
        cluster runs without etcd.

        Routing follows at once; documents already stored are not moved."""
        request = shoal_pb2.UpdateTopologyRequest(
            expected_version=expected_version, topology=topology_to_proto(topology)
        )
        reply = self._call(self._stub.UpdateTopology, request)
        return topology_from_proto(reply.topology)

    def move_partition(self, partition: int, group: int) -> Topology:
        """Route `partition` (of every collection) to shard group `group` from now
        on: read the topology, change that one entry, store it (see update_topology)."""
        current = self.get_topology()
        moved = {**current.partition_groups, partition: group}
        return self.update_topology(
            Topology(current.version, current.groups, moved), current.version
        )
