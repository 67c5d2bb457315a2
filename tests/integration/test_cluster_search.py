"""End to end on 3 shard groups x 2 replicas with the Debian set, vectors given."""

from collections.abc import Iterator

import numpy as np
import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
K = 10


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=3, replicas=2, model="hash-384")
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


def _search_ids(client: Client, ef: int) -> list[list[str]]:
    data = datasets.load()
    results = client.search_batch(COLLECTION, data.query_vectors, k=K, ef=ef, include=[])
    assert all(result.coverage.complete for result in results)
    return [[hit.id for hit in result.hits] for result in results]


def _exact_ids() -> list[list[str]]:
    data = datasets.load()
    top = datasets.exact_top_k(data.document_vectors, data.query_vectors, K)
    return [[data.ids[row] for row in rows] for rows in top]


def test_every_document_is_stored_once(client: Client) -> None:
    assert client.count(COLLECTION) == len(datasets.load().documents)


def test_recall_at_default_ef(client: Client) -> None:
    found = _search_ids(client, ef=0)
    exact = _exact_ids()
    recall = np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact, strict=True)])
    print(f"recall@10 at the default ef: {recall:.4f}")
    assert recall >= 0.95


def test_large_ef_equals_exact_search(client: Client) -> None:
    data = datasets.load()
    found = _search_ids(client, ef=2000)
    exact = _exact_ids()
    # Exact order may differ only between documents whose scores tie.
    normalized = data.document_vectors / np.linalg.norm(data.document_vectors, axis=1)[:, None]
    row_of = {doc_id: row for row, doc_id in enumerate(data.ids)}
    for query, (f, e) in enumerate(zip(found, exact, strict=True)):
        if f == e:
            continue
        scores_f = normalized[[row_of[i] for i in f]] @ data.query_vectors[query]
        scores_e = normalized[[row_of[i] for i in e]] @ data.query_vectors[query]
        np.testing.assert_allclose(scores_f, scores_e, atol=1e-5)


def test_scores_are_cosine_similarities_best_first(client: Client) -> None:
    data = datasets.load()
    result = client.search(COLLECTION, data.query_vectors[0], k=K, include=["vector"])
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
    for hit in result.hits:
        assert hit.vector is not None
        vector = np.asarray(hit.vector)
        expected = float(vector @ data.query_vectors[0] / np.linalg.norm(vector))
        assert hit.score == pytest.approx(expected, abs=1e-4)
        assert hit.distance == pytest.approx(1 - expected, abs=1e-4)


def test_search_batch_matches_single_searches(client: Client) -> None:
    data = datasets.load()
    batch = client.search_batch(COLLECTION, data.query_vectors[:20], k=K, include=[])
    for vector, result in zip(data.query_vectors[:20], batch, strict=True):
        single = client.search(COLLECTION, vector, k=K, include=[])
        assert [h.id for h in single.hits] == [h.id for h in result.hits]


def test_get_returns_what_was_stored(client: Client) -> None:
    data = datasets.load()
    wanted = [data.documents[5], data.documents[1500]]
    got = client.get(COLLECTION, [doc["id"] for doc in wanted] + ["no-such-id"])
    assert [doc.id for doc in got] == [doc["id"] for doc in wanted]
    for stored, original in zip(got, wanted, strict=True):
        assert stored.text == original["text"]
        assert stored.metadata == original["metadata"]
        row = data.ids.index(original["id"])
        np.testing.assert_allclose(stored.vector or [], data.document_vectors[row], rtol=1e-6)


def test_hits_carry_metadata_and_text_when_asked(client: Client) -> None:
    data = datasets.load()
    result = client.search(COLLECTION, data.query_vectors[3], k=3, include=["metadata", "text"])
    by_id = {doc["id"]: doc for doc in data.documents}
    for hit in result.hits:
        assert hit.metadata == by_id[hit.id]["metadata"]
        assert hit.text == by_id[hit.id]["text"]


def test_cluster_info_reports_every_replica(client: Client) -> None:
    info = client.cluster_info()
    assert [len(group.replicas) for group in info.groups] == [2, 2, 2]
    total = 0
    for group in info.groups:
        counts = [
            {c.collection: c.documents for c in replica.collections}[COLLECTION]
            for replica in group.replicas
        ]
        assert counts[0] == counts[1]  # written at ALL
        total += counts[0]
    assert total == len(datasets.load().documents)
