"""Reads: fan-out to every group, failover between replicas, merge, coverage."""

import numpy as np
import numpy.typing as npt
import pytest

from coordinator.core.model import (
    DocumentInput,
    QueryInput,
    SearchOptions,
    SearchResults,
    WriteConsistency,
)
from coordinator.core.ports import Include
from coordinator.core.replicas import FIRST_BACKOFF_S, MAX_BACKOFF_S, Replica, ReplicaGroup
from shoal.errors import DataLoss, InvalidArgument, NotFound, Unavailable
from shoal.sdk.where import where_to_filter
from tests.unit.coordinator_fakes import FakeCluster, FakeShard, deadline

DIM = 8
K = 5


def unit_vectors(count: int, seed: int) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


VECTORS = unit_vectors(120, 1)
IDS = [f"d{i:03d}" for i in range(len(VECTORS))]
QUERIES = unit_vectors(6, 2)


async def loaded(cluster: FakeCluster) -> None:
    await cluster.create("c", DIM, partitions=16)
    docs = [DocumentInput(i, v) for i, v in zip(IDS, VECTORS, strict=True)]
    await cluster.core.writer.upsert("c", docs, WriteConsistency.ALL, deadline())


def ids_of(results: SearchResults) -> list[list[str]]:
    return [[hit.id for hit in result.hits] for result in results.results]


def exact(query: np.ndarray, k: int = K) -> list[str]:
    scores = VECTORS @ query
    order = sorted(range(len(IDS)), key=lambda i: (-scores[i], IDS[i]))
    return [IDS[i] for i in order[:k]]


async def search_ids(cluster: FakeCluster, allow_partial: bool = False) -> list[list[str]]:
    results = await cluster.core.reader.search(
        "c",
        [QueryInput(q) for q in QUERIES],
        SearchOptions(K, allow_partial=allow_partial),
        deadline(),
    )
    return ids_of(results)


async def test_search_merges_every_group_into_the_exact_ranking() -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    await loaded(cluster)
    results = await cluster.core.reader.search(
        "c", [QueryInput(q) for q in QUERIES], SearchOptions(K, allow_partial=False), deadline()
    )
    assert (results.coverage.asked, results.coverage.answered) == (3, 3)
    assert ids_of(results) == [exact(q) for q in QUERIES]
    # One request per group carries all queries.
    assert sum(shard.calls.count("search") for shard in cluster.all_shards) == 3


async def test_queries_as_one_matrix_give_the_same_answers() -> None:
    cluster = FakeCluster(groups=3, replicas=1)

    await loaded(cluster)
    results = await cluster.core.reader.search("c", QUERIES, SearchOptions(K), deadline())
    assert ids_of(results) == [exact(q) for q in QUERIES]
    with pytest.raises(InvalidArgument, match="queries: dimension 4, collection expects 8"):
        await cluster.core.reader.search("c", QUERIES[:, :4], SearchOptions(K), deadline())
    bad = QUERIES.copy()
    bad[3, 1] = np.inf
    with pytest.raises(InvalidArgument, match="query 3: vector contains NaN or infinity"):
        await cluster.core.reader.search("c", bad, SearchOptions(K), deadline())
    empty = await cluster.core.reader.search("c", [], SearchOptions(K), deadline())
    assert empty.results == []


async def test_failover_to_another_replica_keeps_full_coverage() -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    await loaded(cluster)
    for group in cluster.shards:
        group[0].fail = Unavailable("connection refused")
    for _ in range(4):
        assert await search_ids(cluster) == [exact(q) for q in QUERIES]
    # After a failure the dead replica goes to the back of the line: it was
    # tried at most once per group, not on every search.
    for group in cluster.shards:
        assert group[0].calls.count("search") <= 1


async def test_reads_fail_over_from_a_replica_that_could_not_load_the_collection() -> None:
    """DATA_LOSS is one replica's fault (its store could not be loaded), not the
    request's: searches, gets, counts and scrolls go to the other replica."""
    cluster = FakeCluster(groups=3, replicas=2)

    await loaded(cluster)
    for group in cluster.shards:
        group[0].fail = DataLoss("collection 'c' could not be loaded on this replica")
    reader = cluster.core.reader
    for _ in range(4):
        assert await search_ids(cluster) == [exact(q) for q in QUERIES]
        found = await reader.get("c", IDS[:10], Include(), False, deadline())
        assert [d.id for d in found.documents] == IDS[:10]
        assert (await reader.count("c", False, deadline())).count == len(IDS)
        page = await reader.scroll("c", None, 500, "", Include(), False, deadline())
        assert [d.id for d in page.documents] == IDS
    # The broken replica goes to the back of the line after it failed.
    for group in cluster.shards:
        assert len(group[0].calls) < len(group[1].calls)


