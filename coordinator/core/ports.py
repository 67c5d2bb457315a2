"""The interfaces core needs from the services it calls.

Implementations raise `shoal.errors` exceptions (Unavailable for an unreachable
replica, DeadlineExceeded when `timeout` runs out, NotFound for an unknown
collection, ...) and never gRPC errors, so core and its tests stay free of gRPC.
Every call takes `timeout`, the seconds left of the caller's deadline.
"""

from collections.abc import Sequence
from typing import Protocol

from coordinator.core.model import (
    CollectionConfig,
    EmbedderInfo,
    Health,
    Include,
    Keyed,
    Scored,
    ShardCollection,
    Vector,
    WriteAck,
    WriteOp,
)


class ShardClient(Protocol):
    """One replica of one shard group."""

    @property
    def address(self) -> str: ...

    async def create_collection(
        self, config: CollectionConfig, timeout: float
    ) -> tuple[CollectionConfig, bool]:
        """The replica's config and whether this call created the collection."""
        ...

    async def delete_collection(self, name: str, timeout: float) -> bool: ...

    async def list_collections(self, timeout: float) -> list[ShardCollection]: ...

    async def write(self, collection: str, writes: Sequence[WriteOp], timeout: float) -> WriteAck:
        ...

    async def get(
        self, collection: str, ids: Sequence[str], include: Include, timeout: float
    ) -> list[Keyed]: ...

    async def search(
        self,
        collection: str,
        queries_f32: bytes,
        k: int,
        ef: int,
        include: Include,
        timeout: float,
    ) -> list[list[Scored]]:
        """Per query, the replica's own top-k, best first."""
        ...

    async def count(self, collection: str, timeout: float) -> int: ...

    async def health(self, timeout: float) -> Health: ...


class EmbedderClient(Protocol):
    @property
    def address(self) -> str: ...

    async def info(self, timeout: float) -> EmbedderInfo: ...

    async def embed(self, texts: Sequence[str], model: str, timeout: float) -> Vector:
        """A (len(texts), dimension) float32 matrix, row i embedding texts[i]."""
        ...

    async def health(self, timeout: float) -> Health: ...
