"""Shard collections in-process: last-writer-wins, tombstones, index growth, search, errors."""

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from shard.core.collection import Collection
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import Include, WriteOp
from shard.storage.hnsw_index import HnswIndex, SearchIncomplete
from shard.storage.layout import DataDir
from shoal.distance_metric import Metric
from shoal.errors import AlreadyExists, InvalidArgument, NotFound

DIM = 8
NONE = Include()
ALL = Include(vector=True, payload=True)


def vectors(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def upsert(
    doc_id: str, version: int, vector: npt.NDArray[np.float32], payload: bytes = b""
) -> WriteOp:
    return WriteOp(doc_id, version, False, vector.astype("<f4").tobytes(), payload)


def tombstone(doc_id: str, version: int) -> WriteOp:
    return WriteOp(doc_id, version, True, b"", b"")


@pytest.fixture
def collections(tmp_path: Path) -> Iterator[Collections]:
    registry = Collections(DataDir(tmp_path / "data"))
    registry.load()
    yield registry
    registry.close()


def make(collections: Collections, name: str = "c", **settings: object) -> Collection:
    collections.create(CollectionConfig(name, DIM, **settings))  # type: ignore[arg-type]
    return collections.get(name)


def stored_vector(collection: Collection, doc_id: str) -> npt.NDArray[np.float32]:
    [document] = collection.get([doc_id], Include(vector=True))
    return np.frombuffer(document.vector, dtype="<f4")


def search_ids(collection: Collection, query: npt.NDArray[np.float32], k: int) -> list[str]:
    [hits] = collection.search(query.astype(np.float32), k, 0, NONE)
    return [hit.id for hit in hits]


# -- last-writer-wins ---------------------------------------------------------------------


def test_a_newer_version_replaces_and_an_older_one_is_ignored(collections: Collections) -> None:
    collection = make(collections)
    v = vectors(3)
    assert collection.write([upsert("a", 5, v[0])]).applied == 1
    assert collection.write([upsert("a", 4, v[1])]).applied == 0
    np.testing.assert_array_equal(stored_vector(collection, "a"), v[0])
    assert collection.write([upsert("a", 6, v[2])]).applied == 1
    np.testing.assert_array_equal(stored_vector(collection, "a"), v[2])
    assert search_ids(collection, v[2], 1) == ["a"]
    assert collection.count() == 1


def test_replaying_a_batch_changes_nothing(collections: Collections) -> None:
    collection = make(collections)
    batch = [upsert(str(i), 1, v) for i, v in enumerate(vectors(20))]
    assert collection.write(batch).applied == 20
    assert collection.write(batch).applied == 0
    assert collection.count() == 20
    assert collection.index_stats().slots == 20


def test_equal_versions_converge_whatever_the_order(collections: Collections) -> None:
    first, second = make(collections, "first"), make(collections, "second")
    v = vectors(2)
    x, y = upsert("a", 7, v[0], b"x"), upsert("a", 7, v[1], b"y")
    first.write([x])
    first.write([y])
    second.write([y])
    second.write([x])
    a = first.get(["a"], ALL)
    b = second.get(["a"], ALL)
    assert a == b


def test_reordered_writes_end_in_the_same_state(collections: Collections) -> None:
    v = vectors(4)
    writes = [
        upsert("a", 1, v[0]),
        upsert("a", 3, v[1]),
        tombstone("a", 2),
        upsert("b", 2, v[2]),
        tombstone("b", 4),
        upsert("c", 9, v[3]),
    ]
    forward, backward = make(collections, "forward"), make(collections, "backward")
    for write in writes:
        forward.write([write])
    for write in reversed(writes):
        backward.write([write])
    for collection in (forward, backward):
        documents = collection.get(["a", "b", "c"], ALL)
        assert [d.id for d in documents] == ["a", "c"]
        np.testing.assert_array_equal(stored_vector(collection, "a"), v[1])
        assert collection.count() == 2


def test_the_newest_write_per_id_in_one_batch_wins(collections: Collections) -> None:
    collection = make(collections)
    v = vectors(2)
    result = collection.write([upsert("a", 2, v[0]), upsert("a", 1, v[1])])
    assert result.applied == 1
    np.testing.assert_array_equal(stored_vector(collection, "a"), v[0])


# -- tombstones ----------------------------------------------------------------------------


def test_a_tombstone_hides_a_document_and_blocks_older_writes(collections: Collections) -> None:
    collection = make(collections)
    v = vectors(2)
    collection.write([upsert("a", 1, v[0]), upsert("b", 1, v[1])])
    result = collection.write([tombstone("a", 2)])
    assert (result.applied, result.deleted) == (1, 1)
    assert collection.get(["a"], NONE) == []
    assert "a" not in search_ids(collection, v[0], 2)
    assert collection.write([upsert("a", 1, v[0])]).applied == 0
    assert collection.count() == 1


def test_a_tombstone_for_an_unknown_id_is_kept(collections: Collections) -> None:
    collection = make(collections)
    result = collection.write([tombstone("ghost", 5)])
    assert (result.applied, result.deleted) == (1, 0)
    assert collection.write([upsert("ghost", 4, vectors(1)[0])]).applied == 0
    assert collection.count() == 0


def test_a_newer_upsert_revives_a_deleted_id(collections: Collections) -> None:
    collection = make(collections)
    v = vectors(2)
    collection.write([upsert("a", 1, v[0])])
    collection.write([tombstone("a", 2)])
    collection.write([upsert("a", 3, v[1])])
    assert search_ids(collection, v[1], 1) == ["a"]
    assert collection.count() == 1


# -- index growth and slot reuse -------------------------------------------------------------


def test_the_index_grows_past_its_initial_capacity(collections: Collections) -> None:
    collection = make(collections)
    capacity = collection.index_stats().capacity
    v = vectors(capacity + 500)
    for start in range(0, len(v), 400):
        collection.write([upsert(str(i), 1, v[i]) for i in range(start, min(start + 400, len(v)))])
    stats = collection.index_stats()
    assert stats.capacity >= len(v) > capacity
    assert stats.live == stats.slots == len(v)
    assert search_ids(collection, v[-1], 1) == [str(len(v) - 1)]


def test_deleted_slots_are_reused(collections: Collections) -> None:
    collection = make(collections)
    v = vectors(200)
    collection.write([upsert(str(i), 1, v[i]) for i in range(100)])
    collection.write([tombstone(str(i), 2) for i in range(40)])
    assert collection.index_stats().slots == 100
    collection.write([upsert(str(i), 1, v[i]) for i in range(100, 140)])
    stats = collection.index_stats()
    assert (stats.slots, stats.live) == (100, 100)
    for i in (100, 139):
        assert search_ids(collection, v[i], 1) == [str(i)]


def test_updating_a_live_document_replaces_its_vector(collections: Collections) -> None:
    collection = make(collections)
    v = vectors(50)
    collection.write([upsert(str(i), 1, v[i]) for i in range(49)])
    collection.write([upsert("0", 2, v[49])])
    assert search_ids(collection, v[49], 1) == ["0"]
    assert collection.index_stats().slots == 49


# -- search ----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", list(Metric))
def test_scores_and_distances_follow_the_metric(collections: Collections, metric: Metric) -> None:
    collection = make(collections, metric=metric)
    v = vectors(30, seed=1)
    query = vectors(1, seed=2)[0]
    collection.write([upsert(str(i), 1, v[i]) for i in range(30)])
    [hits] = collection.search(query, 30, 0, NONE)
    if metric is Metric.COSINE:
        exact = (v @ query) / (np.linalg.norm(v, axis=1) * np.linalg.norm(query))
        expected = [(1 - s, s) for s in exact]
    elif metric is Metric.INNER_PRODUCT:
        exact = v @ query
        expected = [(1 - s, s) for s in exact]
    else:
        exact = np.linalg.norm(v - query, axis=1)
        expected = [(d, -d) for d in exact]
    assert [hit.id for hit in hits] == [
        str(i) for i in sorted(range(30), key=lambda i: (expected[i][0], str(i)))
    ]
    for hit in hits:
        distance, score = expected[int(hit.id)]
        assert hit.distance == pytest.approx(distance, abs=1e-4)
        assert hit.score == pytest.approx(score, abs=1e-4)


def test_ties_are_broken_by_id(collections: Collections) -> None:
    collection = make(collections)
    same = vectors(1)[0]
    collection.write([upsert(doc_id, 1, same) for doc_id in ["c", "a", "b"]])
    assert search_ids(collection, same, 3) == ["a", "b", "c"]


def test_k_above_the_live_count_returns_every_live_document(collections: Collections) -> None:
    collection = make(collections)
    v = vectors(5)
    collection.write([upsert(str(i), 1, v[i]) for i in range(5)])
    collection.write([tombstone("0", 2)])
    assert sorted(search_ids(collection, v[1], 10)) == ["1", "2", "3", "4"]


def test_search_in_an_empty_collection_returns_no_hits(collections: Collections) -> None:
    collection = make(collections)
    assert [len(hits) for hits in collection.search(vectors(2).reshape(-1), 3, 0, NONE)] == [0, 0]


def test_exact_fallback_when_hnswlib_cannot_return_k(
    collections: Collections, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = make(collections)
    v = vectors(60)
    collection.write([upsert(str(i), 1, v[i]) for i in range(60)])
    collection.write([tombstone(str(i), 2) for i in range(0, 60, 2)])
    queries = vectors(3, seed=9)
    expected = [search_ids(collection, q, 5) for q in queries]

    def incomplete(self: HnswIndex, queries: object, k: int) -> object:
        raise SearchIncomplete("too few reachable elements")

    monkeypatch.setattr(HnswIndex, "search", incomplete)
    results = collection.search(queries.reshape(-1), 5, 0, NONE)
    assert [[hit.id for hit in hits] for hits in results] == expected
    assert all(int(hit.id) % 2 == 1 for hits in results for hit in hits)


def test_search_uses_the_requested_ef_and_falls_back_to_the_default(
    collections: Collections,
) -> None:
    collection = make(collections, hnsw_ef=32)
    v = vectors(10)
    collection.write([upsert(str(i), 1, v[i]) for i in range(10)])
    collection.search(v[0], 3, 200, NONE)
    assert collection.index_stats().ef == 200
    collection.search(v[0], 3, 0, NONE)
    assert collection.index_stats().ef == 32


def test_hits_carry_the_fields_asked_for(collections: Collections) -> None:
    collection = make(collections)
    v = vectors(2)
    collection.write([upsert("a", 1, v[0], b"payload-a"), upsert("b", 1, v[1])])
    [hits] = collection.search(v[0], 1, 0, Include(payload=True))
    assert hits[0].document is not None
    assert hits[0].document.payload == b"payload-a" and hits[0].document.vector == b""
    [hits] = collection.search(v[0], 1, 0, NONE)
    assert hits[0].document is None


def test_an_index_failure_after_commit_rebuilds_the_index(
    collections: Collections, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = make(collections)
    v = vectors(20)
    collection.write([upsert(str(i), 1, v[i]) for i in range(10)])
    original = HnswIndex.add
    calls = {"n": 0}

    def failing_once(self: HnswIndex, labels: object, vectors: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated hnswlib failure")
        original(self, labels, vectors)  # type: ignore[arg-type]

    monkeypatch.setattr(HnswIndex, "add", failing_once)
    assert collection.write([upsert(str(i), 1, v[i]) for i in range(10, 20)]).applied == 10
    assert collection.count() == 20
    assert search_ids(collection, v[15], 1) == ["15"]


# -- bad input and lifecycle -----------------------------------------------------------------


@pytest.mark.parametrize(
    "write",
    [
        WriteOp("a", 1, False, np.zeros(DIM - 1, "<f4").tobytes(), b""),
        WriteOp("a", 1, False, b"", b""),
        WriteOp("a", 1, False, np.full(DIM, np.nan, "<f4").tobytes(), b""),
        WriteOp("a", 1, False, np.full(DIM, np.inf, "<f4").tobytes(), b""),
        WriteOp("", 1, False, np.zeros(DIM, "<f4").tobytes(), b""),
        WriteOp("x" * 513, 1, False, np.zeros(DIM, "<f4").tobytes(), b""),
        WriteOp("a", 0, False, np.zeros(DIM, "<f4").tobytes(), b""),
    ],
    ids=["dimension", "no-vector", "nan", "inf", "empty-id", "long-id", "version-0"],
)
def test_bad_writes_are_rejected_and_nothing_is_stored(
    collections: Collections, write: WriteOp
) -> None:
    collection = make(collections)
    good = upsert("good", 1, vectors(1)[0])
    with pytest.raises(InvalidArgument):
        collection.write([good, write])
    assert collection.count() == 0
    assert collection.get(["good"], NONE) == []


@pytest.mark.parametrize(
    ("floats", "k", "ef"),
    [(DIM, 0, 0), (DIM, 1025, 0), (DIM - 1, 1, 0), (0, 1, 0), (DIM, 1, 5000)],
    ids=["k-0", "k-too-big", "ragged", "empty", "ef-too-big"],
)
def test_bad_searches_are_rejected(collections: Collections, floats: int, k: int, ef: int) -> None:
    collection = make(collections)
    with pytest.raises(InvalidArgument):
        collection.search(np.zeros(floats, np.float32), k, ef, NONE)


def test_a_nan_query_is_rejected(collections: Collections) -> None:
    collection = make(collections)
    with pytest.raises(InvalidArgument):
        collection.search(np.full(DIM, np.nan, np.float32), 1, 0, NONE)


def test_create_is_idempotent_only_for_identical_settings(collections: Collections) -> None:
    config, created = collections.create(CollectionConfig("c", DIM))
    assert created and config.hnsw_m == 16 and config.hnsw_ef == 64
    assert collections.create(CollectionConfig("c", DIM, hnsw_m=16)) == (config, False)
    with pytest.raises(AlreadyExists, match="dimension"):
        collections.create(CollectionConfig("c", DIM + 1))
    with pytest.raises(AlreadyExists, match="metric"):
        collections.create(CollectionConfig("c", DIM, metric=Metric.L2))


@pytest.mark.parametrize("name", ["../x", ".hidden", "a/b", "", "x" * 64])
def test_collection_names_that_are_not_safe_paths_are_rejected(
    collections: Collections, name: str
) -> None:
    with pytest.raises(InvalidArgument):
        collections.create(CollectionConfig(name, DIM))
    with pytest.raises(InvalidArgument):
        collections.get(name)


def test_a_deleted_collection_is_gone(collections: Collections, tmp_path: Path) -> None:
    collection = make(collections)
    collection.write([upsert("a", 1, vectors(1)[0])])
    assert collections.delete("c")
    assert not collections.delete("c")
    with pytest.raises(NotFound):
        collections.get("c")
    with pytest.raises(NotFound):
        collection.count()
    assert list((tmp_path / "data" / "collections").iterdir()) == []
    assert collections.list_collections() == []


def test_list_reports_live_counts(collections: Collections) -> None:
    collection = make(collections, "b")
    make(collections, "a")
    v = vectors(3)
    collection.write([upsert(str(i), 1, v[i]) for i in range(3)] + [tombstone("0", 2)])
    listed = [(config.name, count) for config, count in collections.list_collections()]
    assert listed == [("a", 0), ("b", 2)]


def test_concurrent_searches_with_mixed_ef_and_writes_stay_consistent(
    collections: Collections,
) -> None:
    collection = make(collections)
    v = vectors(600, seed=3)
    collection.write([upsert(str(i), 1, v[i]) for i in range(300)])
    errors: list[BaseException] = []
    done = threading.Event()

    def search(ef: int) -> None:
        try:
            while not done.is_set():
                for hits in collection.search(v[:4].reshape(-1), 5, ef, NONE):
                    assert len(hits) == 5
        except BaseException as error:
            errors.append(error)

    searchers = [threading.Thread(target=search, args=(ef,)) for ef in (0, 16, 100, 100)]
    for thread in searchers:
        thread.start()
    try:
        for start in range(300, 600, 20):
            collection.write([upsert(str(i), 1, v[i]) for i in range(start, start + 20)])
            collection.write([tombstone(str(i - 300), 2) for i in range(start, start + 10)])
    finally:
        done.set()
        for thread in searchers:
            thread.join()
    assert errors == []
    assert collection.count() == 600 - 150
    assert search_ids(collection, v[599], 1) == ["599"]
