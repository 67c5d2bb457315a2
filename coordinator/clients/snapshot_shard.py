"""ShardService's snapshot and bulk-load calls over gRPC (the `SnapshotShardClient` port).

Records stay the bytes of the shard's `ShardWrite`: a scan serializes each one
for the snapshot file, and a bulk load joins those bytes into its requests
without parsing them again.
"""

from collections.abc import AsyncIterator, Sequence

import grpc
import grpc.aio

from coordinator.core.ports import CollectionConfig
from coordinator.core.snapshot_ports import SnapshotRecord
from shoal.runtime.logs import outgoing_metadata
from shoal.runtime.proto_values import config_to_proto
from shoal.runtime.status import from_rpc_error, unary_call
from shoal.v1 import shard_pb2, shard_pb2_grpc

_SERVICE = shard_pb2.DESCRIPTOR.services_by_name["ShardService"].full_name
BULK_LOAD_METHOD = f"/{_SERVICE}/BulkLoad"
#: The tag of ShardBulkLoadRequest.writes (field 3, length-delimited).
_WRITES_TAG = bytes([3 << 3 | 2])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def bulk_load_request(
    collection: str,
    incarnation: int,
    records: Sequence[bytes],
    config: CollectionConfig | None = None,
) -> bytes:
    """A ShardBulkLoadRequest's bytes, the records appended as they are."""
    request = shard_pb2.ShardBulkLoadRequest(collection=collection, incarnation=incarnation)
    if config is not None:
        request.config.CopyFrom(config_to_proto(config))
    head = request.SerializeToString()
    parts = [head]
    for record in records:
        parts += (_WRITES_TAG, _varint(len(record)), record)
    return b"".join(parts)


class GrpcSnapshotShardClient:
    def __init__(self, address: str, channel: grpc.aio.Channel) -> None:
        self._address = address
        self._stub = shard_pb2_grpc.ShardServiceStub(channel)
        self._bulk_load: grpc.aio.StreamUnaryMultiCallable[
            bytes, shard_pb2.ShardBulkLoadResponse
        ] = channel.stream_unary(
            BULK_LOAD_METHOD, response_deserializer=shard_pb2.ShardBulkLoadResponse.FromString
        )

    @property
    def address(self) -> str:
        return self._address

    async def pin_snapshot(
        self, collection: str, incarnation: int, cut: int, timeout_s: float
    ) -> int:
        request = shard_pb2.ShardPinSnapshotRequest(
            collection=collection, incarnation=incarnation, cut=cut
        )
        reply: shard_pb2.ShardPinSnapshotResponse = await unary_call(
            self._stub.PinSnapshot, request, timeout_s
        )
        return reply.max_version

    async def scan_snapshot(
        self, collection: str, incarnation: int, cut: int
    ) -> AsyncIterator[Sequence[SnapshotRecord]]:
        request = shard_pb2.ShardScanSnapshotRequest(
            collection=collection, incarnation=incarnation, cut=cut
        )
        call = self._stub.ScanSnapshot(request, metadata=outgoing_metadata())
        try:
            async for page in call:
                yield [
                    SnapshotRecord(r.id, r.version, r.deleted, r.SerializeToString())
                    for r in page.records
                ]
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    async def release_snapshot(
        self, collection: str, incarnation: int, cut: int, timeout_s: float
    ) -> bool:
        request = shard_pb2.ShardReleaseSnapshotRequest(
            collection=collection, incarnation=incarnation, cut=cut
        )
        reply: shard_pb2.ShardReleaseSnapshotResponse = await unary_call(
            self._stub.ReleaseSnapshot, request, timeout_s
        )
        return reply.released

    async def bulk_load(
        self, config: CollectionConfig, batches: AsyncIterator[Sequence[bytes]]
    ) -> int:
        async def requests() -> AsyncIterator[bytes]:
            # The first message creates the collection where the catalog's push
            # has not (a replica that just came back).
            first: CollectionConfig | None = config
            async for batch in batches:
                yield bulk_load_request(config.name, config.incarnation, batch, first)
                first = None
            if first is not None:  # no records: still create it
                yield bulk_load_request(config.name, config.incarnation, [], first)

        try:
            reply: shard_pb2.ShardBulkLoadResponse = await self._bulk_load(
                requests(), metadata=outgoing_metadata()
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return reply.applied
