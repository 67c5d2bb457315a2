"""One set of cases against the unit tests' `FakeShard` and a real shard server, both
through the coordinator's `ShardClient` port (the fake in memory, the server by
`GrpcShardClient`): what the coordinator's unit tests take for granted of a shard
holds of a shard.

Each case states the expected answer itself, so a case that fails on one side only
says which side differs. Where the fake still differs from a shard on purpose, its
docstring (tests/unit/coordinator_fakes.py) says so.
"""

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, cast

import grpc.aio
import numpy as np
import numpy.typing as npt
import pytest

from coordinator.clients.shard import GrpcShardClient
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.ports import (
    CollectionConfig,
    HybridCall,
    Include,
    ShardClient,
    WeightedTerms,
    WriteAck,
    WriteOp,
)
from shoal.cli.service_process import ServiceProcess
from shoal.distance_metric import Metric
from shoal.errors import InvalidArgument
from shoal.keyword import KeywordSettings, TermStatistics, query_weights, tokenizer_for
from shoal.replication import VersionState
from shoal.runtime.proto_values import metadata_from_proto, metadata_to_proto
from shoal.runtime.server import GRPC_OPTIONS
from shoal.sdk.where import where_document_to_filter, where_to_filter
from shoal.v1 import common_pb2, shard_pb2
from tests.unit.coordinator_fakes import FakeShard

TIMEOUT = 30.0
DIM = 8
EVERYTHING = Include(metadata=True, text=True, vector=True)
IDS_ONLY = Include()
#: A version of now: a shard leaves tombstones older than its grace period (7 days
#: by default) out of what it lists, and a small version is from 1970.
NOW = HybridLogicalClock(1).next()


