"""The shard's snapshot and restore calls, mixed into `ShardServicer`.

A scan is one server stream: it seals the pin, then reads a page at a time in
the thread pool, so a snapshot holds no pool thread between pages and
searches and writes go on. A bulk load is one client stream whose every
message is applied as one batch (one RocksDB batch, one hnswlib add_items).
"""

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc.aio

from shard import proto_config, proto_records
from shard.core.collection.snapshots import DEFAULT_PAGE_SIZE, DEFAULT_PIN_TTL_S, ScanPosition
from shard.core.collection_registry import Collections
from shoal.errors import InvalidArgument
from shoal.runtime.stream_status import client_stream, server_stream
from shoal.v1 import shard_pb2

R = TypeVar("R")
Context = grpc.aio.ServicerContext[Any, Any]

#: Records per scan page at most.
MAX_PAGE_SIZE = 10_000


def _ttl(ttl_s: int) -> float:
    return float(ttl_s) if ttl_s else DEFAULT_PIN_TTL_S


class SnapshotHandlers:
    _collections: Collections
    _write_queues: dict[str, asyncio.Lock]

    async def _run(self, work: Callable[[], R]) -> R:
        raise NotImplementedError

    async def PinSnapshot(
        self, request: shard_pb2.ShardPinSnapshotRequest, context: Context
    ) -> shard_pb2.ShardPinSnapshotResponse:
        collection = self._collections.get(request.collection, request.incarnation)
        newest = await self._run(lambda: collection.pin_snapshot(request.cut, _ttl(request.ttl_s)))
        return shard_pb2.ShardPinSnapshotResponse(max_version=newest)

    @server_stream
    async def ScanSnapshot(
        self, request: shard_pb2.ShardScanSnapshotRequest, context: Context
    ) -> AsyncIterator[shard_pb2.ShardScanSnapshotResponse]:
        collection = self._collections.get(request.collection, request.incarnation)
        limit = request.page_size or DEFAULT_PAGE_SIZE
        if limit > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size {limit}: at most {MAX_PAGE_SIZE}")
        cut = request.cut
        ttl = DEFAULT_PIN_TTL_S
        await self._run(lambda: collection.seal_snapshot(cut, ttl))
        position = ScanPosition()
        while not position.done:
            page = await self._run(lambda: collection.snapshot_page(cut, position, limit, ttl))
            if page:
                yield shard_pb2.ShardScanSnapshotResponse(
                    records=[proto_records.write_to_proto(op) for op in page]
                )

    async def ReleaseSnapshot(
        self, request: shard_pb2.ShardReleaseSnapshotRequest, context: Context
    ) -> shard_pb2.ShardReleaseSnapshotResponse:
        collection = self._collections.get(request.collection, request.incarnation)
        return shard_pb2.ShardReleaseSnapshotResponse(
            released=collection.release_snapshot(request.cut)
        )

    @client_stream
    async def BulkLoad(
        self, requests: AsyncIterator[shard_pb2.ShardBulkLoadRequest], context: Context
    ) -> shard_pb2.ShardBulkLoadResponse:
        applied = 0
        name = ""
        incarnation = 0
        async for request in requests:
            if not name:
                name, incarnation = request.collection, request.incarnation
                if not name:
                    raise InvalidArgument("the first bulk load message must name the collection")
                if request.HasField("config"):
                    config = proto_config.config_from_proto(request.config, incarnation)
                    await self._run(functools.partial(self._collections.create, config))
            collection = self._collections.get(name, incarnation)
            ops = [proto_records.write_from_proto(write) for write in request.writes]
            queue = self._write_queues.setdefault(name, asyncio.Lock())
            async with queue:
                result = await self._run(functools.partial(collection.write, ops))
            applied += result.applied
        return shard_pb2.ShardBulkLoadResponse(applied=applied)
