"""ShardService: parse the request, call the core in the thread pool, build the reply.

Each handler runs whole (conversion included) on the sized executor, because
hnswlib and RocksDB calls block and large requests make conversion costly too;
the event loop only moves bytes. The exception is a small plain search, which
costs less than the hop to the pool: it runs on the event loop when the index
is free (`INLINE_MAX_QUERIES`, `INLINE_MAX_EF`). Writes to one collection
queue here, on the event loop, rather than in the pool: the core runs them one
at a time anyway, and queued writers holding pool threads would starve
searches. Domain errors
raised here become gRPC statuses in shoal.runtime.status's error mapping.

Until its first catch-up with its peers is over (see `anti_entropy`), the shard
answers reads (Get, Search, Count, Scroll) with UNAVAILABLE, so the coordinator
asks another replica; writes and the replication calls (Digest, ListVersions,
Fetch) are served throughout.
"""

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any, TypeVar

import grpc.aio

from shard import proto_config, proto_records
from shard.api import proto_reads, proto_replication
from shard.api.packed_hits import columns_response, fill_packed, packed_response
from shard.api.proto_filters import filter_from_proto
from shard.api.snapshot_handlers import SnapshotHandlers
from shard.api.write_limits import check_writes
from shard.core.anti_entropy import Readiness
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.gate import WouldBlock
from shard.core.ownership import PartitionOwnership
from shard.core.tombstones import TombstoneGrace
from shoal.errors import NotFound
from shoal.keyword import MAX_VOCABULARY_LISTED
from shoal.limits import RequestLimits
from shoal.runtime.health import ServerHealth
from shoal.runtime.logs import with_request_context
from shoal.runtime.proto_values import config_to_proto
from shoal.v1 import shard_pb2, shard_pb2_grpc
from shoal.version_horizon import VersionHorizon

#: The service's full name, also its name in health checks.
SERVICE = shard_pb2.DESCRIPTOR.services_by_name["ShardService"].full_name

R = TypeVar("R")
Context = grpc.aio.ServicerContext[Any, Any]

#: Searches this small (unfiltered, asking for no stored fields) run on the event
#: loop: tens to hundreds of µs in hnswlib, less than a hop to the pool and back.
INLINE_MAX_QUERIES = 4
INLINE_MAX_EF = 256


