"""The coordinator on real shard processes (2 groups x 2 replicas) and a hash embedder."""

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.errors import NotFound, Unavailable
from shoal.runtime.wait import wait_for
from shoal.v1 import common_pb2, shoal_pb2, shoal_pb2_grpc
from tests.conftest import StartCluster

DIM = 8


def vectors(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    return start_module_cluster(groups=2, replicas=2, model="hash-8")


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address, timeout=30) as client:
        yield client


@pytest.fixture
def stub(cluster: LocalCluster) -> Iterator[shoal_pb2_grpc.ShoalServiceStub]:
    with grpc.insecure_channel(cluster.address) as channel:
        yield shoal_pb2_grpc.ShoalServiceStub(channel)


def restart(replicas: list[ServiceProcess]) -> None:
    for replica in replicas:
        if not replica.running:
            replica.start()
    for replica in replicas:
        replica.wait_ready()


def test_collection_lifecycle(client: Client) -> None:
    made = client.create_collection("life", dimension=DIM)
    assert (made.metric, made.hnsw_m, made.hnsw_ef_construction, made.hnsw_ef) == (
        "cosine",
        16,
        200,
        64,
    )
    assert made.partitions == 64
    assert client.create_collection("life", dimension=DIM) == made
    assert "life" in [c.name for c in client.list_collections()]
    assert client.get_collection("life").document_count == 0
    client.delete_collection("life")
    assert "life" not in [c.name for c in client.list_collections()]
    with pytest.raises(NotFound, match="life"):
        client.get_collection("life")
    with pytest.raises(NotFound, match="life"):
        client.delete_collection("life")


def test_create_reports_created_once(stub: shoal_pb2_grpc.ShoalServiceStub) -> None:
    config = common_pb2.CollectionConfig(name="once", dimension=DIM, partitions=8)
    first = stub.CreateCollection(shoal_pb2.CreateCollectionRequest(config=config))
    second = stub.CreateCollection(shoal_pb2.CreateCollectionRequest(config=config))
    assert (first.created, second.created) == (True, False)
    assert first.config.partitions == 8 and first.config.metric == common_pb2.METRIC_COSINE


def test_model_collection_takes_the_embedders_dimension(client: Client) -> None:
    made = client.create_collection("texts", embedding_model="hash-8")
    assert made.dimension == 8
    with pytest.raises(Exception, match="serves 'hash-8'"):
        client.create_collection("texts2", embedding_model="all-MiniLM-L6-v2")


def test_documents_round_trip(client: Client) -> None:
    client.create_collection("docs", dimension=DIM)
    rows = vectors(40, 1)
    documents = [
        {"id": f"d{i}", "vector": rows[i], "text": f"text {i}", "metadata": {"n": i, "tag": "x"}}
        for i in range(40)
    ]
    written = client.upsert("docs", documents, "all")
    assert (written.count, written.replicas_acknowledged, written.replicas) == (40, 2, 2)
    assert client.count("docs") == 40
    assert client.get_collection("docs").document_count == 40

    got = client.get("docs", ["d7", "missing", "d31", "d0"])
    assert [d.id for d in got] == ["d7", "d31", "d0"]
    assert got[0].metadata == {"n": 7, "tag": "x"} and got[0].text == "text 7"
    np.testing.assert_allclose(got[0].vector or [], rows[7], rtol=1e-6)

    hits = client.search("docs", rows[12], k=3, include=["metadata"]).hits
    assert hits[0].id == "d12" and hits[0].metadata == {"n": 12, "tag": "x"}
    exact = np.argsort(-(rows @ rows[12]), kind="stable")[:3]
    assert [h.id for h in hits] == [f"d{i}" for i in exact]

    deleted = client.delete("docs", ["d1", "d2", "nope"], consistency="all")
    assert deleted.count == 2
    assert client.count("docs") == 38
    assert client.get("docs", ["d1", "d2"]) == []


