"""With several shard groups the coordinator learns a collection's vocabulary from its
first statistics call: later keyword searches of words it has not seen ask no group
for statistics first, and still score as one BM25 index of every document would
(a word written after the listing included)."""

import urllib.request

import bm25s
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from shoal import Client
from shoal.keyword import KeywordSettings, tokenizer_for
from tests.conftest import StartCluster
from tests.integration.shoal_up import free_port_range

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a lazy afternoon with a brown dog",
    "foxes and hounds in the forest",
    "quick thinking saves the day",
    "brown bread and butter",
    "the dog barks at the fox",
    "forest fires burn quickly",
    "jumping foxes are quick",
    "an owl watches the forest at night",
    "bread rises in a warm kitchen",
]


def statistics_calls(ports: list[int]) -> float:
    """KeywordStats calls the shards behind `ports` (their /metrics) started."""
    total = 0.0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == "grpc_server_started":
                total += sum(
                    s.value for s in family.samples if s.labels["grpc_method"] == "KeywordStats"
                )
    return total


def reference_scores(texts: list[str], query: str) -> list[float]:
    tokenizer = tokenizer_for(KeywordSettings())
    reference = bm25s.BM25(method="lucene", k1=1.2, b=0.75, dtype="float64")
    reference.index([tokenizer.terms(text) for text in texts], show_progress=False)
    scores = reference.get_scores(tokenizer.terms(query))
    return sorted((float(s) for s in scores if s > 0), reverse=True)


def test_new_words_after_the_first_search_ask_no_group_for_statistics(
    start_cluster: StartCluster,
) -> None:
    base = free_port_range(4)  # coordinator, embedder, then the two shards
    cluster = start_cluster(groups=2, replicas=1, model="hash-8", metrics_port_base=base)
    shards = [base + 2, base + 3]
    texts = list(TEXTS)
    vectors = np.random.default_rng(5).standard_normal((len(texts) + 1, 8))
    with Client(cluster.address, timeout=60) as client:
        client.create_collection("words", dimension=8, partitions=16)
        client.upsert(
            "words",
            [{"id": f"d{i}", "vector": vectors[i], "text": t} for i, t in enumerate(texts)],
            "all",
        )

        def keyword(query: str) -> list[float]:
            hits = client.search("words", text=query, mode="keyword", k=20, include=[]).hits
            return [hit.score for hit in hits]

        first = keyword("quick brown fox")
        asked = statistics_calls(shards)
        assert asked == 2  # one statistics call per group, which listed the vocabulary

        for query in ("lazy afternoon", "forest owl night", "bread kitchen", "zebra"):
            found = keyword(query)
            np.testing.assert_allclose(found, reference_scores(texts, query), atol=1e-4)
        np.testing.assert_allclose(first, reference_scores(texts, "quick brown fox"), atol=1e-4)

        # A word written after the listing: weighted as unheld, caught and scored again.
        texts.append("a zebra crosses the forest")
        client.upsert("words", [{"id": "z", "vector": vectors[-1], "text": texts[-1]}], "all")
        zebra = keyword("zebra forest")
        np.testing.assert_allclose(zebra, reference_scores(texts, "zebra forest"), atol=1e-4)
        assert statistics_calls(shards) == asked  # no statistics call since the first
