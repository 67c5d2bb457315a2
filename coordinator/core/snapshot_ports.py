"""What snapshots need from the shards and from where snapshots are kept.

Records travel opaque: the shard's stored record, serialized by the client,
is written to a snapshot file as it is and sent back to a shard on restore,
so core never parses vectors, texts or metadata.
"""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from coordinator.core.ports import CollectionConfig


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    id: str
    version: int
    deleted: bool
    data: bytes  # the record, opaque to core


class SnapshotShardClient(Protocol):
    @property
    def address(self) -> str: ...

    async def pin_snapshot(
        self, collection: str, incarnation: int, cut: int, timeout_s: float
    ) -> int:
        """Pin `cut`; the newest version the replica holds. FailedPrecondition when
        that is newer than the cut."""
        ...

    def scan_snapshot(
        self, collection: str, incarnation: int, cut: int
    ) -> AsyncIterator[Sequence[SnapshotRecord]]:
        """Seal the pin, then the records as of the cut, tombstones included, in id order."""
        ...

    async def release_snapshot(
        self, collection: str, incarnation: int, cut: int, timeout_s: float
    ) -> bool: ...

    async def bulk_load(
        self, config: CollectionConfig, batches: AsyncIterator[Sequence[bytes]]
    ) -> int:
        """Create the collection (`config`, with its incarnation) unless the replica
        holds it, then apply every batch of records (`SnapshotRecord.data`) as one
        write each; how many were applied."""
        ...


class SnapshotStore(Protocol):
    """Where snapshots live: a directory or an object store. Blocking calls (core
    runs them in a thread). Names are relative paths within one snapshot."""

    @property
    def location(self) -> str: ...

    def put_file(self, snapshot: str, name: str, source: Path) -> None:
        """Store the local file `source` (which the store may move away)."""
        ...

    def get_file(self, snapshot: str, name: str, staging: Path) -> Path:
        """A local path holding the file: in place, or a copy under `staging`.
        NotFound when absent."""
        ...

    def put_manifest(self, snapshot: str, data: bytes) -> None:
        """Written last and atomically: a snapshot without one is incomplete."""
        ...

    def get_manifest(self, snapshot: str) -> bytes | None: ...

    def list_snapshots(self) -> list[str]:
        """Names of the snapshots with a manifest."""
        ...

    def delete(self, snapshot: str) -> bool: ...
