"""ShardService over gRPC: one client per replica, on a channel opened once.

Searches that ask for no stored fields go through a `SearchCoalescer`, so
concurrent ones with the same parameters share a call.
"""

from collections.abc import Sequence
from dataclasses import replace

import grpc.aio

from coordinator.clients.coalescer import SearchCoalescer
from coordinator.clients.health import HealthProbe
from coordinator.clients.packed_results import hybrid_answer, packed_from_reply
from coordinator.clients.shard_messages import (
    filter_to_proto,
    hybrid_request,
    search_parameters,
    search_request,
    write_from_proto,
    write_to_proto,
)
from coordinator.core.ports import (
    CollectionConfig,
    CollectionListing,
    DocumentMessage,
    Health,
    HybridAnswer,
    HybridCall,
    Include,
    OpaqueFilter,
    RankedHits,
    ScrollPage,
    ShardCollection,
    Vector,
    WriteAck,
    WriteOp,
)
from coordinator.proto_config import config_from_proto, include_to_proto
from shoal.errors import FailedPrecondition, Internal
from shoal.keyword import TermStatistics
from shoal.replication import PartitionDigest, VersionState
from shoal.runtime.proto_values import config_to_proto
from shoal.runtime.replication_client import ReplicationClient
from shoal.runtime.status import unary_call
from shoal.v1 import shard_pb2, shard_pb2_grpc

#: The path of ShardService.Search.
SEARCH_METHOD = "/{}/Search".format(shard_pb2.DESCRIPTOR.services_by_name["ShardService"].full_name)

SearchCall = grpc.aio.UnaryUnaryMultiCallable[bytes, shard_pb2.ShardSearchResponse]


