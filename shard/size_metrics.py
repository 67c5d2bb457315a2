"""Keeps the per-collection size gauges (documents, index elements and bytes) current."""

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

from shard.core.collection import Collection
from shard.core.collection_registry import Collections
from shard.metrics import ShardMetrics
from shoal.runtime.periodic import PeriodicTask

INTERVAL_S = 10.0

#: (replica, group) naming this shard now; see `ShardMetrics.identify`.
Identity = Callable[[], tuple[str, str]]


def index_bytes(collection: Collection, capacity: int) -> int:
    """hnswlib's allocation: per slot the vector, the level-0 links (2M) and the label."""
    config = collection.config
    return capacity * (4 * config.dimension + 4 * (2 * config.hnsw_m + 1) + 8)


def _sizes(collections: Collections) -> dict[str, tuple[int, int, int]]:
    sizes = {}
    for collection in collections.open_collections():
        stats = collection.index_stats()
        sizes[collection.config.name] = (
            stats.live,
            stats.slots,
            index_bytes(collection, stats.capacity),
        )
    return sizes


def size_reporter(
    collections: Collections, executor: Executor, metrics: ShardMetrics, identity: Identity
) -> PeriodicTask:
    """Each report names the replica first: its group becomes known (or changes)
    when the topology lists it, which may be after the shard started."""
    reported: set[str] = set()

    async def report() -> None:
        nonlocal reported
        metrics.identify(*identity())
        loop = asyncio.get_running_loop()
        sizes = await loop.run_in_executor(executor, _sizes, collections)
        for gone in reported - sizes.keys():
            metrics.forget_collection(gone)
        for name, (documents, elements, nbytes) in sizes.items():
            metrics.set_collection_size(
                name, documents=documents, index_elements=elements, index_bytes=nbytes
            )
        reported = set(sizes)

    return PeriodicTask("size metrics", report, INTERVAL_S)
