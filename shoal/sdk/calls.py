"""Every call the SDK makes, as a value: the RPC, its request, how to read its reply.

`Client` and `AsyncClient` differ only in how they send a `Call` (blocking, or
awaited on grpc.aio); what goes into a request, which names are allowed and
what comes back are decided here once, so both clients take the same arguments,
raise the same errors and return the same results.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from shoal.errors import FailedPrecondition, InvalidArgument
from shoal.moves import PlannedMove
from shoal.runtime.proto_values import metadata_to_proto, topology_from_proto, topology_to_proto
from shoal.sdk.columnar import Documents, SearchResult
from shoal.sdk.requests import (
    CONSISTENCY,
    METRICS,
    READ_CONSISTENCY,
    Consistency,
    Field,
    MetricName,
    SearchModeName,
    chunking_config,
    document_to_proto,
    include_to_proto,
    keyword_config,
    query_to_proto,
)
from shoal.sdk.results import (
    Collection,
    DocumentLike,
    WriteResult,
    collection_from_proto,
)
from shoal.sdk.where import Where, combined_filter
from shoal.topology import Topology
from shoal.v1 import common_pb2, shoal_pb2
from shoal.vectors import VectorLike, vector_to_f32

R = TypeVar("R")

#: How many queries `search_batch` sends per call by default: the server's limit
#: (shoal.limits.MAX_BATCH_QUERIES), so a set it accepts in one call still takes one.
DEFAULT_BATCH_SIZE = 1_000
#: How many of those calls `search_batch` keeps in flight by default: one
#: answering while the next is on its way is most of what pipelining gains.
DEFAULT_IN_FLIGHT = 2


@dataclass(frozen=True)
class Call(Generic[R]):
    """One unary call: the stub's method name, the request, and the reply's reading."""

    method: str
    request: Any
    decode: Callable[[Any], R]


def _same(reply: R) -> R:
    return reply


# Collections


def create_collection(
    name: str,
    dimension: int,
    metric: MetricName,
    embedding_model: str,
    hnsw_m: int,
    hnsw_ef_construction: int,
    hnsw_ef: int,
    partitions: int,
    keyword: bool | Mapping[str, Any] | None,
    chunking: bool | Mapping[str, int] | None = None,
) -> Call[Collection]:
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
        chunking=chunking_config(chunking),
    )
    return Call(
        "CreateCollection",
        shoal_pb2.CreateCollectionRequest(config=config),
        lambda reply: collection_from_proto(reply.config),
    )


def get_collection(name: str) -> Call[Collection]:
    return Call(
        "GetCollection",
        shoal_pb2.GetCollectionRequest(name=name),
        lambda reply: collection_from_proto(reply.config, reply.document_count, reply.chunk_count),
    )


def list_collections() -> Call[list[Collection]]:
    return Call(
        "ListCollections",
        shoal_pb2.ListCollectionsRequest(),
        lambda reply: [collection_from_proto(config) for config in reply.collections],
    )


def delete_collection(name: str) -> Call[None]:
    return Call("DeleteCollection", shoal_pb2.DeleteCollectionRequest(name=name), lambda _: None)


# Documents


def _write_result(reply: Any, count: int) -> WriteResult:
    return WriteResult(count, reply.replicas_acknowledged, reply.replicas)


def upsert(
    collection: str, documents: Iterable[DocumentLike], consistency: Consistency
) -> Call[WriteResult]:
    request = shoal_pb2.UpsertRequest(
        collection=collection,
        documents=[document_to_proto(document) for document in documents],
        consistency=CONSISTENCY[consistency],
    )
    return Call("Upsert", request, lambda reply: _write_result(reply, reply.upserted))


def get(
    collection: str, ids: Sequence[str], include: Iterable[Field], consistency: Consistency
) -> Call[Documents]:
    request = shoal_pb2.GetRequest(
        collection=collection,
        ids=ids,
        include=include_to_proto(include),
        consistency=READ_CONSISTENCY[consistency],
    )
    return Call("Get", request, lambda reply: Documents(reply.documents))


def _filter_of_write(
    verb: str,
    ids: Sequence[str],
    where: Where | None,
    where_document: Where | None,
    every: bool,
) -> common_pb2.Filter | None:
    """The filter of a write by ids or by filter, once it is sure exactly one was given
    (or `every`, the `delete_all` / `update_all` flag, and no ids): a call with both,
    or neither, would otherwise reach the service ambiguous."""
    if every:
        if ids:
            raise InvalidArgument(f"{verb}_all {verb}s every document: give it without ids")
    elif bool(ids) == (where is not None or where_document is not None):
        raise InvalidArgument(
            f"give ids or a where filter to {verb}, not both (or {verb}_all=True for all)"
        )
    return combined_filter(where, where_document)


def delete(
    collection: str,
    ids: Sequence[str],
    where: Where | None,
    where_document: Where | None,
    consistency: Consistency,
    delete_all: bool = False,
) -> Call[WriteResult]:
    request = shoal_pb2.DeleteRequest(
        collection=collection,
        ids=ids,
        filter=_filter_of_write("delete", ids, where, where_document, delete_all),
        consistency=CONSISTENCY[consistency],
        delete_all=delete_all,
    )
    return Call("Delete", request, lambda reply: _write_result(reply, reply.deleted))


def update(
    collection: str,
    ids: Sequence[str],
    where: Where | None,
    where_document: Where | None,
    set_metadata: Mapping[str, Any] | None,
    remove_metadata: Sequence[str],
    text: str | None,
    consistency: Consistency,
    update_all: bool = False,
) -> Call[WriteResult]:
    request = shoal_pb2.UpdateRequest(
        collection=collection,
        ids=ids,
        filter=_filter_of_write("update", ids, where, where_document, update_all),
        set_metadata=metadata_to_proto(set_metadata or {}),
        remove_metadata=remove_metadata,
        text=text,
        consistency=CONSISTENCY[consistency],
        update_all=update_all,
    )
    return Call("Update", request, lambda reply: _write_result(reply, reply.updated))


def count(collection: str, where: Where | None, where_document: Where | None) -> Call[int]:
    request = shoal_pb2.CountRequest(
        collection=collection, filter=combined_filter(where, where_document)
    )
    return Call("Count", request, lambda reply: int(reply.count))


@dataclass(frozen=True)
class Page:
    documents: Documents
    next_cursor: str  # empty: the last page


def scroll_page(
    collection: str,
    where: Where | None,
    page_size: int,
    include: Iterable[Field],
    where_document: Where | None,
    cursor: str,
) -> Call[Page]:
    request = shoal_pb2.ScrollRequest(
        collection=collection,
        filter=combined_filter(where, where_document),
        page_size=page_size,
        cursor=cursor,
        include=include_to_proto(include),
    )
    return Call(
        "Scroll", request, lambda reply: Page(Documents(reply.documents), reply.next_cursor)
    )


# Search


def search(
    collection: str,
    vector: VectorLike | None,
    text: str | None,
    mode: SearchModeName,
    fields: dict[str, Any],
    like: str | None = None,
    group_by: str = "",
    group_size: int = 1,
) -> Call[SearchResult]:
    if like is not None:
        if vector is not None or text is not None:
            raise InvalidArgument("give a vector, a text or `like`, one of them")
        query = shoal_pb2.Query(like_id=like)
    else:
        query = query_to_proto(vector, text, mode)
    request = shoal_pb2.SearchRequest(
        collection=collection,
        query=query,
        group_by=group_by,
        group_size=group_size if group_by else 0,
        **fields,
    )
    return Call("Search", request, SearchResult.from_reply)


def _queries(
    vectors: Sequence[VectorLike] | npt.NDArray[np.floating] | None,
    texts: Sequence[str] | None,
    mode: SearchModeName,
) -> list[shoal_pb2.Query]:
    if mode == "hybrid" and texts is not None:
        if vectors is not None and len(vectors) != len(texts):
            raise InvalidArgument(f"{len(texts)} texts but {len(vectors)} vectors")
        return [
            query_to_proto(None if vectors is None else vectors[i], text, mode)
            for i, text in enumerate(texts)
        ]
    if vectors is not None and texts is None:
        return [shoal_pb2.Query(vector_f32=vector_to_f32(vector)) for vector in vectors]
    if texts is not None and vectors is None:
        return [shoal_pb2.Query(text=text) for text in texts]
    raise InvalidArgument("give vectors or texts to search with, not both")


def search_batches(
    collection: str,
    vectors: Sequence[VectorLike] | npt.NDArray[np.floating] | None,
    texts: Sequence[str] | None,
    mode: SearchModeName,
    fields: dict[str, Any],
    batch_size: int,
    in_flight: int,
    group_by: str = "",
    group_size: int = 1,
) -> list[Call[shoal_pb2.SearchBatchResponse]]:
    """The SearchBatch calls for a query set, `batch_size` queries each, in order
    (one call, as before, for a set of up to `batch_size`, even an empty one)."""
    if batch_size < 1 or in_flight < 1:
        raise InvalidArgument(
            f"batch_size {batch_size} and in_flight {in_flight}: both must be at least 1"
        )
    options = shoal_pb2.SearchBatchRequest(
        collection=collection, group_by=group_by, group_size=group_size if group_by else 0, **fields
    )
    matrix = _query_matrix(vectors) if texts is None else None
    if matrix is None or not len(matrix):
        queries = _queries(vectors, texts, mode)
        starts = range(0, len(queries), batch_size) if queries else range(1)
        return [
            Call(
                "SearchBatch", _batch_request(options, queries=queries[at : at + batch_size]), _same
            )
            for at in starts
        ]
    return [
        Call(
            "SearchBatch",
            _batch_request(options, queries_f32=rows.tobytes(), dimension=rows.shape[1]),
            _answering(len(rows)),
        )
        for rows in (matrix[at : at + batch_size] for at in range(0, len(matrix), batch_size))
    ]


def _query_matrix(
    vectors: Sequence[VectorLike] | npt.NDArray[np.floating] | None,
) -> npt.NDArray[np.float32] | None:
    """The query vectors as one (queries, dimension) little-endian float32 matrix,
    sent as SearchBatchRequest.queries_f32; None when they do not make one (the
    server then names the query at fault)."""
    if vectors is None:
        return None
    try:
        matrix = np.ascontiguousarray(vectors, dtype="<f4")
    except (TypeError, ValueError):  # rows of different lengths, or not numbers
        return None
    return matrix if matrix.ndim == 2 and matrix.shape[1] else None


def _batch_request(
    options: shoal_pb2.SearchBatchRequest, **queries: Any
) -> shoal_pb2.SearchBatchRequest:
    request = shoal_pb2.SearchBatchRequest(**queries)
    request.MergeFrom(options)
    return request


def _answering(
    queries: int,
) -> Callable[[shoal_pb2.SearchBatchResponse], shoal_pb2.SearchBatchResponse]:
    """A reply's check that it answers all `queries` rows of a query matrix: a
    coordinator older than `queries_f32` reads none of them and answers nothing."""

    def checked(reply: shoal_pb2.SearchBatchResponse) -> shoal_pb2.SearchBatchResponse:
        answered = len(reply.packed.counts) if reply.HasField("packed") else len(reply.results)
        if answered != queries:
            raise FailedPrecondition(
                f"the coordinator answered {answered} of {queries} queries: it predates"
                " query matrices (SearchBatchRequest.queries_f32); upgrade it"
            )
        return reply

    return checked


# Cluster and topology


def verify_replicas(collection: str, repair: bool) -> Call[shoal_pb2.VerifyReplicasResponse]:
    request = shoal_pb2.VerifyReplicasRequest(collection=collection, repair=repair)
    return Call("VerifyReplicas", request, _same)


def cluster_info() -> Call[shoal_pb2.GetClusterInfoResponse]:
    return Call("GetClusterInfo", shoal_pb2.GetClusterInfoRequest(), _same)


def get_topology() -> Call[Topology]:
    return Call(
        "GetTopology",
        shoal_pb2.GetTopologyRequest(),
        lambda reply: topology_from_proto(reply.topology),
    )


def update_topology(topology: Topology, expected_version: int) -> Call[Topology]:
    request = shoal_pb2.UpdateTopologyRequest(
        expected_version=expected_version, topology=topology_to_proto(topology)
    )
    return Call("UpdateTopology", request, lambda reply: topology_from_proto(reply.topology))


def moved(current: Topology, partition: int, group: int) -> Topology:
    """`current` with `partition` routed to `group`."""
    return replace(current, partition_groups={**current.partition_groups, partition: group})


# Partition moves


def start_moves(planned: Sequence[PlannedMove]) -> Call[list[shoal_pb2.PartitionMoveStatus]]:
    request = shoal_pb2.StartMovesRequest(
        moves=[
            shoal_pb2.PartitionMove(partition=m.partition, source=m.source, target=m.target)
            for m in planned
        ]
    )
    return Call("StartMoves", request, lambda reply: list(reply.moves))


def list_moves(forget_finished: bool) -> Call[list[shoal_pb2.PartitionMoveStatus]]:
    request = shoal_pb2.ListMovesRequest(forget_finished=forget_finished)
    return Call("ListMoves", request, lambda reply: list(reply.moves))


def cancel_moves() -> Call[list[shoal_pb2.PartitionMoveStatus]]:
    return Call("CancelMoves", shoal_pb2.CancelMovesRequest(), lambda reply: list(reply.moves))
