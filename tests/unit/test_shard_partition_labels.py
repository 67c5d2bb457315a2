"""A shard's counts without the partitions a coordinator asks it to skip (partition
moves): the label -> partition map built on first use, kept current by writes,
deletes and chunked documents, and built again after a reopen."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shard.core.collection import Collection
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import WriteOp
from shard.storage.layout import DataDir
from shoal.chunking import ChunkingSettings
from shoal.errors import InvalidArgument
from shoal.limits import MAX_PARTITIONS
from shoal.partitioning import partition_of

DIM = 4
PARTITIONS = 8


def upsert(doc_id: str, version: int, chunks: int = 1) -> WriteOp:
    vector = np.random.default_rng(version).standard_normal(DIM * chunks).astype("<f4")
    return WriteOp(doc_id, version, False, vector.tobytes(), b"")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def collections(root: Path) -> Iterator[Collections]:
    registry = Collections(DataDir(root))
    registry.load()
    yield registry
    registry.close()


def expected(chunks: dict[str, int], skip: set[int]) -> tuple[int, int]:
    """(documents, chunks) of the live documents outside the partitions `skip`."""
    kept = [n for doc_id, n in chunks.items() if partition_of(doc_id, PARTITIONS) not in skip]
    return len(kept), sum(kept)


def counts(collection: Collection, skip: list[int]) -> tuple[int, int]:
    return collection.count(None, skip), collection.chunk_count(skip)


def test_counts_leave_out_the_partitions_skipped_as_documents_come_and_go(
    collections: Collections, root: Path
) -> None:
    chunking = ChunkingSettings(enabled=True)  # reopened: chunk counts rebuilt from the store
    collections.create(CollectionConfig("c", DIM, partitions=PARTITIONS, chunking=chunking))
    collection = collections.get("c")
    live = {f"d{n}": 1 + n % 3 for n in range(40)}  # id -> chunks
    collection.write([upsert(doc_id, 1, chunks) for doc_id, chunks in live.items()])
    for skip in ([1], [0, 5], [7, 99], []):
        assert counts(collection, skip) == expected(live, set(skip)), skip
    # After the map was built: new documents, deletes and a re-chunked one.
    collection.write(
        [upsert(f"e{n}", 2, 2) for n in range(10)]
        + [WriteOp("d0", 2, True, b"", b""), WriteOp("d1", 2, True, b"", b""), upsert("d2", 2, 4)]
    )
    live.update({f"e{n}": 2 for n in range(10)} | {"d2": 4})
    del live["d0"], live["d1"]
    for skip in ([1], [2, 3, 4], list(range(PARTITIONS))):
        assert counts(collection, skip) == expected(live, set(skip)), skip
    collections.close()
    reopened = Collections(DataDir(root))
    reopened.load()
    try:
        assert counts(reopened.get("c"), [2, 6]) == expected(live, {2, 6})
    finally:
        reopened.close()


def test_more_partitions_to_skip_than_there_can_be_is_invalid(
    collections: Collections,
) -> None:
    collections.create(CollectionConfig("c", DIM, partitions=PARTITIONS))
    collection = collections.get("c")
    collection.write([upsert("a", 1)])
    with pytest.raises(InvalidArgument, match="partitions to skip"):
        collection.count(None, list(range(MAX_PARTITIONS + 1)))