class GrpcShardClient:
    def __init__(self, address: str, channel: grpc.aio.Channel) -> None:
        self._address = address
        self._stub = shard_pb2_grpc.ShardServiceStub(channel)
        # Search takes the request as the bytes `search_request` joins (no serializer).
        self._search_call: SearchCall = channel.unary_unary(
            SEARCH_METHOD, response_deserializer=shard_pb2.ShardSearchResponse.FromString
        )
        self._health = HealthProbe(channel)
        self._searches: SearchCoalescer[bytes, RankedHits] = SearchCoalescer(self._search)
        self._replication = ReplicationClient(channel)

    @property
    def address(self) -> str:
        return self._address

    async def create_collection(
        self, config: CollectionConfig, timeout_s: float
    ) -> tuple[CollectionConfig, bool]:
        request = shard_pb2.ShardCreateCollectionRequest(
            config=config_to_proto(config), incarnation=config.incarnation
        )
        reply: shard_pb2.ShardCreateCollectionResponse = await unary_call(
            self._stub.CreateCollection, request, timeout_s
        )
        return replace(
            config_from_proto(reply.config), incarnation=config.incarnation
        ), reply.created

    async def delete_collection(self, name: str, timeout_s: float, incarnation: int = 0) -> bool:
        request = shard_pb2.ShardDeleteCollectionRequest(name=name, incarnation=incarnation)
        reply: shard_pb2.ShardDeleteCollectionResponse = await unary_call(
            self._stub.DeleteCollection, request, timeout_s
        )
        return reply.deleted

    async def list_collections(
        self, timeout_s: float, skip_partitions: Sequence[int] = ()
    ) -> CollectionListing:
        request = shard_pb2.ShardListCollectionsRequest(skip_partitions=skip_partitions)
        reply: shard_pb2.ShardListCollectionsResponse = await unary_call(
            self._stub.ListCollections, request, timeout_s
        )
        return CollectionListing(
            [
                ShardCollection(
                    replace(config_from_proto(c.config), incarnation=c.incarnation),
                    c.document_count,
                    c.chunk_count,
                )
                for c in reply.collections
            ],
            {failed.name: failed.reason for failed in reply.failed},
        )

    async def write(
        self,
        collection: str,
        writes: Sequence[WriteOp],
        timeout_s: float,
        incarnation: int = 0,
        topology_version: int = 0,
    ) -> WriteAck:
        request = shard_pb2.ShardWriteRequest(
            collection=collection,
            writes=[write_to_proto(op) for op in writes],
            incarnation=incarnation,
            topology_version=topology_version,
        )
        reply: shard_pb2.ShardWriteResponse = await unary_call(self._stub.Write, request, timeout_s)
        return WriteAck(reply.applied, reply.deleted)

    async def get(
        self, collection: str, ids: Sequence[str], include: Include, timeout_s: float
    ) -> list[DocumentMessage]:
        request = shard_pb2.ShardGetRequest(
            collection=collection, ids=ids, include=include_to_proto(include)
        )
        reply: shard_pb2.ShardGetResponse = await unary_call(self._stub.Get, request, timeout_s)
        return list(reply.documents)

    async def search(
        self,
        collection: str,
        queries: Vector,
        k: int,
        ef: int,
        include: Include,
        timeout_s: float,
        filter: OpaqueFilter | None = None,
        score_threshold: float | None = None,
    ) -> Sequence[RankedHits]:
        key = search_parameters(
            collection,
            k,
            ef,
            include_to_proto(include),
            filter_to_proto(filter),
            score_threshold,
        )
        if include.vector or include.text or include.metadata:
            # Answers with stored fields can be large: joined, they could pass the
            # message size limit that each one alone stays under.
            return await self._search(key, queries, timeout_s)
        return await self._searches.search(key, queries, timeout_s)

    async def _search(self, key: bytes, queries: Vector, timeout_s: float) -> Sequence[RankedHits]:
        reply = await unary_call(self._search_call, search_request(key, queries), timeout_s)
        # Columns, not a message per hit, where the shard could: merged with numpy
        # (core.packed_merge).
        return packed_from_reply(reply, len(queries))

    async def keyword_stats(
        self,
        collection: str,
        terms: Sequence[str],
        timeout_s: float,
        skip_partitions: Sequence[int] = (),
        vocabulary_limit: int = 0,
    ) -> TermStatistics:
        request = shard_pb2.ShardKeywordStatsRequest(
            collection=collection,
            terms=terms,
            skip_partitions=skip_partitions,
            vocabulary_limit=vocabulary_limit,
        )
        reply: shard_pb2.ShardKeywordStatsResponse = await unary_call(
            self._stub.KeywordStats, request, timeout_s
        )
        vocabulary = None
        if reply.vocabulary_listed:
            terms_listed, frequencies = reply.vocabulary_terms, reply.vocabulary_frequencies
            if len(terms_listed) != len(frequencies):
                raise Internal(
                    f"shard {self.address} listed {len(terms_listed)} terms and"
                    f" {len(frequencies)} frequencies"
                )
            vocabulary = dict(zip(terms_listed, frequencies, strict=True))
        return TermStatistics(
            reply.documents, reply.total_length, list(reply.frequencies), vocabulary
        )

    async def hybrid_search(
        self, collection: str, call: HybridCall, timeout_s: float
    ) -> HybridAnswer:
        request = hybrid_request(collection, call, packed=True)
        reply: shard_pb2.ShardHybridSearchResponse = await unary_call(
            self._stub.HybridSearch, request, timeout_s
        )
        vectors = 0 if call.vectors is None else len(call.vectors)
        return hybrid_answer(reply, vectors, len(call.keyword), call.include)

    async def count(
        self,
        collection: str,
        timeout_s: float,
        filter: OpaqueFilter | None = None,
        skip_partitions: Sequence[int] = (),
    ) -> int:
        request = shard_pb2.ShardCountRequest(
            collection=collection, filter=filter_to_proto(filter), skip_partitions=skip_partitions
        )
        reply: shard_pb2.ShardCountResponse = await unary_call(self._stub.Count, request, timeout_s)
        return reply.count

    async def scroll(
        self,
        collection: str,
        filter: OpaqueFilter | None,
        after_id: str,
        limit: int,
        include: Include,
        timeout_s: float,
    ) -> ScrollPage:
        request = shard_pb2.ShardScrollRequest(
            collection=collection,
            filter=filter_to_proto(filter),
            after_id=after_id,
            limit=limit,
            include=include_to_proto(include),
        )
        reply: shard_pb2.ShardScrollResponse = await unary_call(
            self._stub.Scroll, request, timeout_s
        )
        return ScrollPage(list(reply.documents), reply.more)

    async def health(self, timeout_s: float) -> Health:
        return await self._health.check(timeout_s)

    async def digest(self, collection: str, timeout_s: float) -> list[PartitionDigest]:
        return await self._replication.digest(collection, timeout_s)

    async def list_versions(
        self, collection: str, partitions: Sequence[int], timeout_s: float
    ) -> dict[str, VersionState]:
        return await self._replication.list_versions(collection, partitions, timeout_s)

    async def fetch(self, collection: str, ids: Sequence[str], timeout_s: float) -> list[WriteOp]:
        records = await self._replication.fetch(collection, ids, timeout_s)
        return [write_from_proto(record) for record in records]

    async def fetch_matching(
        self, collection: str, ids: Sequence[str], filter: OpaqueFilter, timeout_s: float
    ) -> tuple[list[WriteOp], frozenset[str]]:
        request = shard_pb2.ShardFetchRequest(
            collection=collection, ids=ids, filter=filter_to_proto(filter)
        )
        reply: shard_pb2.ShardFetchResponse = await unary_call(self._stub.Fetch, request, timeout_s)
        if not reply.filter_judged:
            # It would answer "nothing matches", and the write would quietly do nothing.
            raise FailedPrecondition(
                f"shard {self.address} is too old to judge a write's filter on Fetch:"
                " upgrade the shards before the coordinators"
            )
        return [write_from_proto(record) for record in reply.records], frozenset(reply.matching)

    async def topology_version(self, timeout_s: float) -> int:
        reply: shard_pb2.ShardTopologyVersionResponse = await unary_call(
            self._stub.TopologyVersion, shard_pb2.ShardTopologyVersionRequest(), timeout_s
        )
        return reply.version
