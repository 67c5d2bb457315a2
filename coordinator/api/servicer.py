"""ShoalService over gRPC: parse the request, call the core, build the reply.

Domain errors raised by the core become gRPC statuses in shoal.runtime.status's error
mapping, so nothing here deals with status codes. Each call's deadline is
the caller's, or a default when the caller set none.
"""

import contextlib
from typing import Any

import grpc.aio

from coordinator.api import packed_public, public_messages, request_limits
from coordinator.api.move_messages import check_moves, move_to_proto
from coordinator.api.packed_replies import add_packed_results
from coordinator.api.snapshot_handlers import SnapshotHandlers
from coordinator.core.coordinator import Coordinator
from coordinator.core.deadline import Deadline
from coordinator.core.move_runner import MoveRunner
from coordinator.core.packed import PackedBatch
from coordinator.core.snapshots import SnapshotService
from coordinator.core.updates import MetadataChange
from coordinator.proto_config import include_from_proto
from shoal.errors import FailedPrecondition, InvalidArgument, ShoalError
from shoal.limits import RequestLimits
from shoal.runtime.proto_values import config_to_proto, topology_from_proto, topology_to_proto
from shoal.v1 import shoal_pb2, shoal_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_WRITE_TIMEOUT_S = 10.0
#: VerifyReplicas without a caller deadline: it reads every replica's versions.
VERIFY_TIMEOUT_S = 300.0


