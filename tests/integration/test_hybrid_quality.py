"""Known-item quality of vector, keyword and hybrid search on debian-20k, real model.

Documents go in with their MiniLM vectors (the embeddings of the same model, so
the same as embedding them here, at a fraction of the time on 2 cores) and
their texts; every query goes through the service's text path: embedded by the
embedder for the vector side, tokenized by the coordinator for the keyword
side. Defaults are the principled ones (RRF k 60, candidates 2k + 60), not
tuned on these queries.
"""

from collections.abc import Callable

import bm25s
import numpy as np
import pytest

from shoal import Client
from shoal.client import SearchResult
from shoal.cluster import DEFAULT_MODEL
from shoal.keyword import KeywordSettings, tokenizer_for
from tests import datasets
from tests.conftest import StartCluster

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not datasets.available("debian-20k"), reason="debian-20k not found"),
]

K = 10
BATCH = 250


def mrr(found: list[list[str]], relevant: list[set[str]]) -> float:
    total = 0.0
    for ids, wanted in zip(found, relevant, strict=True):
        for rank, doc_id in enumerate(ids[:K], 1):
            if doc_id in wanted:
                total += 1.0 / rank
                break
    return total / len(found)


@pytest.mark.timeout(2400)  # three passes of 9,682 query embeddings on 2 cores
def test_hybrid_beats_vector_and_keyword_search(start_cluster: StartCluster) -> None:
    data = datasets.load("debian-20k")
    cluster = start_cluster(groups=2, replicas=1, model=DEFAULT_MODEL)
    texts = [query["text"] for query in data.queries]
    relevant = [set(query["relevant"]) for query in data.queries]
    with Client(cluster.address, timeout=600) as client:
        client.create_collection("debian", embedding_model=DEFAULT_MODEL)
        for start in range(0, len(data.documents), 1000):
            client.upsert("debian", datasets.with_vectors(data, start, start + 1000))

        def run(search: Callable[[list[str]], list[SearchResult]]) -> list[list[str]]:
            found: list[list[str]] = []
            for start in range(0, len(texts), BATCH):
                results = search(texts[start : start + BATCH])
                found.extend([hit.id for hit in result.hits] for result in results)
            return found

        def batch(**options: object) -> Callable[[list[str]], list[SearchResult]]:
            return lambda chunk: client.search_batch(
                "debian",
                texts=chunk,
                k=K,
                include=[],
                **options,  # type: ignore[arg-type]
            )

        table = {
            "vector": mrr(run(batch()), relevant),
            "keyword": mrr(run(batch(mode="keyword")), relevant),
            "hybrid RRF (k 60)": mrr(run(batch(mode="hybrid")), relevant),
            "hybrid relative score, alpha 0.5": mrr(
                run(batch(mode="hybrid", fusion="relative", alpha=0.5)), relevant
            ),
        }

    tokenizer = tokenizer_for(KeywordSettings())
    reference = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    reference.index([tokenizer.terms(doc["text"]) for doc in data.documents], show_progress=False)
    ids = np.array(data.ids)
    reference_found = []
    for text in texts:
        scores = reference.get_scores(tokenizer.terms(text))
        top = np.argsort(-scores, kind="stable")[:K]
        reference_found.append([str(ids[row]) for row in top if scores[row] > 0])
    table["reference BM25 (bm25s)"] = mrr(reference_found, relevant)

    print("\nMRR@10 on debian-20k (9,682 queries):")
    for name, value in table.items():
        print(f"  {name:34s} {value:.4f}")
    assert abs(table["keyword"] - table["reference BM25 (bm25s)"]) <= 0.01
    assert abs(table["vector"] - data.metrics["mrr@10"]) <= 0.01
    hybrid = table["hybrid RRF (k 60)"]
    assert hybrid >= 0.74
    assert hybrid >= table["vector"] + 0.015 and hybrid >= table["keyword"] + 0.015
