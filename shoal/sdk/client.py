"""The Python SDK: `shoal.Client` speaks the public gRPC API with plain values.

Metadata goes in and comes out as Python values, vectors as lists or numpy
arrays, and failures are raised as `shoal.errors` exceptions (NotFound,
InvalidArgument, Unavailable, ...) carrying the server's message.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, TypeVar

import grpc
import numpy as np
import numpy.typing as npt

from shoal import moves as partition_moves
from shoal.errors import InvalidArgument
from shoal.runtime.balancing import ROUND_ROBIN_OPTIONS
from shoal.runtime.proto_values import topology_from_proto, topology_to_proto
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.status import from_rpc_error
from shoal.sdk.requests import (
    CONSISTENCY,
    METRICS,
    READ_CONSISTENCY,
    Consistency,
    Field,
    FusionName,
    MetricName,
    SearchModeName,
    document_to_proto,
    include_to_proto,
    keyword_config,
    query_to_proto,
    search_fields,
)
from shoal.sdk.results import (
    Collection,
    Document,
    DocumentLike,
    SearchResult,
    WriteResult,
    collection_from_proto,
    coverage_from_proto,
    document_from_proto,
    hit_from_proto,
)
from shoal.sdk.where import Where, combined_filter
from shoal.topology import Topology
from shoal.v1 import common_pb2, shoal_pb2, shoal_pb2_grpc
from shoal.vectors import VectorLike, vector_to_f32

DEFAULT_ADDRESS = "127.0.0.1:50051"

R = TypeVar("R")


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
        if metric not in METRICS:
            raise InvalidArgument(f"metric {metric!r}: use one of {sorted(METRICS)}")
        config = common_pb2.CollectionConfig(
            name=name,
            dimension=dimension,
            metric=METRICS[metric],
            embedding_model=embedding_model,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
            hnsw_ef=hnsw_ef,
            partitions=partitions,
            keyword=keyword_config(keyword),
        )
        reply = self._call(
            self._stub.CreateCollection, shoal_pb2.CreateCollectionRequest(config=config)
        )
        return collection_from_proto(reply.config)

    def get_collection(self, name: str) -> Collection:
        reply = self._call(self._stub.GetCollection, shoal_pb2.GetCollectionRequest(name=name))
        return collection_from_proto(reply.config, reply.document_count)

    def list_collections(self) -> list[Collection]:
        reply = self._call(self._stub.ListCollections, shoal_pb2.ListCollectionsRequest())
        return [collection_from_proto(config) for config in reply.collections]

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
            documents=[document_to_proto(document) for document in documents],
            consistency=CONSISTENCY[consistency],
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
            include=include_to_proto(include),
            consistency=READ_CONSISTENCY[consistency],
        )
        reply = self._call(self._stub.Get, request)
        return [document_from_proto(document) for document in reply.documents]

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
            filter=combined_filter(where, where_document),
            consistency=CONSISTENCY[consistency],
        )
        reply = self._call(self._stub.Delete, request)
        return WriteResult(reply.deleted, reply.replicas_acknowledged, reply.replicas)

    def count(
        self, collection: str, where: Where | None = None, where_document: Where | None = None
    ) -> int:
        """Live documents, or those matching `where` and `where_document`."""
        request = shoal_pb2.CountRequest(
            collection=collection, filter=combined_filter(where, where_document)
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
                filter=combined_filter(where, where_document),
                page_size=page_size,
                cursor=cursor,
                include=include_to_proto(include),
            )
            reply = self._call(self._stub.Scroll, request)
            yield from (document_from_proto(document) for document in reply.documents)
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
        fields = search_fields(
            k, ef, include, where, where_document, score_threshold, allow_partial,
            mode, fusion, alpha, rrf_k, candidates, explain,
        )  # fmt: skip
        request = shoal_pb2.SearchRequest(
            collection=collection, query=query_to_proto(vector, text, mode), **fields
        )
        reply = self._call(self._stub.Search, request)
        return SearchResult(
            [hit_from_proto(hit) for hit in reply.hits], coverage_from_proto(reply.coverage)
        )

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
                query_to_proto(None if vectors is None else vectors[i], text, mode)
                for i, text in enumerate(texts)
            ]
        elif vectors is not None and texts is None:
            queries = [shoal_pb2.Query(vector_f32=vector_to_f32(vector)) for vector in vectors]
        elif texts is not None and vectors is None:
            queries = [shoal_pb2.Query(text=text) for text in texts]
        else:
            raise InvalidArgument("give vectors or texts to search with, not both")
        fields = search_fields(
            k, ef, include, where, where_document, score_threshold, allow_partial,
            mode, fusion, alpha, rrf_k, candidates, explain,
        )  # fmt: skip
        request = shoal_pb2.SearchBatchRequest(collection=collection, queries=queries, **fields)
        reply = self._call(self._stub.SearchBatch, request)
        coverage = coverage_from_proto(reply.coverage)
        return [
            SearchResult([hit_from_proto(hit) for hit in result.hits], coverage)
            for result in reply.results
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
        return self.update_topology(replace(current, partition_groups=moved), current.version)

    # Growing and shrinking: partition moves that copy the data

    def partition_count(self) -> int:
        """The most partitions any collection has: the partitions a plan spreads."""
        return max((c.partitions for c in self.list_collections()), default=0)

    def add_group(self, replicas: Sequence[str]) -> Topology:
        """Add an empty shard group of `replicas` (HOST:PORT, started already); every
        partition stays where it is until a rebalance moves some onto it."""
        current = self.get_topology()
        added = partition_moves.with_group_added(current, list(replicas), self.partition_count())
        return self.update_topology(added, current.version)

    def remove_group(self, group: int) -> Topology:
        """Take a drained shard group (it owns no partition) out of the topology;
        the groups after it move down one place."""
        current = self.get_topology()
        removed = partition_moves.with_group_removed(current, group, self.partition_count())
        return self.update_topology(removed, current.version)

    def add_replica(self, group: int, address: str) -> Topology:
        """One more replica for `group`; start its process (empty data dir) after:
        it catches up from its peers before it serves reads."""
        current = self.get_topology()
        changed = partition_moves.with_replica_added(current, group, address)
        return self.update_topology(changed, current.version)

    def replace_replica(self, old: str, new: str) -> Topology:
        """`new` in `old`'s place; start `new` (empty data dir) after, stop `old`."""
        current = self.get_topology()
        changed = partition_moves.with_replica_replaced(current, old, new)
        return self.update_topology(changed, current.version)

    def remove_replica(self, address: str) -> Topology:
        current = self.get_topology()
        changed = partition_moves.with_replica_removed(current, address)
        return self.update_topology(changed, current.version)

    def plan_rebalance(self, drain: Sequence[int] = ()) -> list[partition_moves.PlannedMove]:
        """The moves that even out the partitions over the groups (emptying `drain`)."""
        return partition_moves.plan_rebalance(self.get_topology(), self.partition_count(), drain)

    def start_moves(
        self, planned: Sequence[partition_moves.PlannedMove]
    ) -> list[shoal_pb2.PartitionMoveStatus]:
        """Start partition moves (run one after another by a coordinator); their status."""
        request = shoal_pb2.StartMovesRequest(
            moves=[
                shoal_pb2.PartitionMove(partition=m.partition, source=m.source, target=m.target)
                for m in planned
            ]
        )
        return list(self._call(self._stub.StartMoves, request).moves)

    def rebalance(self, drain: Sequence[int] = ()) -> list[shoal_pb2.PartitionMoveStatus]:
        """Plan and start the moves that even out the groups; [] when even already."""
        planned = self.plan_rebalance(drain)
        return self.start_moves(planned) if planned else []

    def moves(self, forget_finished: bool = False) -> list[shoal_pb2.PartitionMoveStatus]:
        """Every partition move the cluster knows, with its phase and progress."""
        request = shoal_pb2.ListMovesRequest(forget_finished=forget_finished)
        return list(self._call(self._stub.ListMoves, request).moves)

    def cancel_moves(self) -> list[shoal_pb2.PartitionMoveStatus]:
        """Stop the unfinished moves: those before their switch roll back, the others
        finish."""
        return list(self._call(self._stub.CancelMoves, shoal_pb2.CancelMovesRequest()).moves)
