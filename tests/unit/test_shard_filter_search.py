"""Filtered search, count and scroll on an in-process collection, against brute force."""

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from shard.api.proto_filters import filter_from_proto
from shard.core import filters, index_loading
from shard.core.collection import MAX_SCROLL_LIMIT, Collection, maintenance
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import Include, WriteOp
from shard.core.filters import (
    AllOf,
    AnyOf,
    Condition,
    Filter,
    Not,
    Op,
    ValidFilter,
    matches,
    validated,
)
from shard.core.index_loading import LoadedIndex
from shard.core.search_plan import Strategy
from shard.storage.hnsw_index import HnswIndex, SearchIncomplete
from shard.storage.layout import DataDir
from shoal.distance_metric import Metric
from shoal.errors import InvalidArgument
from shoal.v1 import common_pb2

DIM = 8
SECTIONS = ["libs", "doc", "net", "games", "math"]


def read_json(payload: bytes) -> Mapping[str, object]:
    """These tests' payload format: the metadata as JSON."""
    data: Mapping[str, object] = json.loads(payload)
    return data


def vectors(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def metadata_of(row: int) -> dict[str, object]:
    metadata: dict[str, object] = {"section": SECTIONS[row % 5], "size": row, "even": row % 2 == 0}
    if row % 3 == 0:
        metadata["tags"] = [f"t{row % 7}", f"t{row % 11}"]
    return metadata


def upsert(doc_id: str, version: int, vector: npt.NDArray[np.float32], metadata: object) -> WriteOp:
    return WriteOp(
        doc_id, version, False, vector.astype("<f4").tobytes(), json.dumps(metadata).encode()
    )


def tombstone(doc_id: str, version: int) -> WriteOp:
    return WriteOp(doc_id, version, True, b"", b"")


def doc_id(row: int) -> str:
    return f"doc-{row:04d}"


@pytest.fixture(params=[Strategy.AUTO, Strategy.EXACT, Strategy.GRAPH])
def strategy(request: pytest.FixtureRequest) -> Strategy:
    value: Strategy = request.param
    return value


def open_registry(root: Path, strategy: Strategy = Strategy.AUTO) -> Collections:
    registry = Collections(DataDir(root), read_metadata=read_json, filtered_search=strategy)
    registry.load()
    return registry


@pytest.fixture
def registry(tmp_path: Path, strategy: Strategy) -> Iterator[Collections]:
    registry = open_registry(tmp_path / "data", strategy)
    yield registry
    registry.close()


N = 600
FILTERS: list[Filter] = [
    Condition("section", Op.EQ, "libs"),  # 20%
    Condition("size", Op.LT, 30),  # 5%
    Condition("size", Op.GTE, 595),  # 5 documents: fewer than k
    AllOf((Condition("even", Op.EQ, True), Condition("section", Op.IN, ("doc", "net")))),
    AnyOf((Condition("tags", Op.EQ, "t3"), Condition("size", Op.GT, 590.5))),
    Not(Condition("section", Op.EQ, "libs")),  # 80%
    Condition("tags", Op.NIN, ("t1", "t2")),  # includes documents without tags
    Condition("section", Op.EQ, "none"),  # nothing
]


def loaded(
    registry: Collections, metric: Metric = Metric.COSINE
) -> tuple[Collection, npt.NDArray[np.float32]]:
    registry.create(CollectionConfig("c", DIM, metric=metric))
    collection = registry.get("c")
    v = vectors(N)
    collection.write([upsert(doc_id(row), 1, v[row], metadata_of(row)) for row in range(N)])
    return collection, v


def exact_ids(
    v: npt.NDArray[np.float32],
    query: npt.NDArray[np.float32],
    rows: list[int],
    k: int,
    metric: Metric,
) -> list[str]:
    if metric is Metric.COSINE:
        unit = v[rows] / np.linalg.norm(v[rows], axis=1, keepdims=True)
        distances = 1 - unit @ (query / np.linalg.norm(query))
    else:
        distances = np.linalg.norm(v[rows] - query, axis=1)
    order = np.argsort(distances, kind="stable")[:k]
    return [doc_id(rows[i]) for i in order]


@pytest.mark.parametrize("metric", [Metric.COSINE, Metric.L2])
def test_filtered_search_finds_the_exact_filtered_neighbours(
    registry: Collections, metric: Metric
) -> None:
    collection, v = loaded(registry, metric)
    queries = vectors(20, seed=1)
    k = 10
    for root in FILTERS:
        rows = [row for row in range(N) if matches(root, metadata_of(row))]
        results = collection.search(queries, k, 0, Include(payload=True), validated(root))
        recall = []
        for query, hits in zip(queries, results, strict=True):
            assert len(hits) == min(k, len(rows)), root
            assert all(matches(root, read_json(hit.document.payload)) for hit in hits)  # type: ignore[union-attr]
            expected = exact_ids(v, query, rows, k, metric)
            found = {hit.id for hit in hits} & set(expected)
            recall.append(len(found) / len(expected) if expected else 1.0)
            assert [hit.distance for hit in hits] == sorted(hit.distance for hit in hits)
        assert np.mean(recall) >= 0.95, root


def test_a_score_threshold_cuts_the_hits(registry: Collections) -> None:
    collection, v = loaded(registry)
    query = v[:1]
    [hits] = collection.search(query, 20, 0, Include())
    threshold = hits[5].score
    [cut] = collection.search(query, 20, 0, Include(), score_threshold=threshold)
    assert [hit.id for hit in cut] == [hit.id for hit in hits if hit.score >= threshold]
    assert len(cut) >= 6
    root = Condition("section", Op.EQ, "libs")
    [cut] = collection.search(query, 20, 0, Include(), validated(root), score_threshold=0.999)
    assert [hit.id for hit in cut] == [doc_id(0)]  # itself, a "libs" document
    with pytest.raises(InvalidArgument, match="score_threshold"):
        collection.search(query, 20, 0, Include(), score_threshold=float("nan"))


def test_a_walk_that_comes_up_short_is_answered_exactly(
    registry: Collections, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection, v = loaded(registry)
    original = HnswIndex.search

    def short(
        self: HnswIndex, queries: npt.NDArray[np.float32], k: int, allowed: bytes | None = None
    ) -> object:
        if allowed is not None:
            raise SearchIncomplete("too few")
        return original(self, queries, k, allowed)

    monkeypatch.setattr(HnswIndex, "search", short)
    root = Not(Condition("section", Op.EQ, "libs"))
    rows = [row for row in range(N) if matches(root, metadata_of(row))]
    [hits] = collection.search(v[:1], 10, 0, Include(), validated(root))
    assert [hit.id for hit in hits] == exact_ids(v, v[0], rows, 10, Metric.COSINE)


def test_count_and_search_follow_writes_overwrites_and_deletes(registry: Collections) -> None:
    collection, v = loaded(registry)
    libs = Condition("section", Op.EQ, "libs")
    assert collection.count(validated(libs)) == N // 5
    assert collection.count(validated(Not(libs))) == N - N // 5
    assert collection.count(validated(Condition("section", Op.EXISTS, True))) == N
    # doc 1 becomes "libs"; doc 0 (libs) is deleted; doc 5 (libs) loses its section.
    collection.write(
        [
            upsert(doc_id(1), 2, v[1], {"section": "libs"}),
            tombstone(doc_id(0), 2),
            upsert(doc_id(5), 2, v[5], {"size": 5}),
            upsert(doc_id(10), 1, v[10], {"section": "doc"}),  # older: ignored
        ]
    )
    assert collection.count(validated(libs)) == N // 5 - 1
    assert collection.count(validated(Condition("section", Op.EXISTS, False))) == 1
    assert collection.count() == N - 1
    [hits] = collection.search(v[1:2], 1, 0, Include(), validated(libs))
    assert hits[0].id == doc_id(1)
    [hits] = collection.search(v[0:1], 3, 0, Include(), validated(libs))
    assert doc_id(0) not in {hit.id for hit in hits}


@pytest.mark.parametrize("checkpoint", [True, False])
def test_filters_work_after_a_restart(tmp_path: Path, checkpoint: bool) -> None:
    registry = open_registry(tmp_path)
    collection, v = loaded(registry)
    collection.write([tombstone(doc_id(0), 2), upsert(doc_id(1), 2, v[1], {"section": "libs"})])
    if checkpoint:
        collection.checkpoint()
    collection.write([upsert(doc_id(2), 2, v[2], {"section": "libs"})])  # after the checkpoint
    registry.close()
    registry = open_registry(tmp_path)
    try:
        collection = registry.get("c")
        libs = Condition("section", Op.EQ, "libs")
        assert collection.count(validated(libs)) == N // 5 + 1
        [hits] = collection.search(v[2:3], 1, 0, Include(), validated(libs))
        assert hits[0].id == doc_id(2)
    finally:
        registry.close()


def test_a_filter_the_api_validated_is_not_walked_again(
    registry: Collections, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The servicer validates while converting, into the one type the collection's reads
    take (ValidFilter); the core trusts that type and never checks the filter again."""
    collection, v = loaded(registry)
    message = common_pb2.Filter(
        all_of=common_pb2.FilterList(
            filters=[
                common_pb2.Filter(
                    condition=common_pb2.Condition(
                        key="section",
                        op=common_pb2.OPERATOR_EQ,
                        value=common_pb2.Value(string_value="libs"),
                    )
                ),
                common_pb2.Filter(
                    condition=common_pb2.Condition(
                        key="size", op=common_pb2.OPERATOR_LT, value=common_pb2.Value(int_value=50)
                    )
                ),
            ]
        )
    )
    checked: list[Condition] = []
    check = filters._check_condition

    def counted(condition: Condition, where: str) -> None:
        checked.append(condition)
        check(condition, where)

    monkeypatch.setattr(filters, "_check_condition", counted)
    valid = filter_from_proto(message)
    assert isinstance(valid, ValidFilter)
    assert len(checked) == 2  # converting checked each condition once
    expected = sum(1 for row in range(N) if row % 5 == 0 and row < 50)
    assert collection.count(valid) == expected
    [hits] = collection.search(v[:1], 3, 0, Include(), valid)
    assert len(hits.ids) == 3
    page, _ = collection.scroll(valid, "", 100, Include())
    assert len(page) == expected
    assert len(checked) == 2  # and the reads did not check again
    # A filter made in-process (not through the api) is checked when it is made valid.
    direct = AllOf((Condition("section", Op.EQ, "libs"), Condition("size", Op.LT, 50)))
    valid_direct = validated(direct)
    assert collection.count(valid_direct) == collection.count(valid_direct) == expected
    assert len(checked) == 4


def test_bad_filters_are_rejected(registry: Collections) -> None:
    collection, v = loaded(registry)
    with pytest.raises(InvalidArgument, match=r"filter\.all_of: empty"):
        collection.search(v[:1], 3, 0, Include(), validated(AllOf(())))
    with pytest.raises(InvalidArgument, match="operator IN needs a list"):
        collection.count(validated(Condition("a", Op.IN, 3)))
    with pytest.raises(InvalidArgument, match="operator GT needs a number or string"):
        collection.scroll(validated(Condition("a", Op.GT, True)), "", 10, Include())


# -- scroll ----------------------------------------------------------------------------


def scroll_all(
    collection: Collection, root: Filter | None, limit: int, between: object = None
) -> list[str]:
    seen: list[str] = []
    after = ""
    while True:
        valid = None if root is None else validated(root)
        page, more = collection.scroll(valid, after, limit, Include(payload=True))
        assert len(page) <= limit
        if root is not None:
            assert all(matches(root, read_json(doc.payload)) for doc in page)
        seen.extend(doc.id for doc in page)
        if not more:
            return seen
        assert page, "a page that says more must not be empty"
        after = page[-1].id
        if callable(between):
            between(len(seen))


@pytest.mark.parametrize(
    "root",
    [
        None,
        Condition("size", Op.LT, 30),  # few: listed from the payload index
        Not(Condition("section", Op.EQ, "libs")),  # many: a store scan
        Condition("section", Op.EQ, "none"),
    ],
)
def test_scroll_lists_every_matching_document_once_in_id_order(
    registry: Collections, root: Filter | None
) -> None:
    collection, _ = loaded(registry)
    expected = sorted(
        doc_id(row) for row in range(N) if root is None or matches(root, metadata_of(row))
    )
    for limit in (7, 100):
        assert scroll_all(collection, root, limit) == expected


def test_scroll_pages_stay_exact_while_writes_go_on(registry: Collections) -> None:
    collection, v = loaded(registry)
    root = Condition("section", Op.IN, ("libs", "doc", "net"))  # 60%
    stable = {doc_id(row) for row in range(N) if matches(root, metadata_of(row)) and row % 4}
    version = 2

    def write_some(seen: int) -> None:
        nonlocal version
        version += 1
        base = seen % N
        # Touch only rows divisible by 4, and add and delete new ids on both sides of the cursor.
        rows = [(base + 4 * i) % N // 4 * 4 for i in range(10)]
        collection.write(
            [
                upsert(doc_id(row), version, v[row], {"section": SECTIONS[version % 5]})
                for row in rows
            ]
            + [upsert(f"doc-{seen:04d}-new", version, v[0], {"section": "libs"})]
            + [
                upsert(f"a-{seen}", version, v[0], {"section": "libs"}),
                tombstone(f"a-{seen - 1}", version),
            ]
        )

    for limit in (13, 250):
        seen = scroll_all(collection, root, limit, between=write_some)
        assert len(seen) == len(set(seen)), "a document came twice"
        assert seen == sorted(seen)
        assert stable <= set(seen)


def test_scroll_checks_documents_newer_than_the_payload_index(registry: Collections) -> None:
    """Records the index has not seen yet are judged from their own metadata."""
    collection, _ = loaded(registry)
    for root in (Condition("size", Op.LT, 30), Not(Condition("section", Op.EQ, "libs"))):
        expected = scroll_all(collection, root, 50)
        collection._state.payload.seq = 0  # every record now looks newer than the index
        try:
            assert scroll_all(collection, root, 50) == expected
            results = collection.search(vectors(3, 5), 10, 0, Include(), validated(root))
            assert all(len(hits) == 10 for hits in results)
        finally:
            collection._state.payload.seq = 10**9


def test_scroll_limits_and_cursor(registry: Collections) -> None:
    collection, _ = loaded(registry)
    page, more = collection.scroll(None, "", 0, Include())
    assert len(page) == 100 and more  # the default page
    page, more = collection.scroll(None, "", 5000, Include())
    assert len(page) == MAX_SCROLL_LIMIT < N or (len(page) == N and not more)
    page, more = collection.scroll(None, doc_id(N - 3), 10, Include(vector=True))
    assert [doc.id for doc in page] == [doc_id(N - 2), doc_id(N - 1)] and not more
    assert all(len(doc.vector) == 4 * DIM and doc.payload == b"" for doc in page)
    page, more = collection.scroll(None, "doc-0005x", 2, Include())  # need not exist
    assert [doc.id for doc in page] == [doc_id(6), doc_id(7)] and more
    page, more = collection.scroll(None, doc_id(N - 1), 10, Include())
    assert page == [] and not more


def test_filtered_reads_racing_writes_see_only_matching_documents(registry: Collections) -> None:
    collection, v = loaded(registry)
    libs = Condition("section", Op.EQ, "libs")
    stable = {doc_id(row) for row in range(N) if metadata_of(row)["section"] == "libs"}
    stop = threading.Event()
    failures: list[BaseException] = []

    def read() -> None:
        queries = vectors(4, seed=9)
        try:
            while not stop.is_set():
                for hits in collection.search(queries, 10, 0, Include(), validated(libs)):
                    assert len(hits) == 10 and {hit.id for hit in hits} <= stable
                assert collection.count(validated(libs)) == len(stable)
                page, _ = collection.scroll(validated(libs), "", 50, Include())
                assert {doc.id for doc in page} <= stable and len(page) == 50
        except BaseException as error:
            failures.append(error)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for version in range(2, 40):
            # Non-matching churn: new ids come and go, non-libs documents change section.
            writes = [
                upsert(f"new-{version}-{i}", version, v[i], {"section": "net"}) for i in range(20)
            ]
            writes += [tombstone(f"new-{version - 1}-{i}", version) for i in range(20)]
            rows = [row for row in range(version % 5, N, 25) if doc_id(row) not in stable]
            writes += [upsert(doc_id(row), version, v[row], {"section": "doc"}) for row in rows]
            collection.write(writes)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert not failures, failures[0]


def test_an_index_that_disagrees_with_the_store_is_rebuilt_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = open_registry(tmp_path)
    loaded(registry)
    registry.close()
    real = index_loading.load_index

    def lossy(*args: Any) -> LoadedIndex:
        index = real(*args)
        index.labels.pop(doc_id(0))  # as if the checkpoint had lost a document
        return index

    monkeypatch.setattr(maintenance, "load_index", lossy)
    registry = open_registry(tmp_path)
    try:
        collection = registry.get("c")
        assert collection.count() == N
        [hits] = collection.search(
            vectors(N)[:1], 1, 0, Include(), validated(Condition("size", Op.EQ, 0))
        )
        assert hits[0].id == doc_id(0)
    finally:
        registry.close()


def test_scroll_order_is_python_string_order_for_any_ids(registry: Collections) -> None:
    registry.create(CollectionConfig("u", DIM))
    collection = registry.get("u")
    ids = ["z", "é", "ä", "日本", "a", "a\x00", "a\x00b", "A", "\U0001f600", "ab"]
    v = vectors(len(ids))
    collection.write([upsert(i, 1, v[n], {"n": n}) for n, i in enumerate(ids)])
    assert scroll_all(collection, None, 3) == sorted(ids)
    assert scroll_all(collection, Condition("n", Op.GTE, 0), 2) == sorted(ids)
    page, _ = collection.scroll(None, "a", 2, Include())
    assert [doc.id for doc in page] == ["a\x00", "a\x00b"]
