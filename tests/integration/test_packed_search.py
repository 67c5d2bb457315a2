"""Through a real cluster (2 groups), the coordinator's search, which asks the shards
for their packed answers and merges them with numpy, answers exactly what the shards'
per-hit answers merged hit by hit give: ids, scores, distances and stored fields."""

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from coordinator.core.merge import merge_top_k
from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc, shoal_pb2, shoal_pb2_grpc
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "packed"
K = 10
QUERIES = 40
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=2, replicas=1, model="hash-384")
    data = datasets.load()
    with Client(cluster.address, timeout=TIMEOUT) as client:
        client.create_collection(COLLECTION, dimension=384)
        for start in range(0, len(data.documents), 500):
            client.upsert(COLLECTION, datasets.with_vectors(data, start, start + 500), "all")
    return cluster


@pytest.fixture
def channels(cluster: LocalCluster) -> Iterator[list[grpc.Channel]]:
    """The coordinator's channel first, then one per shard group."""
    addresses = [cluster.address] + [group[0].address for group in cluster.shards]
    opened = [grpc.insecure_channel(address) for address in addresses]
    yield opened
    for channel in opened:
        channel.close()


def _queries() -> np.ndarray:
    return datasets.load().query_vectors[:QUERIES].astype("<f4")


def _through_coordinator(
    channel: grpc.Channel, include: common_pb2.Include, **options: object
) -> list[list[common_pb2.Hit]]:
    stub = shoal_pb2_grpc.ShoalServiceStub(channel)
    request = shoal_pb2.SearchBatchRequest(
        collection=COLLECTION,
        queries=[shoal_pb2.Query(vector_f32=row.tobytes()) for row in _queries()],
        k=K,
        include=include,
        **options,  # type: ignore[arg-type]
    )
    reply = stub.SearchBatch(request, timeout=TIMEOUT)
    return [list(result.hits) for result in reply.results]


def _per_hit_merge(
    shards: list[grpc.Channel], include: common_pb2.Include, **options: object
) -> list[list[common_pb2.Hit]]:
    """Every group's per-hit answer (the form before packing), merged hit by hit."""
    answers = []
    for channel in shards:
        request = shard_pb2.ShardSearchRequest(
            collection=COLLECTION,
            queries_f32=_queries().tobytes(),
            k=K,
            include=include,
            **options,  # type: ignore[arg-type]
        )
        reply = shard_pb2_grpc.ShardServiceStub(channel).Search(request, timeout=TIMEOUT)
        assert len(reply.results) == QUERIES and not reply.hit_counts
        answers.append([list(result.hits) for result in reply.results])
    return [merge_top_k(lists, K) for lists in zip(*answers, strict=True)]


FILTER = common_pb2.Filter(
    condition=common_pb2.Condition(
        key="priority",
        op=common_pb2.OPERATOR_EQ,
        value=common_pb2.Value(string_value="optional"),
    )
)


@pytest.mark.parametrize(
    ("include", "options"),
    [
        (common_pb2.Include(), {}),
        (common_pb2.Include(metadata=True, text=True), {}),
        (common_pb2.Include(vector=True), {"score_threshold": 0.3}),
        (common_pb2.Include(metadata=True), {"filter": FILTER}),
    ],
    ids=["ids and scores", "text and metadata", "vectors, threshold", "filtered"],
)
def test_packed_search_answers_what_the_per_hit_merge_did(
    channels: list[grpc.Channel], include: common_pb2.Include, options: dict[str, object]
) -> None:
    coordinator, *shards = channels
    packed = _through_coordinator(coordinator, include, **options)
    expected = _per_hit_merge(shards, include, **options)
    assert sum(len(hits) for hits in packed) > 0
    assert packed == expected


def test_the_shard_answers_packed_when_asked(channels: list[grpc.Channel]) -> None:
    _, shard, _ = channels
    request = shard_pb2.ShardSearchRequest(
        collection=COLLECTION, queries_f32=_queries().tobytes(), k=K, packed=True
    )
    reply = shard_pb2_grpc.ShardServiceStub(shard).Search(request, timeout=TIMEOUT)
    assert not reply.results
    assert list(reply.hit_counts) == [K] * QUERIES
    assert len(reply.ids) == K * QUERIES
    scores = np.frombuffer(reply.scores_f32, dtype="<f4").reshape(QUERIES, K)
    distances = np.frombuffer(reply.distances_f32, dtype="<f4").reshape(QUERIES, K)
    assert (np.diff(scores, axis=1) <= 0).all()
    np.testing.assert_allclose(scores, 1 - distances, atol=1e-6)  # cosine


def test_explained_vector_hits_carry_their_rank_and_score(channels: list[grpc.Channel]) -> None:
    coordinator, *shards = channels
    explained = _through_coordinator(coordinator, common_pb2.Include(), explain=True)
    expected = _per_hit_merge(shards, common_pb2.Include())
    for hits, plain in zip(explained, expected, strict=True):
        assert [hit.id for hit in hits] == [hit.id for hit in plain]
        assert [hit.explanation.vector_rank for hit in hits] == list(range(1, len(hits) + 1))
        assert [hit.explanation.vector_score for hit in hits] == [hit.score for hit in plain]
        assert [hit.score for hit in hits] == [hit.score for hit in plain]


def test_a_packed_search_batch_reply_holds_the_columns_only(channels: list[grpc.Channel]) -> None:
    """Asked for the packed form (what the SDK asks), the reply carries the columns and
    no `Hit` per hit beside them: those would cost the coordinator a message per hit
    and double the bytes the client parses."""
    coordinator, *shards = channels
    request = shoal_pb2.SearchBatchRequest(
        collection=COLLECTION,
        queries=[shoal_pb2.Query(vector_f32=row.tobytes()) for row in _queries()],
        k=K,
        packed=True,
    )
    reply = shoal_pb2_grpc.ShoalServiceStub(coordinator).SearchBatch(request, timeout=TIMEOUT)
    assert not reply.results
    expected = _per_hit_merge(shards, common_pb2.Include())
    assert list(reply.packed.counts) == [len(hits) for hits in expected]
    assert list(reply.packed.ids) == [hit.id for hits in expected for hit in hits]
    scores = np.frombuffer(reply.packed.scores_f32, dtype="<f4")
    assert scores.tolist() == [np.float32(hit.score).item() for hits in expected for hit in hits]
