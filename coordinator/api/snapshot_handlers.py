"""ShoalService's snapshot calls, mixed into `ShoalServicer`: the long ones stream
the core's progress, the last message carrying the snapshot."""

from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from coordinator.core.snapshot_files import Manifest
from coordinator.core.snapshots import Progress, SnapshotService
from shoal.errors import FailedPrecondition
from shoal.runtime.stream_status import server_stream
from shoal.v1 import shoal_pb2

Context = grpc.aio.ServicerContext[Any, Any]


def manifest_to_proto(manifest: Manifest) -> shoal_pb2.SnapshotInfo:
    return shoal_pb2.SnapshotInfo(
        name=manifest.name,
        cut=manifest.cut,
        created_at=manifest.created_at,
        shoal_version=manifest.shoal_version,
        bytes=manifest.total_bytes,
        collections=[
            shoal_pb2.SnapshotCollection(
                name=entry.name,
                documents=entry.documents,
                partitions=entry.partitions,
                dimension=entry.config.dimension,
            )
            for entry in manifest.collections
        ],
    )


def progress_to_proto(progress: Progress) -> shoal_pb2.SnapshotProgress:
    message = shoal_pb2.SnapshotProgress(
        phase=progress.phase,
        documents=progress.documents,
        total_documents=progress.total_documents,
        bytes=progress.bytes,
        done=progress.done,
    )
    if progress.manifest is not None:
        message.snapshot.CopyFrom(manifest_to_proto(progress.manifest))
    return message


class SnapshotHandlers:
    _snapshots: SnapshotService | None

    def _service(self) -> SnapshotService:
        if self._snapshots is None:
            raise FailedPrecondition("this coordinator serves no snapshots")
        return self._snapshots

    @server_stream
    async def CreateSnapshot(
        self, request: shoal_pb2.CreateSnapshotRequest, context: Context
    ) -> AsyncIterator[shoal_pb2.SnapshotProgress]:
        async for progress in self._service().create(request.name, list(request.collections)):
            yield progress_to_proto(progress)

    @server_stream
    async def RestoreSnapshot(
        self, request: shoal_pb2.RestoreSnapshotRequest, context: Context
    ) -> AsyncIterator[shoal_pb2.SnapshotProgress]:
        service = self._service()
        async for progress in service.restore(
            request.name, list(request.collections), request.new_name
        ):
            yield progress_to_proto(progress)

    async def ListSnapshots(
        self, request: shoal_pb2.ListSnapshotsRequest, context: Context
    ) -> shoal_pb2.ListSnapshotsResponse:
        manifests = await self._service().list_snapshots()
        return shoal_pb2.ListSnapshotsResponse(
            snapshots=[manifest_to_proto(manifest) for manifest in manifests]
        )

    async def DeleteSnapshot(
        self, request: shoal_pb2.DeleteSnapshotRequest, context: Context
    ) -> shoal_pb2.DeleteSnapshotResponse:
        return shoal_pb2.DeleteSnapshotResponse(deleted=await self._service().delete(request.name))
