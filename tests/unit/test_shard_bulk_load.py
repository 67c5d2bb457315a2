"""A restore's BulkLoad: every message becomes one write with one hnswlib add_items,
not one per document; the records come back as they were sent."""

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.clients.snapshot_shard import bulk_load_request
from shard.api.servicer import ShardServicer
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.storage.hnsw_index import HnswIndex
from shard.storage.layout import DataDir
from shoal.v1 import shard_pb2

DIM = 8
BATCHES = 3
PER_BATCH = 200


@pytest.fixture
def collections(tmp_path: Path) -> Iterator[Collections]:
    registry = Collections(DataDir(tmp_path / "data"))
    registry.load()
    registry.create(CollectionConfig("c", DIM))
    yield registry
    registry.close()


def record(n: int) -> bytes:
    vector = np.random.default_rng(n).standard_normal(DIM).astype("<f4").tobytes()
    write = shard_pb2.ShardWrite(id=f"d{n:05d}", version=1000 + n, vector_f32=vector)
    write.text = f"text {n}"
    write.metadata["n"].int_value = n
    return write.SerializeToString()


async def test_each_message_is_one_index_insert(
    collections: Collections, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserts: list[int] = []
    add = HnswIndex.add

    def counting_add(self: HnswIndex, labels: Any, vectors: Any) -> None:
        inserts.append(len(labels))
        add(self, labels, vectors)

    monkeypatch.setattr(HnswIndex, "add", counting_add)
    sent = [[record(b * PER_BATCH + i) for i in range(PER_BATCH)] for b in range(BATCHES)]

    async def requests() -> AsyncIterator[shard_pb2.ShardBulkLoadRequest]:
        for batch in sent:
            # The bytes the coordinator sends: records joined without parsing.
            yield shard_pb2.ShardBulkLoadRequest.FromString(bulk_load_request("c", 0, batch))

    with ThreadPoolExecutor(2) as pool:
        servicer = ShardServicer(collections, pool)
        reply = await servicer.BulkLoad(requests(), None)  # type: ignore[arg-type]
    assert reply.applied == BATCHES * PER_BATCH
    assert inserts == [PER_BATCH] * BATCHES
    collection = collections.get("c")
    ids = [f"d{n:05d}" for n in range(BATCHES * PER_BATCH)]
    stored = collection.fetch(ids)
    expected = [shard_pb2.ShardWrite.FromString(r) for batch in sent for r in batch]
    assert [(op.id, op.version, op.vector) for op in stored] == [
        (w.id, w.version, w.vector_f32) for w in expected
    ]
