"""Keeps the per-collection size gauges (documents, index elements and bytes) current."""

import asyncio
import socket
from concurrent.futures import Executor

from shard.core.collection import Collection
from shard.core.collections import Collections
from shoal.metrics import Metrics

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


async def report_sizes(collections: Collections, executor: Executor, metrics: Metrics) -> None:
    """Runs until cancelled; the shard label is the host name (the pod name in Kubernetes)."""
    shard = socket.gethostname()
    loop = asyncio.get_running_loop()
    reported: set[str] = set()
    while True:
        sizes = await loop.run_in_executor(executor, _sizes, collections)
        for gone in reported - sizes.keys():
            metrics.forget_collection(gone, shard)
        for name, (documents, elements, nbytes) in sizes.items():
            metrics.set_collection_size(
                name, shard, documents=documents, index_elements=elements, index_bytes=nbytes
            )
        reported = set(sizes)
        await asyncio.sleep(INTERVAL_S)
