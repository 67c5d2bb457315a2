"""Partial update end to end: 2 shard groups x 2 replicas, real servers.

An update sets and removes metadata keys of stored documents by id and by filter;
every replica then answers filters with the new metadata, an unfiltered search
is unchanged (the vectors were kept), and the records carry a newer version.
"""

from collections.abc import Iterator

import grpc
import pytest

from shoal import Client, InvalidArgument
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.sdk.where import combined_filter
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc, shoal_pb2, shoal_pb2_grpc
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "updates"
DOCUMENTS = 600


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=2, replicas=2, model="hash-8")
    data = datasets.load()
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384)
        client.upsert(COLLECTION, datasets.with_vectors(data, 0, DOCUMENTS), "all")
    return cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address, timeout=60) as client:
        yield client


def equals(key: str, value: object) -> common_pb2.Filter:
    condition = combined_filter({key: value}, None)
    assert condition is not None
    return condition


def replica_count(shard: ServiceProcess, condition: common_pb2.Filter) -> int:
    with grpc.insecure_channel(shard.address) as channel:
        reply = shard_pb2_grpc.ShardServiceStub(channel).Count(
            shard_pb2.ShardCountRequest(collection=COLLECTION, filter=condition), timeout=30
        )
    return reply.count


def replica_versions(shard: ServiceProcess, ids: list[str]) -> dict[str, int]:
    with grpc.insecure_channel(shard.address) as channel:
        reply = shard_pb2_grpc.ShardServiceStub(channel).Fetch(
            shard_pb2.ShardFetchRequest(collection=COLLECTION, ids=ids), timeout=30
        )
    return {record.id: record.version for record in reply.records}


def test_an_update_by_ids_reaches_every_replica_and_keeps_the_ranking(
    cluster: LocalCluster, client: Client
) -> None:
    data = datasets.load()
    ids = data.ids[:40]
    query = data.query_vectors[0]
    before = [(hit.id, hit.score) for hit in client.search(COLLECTION, query, k=20).hits]
    versions = {
        shard.address: replica_versions(shard, ids) for group in cluster.shards for shard in group
    }
    result = client.update(
        COLLECTION,
        ids,
        set_metadata={"reviewed": "yes"},
        remove_metadata=["priority"],
        consistency="all",
    )
    assert result.count == len(ids)
    assert client.count(COLLECTION, {"reviewed": "yes"}) == len(ids)
    for group in cluster.shards:
        counts = {replica_count(shard, equals("reviewed", "yes")) for shard in group}
        assert len(counts) == 1, f"replicas of a group disagree: {counts}"
        for shard in group:
            after = replica_versions(shard, ids)
            assert all(after[i] > versions[shard.address][i] for i in after)
    assert sum(
        replica_count(group[0], equals("reviewed", "yes")) for group in cluster.shards
    ) == len(ids)
    ranking = [(hit.id, hit.score) for hit in client.search(COLLECTION, query, k=20).hits]
    assert ranking == before
    [document] = client.get(COLLECTION, [ids[0]], include=["metadata", "text"])
    assert document.metadata["reviewed"] == "yes"
    assert "priority" not in document.metadata
    assert document.metadata["section"] == data.documents[0]["metadata"]["section"]
    assert document.text == data.documents[0]["text"]


def test_an_update_by_filter_changes_exactly_the_matches(
    cluster: LocalCluster, client: Client
) -> None:
    documents = datasets.load().documents[:DOCUMENTS]
    section = documents[1]["metadata"]["section"]
    matches = sum(1 for doc in documents if doc["metadata"]["section"] == section)
    result = client.update(
        COLLECTION, where={"section": section}, set_metadata={"flag": 7}, consistency="all"
    )
    assert result.count == matches
    assert client.count(COLLECTION, {"flag": 7}) == matches
    assert client.count(COLLECTION, {"$and": [{"flag": 7}, {"section": {"$ne": section}}]}) == 0
    seven = equals("flag", 7)
    for group in cluster.shards:
        assert len({replica_count(shard, seven) for shard in group}) == 1


def test_unknown_ids_are_skipped_and_empty_updates_refused(client: Client) -> None:
    assert client.update(COLLECTION, ["no-such-id"], set_metadata={"x": 1}).count == 0
    assert client.get(COLLECTION, ["no-such-id"]) == []
    with pytest.raises(InvalidArgument, match="changes nothing"):
        client.update(COLLECTION, ["x"])
    with pytest.raises(InvalidArgument, match="both set and removed"):
        client.update(COLLECTION, ["x"], set_metadata={"a": 1}, remove_metadata=["a"])


def test_an_update_of_every_document_needs_update_all(
    cluster: LocalCluster, client: Client
) -> None:
    """A raw gRPC Update with an empty filter used to rewrite the whole collection."""
    with grpc.insecure_channel(cluster.address) as channel:
        update = shoal_pb2_grpc.ShoalServiceStub(channel).Update
        for request in (
            shoal_pb2.UpdateRequest(collection=COLLECTION, filter=common_pb2.Filter()),
            shoal_pb2.UpdateRequest(collection=COLLECTION),
        ):
            request.set_metadata["everyone"].string_value = "yes"
            with pytest.raises(grpc.RpcError) as refused:
                update(request, timeout=60)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "update_all" in str(refused.value.details())
    assert client.count(COLLECTION, {"everyone": "yes"}) == 0
    with pytest.raises(InvalidArgument, match="update_all"):
        client.update(COLLECTION, set_metadata={"everyone": "yes"})
    with pytest.raises(InvalidArgument, match="without ids"):
        client.update(COLLECTION, ["a"], set_metadata={"everyone": "yes"}, update_all=True)
    result = client.update(
        COLLECTION, set_metadata={"everyone": "yes"}, consistency="all", update_all=True
    )
    assert result.count == DOCUMENTS
    assert client.count(COLLECTION, {"everyone": "yes"}) == DOCUMENTS