async def test_every_replica_losing_the_collection_is_data_loss() -> None:
    cluster = FakeCluster(groups=1, replicas=2)

    await loaded(cluster)
    for replica in cluster.shards[0]:
        replica.fail = DataLoss("collection 'c' could not be loaded on this replica")
    with pytest.raises(DataLoss, match="shard group 0 has no readable replica"):
        await search_ids(cluster)


async def test_hung_replica_gets_only_part_of_the_deadline() -> None:
    cluster = FakeCluster(groups=1, replicas=2)

    await loaded(cluster)
    cluster.shards[0][0].hang = True
    cluster.shards[0][1].hang = False
    # Whichever replica is tried first, the other one still gets time.
    for _ in range(2):
        results = await cluster.core.reader.search(
            "c", [QueryInput(QUERIES[0])], SearchOptions(K, allow_partial=False), deadline(1.0)
        )
        assert [h.id for h in results.results[0].hits] == exact(QUERIES[0])


async def test_group_without_live_replica_is_unavailable_unless_partial_allowed() -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    await loaded(cluster)
    for replica in cluster.shards[1]:
        replica.fail = Unavailable("connection refused")
    with pytest.raises(Unavailable, match="shard group 1 has no live replica"):
        await search_ids(cluster)
    results = await cluster.core.reader.search(
        "c", [QueryInput(QUERIES[0])], SearchOptions(K, allow_partial=True), deadline()
    )
    assert (results.coverage.asked, results.coverage.answered) == (3, 2)
    config = await cluster.core.catalog.config("c", deadline())
    reachable = [i for i in IDS if cluster.topology.group_of(i, config.partitions) != 1]
    scores = {i: float(VECTORS[IDS.index(i)] @ QUERIES[0]) for i in reachable}
    expected = sorted(reachable, key=lambda i: (-scores[i], i))[:K]
    assert [h.id for h in results.results[0].hits] == expected

    count = await cluster.core.reader.count("c", True, deadline())
    assert count.coverage.answered == 2
    assert count.count == len(reachable)


async def test_hung_group_with_partial_results_answers_before_the_deadline() -> None:
    cluster = FakeCluster(groups=2, replicas=1)

    await loaded(cluster)
    cluster.shards[0][0].hang = True
    results = await cluster.core.reader.search(
        "c", [QueryInput(QUERIES[0])], SearchOptions(K, allow_partial=True), deadline(0.5)
    )
    assert (results.coverage.asked, results.coverage.answered) == (2, 1)


async def test_get_returns_request_order_and_asks_only_owning_groups() -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    await loaded(cluster)
    wanted = ["d007", "nope", "d100", "d003"]
    found = await cluster.core.reader.get("c", wanted, Include(), False, deadline())
    assert [d.id for d in found.documents] == ["d007", "d100", "d003"]
    config = await cluster.core.catalog.config("c", deadline())
    owners = {cluster.topology.group_of(i, config.partitions) for i in wanted}
    assert found.coverage.asked == len(owners)
    asked = {g for g, group in enumerate(cluster.shards) for s in group if "get" in s.calls}
    assert asked == owners


async def test_count_sums_the_groups() -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    await loaded(cluster)
    result = await cluster.core.reader.count("c", False, deadline())
    assert result.count == len(IDS)
    assert (result.coverage.asked, result.coverage.answered) == (3, 3)


async def test_text_queries_are_embedded_next_to_vector_queries() -> None:
    cluster = FakeCluster(groups=2, replicas=1)

    await cluster.create("t", model="hash-8")
    docs = [DocumentInput(f"t{i}", None, f"text {i}") for i in range(12)]
    await cluster.core.writer.upsert("t", docs, WriteConsistency.ALL, deadline())
    queries = [QueryInput(text="text 4"), QueryInput(VECTORS[0]), QueryInput(text="text 9")]
    results = await cluster.core.reader.search(
        "t", queries, SearchOptions(1, allow_partial=False), deadline()
    )
    assert [result.hits[0].id for result in results.results[::2]] == ["t4", "t9"]
    with pytest.raises(InvalidArgument, match="query 1: vector contains NaN"):
        bad = [QueryInput(text="text 4"), QueryInput(np.full(DIM, np.nan, np.float32))]
        await cluster.core.reader.search("t", bad, SearchOptions(1), deadline())
    assert results.results[0].hits[0].score == pytest.approx(1.0, abs=1e-5)


