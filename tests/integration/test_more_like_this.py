"""More-like-this end to end: 2 shard groups x 2 replicas, the Debian vectors.

A search `like` a stored document uses its stored vector as the query and
leaves the document itself out: the hits are its exact nearest neighbours
among the others.
"""

from collections.abc import Iterator

import numpy as np
import pytest

from shoal import Client, InvalidArgument, NotFound
from shoal.cli.local_cluster import LocalCluster
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "alike"
DOCUMENTS = 1500
K = 10


@pytest.fixture(scope="module")
def client(start_module_cluster: StartCluster) -> Iterator[Client]:
    cluster: LocalCluster = start_module_cluster(groups=2, replicas=2, model="hash-8")
    data = datasets.load()
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384)
        client.upsert(COLLECTION, datasets.with_vectors(data, 0, DOCUMENTS), "all")
        yield client


@pytest.mark.parametrize("row", [0, 7, 321, 1499])
def test_the_hits_are_the_nearest_others_never_the_document(client: Client, row: int) -> None:
    data = datasets.load()
    vectors = data.document_vectors[:DOCUMENTS]
    others = np.array([i for i in range(DOCUMENTS) if i != row])
    [exact] = datasets.exact_top_k(vectors[others], vectors[row : row + 1], K)
    expected = [data.ids[others[i]] for i in exact]
    hits = client.search(COLLECTION, like=data.ids[row], k=K, include=[]).hits
    ids = [hit.id for hit in hits]
    assert data.ids[row] not in ids
    assert len(ids) == K
    assert len(set(ids) & set(expected)) >= K - 1  # HNSW: approximate
    plain = client.search(COLLECTION, vectors[row], k=K + 1, include=[]).hits
    assert [hit.id for hit in plain if hit.id != data.ids[row]][:K] == ids


def test_like_with_a_filter_keeps_to_the_filter(client: Client) -> None:
    data = datasets.load()
    section = data.documents[0]["metadata"]["section"]
    hits = client.search(
        COLLECTION, like=data.ids[0], k=5, where={"section": section}, include=["metadata"]
    ).hits
    assert hits and all(hit.metadata["section"] == section for hit in hits)
    assert data.ids[0] not in {hit.id for hit in hits}


def test_an_unknown_id_is_not_found_and_like_takes_no_vector(client: Client) -> None:
    with pytest.raises(NotFound, match="no-such-document"):
        client.search(COLLECTION, like="no-such-document")
    with pytest.raises(InvalidArgument):
        client.search(COLLECTION, [0.0] * 384, like=datasets.load().ids[0])
