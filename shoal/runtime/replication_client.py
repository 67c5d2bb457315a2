"""The client side of the replication calls on ShardService: Digest, ListVersions, Fetch.

Used by the coordinator (VerifyReplicas, read repair) and by the shard (catch-up
from its peers), so both build the same requests and read the same replies
into `shoal.replication` types. Fetched records come back as the `ShardWrite`
messages they are: each service turns them into its own write type (the
coordinator passes text and metadata on as they came, a shard packs them into
its stored payload).
"""

from collections.abc import Sequence

import grpc.aio

from shoal.replication import PartitionDigest, VersionState
from shoal.runtime.status import unary_call
from shoal.v1 import shard_pb2, shard_pb2_grpc


class ReplicationClient:
    """The replication calls to one replica, over a channel its owner opened."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = shard_pb2_grpc.ShardServiceStub(channel)

    async def digest(
        self, collection: str, timeout_s: float, incarnation: int = 0
    ) -> list[PartitionDigest]:
        """Per partition holding records: how many (tombstones included) and their hash.
        `incarnation` (every call here): the catalog's, or 0 without a catalog."""
        request = shard_pb2.ShardDigestRequest(collection=collection, incarnation=incarnation)
        reply: shard_pb2.ShardDigestResponse = await unary_call(
            self._stub.Digest, request, timeout_s
        )
        return [PartitionDigest(p.partition, p.records, p.hash) for p in reply.partitions]

    async def list_versions(
        self, collection: str, partitions: Sequence[int], timeout_s: float, incarnation: int = 0
    ) -> dict[str, VersionState]:
        """Every record's version in the given partitions, tombstones included."""
        request = shard_pb2.ShardListVersionsRequest(
            collection=collection, partitions=partitions, incarnation=incarnation
        )
        reply: shard_pb2.ShardListVersionsResponse = await unary_call(
            self._stub.ListVersions, request, timeout_s
        )
        return {r.id: VersionState(r.version, r.deleted) for r in reply.records}

    async def fetch(
        self, collection: str, ids: Sequence[str], timeout_s: float, incarnation: int = 0
    ) -> Sequence[shard_pb2.ShardWrite]:
        """The stored records among `ids` (tombstones included); ids never written are left out."""
        request = shard_pb2.ShardFetchRequest(
            collection=collection, ids=ids, incarnation=incarnation
        )
        reply: shard_pb2.ShardFetchResponse = await unary_call(self._stub.Fetch, request, timeout_s)
        return reply.records
