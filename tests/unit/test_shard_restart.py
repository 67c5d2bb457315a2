"""Shard restarts in-process: checkpoint plus catch-up, rebuild, bad checkpoints, leftovers."""

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from shard.core.checkpointer import Checkpointer, CheckpointPolicy
from shard.core.collection import Collection
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import Include, WriteOp
from shard.storage import checkpoints
from shard.storage.layout import INDEX_DIR, DataDir
from shard.storage.records import Record, decode, encode
from shoal.errors import DataLoss

DIM = 8


def vectors(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def upsert(doc_id: str, version: int, vector: npt.NDArray[np.float32]) -> WriteOp:
    return WriteOp(doc_id, version, False, vector.astype("<f4").tobytes(), doc_id.encode())


def tombstone(doc_id: str, version: int) -> WriteOp:
    return WriteOp(doc_id, version, True, b"", b"")


def new_collection(root: Path) -> Path:
    registry = Collections(DataDir(root))
    registry.load()
    registry.create(CollectionConfig("c", DIM))
    registry.close()
    return root / "collections" / "c"


def crash(collection: Collection) -> None:
    """Stop without the final checkpoint, as SIGKILL would."""
    collection.close(checkpoint=False)


def top1(collection: Collection, vector: npt.NDArray[np.float32]) -> str:
    [hits] = collection.search(vector, 1, 0, Include())
    return hits[0].id


def expected_state(
    collection: Collection, v: npt.NDArray[np.float32], live: dict[str, int]
) -> None:
    assert collection.count() == len(live)
    for doc_id, row in live.items():
        assert top1(collection, v[row]) == doc_id
    found = collection.get(list(live), Include(vector=True))
    assert {d.id: np.frombuffer(d.vector, "<f4").tolist() for d in found} == {
        doc_id: v[row].tolist() for doc_id, row in live.items()
    }


def history(collection: Collection, v: npt.NDArray[np.float32]) -> dict[str, int]:
    """Upserts, deletes, re-adds and updates; returns live id -> row of its vector."""
    collection.write([upsert(str(i), 1, v[i]) for i in range(100)])
    collection.write([tombstone(str(i), 2) for i in range(10)])
    collection.write([upsert("0", 3, v[100]), upsert("20", 3, v[101])])
    live = {str(i): i for i in range(10, 100)}
    live["0"] = 100
    live["20"] = 101
    return live


def test_a_checkpoint_is_caught_up_with_later_writes(tmp_path: Path) -> None:
    path = new_collection(tmp_path)
    v = vectors(200)
    collection, info = Collection.open(path)
    assert info.source == "rebuild"
    collection.write([upsert(str(i), 1, v[i]) for i in range(50)])
    assert collection.checkpoint()
    live = {str(i): i for i in range(50)}
    collection.write([tombstone("1", 2), tombstone("2", 2)])
    collection.write([upsert("3", 2, v[150]), upsert("1", 3, v[151])])
    collection.write([upsert(str(i), 1, v[i]) for i in range(50, 60)])
    del live["2"]
    live.update({"3": 150, "1": 151, **{str(i): i for i in range(50, 60)}})
    crash(collection)

    collection, info = Collection.open(path)
    assert info.source == "checkpoint"
    assert info.applied == 13  # ids 1, 2, 3 and 50-59: each once, however often written
    expected_state(collection, v, live)
    # Labels are never reused: new documents after the restart do not collide.
    collection.write([upsert("new", 1, v[199])])
    assert top1(collection, v[199]) == "new"
    assert top1(collection, v[151]) == "1"
    crash(collection)


def test_without_a_checkpoint_the_index_is_rebuilt(tmp_path: Path) -> None:
    path = new_collection(tmp_path)
    v = vectors(200)
    collection, _ = Collection.open(path)
    live = history(collection, v)
    crash(collection)
    collection, info = Collection.open(path)
    assert (info.source, info.documents) == ("rebuild", len(live))
    expected_state(collection, v, live)
    crash(collection)


def test_a_graceful_close_checkpoints_and_the_restart_replays_nothing(tmp_path: Path) -> None:
    path = new_collection(tmp_path)
    v = vectors(200)
    collection, _ = Collection.open(path)
    live = history(collection, v)
    collection.close(checkpoint=True)
    collection, info = Collection.open(path)
    assert (info.source, info.applied) == ("checkpoint", 0)
    expected_state(collection, v, live)
    crash(collection)


def test_a_corrupt_checkpoint_is_skipped(tmp_path: Path) -> None:
    path = new_collection(tmp_path)
    v = vectors(200)
    collection, _ = Collection.open(path)
    live = history(collection, v)
    collection.close(checkpoint=True)
    [saved] = (path / INDEX_DIR).iterdir()
    index_file = saved / checkpoints.INDEX_FILE
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))
    collection, info = Collection.open(path)
    assert info.source == "rebuild"
    expected_state(collection, v, live)
    crash(collection)


