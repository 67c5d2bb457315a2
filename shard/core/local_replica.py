"""This shard's collections as anti-entropy sees them (`anti_entropy.LocalReplica`).

Every call runs in the request executor: digests and version lists scan the
store, and applying fetched records is the normal write path (last-writer-wins
under the collection's write lock), so a record copied from a peer and a write
from the coordinator for the same id settle exactly as two coordinator writes
would.
"""

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import TypeVar

from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import WriteOp
from shard.core.tombstones import TombstoneGrace
from shoal.replication import PartitionDigest, VersionState

R = TypeVar("R")


class CollectionsReplica:
    def __init__(self, collections: Collections, executor: Executor, grace: TombstoneGrace) -> None:
        self._collections = collections
        self._executor = executor
        self._grace = grace

    async def _run(self, work: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def collection_configs(self) -> list[CollectionConfig]:
        listed = await self._run(self._collections.list_collections)
        return [config for config, _ in listed]

    async def create_collection(self, config: CollectionConfig) -> None:
        await self._run(lambda: self._collections.create(config))

    async def digest(self, collection: str, *, incarnation: int = 0) -> list[PartitionDigest]:
        cutoff = self._grace.cutoff_version()
        return await self._run(
            lambda: self._collections.get(collection, incarnation).digest(cutoff)
        )

    async def versions(
        self, collection: str, partitions: Sequence[int], incarnation: int = 0
    ) -> dict[str, VersionState]:
        cutoff = self._grace.cutoff_version()
        return await self._run(
            lambda: self._collections.get(collection, incarnation).versions(partitions, cutoff)
        )

    async def apply(self, collection: str, ops: Sequence[WriteOp], incarnation: int = 0) -> int:
        if not ops:
            return 0
        return await self._run(
            lambda: self._collections.get(collection, incarnation).write(ops).applied
        )
