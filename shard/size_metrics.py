"""Keeps the per-collection size gauges (documents, index elements and bytes) current."""

import asyncio
import socket
from concurrent.futures import Executor

from shard.core.collection import Collection
from shard.core.collections import Collections
from shoal.metrics import Metrics
from shoal.periodic import Periodic

INTERVAL_S = 10.0


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


def size_reporter(collections: Collections, executor: Executor, metrics: Metrics) -> Periodic:
    """The shard label is the host name (the pod name in Kubernetes)."""
    shard = socket.gethostname()
    reported: set[str] = set()

    async def report() -> None:
        nonlocal reported
        loop = asyncio.get_running_loop()
        sizes = await loop.run_in_executor(executor, _sizes, collections)
        for gone in reported - sizes.keys():
            metrics.forget_collection(gone, shard)
        for name, (documents, elements, nbytes) in sizes.items():
            metrics.set_collection_size(
                name, shard, documents=documents, index_elements=elements, index_bytes=nbytes
            )
        reported = set(sizes)

    return Periodic("size metrics", report, INTERVAL_S)