async def test_unknown_collection_on_the_shards_is_not_found() -> None:
    cluster = FakeCluster(groups=2, replicas=1)

    await loaded(cluster)
    for replica in cluster.all_shards:
        replica.collections.clear()
    with pytest.raises(NotFound):
        await search_ids(cluster)
    with pytest.raises(NotFound):
        await cluster.core.reader.count("c", False, deadline())


def test_replica_choice_prefers_fewest_in_flight_then_takes_turns() -> None:
    now = [100.0]
    replicas = [Replica(FakeShard(f"h:{i}"), lambda: now[0]) for i in range(3)]
    group = ReplicaGroup(0, replicas, lambda: now[0])
    replicas[0].outstanding, replicas[1].outstanding, replicas[2].outstanding = 3, 1, 2
    order, healthy = group.candidates()
    assert [r.address for r in order] == ["h:1", "h:2", "h:0"] and healthy == 3

    for replica in replicas:
        replica.outstanding = 0
    firsts = {group.candidates()[0][0].address for _ in range(6)}
    assert firsts == {"h:0", "h:1", "h:2"}

    replicas[1].failed()
    for _ in range(3):
        order, healthy = group.candidates()
        assert order[-1].address == "h:1" and healthy == 2
    now[0] += 60  # the backoff has passed: h:1 is tried normally again
    assert group.candidates()[1] == 3
    replicas[1].succeeded()
    assert replicas[1].failures == 0


#: The documents whose metadata "n" is even (see `loaded_with_numbers`).
is_even = where_to_filter({"n": {"$in": list(range(0, len(IDS), 2))}})


async def loaded_with_numbers(cluster: FakeCluster) -> None:
    await cluster.create("c", DIM, partitions=16)
    docs = [DocumentInput(doc_id, VECTORS[n], None, {"n": n}) for n, doc_id in enumerate(IDS)]
    await cluster.core.writer.upsert("c", docs, WriteConsistency.ALL, deadline())


async def test_filter_and_score_threshold_reach_the_shards() -> None:
    cluster = FakeCluster(groups=3, replicas=1)

    await loaded_with_numbers(cluster)
    options = SearchOptions(K, filter=is_even, score_threshold=0.2)
    results = await cluster.core.reader.search("c", [QueryInput(QUERIES[0])], options, deadline())
    scores = VECTORS @ QUERIES[0]
    expected = [i for i in exact(QUERIES[0], len(IDS)) if IDS.index(i) % 2 == 0]
    expected = [i for i in expected if scores[IDS.index(i)] >= 0.2][:K]
    assert ids_of(results) == [expected]
    counted = await cluster.core.reader.count("c", False, deadline(), filter=is_even)
    assert counted.count == len(IDS) // 2


@pytest.mark.parametrize("page_size", [1, 7, 100, 1000])
async def test_scroll_pages_through_every_group_in_id_order(page_size: int) -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    await loaded_with_numbers(cluster)
    seen: list[str] = []
    cursor = ""
    for _ in range(200):
        page = await cluster.core.reader.scroll(
            "c", is_even, page_size, cursor, Include(), False, deadline()
        )
        assert len(page.documents) <= page_size
        assert (page.coverage.asked, page.coverage.answered) == (3, 3)
        seen += [document.id for document in page.documents]
        cursor = page.cursor
        if not cursor:
            break
    else:
        raise AssertionError("scroll never ended")
    assert seen == sorted(i for n, i in enumerate(IDS) if n % 2 == 0)


async def test_scroll_rejects_bad_cursors_and_page_sizes() -> None:
    cluster = FakeCluster(groups=1, replicas=1)

    await loaded(cluster)
    with pytest.raises(InvalidArgument, match="cursor"):
        await cluster.core.reader.scroll("c", None, 10, "not base64!", Include(), False, deadline())
    with pytest.raises(InvalidArgument, match="page_size"):
        await cluster.core.reader.scroll("c", None, 1001, "", Include(), False, deadline())


def test_replica_back_off_stays_bounded_however_long_it_keeps_failing() -> None:
    """2,500 failures in a row (a replica down for hours): the back-off neither
    overflows (it did at 1,024) nor passes its limit, and one success resets it."""
    now = [100.0]
    replica = Replica(FakeShard("h:0"), lambda: now[0])
    for _ in range(2_500):
        replica.failed()
        assert 0 < replica.failed_until - now[0] <= MAX_BACKOFF_S
    assert replica.failed_until - now[0] == MAX_BACKOFF_S
    assert replica.failures <= 8
    replica.succeeded()
    replica.failed()
    assert replica.failed_until - now[0] == FIRST_BACKOFF_S
