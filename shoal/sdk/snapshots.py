"""The SDK's snapshot methods, mixed into `shoal.Client` (see docs/snapshots.md)."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc

from shoal.runtime.status import from_rpc_error
from shoal.sdk.channel import Metadata
from shoal.v1 import shoal_pb2, shoal_pb2_grpc


@dataclass(frozen=True, slots=True)
class SnapshotCollection:
    name: str
    documents: int
    partitions: int
    dimension: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    name: str
    cut: int  # the HLC version: the snapshot holds exactly the writes up to it
    created_at: str
    shoal_version: str
    collections: list[SnapshotCollection]
    bytes: int


@dataclass(frozen=True, slots=True)
class SnapshotProgress:
    phase: str
    documents: int
    total_documents: int  # 0: not known yet
    bytes: int


ProgressCallback = Callable[[SnapshotProgress], None]


def snapshot_from_proto(info: shoal_pb2.SnapshotInfo) -> Snapshot:
    return Snapshot(
        name=info.name,
        cut=info.cut,
        created_at=info.created_at,
        shoal_version=info.shoal_version,
        collections=[
            SnapshotCollection(c.name, c.documents, c.partitions, c.dimension)
            for c in info.collections
        ],
        bytes=info.bytes,
    )


def _follow(
    stream: Iterator[shoal_pb2.SnapshotProgress], progress: ProgressCallback | None
) -> Snapshot:
    try:
        for message in stream:
            if progress is not None:
                progress(
                    SnapshotProgress(
                        message.phase, message.documents, message.total_documents, message.bytes
                    )
                )
            if message.done:
                return snapshot_from_proto(message.snapshot)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None
    raise ConnectionError("the coordinator ended the snapshot stream without an outcome")


class SnapshotMethods:
    """Snapshots are long calls: they run without a deadline unless `timeout` is given."""

    _stub: shoal_pb2_grpc.ShoalServiceStub
    _metadata: Metadata  # the API key, which every call carries

    def create_snapshot(
        self,
        name: str = "",
        collections: Iterable[str] = (),
        progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> Snapshot:
        """A consistent snapshot of `collections` (empty: every one) at one cut,
        taken while reads and writes go on, in the coordinator's snapshot location."""
        request = shoal_pb2.CreateSnapshotRequest(name=name, collections=list(collections))
        return _follow(
            self._stub.CreateSnapshot(request, timeout=timeout, metadata=self._metadata), progress
        )

    def list_snapshots(self) -> list[Snapshot]:
        try:
            reply = self._stub.ListSnapshots(
                shoal_pb2.ListSnapshotsRequest(), timeout=60.0, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return [snapshot_from_proto(info) for info in reply.snapshots]

    def delete_snapshot(self, name: str) -> bool:
        try:
            reply = self._stub.DeleteSnapshot(
                shoal_pb2.DeleteSnapshotRequest(name=name), timeout=300.0, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return bool(reply.deleted)

    def restore_snapshot(
        self,
        name: str,
        collections: Sequence[str] = (),
        new_name: str = "",
        progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> Snapshot:
        """Restore `collections` (empty: all) of snapshot `name` into this cluster,
        whatever its shape; `new_name` restores the one collection under that name.
        Every file's checksum is checked first: DataLoss names a damaged one, and
        nothing is created."""
        request = shoal_pb2.RestoreSnapshotRequest(
            name=name, collections=list(collections), new_name=new_name
        )
        return _follow(
            self._stub.RestoreSnapshot(request, timeout=timeout, metadata=self._metadata), progress
        )
