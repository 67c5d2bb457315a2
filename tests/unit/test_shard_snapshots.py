"""Snapshot pins in-process: a scan returns exactly the records as of the cut,
whatever writes replace meanwhile; sealed pins refuse writes at or before the cut."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shard.core.collection import Collection
from shard.core.collection.snapshots import ScanPosition
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import WriteOp
from shard.storage.layout import DataDir
from shoal.errors import FailedPrecondition, NotFound, Unavailable

DIM = 4
CUT = 100
TTL = 60.0


def upsert(doc_id: str, version: int, seed: int = 0) -> WriteOp:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype("<f4").tobytes()
    return WriteOp(doc_id, version, False, vector, f"p{version}".encode())


def tombstone(doc_id: str, version: int) -> WriteOp:
    return WriteOp(doc_id, version, True, b"", b"")


@pytest.fixture
def collection(tmp_path: Path) -> Iterator[Collection]:
    registry = Collections(DataDir(tmp_path / "data"))
    registry.load()
    registry.create(CollectionConfig("c", DIM))
    yield registry.get("c")
    registry.close()


def scan(collection: Collection, limit: int = 2) -> list[tuple[str, int, bool]]:
    position = ScanPosition()
    out: list[tuple[str, int, bool]] = []
    for _ in range(1000):
        page = collection.snapshot_page(CUT, position, limit, TTL)
        out += [(op.id, op.version, op.deleted) for op in page]
        if position.done:
            return out
    raise AssertionError("scan did not end")


def test_scan_holds_the_state_at_the_cut_whatever_replaces_it(collection: Collection) -> None:
    collection.write([upsert("a", 10), upsert("b", 20), upsert("c", 30), tombstone("d", 40)])
    collection.pin_snapshot(CUT, TTL)
    # Between pin and seal: writes at or before the cut are the cut's state.
    collection.write([upsert("b", 90), upsert("e", 95)])
    # Writes after the cut replace records the snapshot needs: their pre-images stay.
    collection.write([upsert("a", 110), tombstone("c", 120), upsert("d", 130), upsert("f", 140)])
    collection.seal_snapshot(CUT, TTL)
    collection.write([upsert("a", 150)])  # after the seal too
    expected = [
        ("a", 10, False),
        ("b", 90, False),
        ("c", 30, False),
        ("d", 40, True),
        ("e", 95, False),
    ]
    assert scan(collection) == expected
    assert scan(collection, limit=1000) == expected
    [a] = collection.fetch(["a"])
    assert a.version == 150  # the live collection went on


def test_sealed_pin_refuses_writes_at_or_before_the_cut(collection: Collection) -> None:
    collection.write([upsert("a", 10)])
    collection.pin_snapshot(CUT, TTL)
    collection.seal_snapshot(CUT, TTL)
    with pytest.raises(Unavailable, match="cut 100"):
        collection.write([upsert("b", CUT)])
    collection.write([upsert("a", 5)])  # loses to the stored version: changes nothing
    collection.write([upsert("b", CUT + 1)])
    assert collection.release_snapshot(CUT)
    collection.write([upsert("c", 50)])  # released: old versions apply again
    with pytest.raises(NotFound):
        collection.snapshot_page(CUT, ScanPosition(), 10, TTL)


def test_pin_refused_when_the_replica_holds_a_newer_version(collection: Collection) -> None:
    collection.write([upsert("a", CUT + 5)])
    with pytest.raises(FailedPrecondition, match=f"version {CUT + 5}"):
        collection.pin_snapshot(CUT, TTL)


def test_pre_images_of_ids_that_left_the_store_come_in_id_order(
    collection: Collection,
) -> None:
    collection.write([upsert(doc_id, 10) for doc_id in "abcdef"])
    collection.pin_snapshot(CUT, TTL)
    collection.write([tombstone("b", 110), tombstone("e", 120)])
    collection.checkpoint()
    assert collection.purge_tombstones(200) == 2  # b and e leave the store
    collection.seal_snapshot(CUT, TTL)
    ids = [doc_id for doc_id, _, _ in scan(collection, limit=2)]
    assert ids == list("abcdef")