class ShardServicer(SnapshotHandlers, shard_pb2_grpc.ShardServiceServicer):
    def __init__(
        self,
        collections: Collections,
        executor: Executor,
        readiness: Readiness | None = None,
        grace: TombstoneGrace | None = None,
        health: ServerHealth | None = None,
        ownership: PartitionOwnership | None = None,
        horizon: VersionHorizon | None = None,
        limits: RequestLimits | None = None,
    ) -> None:
        self._collections = collections
        self._limits = limits or RequestLimits()
        self._horizon = horizon or VersionHorizon()
        self._health = health
        self._ownership = ownership
        self._executor = executor
        self._write_queues: dict[str, asyncio.Lock] = {}
        self._readiness = readiness if readiness is not None else Readiness(ready=True)
        self._grace = grace or TombstoneGrace()

    async def _run(self, work: Callable[[], R]) -> R:
        # In the caller's context, so log lines in the pool keep the request id.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, with_request_context(work))

    async def CreateCollection(
        self, request: shard_pb2.ShardCreateCollectionRequest, context: Context
    ) -> shard_pb2.ShardCreateCollectionResponse:
        return await self._run(lambda: self._create(request))

    def _create(
        self, request: shard_pb2.ShardCreateCollectionRequest
    ) -> shard_pb2.ShardCreateCollectionResponse:
        config = proto_config.config_from_proto(request.config, request.incarnation)
        config, created = self._collections.create(config)
        return shard_pb2.ShardCreateCollectionResponse(
            config=config_to_proto(config), created=created
        )

    async def DeleteCollection(
        self, request: shard_pb2.ShardDeleteCollectionRequest, context: Context
    ) -> shard_pb2.ShardDeleteCollectionResponse:
        deleted = await self._run(
            lambda: self._collections.delete(request.name, request.incarnation)
        )
        self._write_queues.pop(request.name, None)
        await self.report_failed()
        return shard_pb2.ShardDeleteCollectionResponse(deleted=deleted)

    async def report_failed(self) -> None:
        """Health says which collections could not be loaded (shoal.runtime.health)."""
        if self._health is not None:
            await self._health.report_failed(SERVICE, self._collections.failed())

    async def ListCollections(
        self, request: shard_pb2.ShardListCollectionsRequest, context: Context
    ) -> shard_pb2.ShardListCollectionsResponse:
        skip = list(request.skip_partitions)
        if skip:
            listed, chunks = await self._run(lambda: self._counts_without(skip))
        else:
            listed = await self._run(self._collections.list_collections)
            chunks = self._collections.chunk_counts()
        return shard_pb2.ShardListCollectionsResponse(
            collections=[
                shard_pb2.ShardCollection(
                    config=config_to_proto(config),
                    document_count=count,
                    incarnation=config.incarnation,
                    chunk_count=chunks.get(config.name, count),
                )
                for config, count in listed
            ],
            failed=[
                shard_pb2.ShardFailedCollection(name=name, reason=reason)
                for name, reason in sorted(self._collections.failed().items())
            ],
        )

    def _counts_without(
        self, skip: list[int]
    ) -> tuple[list[tuple[CollectionConfig, int]], dict[str, int]]:
        """`list_collections` and `chunk_counts`, the partitions `skip` left out."""
        listed: list[tuple[CollectionConfig, int]] = []
        chunks: dict[str, int] = {}
        for config, _ in self._collections.list_collections():
            try:
                collection = self._collections.get(config.name)
                listed.append((config, collection.count(None, skip)))
                chunks[config.name] = collection.chunk_count(skip)
            except NotFound:
                continue  # deleted while listing
        return listed, chunks

    async def Write(
        self, request: shard_pb2.ShardWriteRequest, context: Context
    ) -> shard_pb2.ShardWriteResponse:
        # Versions far in the future would pin documents forever: refused first.
        self._horizon.check((write.id, write.version) for write in request.writes)
        # The coordinator's size limits again, behind mTLS: before any lookup or copy.
        check_writes(self._limits, request.writes)
        # A dict lookup: unknown names and other incarnations fail here.
        collection = self._collections.get(request.collection, request.incarnation)
        if self._ownership is not None:
            # Routed with an old topology, for a partition that has moved: refused
            # before anything is stored (cheap unless the version is old).
            self._ownership.check(
                request.collection,
                collection.config.partitions,
                (write.id for write in request.writes),
                request.topology_version,
            )
        queue = self._write_queues.setdefault(request.collection, asyncio.Lock())
        async with queue:
            return await self._run(lambda: self._write(request))

    def _write(self, request: shard_pb2.ShardWriteRequest) -> shard_pb2.ShardWriteResponse:
        collection = self._collections.get(request.collection, request.incarnation)
        result = collection.write(
            [proto_records.write_from_proto(write) for write in request.writes]
        )
        return shard_pb2.ShardWriteResponse(applied=result.applied, deleted=result.deleted)

    async def Get(
        self, request: shard_pb2.ShardGetRequest, context: Context
    ) -> shard_pb2.ShardGetResponse:
        self._readiness.require()
        return await self._run(lambda: self._get(request))

    def _get(self, request: shard_pb2.ShardGetRequest) -> shard_pb2.ShardGetResponse:
        collection = self._collections.get(request.collection)
        documents = collection.get(
            list(request.ids), proto_reads.include_from_proto(request.include)
        )
        return shard_pb2.ShardGetResponse(
            documents=[proto_reads.document_to_proto(doc, request.include) for doc in documents]
        )

    async def Search(
        self, request: shard_pb2.ShardSearchRequest, context: Context
    ) -> shard_pb2.ShardSearchResponse:
        self._readiness.require()
        if self._runs_inline(request):
            with contextlib.suppress(WouldBlock):  # a write holds the index, or it is slow
                return self._search(request, wait=False)
        return await self._run(lambda: self._search(request))

    def _runs_inline(self, request: shard_pb2.ShardSearchRequest) -> bool:
        include = request.include
        if request.HasField("filter") or include.vector or include.text or include.metadata:
            return False
        config = self._collections.get(request.collection).config
        if config.chunking.enabled:
            return False  # hits need their chunks' spans, from the stored payloads
        queries = len(request.queries_f32) // (4 * config.dimension)
        ef = max(request.ef or config.hnsw_ef, request.k)
        return queries <= INLINE_MAX_QUERIES and ef <= INLINE_MAX_EF

    def _search(
        self, request: shard_pb2.ShardSearchRequest, wait: bool = True
    ) -> shard_pb2.ShardSearchResponse:
        collection = self._collections.get(request.collection)
        queries = proto_reads.queries_from_proto(request.queries_f32)
        threshold = request.score_threshold if request.HasField("score_threshold") else None
        fields = request.include
        if (
            request.packed
            and not (fields.vector or fields.text or fields.metadata)
            and not collection.config.chunking.enabled
        ):
            # Ids and scores only: ranked as columns, no list per query (search_columns).
            columns = collection.search_columns(
                queries,
                request.k,
                request.ef,
                filter_from_proto(request.filter),
                threshold,
                wait=wait,
            )
            return columns_response(columns)
        include = proto_reads.include_from_proto(request.include)
        if collection.config.chunking.enabled:  # for the spans of the chunks hit
            include = replace(include, payload=True)
        results = collection.search(
            queries,
            request.k,
            request.ef,
            include,
            filter_from_proto(request.filter),
            threshold,
            wait=wait,
        )
        if request.packed:
            return packed_response(results, request.include, collection.config.chunking.enabled)
        response = shard_pb2.ShardSearchResponse()
        for hits in results:
            proto_reads.hits_to_proto(hits, request.include, response.results.add())
        return response

    async def KeywordStats(
        self, request: shard_pb2.ShardKeywordStatsRequest, context: Context
    ) -> shard_pb2.ShardKeywordStatsResponse:
        self._readiness.require()
        return await self._run(lambda: self._keyword_stats(request))

    def _keyword_stats(
        self, request: shard_pb2.ShardKeywordStatsRequest
    ) -> shard_pb2.ShardKeywordStatsResponse:
        collection = self._collections.get(request.collection)
        skip = list(request.skip_partitions)
        stats = collection.keyword_statistics(list(request.terms), skip)
        response = shard_pb2.ShardKeywordStatsResponse(
            documents=stats.documents,
            total_length=stats.total_length,
            frequencies=stats.frequencies,
        )
        if request.vocabulary_limit:
            limit = min(request.vocabulary_limit, MAX_VOCABULARY_LISTED)
            vocabulary = collection.keyword_vocabulary(limit, skip)
            if vocabulary is not None:
                terms, frequencies = vocabulary
                response.vocabulary_listed = True
                response.vocabulary_terms.extend(terms)
                response.vocabulary_frequencies.extend(frequencies.frequencies)
        return response

    async def KeywordSearch(
        self, request: shard_pb2.ShardKeywordSearchRequest, context: Context
    ) -> shard_pb2.ShardSearchResponse:
        self._readiness.require()
        return await self._run(lambda: self._keyword_search(request))

    def _keyword_search(
        self, request: shard_pb2.ShardKeywordSearchRequest
    ) -> shard_pb2.ShardSearchResponse:
        collection = self._collections.get(request.collection)
        results = collection.keyword_search(
            [proto_reads.keyword_query_from_proto(query) for query in request.queries],
            request.average_length,
            request.k,
            proto_reads.include_from_proto(request.include),
            filter_from_proto(request.filter),
            request.score_threshold if request.HasField("score_threshold") else None,
        )
        response = shard_pb2.ShardSearchResponse()
        for hits in results:
            proto_reads.hits_to_proto(hits, request.include, response.results.add())
        return response

    async def HybridSearch(
        self, request: shard_pb2.ShardHybridSearchRequest, context: Context
    ) -> shard_pb2.ShardHybridSearchResponse:
        self._readiness.require()
        if self._hybrid_runs_inline(request):
            with contextlib.suppress(WouldBlock):  # a write holds the index, or it is slow
                return self._hybrid_search(request, wait=False)
        return await self._run(lambda: self._hybrid_search(request))

    def _hybrid_runs_inline(self, request: shard_pb2.ShardHybridSearchRequest) -> bool:
        include = request.include
        if request.HasField("filter") or include.vector or include.text or include.metadata:
            return False
        config = self._collections.get(request.collection).config
        queries = len(request.queries_f32) // (4 * config.dimension)
        ef = max(request.ef or config.hnsw_ef, request.k)
        return (
            max(queries, len(request.keyword_queries)) <= INLINE_MAX_QUERIES and ef <= INLINE_MAX_EF
        )

    def _hybrid_search(
        self, request: shard_pb2.ShardHybridSearchRequest, wait: bool = True
    ) -> shard_pb2.ShardHybridSearchResponse:
        """The keyword list (and statistics) first: when it cannot run without waiting,
        nothing has been spent on the vector list yet."""
        collection = self._collections.get(request.collection)
        include = proto_reads.include_from_proto(request.include)
        root = filter_from_proto(request.filter)
        threshold = request.score_threshold if request.HasField("score_threshold") else None
        response = shard_pb2.ShardHybridSearchResponse()
        ids = not request.bare_hits
        if request.keyword_queries or request.statistics_terms:
            keyword, stats = collection.keyword_search_with_statistics(
                [proto_reads.keyword_query_from_proto(q) for q in request.keyword_queries],
                request.average_length,
                request.k,
                include,
                root,
                threshold,
                list(request.statistics_terms),
                wait=wait,
                skip=list(request.skip_partitions),
                local_statistics=request.local_statistics,
            )
            if request.packed:
                fill_packed(response.keyword_packed, keyword, request.include)
            else:
                for hits in keyword:
                    proto_reads.hits_to_proto(
                        hits, request.include, response.keyword_results.add(), ids
                    )
            response.statistics.documents = stats.documents
            response.statistics.total_length = stats.total_length
            response.statistics.frequencies.extend(stats.frequencies)
        if request.queries_f32:
            if collection.config.chunking.enabled:  # for the spans of the chunks hit
                include = replace(include, payload=True)
            vector = collection.search(
                proto_reads.queries_from_proto(request.queries_f32),
                request.k,
                request.ef,
                include,
                root,
                threshold,
                wait=wait,
            )
            if request.packed:
                chunked = collection.config.chunking.enabled
                fill_packed(response.vector_packed, vector, request.include, chunked)
            else:
                for hits in vector:
                    proto_reads.hits_to_proto(
                        hits, request.include, response.vector_results.add(), ids
                    )
        return response

    async def Count(
        self, request: shard_pb2.ShardCountRequest, context: Context
    ) -> shard_pb2.ShardCountResponse:
        self._readiness.require()
        return await self._run(lambda: self._count(request))

    def _count(self, request: shard_pb2.ShardCountRequest) -> shard_pb2.ShardCountResponse:
        collection = self._collections.get(request.collection)
        return shard_pb2.ShardCountResponse(
            count=collection.count(filter_from_proto(request.filter), list(request.skip_partitions))
        )

    async def Scroll(
        self, request: shard_pb2.ShardScrollRequest, context: Context
    ) -> shard_pb2.ShardScrollResponse:
        self._readiness.require()
        return await self._run(lambda: self._scroll(request))

    def _scroll(self, request: shard_pb2.ShardScrollRequest) -> shard_pb2.ShardScrollResponse:
        collection = self._collections.get(request.collection)
        documents, more = collection.scroll(
            filter_from_proto(request.filter),
            request.after_id,
            request.limit,
            proto_reads.include_from_proto(request.include),
        )
        return shard_pb2.ShardScrollResponse(
            documents=[proto_reads.document_to_proto(doc, request.include) for doc in documents],
            more=more,
        )

    async def TopologyVersion(
        self, request: shard_pb2.ShardTopologyVersionRequest, context: Context
    ) -> shard_pb2.ShardTopologyVersionResponse:
        """Never gated: a partition move asks while this replica catches up too."""
        version = 0 if self._ownership is None else self._ownership.version()
        return shard_pb2.ShardTopologyVersionResponse(version=version)

    # Replication: never gated, peers catching up rely on them.

    async def Digest(
        self, request: shard_pb2.ShardDigestRequest, context: Context
    ) -> shard_pb2.ShardDigestResponse:
        cutoff = self._grace.cutoff_version()
        digests = await self._run(
            lambda: self._collections.get(request.collection, request.incarnation).digest(cutoff)
        )
        return proto_replication.digests_to_proto(digests)

    async def ListVersions(
        self, request: shard_pb2.ShardListVersionsRequest, context: Context
    ) -> shard_pb2.ShardListVersionsResponse:
        cutoff = self._grace.cutoff_version()
        partitions = list(request.partitions)
        versions = await self._run(
            lambda: self._collections.get(request.collection, request.incarnation).versions(
                partitions, cutoff
            )
        )
        return proto_replication.versions_to_proto(versions)

    async def Fetch(
        self, request: shard_pb2.ShardFetchRequest, context: Context
    ) -> shard_pb2.ShardFetchResponse:
        return await self._run(lambda: self._fetch(request))

    def _fetch(self, request: shard_pb2.ShardFetchRequest) -> shard_pb2.ShardFetchResponse:
        collection = self._collections.get(request.collection, request.incarnation)
        records = collection.fetch(list(request.ids))
        matching = []
        if request.HasField("filter"):
            matching = collection.matching(records, filter_from_proto(request.filter))
        return shard_pb2.ShardFetchResponse(
            records=[proto_records.write_to_proto(record) for record in records],
            matching=matching,
            filter_judged=request.HasField("filter"),
        )