def test_a_checkpoint_ahead_of_the_store_is_not_used(tmp_path: Path) -> None:
    path = new_collection(tmp_path)
    v = vectors(200)
    collection, _ = Collection.open(path)
    history(collection, v)
    collection.close(checkpoint=True)
    index_dir = path / INDEX_DIR
    [saved] = index_dir.iterdir()
    seq = int(saved.name.removeprefix(checkpoints.PREFIX))
    config = CollectionConfig("c", DIM).with_defaults()
    assert checkpoints.load_newest(index_dir, "cosine", DIM, config.hnsw_ef, seq) is not None
    assert checkpoints.load_newest(index_dir, "cosine", DIM, config.hnsw_ef, seq - 1) is None


def test_the_checkpointer_saves_collections_with_enough_new_writes(tmp_path: Path) -> None:
    registry = Collections(DataDir(tmp_path))
    registry.load()
    registry.create(CollectionConfig("c", DIM))
    checkpointer = Checkpointer(registry, CheckpointPolicy(every_writes=10, interval_s=3600))
    collection = registry.get("c")
    v = vectors(20)
    collection.write([upsert(str(i), 1, v[i]) for i in range(5)])
    assert checkpointer.run_once() == 0
    collection.write([upsert(str(i), 1, v[i]) for i in range(5, 20)])
    assert checkpointer.run_once() == 1
    assert checkpointer.run_once() == 0
    registry.close()


def test_interrupted_creates_and_deletes_are_cleaned_up_on_load(tmp_path: Path) -> None:
    new_collection(tmp_path)
    collections_dir = tmp_path / "collections"
    (collections_dir / ".tmp-half-created-123").mkdir()
    (collections_dir / ".trash-half-deleted-456" / "db").mkdir(parents=True)
    registry = Collections(DataDir(tmp_path))
    report = registry.load()
    assert (report.collections, report.failed) == (1, [])
    assert sorted(p.name for p in collections_dir.iterdir()) == ["c"]
    registry.close()


def test_a_failed_create_leaves_nothing_behind(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path)
    data_dir.prepare()

    def fail(path: Path) -> None:
        (path / "partial").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        data_dir.create("c", fail)
    assert list((tmp_path / "collections").iterdir()) == []


def test_a_collection_that_cannot_load_reports_data_loss(tmp_path: Path) -> None:
    (tmp_path / "collections" / "broken" / "db").mkdir(parents=True)  # a store with no config
    registry = Collections(DataDir(tmp_path))
    report = registry.load()
    assert report.failed == ["broken"]
    with pytest.raises(DataLoss):
        registry.get("broken")
    assert registry.delete("broken")
    registry.close()


def test_a_catalog_create_leaves_a_store_that_cannot_load_for_a_drop(tmp_path: Path) -> None:
    """Its incarnation cannot be read, so it may hold the current one's data: the
    catalog following a live entry must not replace it with an empty collection."""
    (tmp_path / "collections" / "broken" / "db").mkdir(parents=True)
    registry = Collections(DataDir(tmp_path))
    registry.load()
    config = CollectionConfig(name="broken", dimension=4, incarnation=7)
    with pytest.raises(DataLoss):
        registry.create(config)
    assert (tmp_path / "collections" / "broken" / "db").is_dir()
    assert list(registry.failed()) == ["broken"]
    assert registry.delete("broken", incarnation=7)  # the catalog's drop removes it
    assert registry.create(config)[1]
    registry.close()


def test_records_round_trip_and_corruption_is_data_loss() -> None:
    record = Record(7, False, 3, 11, np.ones(DIM, "<f4").tobytes(), b"payload")
    assert decode(encode(record), "a") == record
    tomb = Record(8, True, 4, 2**64 - 1, b"", b"")
    assert decode(encode(tomb), "a") == tomb
    with pytest.raises(DataLoss):
        decode(encode(record)[:10], "a")
    with pytest.raises(DataLoss):
        decode(b"\x09" + encode(record)[1:], "a")
