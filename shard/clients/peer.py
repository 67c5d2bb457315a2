"""Another replica of this shard's group, over gRPC: the client side of anti-entropy.

It implements the core's `Peer` port (shard.core.anti_entropy). It reads the
same messages the servicer answers, with the same mapping (shard.proto_config,
shard.proto_records: a fetched record becomes the same `WriteOp`, payload bytes
included, that the coordinator's write would have). The replication calls
themselves (Digest, ListVersions, Fetch) are `shoal.runtime.replication_client`'s,
shared with the coordinator.
"""

from collections.abc import Sequence

from shard.core.config import CollectionConfig
from shard.core.documents import WriteOp
from shard.proto_config import config_from_proto
from shard.proto_records import write_from_proto
from shoal.replication import PartitionDigest, VersionState
from shoal.runtime.balancing import RECONNECT_OPTIONS
from shoal.runtime.keepalive import Keepalive
from shoal.runtime.replication_client import ReplicationClient
from shoal.runtime.server import channel_options
from shoal.runtime.status import unary_call
from shoal.runtime.tls import ClientTls, aio_channel
from shoal.v1 import shard_pb2, shard_pb2_grpc


class GrpcPeer:
    def __init__(
        self, address: str, keepalive: Keepalive | None = None, tls: ClientTls | None = None
    ) -> None:
        self._address = address
        self._channel = aio_channel(address, tls, [*channel_options(keepalive), *RECONNECT_OPTIONS])
        self._stub = shard_pb2_grpc.ShardServiceStub(self._channel)
        self._replication = ReplicationClient(self._channel)

    @property
    def address(self) -> str:
        return self._address

    async def close(self) -> None:
        await self._channel.close()

    async def list_collections(self, timeout_s: float) -> list[CollectionConfig]:
        reply: shard_pb2.ShardListCollectionsResponse = await unary_call(
            self._stub.ListCollections, shard_pb2.ShardListCollectionsRequest(), timeout_s
        )
        return [
            config_from_proto(collection.config, collection.incarnation)
            for collection in reply.collections
        ]

    async def digest(
        self, collection: str, timeout_s: float, incarnation: int = 0
    ) -> list[PartitionDigest]:
        return await self._replication.digest(collection, timeout_s, incarnation)

    async def list_versions(
        self, collection: str, partitions: Sequence[int], timeout_s: float, incarnation: int = 0
    ) -> dict[str, VersionState]:
        return await self._replication.list_versions(collection, partitions, timeout_s, incarnation)

    async def fetch(
        self, collection: str, ids: Sequence[str], timeout_s: float, incarnation: int = 0
    ) -> list[WriteOp]:
        records = await self._replication.fetch(collection, ids, timeout_s, incarnation)
        return [write_from_proto(record) for record in records]
