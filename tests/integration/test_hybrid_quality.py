"""Known-item quality of vector, keyword and hybrid search on debian-20k, real model.

Documents go in with their MiniLM vectors (the embeddings of the same model, so
the same as embedding them here, at a fraction of the time on 2 cores) and
their texts. Hybrid search with the defaults goes through the service's text
path: the coordinator has the embedder embed the query and tokenizes it
itself. The other runs take the query vectors the embedder service gave once
(embedding 9,682 queries costs minutes on 2 cores). Defaults are the
principled ones (RRF k 60, candidates 2k + 60), not tuned on these queries.

The issue asked RRF to beat both single rankings by 0.015; with Snowball
stemming the keyword ranking is stronger than the issue assumed (0.743, not
0.725), and RRF with k 60 beats it by less: so does textbook RRF computed here
(`bench.fusion_sweep`, which also shows it for other depths) over the exact
vector ranking and the reference BM25 ranking, which Shoal's RRF must match
within 0.01. Relative-score fusion at alpha 0.5 clears the bar by a
wide margin. The asserts say what holds.
"""

from collections.abc import Callable, Sequence

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from bench.fusion_sweep import (
    exact_vector_rankings,
    mrr,
    reciprocal_rank_fusion,
    reference_bm25_rankings,
)
from shoal import Client
from shoal.cli.local_cluster import DEFAULT_MODEL
from shoal.sdk.columnar import SearchResult
from shoal.v1 import embedder_pb2, embedder_pb2_grpc
from tests import datasets
from tests.conftest import StartCluster

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not datasets.available("debian-20k"), reason="debian-20k not found"),
]

K = 10
BATCH = 250
RRF_K = 60
DEPTH = 2 * K + RRF_K  # hybrid search's default candidate depth


@pytest.mark.timeout(1800)  # two passes of 9,682 query embeddings on 2 cores
def test_hybrid_beats_vector_and_keyword_search(start_cluster: StartCluster) -> None:
    data = datasets.load("debian-20k")
    cluster = start_cluster(groups=2, replicas=1, model=DEFAULT_MODEL)
    texts = [query["text"] for query in data.queries]
    relevant = [set(query["relevant"]) for query in data.queries]
    with Client(cluster.address, timeout=600) as client:
        client.create_collection("debian", embedding_model=DEFAULT_MODEL)
        for start in range(0, len(data.documents), 1000):
            client.upsert("debian", datasets.with_vectors(data, start, start + 1000))

        def run(search: Callable[[list[str]], Sequence[SearchResult]]) -> list[list[str]]:
            found: list[list[str]] = []
            for start in range(0, len(texts), BATCH):
                results = search(texts[start : start + BATCH])
                found.extend([hit.id for hit in result.hits] for result in results)
            return found

        vectors = embed(cluster.embedder.address, texts)
        row_of = {text: row for row, text in enumerate(texts)}

        def batch(
            with_vectors: bool, **options: object
        ) -> Callable[[list[str]], Sequence[SearchResult]]:
            def search(chunk: list[str]) -> Sequence[SearchResult]:
                chunk_vectors = vectors[[row_of[text] for text in chunk]]
                if options.get("mode") is None:  # vector mode: the vectors alone
                    return client.search_batch("debian", chunk_vectors, k=K, include=[])
                return client.search_batch(
                    "debian",
                    chunk_vectors if with_vectors else None,
                    texts=chunk,
                    k=K,
                    include=[],
                    **options,  # type: ignore[arg-type]
                )

            return search

        table = {
            "vector": mrr(run(batch(True)), relevant),
            "keyword": mrr(run(batch(False, mode="keyword")), relevant),
            "hybrid RRF (k 60), text path": mrr(run(batch(False, mode="hybrid")), relevant),
            "hybrid relative score, alpha 0.5": mrr(
                run(batch(True, mode="hybrid", fusion="relative", alpha=0.5)), relevant
            ),
        }

    reference_found = reference_bm25_rankings(
        data.ids, [doc["text"] for doc in data.documents], texts, DEPTH
    )
    table["reference BM25 (bm25s)"] = mrr(reference_found, relevant)
    exact = exact_vector_rankings(data.ids, data.document_vectors, vectors, DEPTH)
    table["reference RRF (exact vector, bm25s)"] = mrr(
        [
            reciprocal_rank_fusion(pair, DEPTH, RRF_K)
            for pair in zip(exact, reference_found, strict=True)
        ],
        relevant,
    )

    print("\nMRR@10 on debian-20k (9,682 queries):")
    for name, value in table.items():
        print(f"  {name:38s} {value:.4f}")
    assert abs(table["keyword"] - table["reference BM25 (bm25s)"]) <= 0.01
    assert abs(table["vector"] - data.metrics["mrr@10"]) <= 0.01
    rrf = table["hybrid RRF (k 60), text path"]
    # Shoal's fusion is textbook RRF: within 0.01 of RRF over exact candidate lists.
    assert abs(rrf - table["reference RRF (exact vector, bm25s)"]) <= 0.01
    assert rrf >= 0.74
    assert rrf >= table["vector"] + 0.015 and rrf > table["keyword"]
    relative = table["hybrid relative score, alpha 0.5"]
    assert relative >= table["vector"] + 0.015 and relative >= table["keyword"] + 0.015


def embed(address: str, texts: list[str]) -> npt.NDArray[np.float32]:
    """The texts' vectors from the embedder service (the model the collection names)."""
    rows = []
    # Default channel options: the services' keepalive pings would, over an Embed of
    # minutes, make the embedder answer "too many pings".
    with grpc.insecure_channel(address) as channel:
        stub = embedder_pb2_grpc.EmbedderServiceStub(channel)
        for start in range(0, len(texts), BATCH):
            request = embedder_pb2.EmbedRequest(texts=texts[start : start + BATCH])
            reply = stub.Embed(request, timeout=600)
            rows.append(np.frombuffer(reply.vectors_f32, dtype="<f4").reshape(-1, reply.dimension))
    return np.concatenate(rows)