class ShoalServicer(SnapshotHandlers, shoal_pb2_grpc.ShoalServiceServicer):
    def __init__(
        self,
        core: Coordinator,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
        limits: RequestLimits | None = None,
        snapshots: SnapshotService | None = None,
    ) -> None:
        self._core = core
        self._limits = limits or RequestLimits()
        self._snapshots = snapshots
        self._read_timeout_s = read_timeout_s
        self._write_timeout_s = write_timeout_s

    def _read_deadline(self, context: Context) -> Deadline:
        return Deadline.from_remaining(context.time_remaining(), self._read_timeout_s)

    def _write_deadline(self, context: Context) -> Deadline:
        return Deadline.from_remaining(context.time_remaining(), self._write_timeout_s)

    # Collections

    async def CreateCollection(
        self, request: shoal_pb2.CreateCollectionRequest, context: Context
    ) -> shoal_pb2.CreateCollectionResponse:
        config = public_messages.create_config_from_proto(request.config)
        result = await self._core.catalog.create(config, self._write_deadline(context))
        return shoal_pb2.CreateCollectionResponse(
            config=config_to_proto(result.config), created=result.created
        )

    async def GetCollection(
        self, request: shoal_pb2.GetCollectionRequest, context: Context
    ) -> shoal_pb2.GetCollectionResponse:
        stats = await self._core.catalog.get(request.name, self._read_deadline(context))
        return shoal_pb2.GetCollectionResponse(
            config=config_to_proto(stats.config),
            document_count=stats.document_count,
            chunk_count=stats.chunk_count,
        )

    async def ListCollections(
        self, request: shoal_pb2.ListCollectionsRequest, context: Context
    ) -> shoal_pb2.ListCollectionsResponse:
        configs = await self._core.catalog.list_all(self._read_deadline(context))
        return shoal_pb2.ListCollectionsResponse(
            collections=[config_to_proto(config) for config in configs]
        )

    async def DeleteCollection(
        self, request: shoal_pb2.DeleteCollectionRequest, context: Context
    ) -> shoal_pb2.DeleteCollectionResponse:
        await self._core.catalog.delete(request.name, self._write_deadline(context))
        return shoal_pb2.DeleteCollectionResponse()

    # Documents

    async def Upsert(
        self, request: shoal_pb2.UpsertRequest, context: Context
    ) -> shoal_pb2.UpsertResponse:
        request_limits.check_documents(self._limits, request.documents)
        result = await self._core.writer.upsert(
            request.collection,
            public_messages.documents_from_proto(request.documents),
            public_messages.consistency_from_proto(request.consistency),
            self._write_deadline(context),
        )
        return shoal_pb2.UpsertResponse(
            upserted=result.written,
            replicas_acknowledged=result.acknowledged,
            replicas=result.replicas,
        )

    async def Delete(
        self, request: shoal_pb2.DeleteRequest, context: Context
    ) -> shoal_pb2.DeleteResponse:
        result = await self._core.writer.delete(
            request.collection,
            list(request.ids),
            public_messages.consistency_from_proto(request.consistency),
            self._write_deadline(context),
            filter=request_limits.check_delete(request),
        )
        return shoal_pb2.DeleteResponse(
            deleted=result.deleted,
            replicas_acknowledged=result.acknowledged,
            replicas=result.replicas,
        )

    async def Update(
        self, request: shoal_pb2.UpdateRequest, context: Context
    ) -> shoal_pb2.UpdateResponse:
        result = await self._core.updater.update(
            request.collection,
            list(request.ids),
            request_limits.check_update(request),
            MetadataChange(
                set_metadata=request.set_metadata,
                remove_metadata=list(request.remove_metadata),
                text=request.text if request.HasField("text") else None,
            ),
            public_messages.consistency_from_proto(request.consistency),
            self._write_deadline(context),
        )
        return shoal_pb2.UpdateResponse(
            updated=result.applied,
            replicas_acknowledged=result.acknowledged,
            replicas=result.replicas,
        )

    async def Get(self, request: shoal_pb2.GetRequest, context: Context) -> shoal_pb2.GetResponse:
        include = include_from_proto(request.include)
        deadline = self._read_deadline(context)
        dimension = await self._dimension_if_vectors(request, deadline)
        request_limits.check_get(self._limits, request, dimension)
        found = await self._core.reader.get(
            request.collection,
            list(request.ids),
            include,
            request.allow_partial,
            deadline,
            public_messages.read_consistency_from_proto(request.consistency),
        )
        return shoal_pb2.GetResponse(
            documents=public_messages.documents_to_proto(found.documents, include),
            coverage=public_messages.coverage_to_proto(found.coverage),
        )

    async def Count(
        self, request: shoal_pb2.CountRequest, context: Context
    ) -> shoal_pb2.CountResponse:
        result = await self._core.reader.count(
            request.collection,
            request.allow_partial,
            self._read_deadline(context),
            filter=public_messages.filter_from_proto(request),
        )
        return shoal_pb2.CountResponse(
            count=result.count, coverage=public_messages.coverage_to_proto(result.coverage)
        )

    async def Scroll(
        self, request: shoal_pb2.ScrollRequest, context: Context
    ) -> shoal_pb2.ScrollResponse:
        deadline = self._read_deadline(context)
        dimension = await self._dimension_if_vectors(request, deadline)
        request_limits.check_scroll(self._limits, request, dimension)
        page = await self._core.reader.scroll(
            request.collection,
            public_messages.filter_from_proto(request),
            request.page_size,
            request.cursor,
            include_from_proto(request.include),
            request.allow_partial,
            deadline,
        )
        return shoal_pb2.ScrollResponse(
            documents=public_messages.documents_to_proto(page.documents),
            next_cursor=page.cursor,
            coverage=public_messages.coverage_to_proto(page.coverage),
        )

    # Search

    async def Search(
        self, request: shoal_pb2.SearchRequest, context: Context
    ) -> shoal_pb2.SearchResponse:
        deadline = self._read_deadline(context)
        request_limits.check_queries(self._limits, [request.query])
        dimension = await self._dimension_if_vectors(request, deadline)
        request_limits.check_search(self._limits, request, 1, dimension)
        results = await self._core.reader.search(
            request.collection,
            [public_messages.query_from_proto(request.query, "query")],
            public_messages.search_options(request),
            deadline,
        )
        response = shoal_pb2.SearchResponse(
            coverage=public_messages.coverage_to_proto(results.coverage)
        )
        packed = packed_public.packed_hits(request, results.results)
        if packed is not None:
            response.packed.CopyFrom(packed)
            return response
        public_messages.add_hits(
            response, results.results[0], keep_metadata=request.include.metadata
        )
        return response

    async def SearchBatch(
        self, request: shoal_pb2.SearchBatchRequest, context: Context
    ) -> shoal_pb2.SearchBatchResponse:
        deadline = self._read_deadline(context)
        request_limits.check_queries(self._limits, request.queries)
        queries = public_messages.batch_queries(request)
        dimension = await self._dimension_if_vectors(request, deadline)
        request_limits.check_search(self._limits, request, len(queries), dimension)
        results = await self._core.reader.search(
            request.collection,
            queries,
            public_messages.search_options(request),
            deadline,
        )
        response = shoal_pb2.SearchBatchResponse(
            coverage=public_messages.coverage_to_proto(results.coverage)
        )
        packed = packed_public.packed_hits(request, results.results)
        if packed is not None:
            response.packed.CopyFrom(packed)
            return response
        if isinstance(results.results, PackedBatch):
            add_packed_results(response, results.results)
            return response
        add = response.results.add
        for result in results.results:
            public_messages.add_hits(add(), result, keep_metadata=request.include.metadata)
        return response

    async def _dimension_if_vectors(
        self,
        request: shoal_pb2.SearchRequest
        | shoal_pb2.SearchBatchRequest
        | shoal_pb2.GetRequest
        | shoal_pb2.ScrollRequest,
        deadline: Deadline,
    ) -> int:
        """The collection's dimension when the reply is to carry vectors (its size
        depends on it); a cached settings lookup, no call to any shard."""
        if not request.include.vector:
            return 0
        return (await self._core.catalog.config(request.collection, deadline)).dimension

    # Cluster

    async def GetClusterInfo(
        self, request: shoal_pb2.GetClusterInfoRequest, context: Context
    ) -> shoal_pb2.GetClusterInfoResponse:
        info = await self._core.inspector.describe(self._read_deadline(context))
        reply = public_messages.cluster_info_to_proto(info)
        if self._core.moves is not None:
            with contextlib.suppress(ShoalError):  # etcd away: the rest still answers
                records = await self._core.moves.store.list()
                reply.moves.extend(move_to_proto(r) for r in records if not r.finished)
        return reply

    async def VerifyReplicas(
        self, request: shoal_pb2.VerifyReplicasRequest, context: Context
    ) -> shoal_pb2.VerifyReplicasResponse:
        # A verify scans whole replicas and may repair: it gets the longer default.
        deadline = Deadline.from_remaining(
            context.time_remaining(), max(self._read_timeout_s, VERIFY_TIMEOUT_S)
        )
        report = await self._core.verifier.verify(request.collection, request.repair, deadline)
        return public_messages.verify_report_to_proto(report)

    # Topology

    async def GetTopology(
        self, request: shoal_pb2.GetTopologyRequest, context: Context
    ) -> shoal_pb2.GetTopologyResponse:
        return shoal_pb2.GetTopologyResponse(
            topology=topology_to_proto(self._core.routing.topology)
        )

    async def UpdateTopology(
        self, request: shoal_pb2.UpdateTopologyRequest, context: Context
    ) -> shoal_pb2.UpdateTopologyResponse:
        if not request.HasField("topology"):
            raise InvalidArgument("give the new topology (its groups and partition_groups)")
        topology = topology_from_proto(request.topology)
        updated = await self._core.routing.update(request.expected_version, topology)
        return shoal_pb2.UpdateTopologyResponse(topology=topology_to_proto(updated))

    # Partition moves

    def _moves(self) -> MoveRunner:
        if self._core.moves is None:
            raise FailedPrecondition(
                "this coordinator runs without etcd (--etcd): partition moves keep their"
                " state in etcd"
            )
        return self._core.moves

    async def StartMoves(
        self, request: shoal_pb2.StartMovesRequest, context: Context
    ) -> shoal_pb2.StartMovesResponse:
        moves = check_moves(self._core.routing.topology, request.moves)
        records = await self._moves().submit(moves)
        return shoal_pb2.StartMovesResponse(moves=[move_to_proto(r) for r in records])

    async def ListMoves(
        self, request: shoal_pb2.ListMovesRequest, context: Context
    ) -> shoal_pb2.ListMovesResponse:
        store = self._moves().store
        records = await store.list()
        if request.forget_finished:
            await store.delete_finished()
        return shoal_pb2.ListMovesResponse(moves=[move_to_proto(r) for r in records])

    async def CancelMoves(
        self, request: shoal_pb2.CancelMovesRequest, context: Context
    ) -> shoal_pb2.CancelMovesResponse:
        records = await self._moves().cancel()
        return shoal_pb2.CancelMovesResponse(moves=[move_to_proto(r) for r in records])
