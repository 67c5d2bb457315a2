"""Metadata filters end to end: 3 shard groups x 2 replicas, the Debian set, exact answers."""

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from shoal import Client, InvalidArgument
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc, shoal_pb2, shoal_pb2_grpc
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
K = 10
QUERIES = 200

Predicate = Callable[[dict[str, Any]], bool]


def size_at_least(fraction: float) -> tuple[dict[str, Any], Predicate]:
    """A where filter that keeps about `fraction` of the documents, by installed size."""
    sizes = np.array([doc["metadata"]["installed_size"] for doc in datasets.load().documents])
    bound = int(np.quantile(sizes, 1 - fraction))
    return {"installed_size": {"$gte": bound}}, lambda m: m["installed_size"] >= bound


FILTERS: dict[str, Callable[[], tuple[dict[str, Any], Predicate]]] = {
    "about 50%: architecture": lambda: (
        {"architecture": "amd64"},
        lambda m: m["architecture"] == "amd64",
    ),
    "about 50%: size": lambda: size_at_least(0.5),
    "about 10%: size": lambda: size_at_least(0.1),
    "about 10%: sections and architecture": lambda: (
        {"$and": [{"section": {"$in": ["perl", "java", "rust"]}}, {"architecture": "all"}]},
        lambda m: m["section"] in ("perl", "java", "rust") and m["architecture"] == "all",
    ),
    "about 1%: size": lambda: size_at_least(0.01),
    "about 1%: sections": lambda: (
        {"$or": [{"section": "database"}, {"section": "editors"}]},
        lambda m: m["section"] in ("database", "editors"),
    ),
    "about 0.1%: priority": lambda: (
        {"priority": {"$nin": ["optional", "extra"]}},
        lambda m: m["priority"] not in ("optional", "extra"),
    ),
}


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=3, replicas=2, model="hash-8")
    data = datasets.load()
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384)
        for start in range(0, len(data.documents), 500):
            client.upsert(COLLECTION, datasets.with_vectors(data, start, start + 500), "all")
    return cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address, timeout=60) as client:
        yield client


def matching_rows(predicate: Predicate) -> npt.NDArray[np.int64]:
    documents = datasets.load().documents
    return np.array([i for i, doc in enumerate(documents) if predicate(doc["metadata"])])


@pytest.mark.parametrize("name", FILTERS)
def test_filtered_search_matches_exact_filtered_search(name: str, client: Client) -> None:
    where, predicate = FILTERS[name]()
    data = datasets.load()
    rows = matching_rows(predicate)
    queries = data.query_vectors[:QUERIES]
    exact = datasets.exact_top_k(data.document_vectors[rows], queries, K)
    results = client.search_batch(COLLECTION, queries, k=K, where=where, include=["metadata"])
    recalls = []
    for result, exact_rows in zip(results, exact, strict=True):
        assert len(result.hits) == min(K, len(rows))
        assert all(predicate(hit.metadata) for hit in result.hits)
        expected = {data.ids[rows[i]] for i in exact_rows}
        recalls.append(len(expected & {hit.id for hit in result.hits}) / len(expected))
    recall = float(np.mean(recalls))
    print(f"{name}: {len(rows)} of {len(data.ids)} match, recall@10 {recall:.4f}")
    assert recall >= 0.95


@pytest.mark.parametrize("name", FILTERS)
def test_count_with_a_filter_is_exact(name: str, client: Client) -> None:
    where, predicate = FILTERS[name]()
    assert client.count(COLLECTION, where) == len(matching_rows(predicate))


def test_score_threshold_drops_weaker_hits(client: Client) -> None:
    query = datasets.load().query_vectors[0]
    everything = client.search(COLLECTION, query, k=K).hits
    threshold = everything[4].score
    kept = client.search(COLLECTION, query, k=K, score_threshold=threshold).hits
    assert [hit.id for hit in kept] == [hit.id for hit in everything if hit.score >= threshold]


def test_scroll_returns_each_match_once_while_writes_go_on(client: Client) -> None:
    where, predicate = FILTERS["about 10%: size"]()
    expected = {datasets.load().ids[row] for row in matching_rows(predicate)}
    seen: list[str] = []
    for page, document in enumerate(client.scroll(COLLECTION, where, page_size=37)):
        seen.append(document.id)
        if page % 37 == 0:  # a write between pages, matching the filter or not
            size = 10**9 if page % 74 == 0 else 0
            client.upsert(
                COLLECTION,
                [
                    {
                        "id": f"zz-new-{page}",
                        "vector": np.ones(384),
                        "metadata": {"installed_size": size},
                    }
                ],
            )
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    assert expected <= set(seen)
    assert set(seen) - expected <= {f"zz-new-{page}" for page in range(len(seen))}
    client.delete(COLLECTION, [doc_id for doc_id in set(seen) if doc_id.startswith("zz-new-")])


def shard_count(shard: ServiceProcess, condition: common_pb2.Filter) -> int:
    with grpc.insecure_channel(shard.address) as channel:
        reply = shard_pb2_grpc.ShardServiceStub(channel).Count(
            shard_pb2.ShardCountRequest(collection=COLLECTION, filter=condition), timeout=30
        )
    return reply.count


def test_delete_by_filter_removes_exactly_the_matches_on_every_replica(
    cluster: LocalCluster, client: Client
) -> None:
    where = {"section": {"$in": ["games", "fonts"]}}
    gone = {
        doc["id"]
        for doc in datasets.load().documents
        if doc["metadata"]["section"] in ("games", "fonts")
    }
    before = client.count(COLLECTION)
    try:
        assert client.delete(COLLECTION, where=where).count == len(gone)
        assert client.count(COLLECTION) == before - len(gone)
        assert client.count(COLLECTION, where) == 0
        assert client.get(COLLECTION, sorted(gone)) == []
        everything = common_pb2.Filter()
        for group in cluster.shards:
            counts = {shard_count(shard, everything) for shard in group}
            assert len(counts) == 1, f"replicas of a group disagree: {counts}"
    finally:  # the other tests of this module expect the whole set
        data = datasets.load()
        rows = [row for row, doc_id in enumerate(data.ids) if doc_id in gone]
        documents = datasets.with_vectors(data)
        client.upsert(COLLECTION, [documents[row] for row in rows], "all")


BAD_FILTERS = {
    "unknown operator": common_pb2.Filter(
        condition=common_pb2.Condition(key="section", value=common_pb2.Value(string_value="x"))
    ),
    "range over a list": common_pb2.Filter(
        condition=common_pb2.Condition(
            key="installed_size",
            op=common_pb2.OPERATOR_GT,
            value=common_pb2.Value(int_list=common_pb2.IntList(values=[1, 2])),
        )
    ),
    "empty and": common_pb2.Filter(all_of=common_pb2.FilterList()),
}


@pytest.mark.parametrize("case", BAD_FILTERS)
def test_bad_filters_are_invalid_arguments(case: str, cluster: LocalCluster) -> None:
    request = shoal_pb2.CountRequest(collection=COLLECTION, filter=BAD_FILTERS[case])
    with grpc.insecure_channel(cluster.address) as channel:
        stub = shoal_pb2_grpc.ShoalServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Count(request, timeout=30)
    assert isinstance(caught.value, grpc.Call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "filter" in (caught.value.details() or "")


def test_the_sdk_rejects_unknown_where_operators(client: Client) -> None:
    with pytest.raises(InvalidArgument, match=r"\$near"):
        client.count(COLLECTION, {"section": {"$near": "x"}})
