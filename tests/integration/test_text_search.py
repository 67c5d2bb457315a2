"""The text path with the real MiniLM model: known-item quality through Search(text)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from shoal import Client
from shoal.cli.local_cluster import DEFAULT_MODEL
from tests import datasets
from tests.conftest import StartCluster

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not datasets.available(), reason="shared test data not found"),
]

K = 10


def reciprocal_rank(found: list[str], relevant: set[str]) -> float:
    for rank, doc_id in enumerate(found[:K], 1):
        if doc_id in relevant:
            return 1.0 / rank
    return 0.0


def test_text_search_reproduces_exact_known_item_quality(start_cluster: StartCluster) -> None:
    data = datasets.load()
    cluster = start_cluster(groups=3, replicas=2, model=DEFAULT_MODEL)
    with Client(cluster.address, timeout=300) as client:
        client.create_collection("debian", embedding_model=DEFAULT_MODEL)
        texts_only = [
            {"id": doc["id"], "text": doc["text"], "metadata": doc["metadata"]}
            for doc in data.documents
        ]
        for start in range(0, len(texts_only), 250):
            client.upsert("debian", texts_only[start : start + 250])

        def search(text: str) -> list[str]:
            return [hit.id for hit in client.search("debian", text=text, k=K, include=[]).hits]

        # Concurrent single-text searches, as users send them.
        with ThreadPoolExecutor(8) as pool:
            found = list(pool.map(search, [query["text"] for query in data.queries]))

    mrr = sum(
        reciprocal_rank(ids, set(query["relevant"]))
        for ids, query in zip(found, data.queries, strict=True)
    ) / len(data.queries)
    reference = data.metrics["mrr@10"]
    print(f"MRR@10 through Search(text): {mrr:.4f} (exact-search reference {reference:.4f})")
    assert abs(mrr - reference) <= 0.01
