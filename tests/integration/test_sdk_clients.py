"""`Client` and `AsyncClient` against a real cluster (2 shard groups): the same
results and the same errors, and a pipelined search_batch equal to one search
at a time."""

from collections.abc import Iterator

import numpy as np
import pytest

from shoal import AsyncClient, Client
from shoal.cli.local_cluster import LocalCluster
from shoal.errors import InvalidArgument, NotFound, ShoalError
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "sdk"
DOCUMENTS = 600
QUERIES = 40
K = 10


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=2, replicas=1, model="hash-384")
    data = datasets.load()
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384)
        client.upsert(COLLECTION, datasets.with_vectors(data, 0, DOCUMENTS))
    return cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address, timeout=60) as client:
        yield client


def _queries() -> np.ndarray:
    return datasets.load().query_vectors[:QUERIES]


async def test_searches_answer_alike(cluster: LocalCluster, client: Client) -> None:
    queries = _queries()
    async with AsyncClient(cluster.address, timeout=60) as aclient:
        for vector in queries[:10]:
            ours = client.search(COLLECTION, vector, k=K, include=["metadata", "text"])
            theirs = await aclient.search(COLLECTION, vector, k=K, include=["metadata", "text"])
            assert ours.ids.tolist() == theirs.ids.tolist() and len(ours) == K
            np.testing.assert_array_equal(ours.scores, theirs.scores)
            assert ours == theirs  # every hit: id, score, distance, metadata, text
        batch = client.search_batch(COLLECTION, queries, k=K, include=["metadata"])
        abatch = await aclient.search_batch(COLLECTION, queries, k=K, include=["metadata"])
    assert batch.ids.shape == (QUERIES, K)
    assert batch.ids.tolist() == abatch.ids.tolist()
    np.testing.assert_array_equal(batch.scores, abatch.scores)
    assert batch == abatch


async def test_documents_read_alike(cluster: LocalCluster, client: Client) -> None:
    data = datasets.load()
    ids = [data.documents[row]["id"] for row in (3, 1, 500)] + ["no-such-id"]
    async with AsyncClient(cluster.address, timeout=60) as aclient:
        got, agot = client.get(COLLECTION, ids), await aclient.get(COLLECTION, ids)
        assert got == agot and got.ids.tolist() == ids[:3]
        assert got.vectors is not None
        np.testing.assert_allclose(got.vectors, data.document_vectors[[3, 1, 500]], rtol=1e-6)
        assert got.metadatas == [data.documents[row]["metadata"] for row in (3, 1, 500)]
        assert got.texts == [data.documents[row]["text"] for row in (3, 1, 500)]
        assert await aclient.count(COLLECTION) == client.count(COLLECTION) == DOCUMENTS
        where = {"priority": "optional"}
        listed = [d.id for d in client.scroll(COLLECTION, where, page_size=37)]
        alisted = [d.id async for d in aclient.scroll(COLLECTION, where, page_size=37)]
        assert listed == alisted and listed == sorted(listed) and listed
        pages = list(client.scroll_pages(COLLECTION, where, page_size=37, include=()))
        assert [i for page in pages for i in page.ids.tolist()] == listed
        assert await aclient.get_collection(COLLECTION) == client.get_collection(COLLECTION)


async def _async_error(address: str, call: str, *args: object) -> ShoalError:
    async with AsyncClient(address, timeout=60) as aclient:
        with pytest.raises(ShoalError) as raised:
            await getattr(aclient, call)(*args)
    return raised.value


@pytest.mark.parametrize(
    ("call", "args", "error"),
    [
        ("search", ("no-such-collection", [0.1] * 384), NotFound),
        ("search_batch", ("no-such-collection", [[0.1] * 384]), NotFound),
        ("get", ("no-such-collection", ["a"]), NotFound),
        ("count", ("no-such-collection",), NotFound),
        ("search", (COLLECTION, [0.1, 0.2, 0.3]), InvalidArgument),
        ("search_batch", (COLLECTION, [[0.1, 0.2, 0.3]]), InvalidArgument),
        ("upsert", (COLLECTION, [{"id": "short", "vector": [0.1, 0.2]}]), InvalidArgument),
        ("create_collection", ("bad", 3, "hamming"), InvalidArgument),
    ],
)
async def test_errors_are_raised_alike(
    cluster: LocalCluster, client: Client, call: str, args: tuple[object, ...], error: type
) -> None:
    with pytest.raises(error) as raised:
        getattr(client, call)(*args)
    theirs = await _async_error(cluster.address, call, *args)
    assert type(theirs) is type(raised.value)
    assert str(theirs) == str(raised.value)


async def test_a_pipelined_batch_equals_one_search_at_a_time(
    cluster: LocalCluster, client: Client
) -> None:
    queries = _queries()
    one_by_one = [client.search(COLLECTION, vector, k=K, include=[]) for vector in queries]
    pipelined = client.search_batch(COLLECTION, queries, k=K, include=[], batch_size=7, in_flight=3)
    assert len(pipelined) == QUERIES and pipelined.counts.tolist() == [K] * QUERIES
    assert pipelined.ids.tolist() == [single.ids.tolist() for single in one_by_one]
    np.testing.assert_allclose(
        pipelined.scores, np.stack([single.scores for single in one_by_one]), rtol=1e-6
    )
    assert pipelined.coverage.complete
    async with AsyncClient(cluster.address, timeout=60) as aclient:
        apipelined = await aclient.search_batch(
            COLLECTION, queries, k=K, include=[], batch_size=7, in_flight=3
        )
    assert apipelined.ids.tolist() == pipelined.ids.tolist()


def test_a_set_beyond_one_call_s_limit_is_split(client: Client) -> None:
    """More queries than the server takes in one SearchBatch (1,000) now just work."""
    queries = np.tile(_queries()[:3], (401, 1))  # 1,203 queries
    result = client.search_batch(COLLECTION, queries, k=3, include=[], in_flight=2)
    assert result.ids.shape == (len(queries), 3)
    assert result.ids[:3].tolist() == result.ids[-3:].tolist()
