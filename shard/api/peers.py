"""The other replicas of this shard's group, over gRPC: the client side of anti-entropy.

It lives in the api layer because it speaks the same messages as the servicer
and converts them with the same functions (a fetched record becomes the same
`WriteOp`, payload bytes included, that the coordinator's write would have).
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import grpc.aio

from shard.api.convert import config_from_proto, write_from_proto
from shard.core.config import CollectionConfig
from shard.core.documents import WriteOp
from shoal.logs import outgoing_metadata
from shoal.replication import PartitionDigest, VersionState
from shoal.server import GRPC_OPTIONS
from shoal.status import from_rpc_error
from shoal.v1 import shard_pb2, shard_pb2_grpc

Resp = TypeVar("Resp")

#: A peer that comes back should be reached again within a second, not after
#: gRPC's default reconnect backoff of up to two minutes.
RECONNECT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class GrpcPeer:
    def __init__(self, address: str) -> None:
        self._address = address
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[*GRPC_OPTIONS, *RECONNECT_OPTIONS],
        )
        self._stub = shard_pb2_grpc.ShardServiceStub(self._channel)

    @property
    def address(self) -> str:
        return self._address

    async def close(self) -> None:
        await self._channel.close()

    async def _call(
        self, method: Callable[..., Awaitable[Resp]], request: object, timeout_s: float
    ) -> Resp:
        try:
            return await method(request, timeout=timeout_s, metadata=outgoing_metadata())
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def list_collections(self, timeout_s: float) -> list[CollectionConfig]:
        reply: shard_pb2.ShardListCollectionsResponse = await self._call(
            self._stub.ListCollections, shard_pb2.ShardListCollectionsRequest(), timeout_s
        )
        return [config_from_proto(collection.config) for collection in reply.collections]

    async def digest(self, collection: str, timeout_s: float) -> list[PartitionDigest]:
        reply: shard_pb2.ShardDigestResponse = await self._call(
            self._stub.Digest, shard_pb2.ShardDigestRequest(collection=collection), timeout_s
        )
        return [PartitionDigest(p.partition, p.records, p.hash) for p in reply.partitions]

    async def list_versions(
        self, collection: str, partitions: Sequence[int], timeout_s: float
    ) -> dict[str, VersionState]:
        request = shard_pb2.ShardListVersionsRequest(collection=collection, partitions=partitions)
        reply: shard_pb2.ShardListVersionsResponse = await self._call(
            self._stub.ListVersions, request, timeout_s
        )
        return {r.id: VersionState(r.version, r.deleted) for r in reply.records}

    async def fetch(self, collection: str, ids: Sequence[str], timeout_s: float) -> list[WriteOp]:
        request = shard_pb2.ShardFetchRequest(collection=collection, ids=ids)
        reply: shard_pb2.ShardFetchResponse = await self._call(self._stub.Fetch, request, timeout_s)
        return [write_from_proto(record) for record in reply.records]