@pytest.fixture(scope="module")
def shard_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One real shard server for the module; each case uses a collection of its own."""
    workdir = tmp_path_factory.mktemp("shard")
    shard = ServiceProcess(
        "shard", "shard", ["--data-dir", str(workdir / "data"), "--threads", "2"], workdir
    )
    shard.start()
    try:
        shard.wait_ready(60)
        yield shard
    finally:
        shard.stop()


@pytest.fixture(params=["fake", "shard"])
async def shard(request: pytest.FixtureRequest) -> AsyncIterator[ShardClient]:
    if request.param == "fake":
        yield FakeShard("fake:7000")
        return
    process: ServiceProcess = request.getfixturevalue("shard_process")
    channel = grpc.aio.insecure_channel(process.address, options=GRPC_OPTIONS)
    try:
        yield GrpcShardClient(process.address, channel)
    finally:
        await channel.close()


def f32(values: npt.ArrayLike) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def live(
    doc_id: str,
    version: int,
    vector: npt.ArrayLike,
    text: str | None = None,
    **metadata: Any,
) -> WriteOp:
    # As the coordinator passes them on: the caller's metadata as `Value`s.
    return WriteOp(doc_id, version, False, f32(vector), text, metadata_to_proto(metadata))


def tombstone(doc_id: str, version: int) -> WriteOp:
    return WriteOp(doc_id, version, deleted=True)


async def create(
    shard: ShardClient, name: str, metric: Metric = Metric.COSINE, dimension: int = DIM
) -> None:
    config = CollectionConfig(name=name, dimension=dimension, metric=metric, partitions=8)
    created, new = await shard.create_collection(config, TIMEOUT)
    assert new
    assert (created.name, created.dimension, created.metric) == (name, dimension, metric)


async def search(
    shard: ShardClient,
    name: str,
    queries: npt.NDArray[np.float32],
    k: int,
    include: Include = IDS_ONLY,
    spec: common_pb2.Filter | None = None,
    score_threshold: float | None = None,
) -> list[shard_pb2.ShardSearchResult]:
    """Search, its answers read as the `ShardSearchResult`s both sides return."""
    results = await shard.search(name, queries, k, 64, include, TIMEOUT, spec, score_threshold)
    return cast(list[shard_pb2.ShardSearchResult], list(results))


def fields(document: Any) -> tuple[str, str | None, list[float] | None, dict[str, Any]]:
    """A returned `Document`: id, text (None: unset), vector (None: not returned), metadata."""
    text = document.text if document.HasField("text") else None
    vector = np.frombuffer(document.vector_f32, "<f4").tolist() if document.vector_f32 else None
    return document.id, text, vector, metadata_from_proto(document.metadata)


# -- writes, get, delete ---------------------------------------------------------------


async def test_the_newest_version_wins_and_get_returns_what_include_asks(
    shard: ShardClient,
) -> None:
    await create(shard, "lww", dimension=4)
    assert not (await shard.create_collection(CollectionConfig("lww", 4, partitions=8), TIMEOUT))[1]
    first = [
        live("a", NOW + 10, [1, 0, 0, 0], "first", k="x"),
        live("b", NOW + 10, [0, 1, 0, 0], n=1),
    ]
    assert await shard.write("lww", first, TIMEOUT) == WriteAck(2, 0)
    assert await shard.write(
        "lww", [live("a", NOW + 5, [0, 0, 1, 0], "older")], TIMEOUT
    ) == WriteAck(0, 0)
    newer = live("a", NOW + 20, [0, 0, 0, 1], "second", k="y", tags=["p", "q"])
    assert await shard.write("lww", [newer], TIMEOUT) == WriteAck(1, 0)

    documents = await shard.get("lww", ["b", "a", "missing", "a"], EVERYTHING, TIMEOUT)
    assert [fields(d) for d in documents] == [
        ("b", None, [0.0, 1.0, 0.0, 0.0], {"n": 1}),
        ("a", "second", [0.0, 0.0, 0.0, 1.0], {"k": "y", "tags": ["p", "q"]}),
    ]
    [bare] = await shard.get("lww", ["a"], Include(), TIMEOUT)
    assert fields(bare) == ("a", None, None, {})
    [text_only] = await shard.get("lww", ["a"], Include(text=True), TIMEOUT)
    assert fields(text_only) == ("a", "second", None, {})

    # A tombstone removes the live document; older writes after it change nothing.
    assert await shard.write("lww", [tombstone("a", NOW + 30)], TIMEOUT) == WriteAck(1, 1)
    assert await shard.get("lww", ["a"], EVERYTHING, TIMEOUT) == []
    assert await shard.write("lww", [live("a", NOW + 25, [1, 1, 1, 1])], TIMEOUT) == WriteAck(0, 0)
    assert await shard.write("lww", [tombstone("never", NOW + 3)], TIMEOUT) == WriteAck(1, 0)
    assert await shard.count("lww", TIMEOUT) == 1
    assert await shard.list_versions("lww", range(8), TIMEOUT) == {
        "b": VersionState(NOW + 10, False),
        "a": VersionState(NOW + 30, True),
        "never": VersionState(NOW + 3, True),
    }


async def test_a_patch_updates_the_record_held_and_keeps_its_vector(shard: ShardClient) -> None:
    await create(shard, "patch", dimension=4)
    await shard.write("patch", [live("a", NOW + 10, [1, 0, 0, 0], "text", k="x", n=1)], TIMEOUT)
    patch = WriteOp(
        "a",
        NOW + 20,
        metadata=metadata_to_proto({"k": "y", "new": True}),
        patch=True,
        remove_metadata=["n"],
    )
    absent = WriteOp("gone", NOW + 20, metadata=metadata_to_proto({"k": "y"}), patch=True)
    assert await shard.write("patch", [patch, absent], TIMEOUT) == WriteAck(1, 0)
    [document] = await shard.get("patch", ["a"], EVERYTHING, TIMEOUT)
    assert fields(document) == ("a", "text", [1.0, 0.0, 0.0, 0.0], {"k": "y", "new": True})
    assert await shard.get("patch", ["gone"], EVERYTHING, TIMEOUT) == []
    older = WriteOp("a", NOW + 15, metadata=metadata_to_proto({"k": "z"}), patch=True)
    assert await shard.write("patch", [older], TIMEOUT) == WriteAck(0, 0)
    assert (await shard.list_versions("patch", range(8), TIMEOUT))["a"] == VersionState(
        NOW + 20, False
    )


# -- search scores per metric ------------------------------------------------------------


def reference(
    metric: Metric, query: npt.NDArray[np.float32], vectors: npt.NDArray[np.float32]
) -> tuple[list[float], list[float]]:
    """Scores and distances as the `Hit` message defines them, computed here directly
    (in float64, from the float32 values both sides store)."""
    query, vectors = query.astype(np.float64), vectors.astype(np.float64)
    if metric is Metric.L2:
        distances = np.sqrt(((vectors - query) ** 2).sum(axis=1))
        return (-distances).tolist(), distances.tolist()
    if metric is Metric.COSINE:
        similarity = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    else:
        similarity = vectors @ query
    return similarity.tolist(), (1 - similarity).tolist()


@pytest.mark.parametrize("metric", [Metric.COSINE, Metric.L2, Metric.INNER_PRODUCT])
async def test_search_scores_each_metric_as_the_hit_message_defines(
    shard: ShardClient, metric: Metric
) -> None:
    name = f"metric-{metric.value}"
    await create(shard, name, metric)
    rng = np.random.default_rng(7)
    # Lengths from 0.5 to 3, so that cosine, inner product and l2 rank differently.
    vectors = (rng.standard_normal((30, DIM)) * rng.uniform(0.5, 3.0, (30, 1))).astype(np.float32)
    ids = [f"d{i:02d}" for i in range(30)]
    await shard.write(name, [live(i, 1, v) for i, v in zip(ids, vectors, strict=True)], TIMEOUT)
    queries = rng.standard_normal((3, DIM)).astype(np.float32)

    results = await search(shard, name, queries, 5)
    assert len(results) == 3
    for query, result in zip(queries, results, strict=True):
        scores, distances = reference(metric, query, vectors)
        best = sorted(range(30), key=lambda i: (distances[i], ids[i]))[:5]
        assert [hit.id for hit in result.hits] == [ids[i] for i in best]
        assert [hit.score for hit in result.hits] == pytest.approx(
            [scores[i] for i in best], rel=1e-4, abs=1e-4
        )
        assert [hit.distance for hit in result.hits] == pytest.approx(
            [distances[i] for i in best], rel=1e-4, abs=1e-4
        )

    # A score threshold keeps the hits scoring at least that much.
    scores, _ = reference(metric, queries[0], vectors)
    threshold = sorted(scores, reverse=True)[2] - 1e-3
    [kept] = await search(shard, name, queries[:1], 5, score_threshold=threshold)
    assert len(kept.hits) == 3
    # Stored fields come with the hits when asked for.
    [with_vectors] = await search(shard, name, queries[:1], 1, Include(vector=True))
    [top] = with_vectors.hits
    assert fields(top.document)[2] == pytest.approx(vectors[ids.index(top.id)].tolist())


# -- filters, count, scroll --------------------------------------------------------------

DOCUMENTS = [
    live(
        "d0", 1, np.eye(DIM)[0], "the quick brown fox", n=0, tag="red", tags=["x", "y"], flag=True
    ),
    live("d1", 1, np.eye(DIM)[1], "a quick red fox jumps", n=1, tag="blue", tags=["y"], flag=False),
    live("d2", 1, np.eye(DIM)[2], "brown bears sleep", n=2, tag="red", flag=False),
    live("d3", 1, np.eye(DIM)[3], None, n=3.5, tags=["x"]),
    live("d4", 1, np.eye(DIM)[4], "green things", n=5, tag="green", flag=1),
    live("d5", 1, np.eye(DIM)[5], "quick brown dogs"),
]

FILTERS: dict[str, tuple[common_pb2.Filter, set[str]]] = {
    "range on ints": (where_to_filter({"n": {"$lt": 3}}), {"d0", "d1", "d2"}),
    "ints and floats compare as numbers": (where_to_filter({"n": {"$gte": 2.5}}), {"d3", "d4"}),
    "equal string": (where_to_filter({"tag": "red"}), {"d0", "d2"}),
    "not equal matches a missing key": (
        where_to_filter({"tag": {"$ne": "red"}}),
        {"d1", "d3", "d4", "d5"},
    ),
    "in matches any list element": (where_to_filter({"tags": {"$in": ["x"]}}), {"d0", "d3"}),
    "not in": (where_to_filter({"tags": {"$nin": ["x"]}}), {"d1", "d2", "d4", "d5"}),
    "a bool is not 1": (where_to_filter({"flag": True}), {"d0"}),
    "exists false": (where_to_filter({"n": {"$exists": False}}), {"d5"}),
    "or": (where_to_filter({"$or": [{"tag": "red"}, {"n": {"$gt": 4}}]}), {"d0", "d2", "d4"}),
    "and": (where_to_filter({"$and": [{"tag": "red"}, {"flag": False}]}), {"d2"}),
    "phrase": (where_document_to_filter({"$contains": "quick brown"}), {"d0", "d5"}),
    "no phrase, no text": (
        where_document_to_filter({"$not_contains": "fox"}),
        {"d2", "d3", "d4", "d5"},
    ),
    "an empty filter is no filter": (common_pb2.Filter(), {f"d{i}" for i in range(6)}),
}


@pytest.mark.parametrize("case", list(FILTERS))
async def test_filters_select_the_same_documents_for_search_count_and_scroll(
    shard: ShardClient, case: str
) -> None:
    name = "filters-" + "".join(c if c.isalnum() else "-" for c in case)
    await create(shard, name)
    await shard.write(name, DOCUMENTS, TIMEOUT)
    spec, expected = FILTERS[case]

    assert await shard.count(name, TIMEOUT, spec) == len(expected)
    page = await shard.scroll(name, spec, "", 100, Include(), TIMEOUT)
    assert [d.id for d in page.documents] == sorted(expected) and not page.more
    query = np.ones((1, DIM), dtype=np.float32)
    [result] = await search(shard, name, query, 10, spec=spec)
    assert {hit.id for hit in result.hits} == expected


def _has_document(hit: object) -> bool:
    """Whether a hit carries a Document: a `Hit` message's field is set, or a hit read
    out of the packed form (a real shard's answer) has one."""
    if isinstance(hit, common_pb2.Hit):
        return hit.HasField("document")
    return getattr(hit, "document", None) is not None


async def test_hybrid_search_answers_both_lists_and_the_statistics_it_scored_with(
    shard: ShardClient,
) -> None:
    await create(shard, "hybrid")
    await shard.write("hybrid", DOCUMENTS, TIMEOUT)
    call = HybridCall(
        vectors=np.eye(DIM, dtype=np.float32)[2:3],
        keyword=[WeightedTerms(["quick", "brown"], [1.0, 1.0])],
        average_length=3.0,
        statistics_terms=["quick", "brown", "zzz"],
        k=2,
        ef=64,
        include=Include(text=True),
    )

    answer = await shard.hybrid_search("hybrid", call, TIMEOUT)

    # Texts of d0, d1, d2, d4, d5; stop words ("the", "a") are not counted.
    assert answer.statistics == TermStatistics(5, 15, [3, 3, 0])
    [vector] = cast(list[shard_pb2.ShardSearchResult], list(answer.vector))
    top = vector.hits[0]
    assert (top.id, top.document.text) == ("d2", "brown bears sleep")
    [keyword] = cast(list[shard_pb2.ShardSearchResult], list(answer.keyword))
    # d0 and d5 hold both terms in 3 indexed tokens: 2 x 1 / (1 + 1.2), tied, by id.
    assert [hit.id for hit in keyword.hits] == ["d0", "d5"]
    assert [hit.score for hit in keyword.hits] == pytest.approx([2 / 2.2] * 2, rel=1e-5)
    assert keyword.hits[0].document.text == "the quick brown fox"
    # Bare hits: ids and scores, no Document, when no stored field is asked for.
    bare = await shard.hybrid_search(
        "hybrid", replace(call, include=IDS_ONLY, bare_hits=True), TIMEOUT
    )
    [bare_keyword] = cast(list[shard_pb2.ShardSearchResult], list(bare.keyword))
    assert [hit.id for hit in bare_keyword.hits] == ["d0", "d5"]
    assert not any(_has_document(hit) for hit in bare_keyword.hits)
    # Statistics alone: no lists.
    only = await shard.hybrid_search(
        "hybrid", replace(call, vectors=None, keyword=[], statistics_terms=["fox"]), TIMEOUT
    )
    assert (list(only.vector), list(only.keyword)) == ([], [])
    assert only.statistics == TermStatistics(5, 15, [2])


async def test_counts_and_statistics_leave_out_the_partitions_asked(shard: ShardClient) -> None:
    """What a group holds of a moving partition without owning it is left out of its
    counts and keyword statistics (`skip_partitions`); of 8 partitions d0 and d4 are
    in partition 2, d3 in 3, and d1, d2 and d5 in 4."""
    await create(shard, "skipped")
    await shard.write("skipped", DOCUMENTS, TIMEOUT)
    red = where_to_filter({"tag": "red"})  # d0, d2

    assert await shard.count("skipped", TIMEOUT, None, [4]) == 3
    assert await shard.count("skipped", TIMEOUT, None, [2, 4]) == 1
    assert await shard.count("skipped", TIMEOUT, red, [4]) == 1
    assert await shard.count("skipped", TIMEOUT, None, [9]) == 6  # no such partition
    listed = await shard.list_collections(TIMEOUT, [4])
    [info] = [c for c in listed.collections if c.config.name == "skipped"]
    assert (info.document_count, info.chunk_count or info.document_count) == (3, 3)
    terms = ["quick", "brown", "fox", "zzz"]
    # Left: d0 "the quick brown fox" (3 indexed tokens), d4 "green things" (2), d3 no text.
    without = TermStatistics(2, 5, [1, 1, 1, 0])
    assert await shard.keyword_stats("skipped", terms, TIMEOUT, [4]) == without
    assert await shard.keyword_stats("skipped", terms, TIMEOUT) == TermStatistics(
        5, 15, [3, 3, 2, 0]
    )
    call = HybridCall(
        vectors=None,
        keyword=[WeightedTerms(["quick"], [1.0])],
        average_length=3.0,
        statistics_terms=terms,
        k=10,
        ef=64,
        include=IDS_ONLY,
        skip_partitions=[4],
    )
    answer = await shard.hybrid_search("skipped", call, TIMEOUT)
    assert answer.statistics == without
    # The lists are not cut (the coordinator cuts them).
    [keyword] = cast(list[shard_pb2.ShardSearchResult], list(answer.keyword))
    assert {hit.id for hit in keyword.hits} == {"d0", "d1", "d5"}
    # Documents written and deleted after the first such read are placed too.
    await shard.write(
        "skipped",
        [
            live("e1", 1, np.eye(DIM)[6], "quick owls"),
            live("e2", 1, np.eye(DIM)[7], "quick"),
            tombstone("d1", 2),
            tombstone("d4", 2),
        ],
        TIMEOUT,
    )  # e1 in partition 3, e2 in 6
    assert await shard.count("skipped", TIMEOUT, None, [4]) == 4  # d0, d3, e1, e2
    assert await shard.count("skipped", TIMEOUT, None, [3, 6]) == 3  # d0, d2, d5
    assert await shard.keyword_stats("skipped", ["quick"], TIMEOUT, [4]) == TermStatistics(
        3, 6, [3]
    )


async def test_keyword_statistics_list_the_vocabulary_within_the_limit(shard: ShardClient) -> None:
    await create(shard, "vocabulary")
    await shard.write("vocabulary", DOCUMENTS, TIMEOUT)
    tokenizer = tokenizer_for(KeywordSettings())

    def held(documents: list[str]) -> dict[str, int]:
        texts = [op.text for op in DOCUMENTS if op.id in documents and op.text is not None]
        return dict(Counter(term for text in texts for term in set(tokenizer.terms(text))))

    every = held([op.id for op in DOCUMENTS])
    assert len(every) == 10
    stats = await shard.keyword_stats("vocabulary", ["fox"], TIMEOUT, vocabulary_limit=10)
    assert stats == TermStatistics(5, 15, [2], vocabulary=every)
    # Not asked for, or more terms than the limit: not listed.
    assert (await shard.keyword_stats("vocabulary", ["fox"], TIMEOUT)).vocabulary is None
    small = await shard.keyword_stats("vocabulary", ["fox"], TIMEOUT, vocabulary_limit=9)
    assert small == TermStatistics(5, 15, [2])
    # Partition 4 (d1, d2, d5) left out: its documents' terms count 0.
    skipped = await shard.keyword_stats("vocabulary", [], TIMEOUT, [4], vocabulary_limit=10)
    assert skipped.vocabulary is not None
    assert {t: n for t, n in skipped.vocabulary.items() if n} == held(["d0", "d3", "d4"])
    # A term whose every document was deleted is not listed.
    await shard.write("vocabulary", [tombstone("d4", 2)], TIMEOUT)
    gone = await shard.keyword_stats("vocabulary", [], TIMEOUT, vocabulary_limit=10)
    assert gone.vocabulary == held(["d0", "d1", "d2", "d3", "d5"])


async def test_hybrid_search_with_local_statistics_weights_as_its_caller_would(
    shard: ShardClient,
) -> None:
    await create(shard, "local")
    await shard.write("local", DOCUMENTS, TIMEOUT)
    terms = ["quick", "brown"]
    stats = TermStatistics(5, 15, [3, 3])  # this replica's, as the test above shows
    weighted = HybridCall(
        vectors=None,
        keyword=[WeightedTerms(terms, query_weights(["quick", "brown", "brown"], terms, stats))],
        average_length=stats.average_length,
        statistics_terms=terms,
        k=3,
        ef=64,
        include=IDS_ONLY,
        bare_hits=True,
    )
    local = replace(
        weighted,
        keyword=[WeightedTerms(terms, [], [1, 2])],
        average_length=0.0,
        local_statistics=True,
    )

    expected = await shard.hybrid_search("local", weighted, TIMEOUT)
    answer = await shard.hybrid_search("local", local, TIMEOUT)

    assert answer.statistics == stats
    [hits] = cast(list[shard_pb2.ShardSearchResult], list(answer.keyword))
    [want] = cast(list[shard_pb2.ShardSearchResult], list(expected.keyword))
    assert len(hits.hits) == 3
    assert [(h.id, h.score) for h in hits.hits] == [(h.id, h.score) for h in want.hits]


async def test_a_filter_a_shard_cannot_evaluate_is_invalid_argument(shard: ShardClient) -> None:
    await create(shard, "bad-filter")
    no_operator = common_pb2.Filter(condition=common_pb2.Condition(key="n"))
    with pytest.raises(InvalidArgument, match="unknown operator"):
        await shard.count("bad-filter", TIMEOUT, no_operator)


async def test_scroll_pages_in_id_order_after_the_last_id(shard: ShardClient) -> None:
    await create(shard, "scroll")
    await shard.write("scroll", DOCUMENTS, TIMEOUT)
    await shard.write("scroll", [tombstone("d1", 2)], TIMEOUT)
    pages = []
    after = ""
    for _ in range(5):
        page = await shard.scroll("scroll", None, after, 2, Include(metadata=True), TIMEOUT)
        pages.append(([fields(d) for d in page.documents], page.more))
        if not page.more:
            break
        after = page.documents[-1].id
    assert pages == [
        (
            [
                ("d0", None, None, {"n": 0, "tag": "red", "tags": ["x", "y"], "flag": True}),
                ("d2", None, None, {"n": 2, "tag": "red", "flag": False}),
            ],
            True,
        ),
        (
            [
                ("d3", None, None, {"n": 3.5, "tags": ["x"]}),
                ("d4", None, None, {"n": 5, "tag": "green", "flag": 1}),
            ],
            True,
        ),
        ([("d5", None, None, {})], False),
    ]


async def test_a_replica_without_a_topology_reports_version_0(shard: ShardClient) -> None:
    """What a partition move asks before it relies on the replicas' fencing."""
    assert await shard.topology_version(TIMEOUT) == 0