def test_search_batch_answers_each_query_in_order(client: Client) -> None:
    client.create_collection("batch", dimension=DIM, partitions=16)
    rows = vectors(200, 2)
    client.upsert("batch", [{"id": f"b{i}", "vector": rows[i]} for i in range(200)], "all")
    queries = rows[[5, 50, 150]]
    results = client.search_batch("batch", queries, k=4, ef=200, include=[])
    exact = np.argsort(-(queries @ rows.T), axis=1, kind="stable")[:, :4]
    assert [[h.id for h in r.hits] for r in results] == [[f"b{i}" for i in row] for row in exact]
    assert all(r.coverage.complete and r.coverage.groups_asked == 2 for r in results)


def test_a_query_matrix_answers_as_query_messages_do(
    client: Client, stub: shoal_pb2_grpc.ShoalServiceStub
) -> None:
    client.create_collection("matrix", dimension=DIM, partitions=16)
    rows = vectors(100, 3)
    client.upsert("matrix", [{"id": f"m{i}", "vector": rows[i]} for i in range(100)], "all")
    queries = rows[[3, 30, 60, 90]].astype("<f4")

    def search(**given: object) -> shoal_pb2.SearchBatchResponse:
        request = shoal_pb2.SearchBatchRequest(collection="matrix", k=5, ef=100, **given)  # type: ignore[arg-type]
        return stub.SearchBatch(request, timeout=30)

    as_messages = search(queries=[shoal_pb2.Query(vector_f32=row.tobytes()) for row in queries])
    as_matrix = search(queries_f32=queries.tobytes(), dimension=DIM)
    assert len(as_matrix.results) == 4
    assert as_matrix.results == as_messages.results
    # The SDK sends its vectors as one matrix.
    answered = client.search_batch("matrix", queries, k=5, ef=100, include=[])
    assert [[h.id for h in r.hits] for r in answered] == [
        [hit.id for hit in result.hits] for result in as_messages.results
    ]

    bad: dict[str, dict[str, object]] = {
        "both forms": {"queries": [shoal_pb2.Query(vector_f32=queries[0].tobytes())]},
        "no dimension": {"dimension": 0},
        "not whole rows": {"dimension": DIM + 1},
        "the wrong dimension": {"dimension": DIM // 2},
        "a keyword search": {"dimension": DIM, "mode": shoal_pb2.SEARCH_MODE_KEYWORD},
    }
    for case, changed in bad.items():
        with pytest.raises(grpc.RpcError) as raised:
            search(**{"queries_f32": queries.tobytes(), "dimension": DIM, **changed})
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT, case
    nan = queries.copy()
    nan[2, 1] = np.nan
    with pytest.raises(grpc.RpcError) as raised:
        search(queries_f32=nan.tobytes(), dimension=DIM)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "query 2" in (raised.value.details() or "")
    assert client.count("matrix") == 100


def test_text_documents_and_queries_are_embedded(client: Client) -> None:
    client.create_collection("prose", embedding_model="hash-8")
    client.upsert("prose", [{"id": f"p{i}", "text": f"sentence number {i}"} for i in range(20)])
    queries = ["sentence number 3", "sentence number 17"]
    results = client.search_batch("prose", texts=queries, k=1, include=["vector"])
    # The fake model collides words in 8 dimensions, so another document may tie
    # with the one whose text was asked for: its vector is what must match.
    stored = client.get("prose", ["p3", "p17"], include=["vector"])
    for result, document in zip(results, stored, strict=True):
        assert result.hits[0].score == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(result.hits[0].vector or [], document.vector or [], atol=1e-6)


def test_cluster_info_lists_every_replica_and_the_embedder(
    cluster: LocalCluster, client: Client
) -> None:
    client.create_collection("info", dimension=DIM)
    client.upsert("info", [{"id": f"i{i}", "vector": v} for i, v in enumerate(vectors(9, 3))])
    info = client.cluster_info()
    assert info.replication_factor == 2 and info.topology_version == 1
    assert [[r.address for r in g.replicas] for g in info.groups] == [
        [s.address for s in group] for group in cluster.shards
    ]
    assert all(
        r.health == shoal_pb2.REPLICA_HEALTH_SERVING for g in info.groups for r in g.replicas
    )
    assert info.embedder_address == cluster.embedder.address
    assert info.embedder_health == shoal_pb2.REPLICA_HEALTH_SERVING
    per_group = [
        max({c.collection: c.documents for c in r.collections}.get("info", 0) for r in g.replicas)
        for g in info.groups
    ]
    assert sum(per_group) == 9


def test_writes_and_reads_with_replicas_down(cluster: LocalCluster, client: Client) -> None:
    client.create_collection("faults", dimension=DIM, partitions=16)
    rows = vectors(50, 4)
    documents = [{"id": f"f{i}", "vector": rows[i]} for i in range(50)]
    client.upsert("faults", documents, "all")
    victims = [group[0] for group in cluster.shards]
    try:
        for victim in victims:
            victim.kill()
        # One replica of each group left: reads keep full coverage.
        result = client.search("faults", rows[0], k=5, include=[])
        assert result.coverage.complete and result.hits[0].id == "f0"
        assert client.count("faults") == 50
        # QUORUM of 2 needs both replicas; ONE needs the one that is up.
        with pytest.raises(Unavailable, match=r"of 2 replicas acknowledged, 2 needed"):
            client.upsert("faults", documents[:5], "quorum")
        assert client.upsert("faults", documents[:5], "one").replicas_acknowledged == 1
        info = client.cluster_info()
        assert [g.replicas[0].health for g in info.groups] == [
            shoal_pb2.REPLICA_HEALTH_UNREACHABLE
        ] * 2

        # A whole group down: UNAVAILABLE, unless partial results are allowed.
        cluster.shards[1][1].kill()
        with pytest.raises(Unavailable, match="shard group 1"):
            client.search("faults", rows[0], k=5)
        partial = client.search("faults", rows[0], k=5, allow_partial=True)
        assert (partial.coverage.groups_asked, partial.coverage.groups_answered) == (2, 1)
    finally:
        restart([*victims, cluster.shards[1][1]])
    # A group that was down entirely is used again once the coordinator's
    # channels have reconnected (their backoff is at most half a second).
    wait_for(lambda: searchable(client, rows[0]), 10, "group 1 to answer again")


def searchable(client: Client, query: np.ndarray) -> bool:
    try:
        return client.search("faults", query, k=5).coverage.complete
    except Unavailable:
        return False


def test_a_second_coordinator_sees_the_same_data(cluster: LocalCluster, client: Client) -> None:
    """Coordinators keep no state: a second one reads what the first wrote, and a
    collection one deletes is gone for the other at once (its cache is dropped
    on the shards' NotFound)."""
    second = ServiceProcess(
        "coordinator-2",
        "coordinator",
        [
            "--topology",
            str(cluster.topology_path),
            "--embedder",
            cluster.embedder.address,
            "--coordinator-id",
            "2",
        ],
        cluster.root / "run",
    )
    second.start()
    try:
        second.wait_ready()
        with Client(second.address, timeout=30) as other:
            client.create_collection("shared", dimension=DIM)
            rows = vectors(10, 5)
            client.upsert("shared", [{"id": f"s{i}", "vector": rows[i]} for i in range(10)])
            assert other.count("shared") == 10
            assert [d.id for d in other.get("shared", ["s3"])] == ["s3"]
            other.delete_collection("shared")
            with pytest.raises(NotFound, match="shared"):
                client.upsert("shared", [{"id": "s0", "vector": rows[0]}])
            with pytest.raises(NotFound, match="shared"):
                client.count("shared")
    finally:
        second.stop()
