"""Keyword and hybrid search on real servers with Debian texts (vectors given).

The same documents in 1 group and in 3 groups must give the same keyword
results with the same scores (the coordinator sums every group's term
statistics), equal to a reference BM25 (bm25s, Lucene's formula) over the
same tokens.
"""

import shutil
from collections.abc import Iterator
from typing import Any, Literal

import bm25s
import numpy as np
import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.errors import InvalidArgument
from shoal.keyword import KeywordSettings, tokenizer_for
from shoal.v1 import common_pb2, shard_pb2
from tests import datasets
from tests.conftest import StartCluster
from tests.fault import replicas

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
DOCUMENTS = 600
QUERIES = 40
K = 10


def _load(client: Client) -> None:
    data = datasets.load()
    client.create_collection(COLLECTION, dimension=384, partitions=16)
    client.upsert(COLLECTION, datasets.with_vectors(data, 0, DOCUMENTS), "all")


@pytest.fixture(scope="module")
def one_group(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=1, replicas=2, model="hash-384")
    with Client(cluster.address, timeout=60) as client:
        _load(client)
    return cluster


@pytest.fixture(scope="module")
def three_groups(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=3, replicas=1, model="hash-384")
    with Client(cluster.address, timeout=60) as client:
        _load(client)
    return cluster


@pytest.fixture
def client(three_groups: LocalCluster) -> Iterator[Client]:
    with Client(three_groups.address, timeout=60) as client:
        yield client


def _queries() -> list[str]:
    data = datasets.load()
    relevant = set(data.ids[:DOCUMENTS])
    return [q["text"] for q in data.queries if q["relevant"][0] in relevant][:QUERIES]


def _keyword(address: str, text: str) -> list[tuple[str, float]]:
    with Client(address, timeout=60) as client:
        hits = client.search(COLLECTION, text=text, mode="keyword", k=K, include=[]).hits
    return [(hit.id, hit.score) for hit in hits]


def test_keyword_scores_do_not_depend_on_the_cluster_shape_and_equal_reference_bm25(
    one_group: LocalCluster, three_groups: LocalCluster
) -> None:
    data = datasets.load()
    tokenizer = tokenizer_for(KeywordSettings())
    reference = bm25s.BM25(method="lucene", k1=1.2, b=0.75, dtype="float64")
    reference.index(
        [tokenizer.terms(doc["text"]) for doc in data.documents[:DOCUMENTS]], show_progress=False
    )
    ids = np.array(data.ids[:DOCUMENTS])
    compared = 0
    for text in _queries():
        one = _keyword(one_group.address, text)
        three = _keyword(three_groups.address, text)
        assert [i for i, _ in one] == [i for i, _ in three], text
        np.testing.assert_allclose([s for _, s in one], [s for _, s in three], atol=1e-4)
        expected = reference.get_scores(tokenizer.terms(text))
        order = np.lexsort((ids, -expected))[:K]
        order = order[expected[order] > 0]
        np.testing.assert_allclose([s for _, s in three], expected[order], atol=1e-4)
        # Ids agree except where scores tie (then both break ties by id, bm25s by row).
        by_id = dict(three)
        for row in order:
            assert by_id.get(str(ids[row]), expected[row]) == pytest.approx(expected[row], abs=1e-4)
        compared += len(three)
    assert compared >= QUERIES * K // 2


def test_hybrid_fuses_both_lists_and_explains_each_hit(client: Client) -> None:
    data = datasets.load()
    row = 7
    text, vector = data.documents[row]["title"], data.document_vectors[row]
    result = client.search(
        COLLECTION, vector, text=text, mode="hybrid", k=K, include=[], explain=True
    )
    assert len(result.hits) == K and result.coverage.complete
    vector_only = client.search(COLLECTION, vector, k=80, include=[]).hits
    keyword_only = client.search(COLLECTION, text=text, mode="keyword", k=80, include=[]).hits
    vector_rank = {hit.id: rank for rank, hit in enumerate(vector_only, 1)}
    keyword_rank = {hit.id: rank for rank, hit in enumerate(keyword_only, 1)}
    for hit in result.hits:
        e = hit.explanation
        assert e is not None
        assert e.vector_rank == vector_rank.get(hit.id)
        assert e.keyword_rank == keyword_rank.get(hit.id)
        expected = sum(
            0.5 / (60 + rank) for rank in (e.vector_rank, e.keyword_rank) if rank is not None
        )
        assert hit.score == pytest.approx(expected, rel=1e-5)
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
    # alpha 1 is the vector ranking, alpha 0 the keyword ranking.
    only_vector = client.search(
        COLLECTION, vector, text=text, mode="hybrid", alpha=1.0, k=K, include=[]
    )
    assert [h.id for h in only_vector.hits] == [h.id for h in vector_only[:K]]
    only_keyword = client.search(
        COLLECTION, vector, text=text, mode="hybrid", alpha=0.0, fusion="relative", k=K
    )
    assert [h.id for h in only_keyword.hits] == [h.id for h in keyword_only[:K]]


def test_hybrid_hits_carry_the_stored_fields_asked_for(client: Client) -> None:
    data = datasets.load()
    row = 11
    text, vector = data.documents[row]["title"], data.document_vectors[row]
    by_id = {document["id"]: (n, document) for n, document in enumerate(data.documents)}
    cases: list[list[Literal["metadata", "text", "vector"]]] = [["text", "metadata"], ["vector"]]
    for include in cases:
        result = client.search(COLLECTION, vector, text=text, mode="hybrid", k=K, include=include)
        assert len(result.hits) == K
        for hit in result.hits:
            n, document = by_id[hit.id]
            if include == ["vector"]:
                assert hit.vector == pytest.approx(data.document_vectors[n].tolist(), abs=1e-6)
                assert hit.text is None
            else:
                assert (hit.text, hit.metadata) == (document["text"], document["metadata"])
                assert hit.vector is None


def test_filters_and_text_filters_apply_to_hybrid_results(client: Client) -> None:
    data = datasets.load()
    where = {"priority": "optional"}
    where_document = {"$contains": "library"}
    tokenizer = tokenizer_for(KeywordSettings())
    [library] = tokenizer.terms("library")  # its stem
    for row in range(5):
        text = data.queries[row]["text"]
        result = client.search(
            COLLECTION,
            data.query_vectors[row],
            text=text,
            mode="hybrid",
            fusion="relative",
            k=K,
            include=["metadata", "text"],
            where=where,
            where_document=where_document,
        )
        assert result.hits
        for hit in result.hits:
            assert hit.metadata["priority"] == "optional"
            assert hit.text is not None
            assert library in tokenizer.terms(hit.text)
    matching = client.count(COLLECTION, where=where, where_document=where_document)
    listed = list(client.scroll(COLLECTION, where=where, where_document=where_document))
    assert len(listed) == matching > 0
    query = data.queries[0]["text"]
    hits = client.search(COLLECTION, data.query_vectors[0], text=query, mode="hybrid", k=K).hits
    threshold = hits[2].score
    kept = client.search(
        COLLECTION,
        data.query_vectors[0],
        text=data.queries[0]["text"],
        mode="hybrid",
        k=K,
        score_threshold=threshold,
    ).hits
    assert len(kept) >= 3 and all(hit.score >= threshold for hit in kept)


def test_updates_and_deletes_change_keyword_results_at_once(client: Client) -> None:
    vector = np.ones(384, dtype=np.float32)

    def found(word: str) -> list[str]:
        hits = client.search(COLLECTION, text=word, mode="keyword", k=5, include=[]).hits
        return [hit.id for hit in hits]

    client.upsert(COLLECTION, [{"id": "kw-1", "vector": vector, "text": "a zyxwvut gadget"}])
    assert found("zyxwvut") == ["kw-1"]
    client.upsert(COLLECTION, [{"id": "kw-1", "vector": vector, "text": "a qwertyuiop gizmo"}])
    assert found("zyxwvut") == []
    assert found("qwertyuiop") == ["kw-1"]
    assert client.count(COLLECTION, where_document={"$contains": "qwertyuiop gizmo"}) == 1
    client.delete(COLLECTION, ["kw-1"])
    assert found("qwertyuiop") == []
    client.upsert(COLLECTION, [{"id": "kw-2", "vector": vector, "text": "zyxwvut again"}])
    deleted = client.delete(COLLECTION, where_document={"$contains": "zyxwvut"})
    assert deleted.count == 1 and found("zyxwvut") == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "keyword", "vector": True}, "needs a text"),
        ({"mode": "hybrid", "text": "audio"}, "needs a vector besides its text"),
        ({"mode": "hybrid", "text": "audio", "alpha": 1.5, "vector": True}, "alpha"),
        ({"mode": "keyword", "text": "audio", "vector": True}, "not both"),
        ({"mode": "hybrid", "text": "a", "vector": True, "candidates": 5}, "at least k"),
        ({"mode": "vector", "vector": True, "where_document": {"$contains": "the"}}, "no words"),
    ],
)
def test_bad_keyword_requests_are_invalid_arguments(
    client: Client, options: dict[str, Any], message: str
) -> None:
    if options.pop("vector", False):
        options["vector"] = np.ones(384, dtype=np.float32)
    with pytest.raises(InvalidArgument, match=message):
        client.search(COLLECTION, k=K, **options)


def test_collection_without_keyword_index_refuses_keyword_search(client: Client) -> None:
    client.create_collection("vectors-only", dimension=4, keyword=False)
    assert client.get_collection("vectors-only").keyword.enabled is False
    client.upsert("vectors-only", [{"id": "x", "vector": [1, 0, 0, 0], "text": "audio"}])
    with pytest.raises(InvalidArgument, match="no keyword index"):
        client.search("vectors-only", text="audio", mode="keyword")
    with pytest.raises(InvalidArgument, match="keyword index"):
        client.count("vectors-only", where_document={"$contains": "audio"})
    client.delete_collection("vectors-only")


def test_a_recreated_collection_starts_with_an_empty_keyword_index(
    three_groups: LocalCluster,
) -> None:
    """A drop and a create of the same name is a new incarnation: none of the old
    documents' words may be found or counted in its statistics, on any replica."""
    name = "recreated-keywords"
    vector = np.ones(384, dtype=np.float32)
    with Client(three_groups.address, timeout=60) as client:
        for incarnation, word in enumerate(["zyxwold", "zyxwnew"]):
            if incarnation:
                client.delete_collection(name)
            client.create_collection(name, dimension=384, partitions=4)
            texts = [f"{word} document {i}" for i in range(30)]
            client.upsert(
                name,
                [{"id": f"{word}-{i}", "vector": vector, "text": t} for i, t in enumerate(texts)],
            )
        assert client.search(name, text="zyxwold", mode="keyword", include=[]).hits == []
        assert len(client.search(name, text="zyxwnew", mode="keyword", k=50).hits) == 30
        assert client.count(name, where_document={"$contains": "zyxwold"}) == 0
        request = shard_pb2.ShardKeywordStatsRequest(collection=name, terms=["zyxwold", "zyxwnew"])
        totals = [0, 0, 0]
        for group in three_groups.shards:
            for shard in group:
                with replicas.shard_stub(shard.address) as stub:
                    stats = stub.KeywordStats(request, timeout=30)
                totals = [
                    totals[0] + stats.documents,
                    totals[1] + stats.frequencies[0],
                    totals[2] + stats.frequencies[1],
                ]
        assert totals == [30, 0, 30]  # one replica per group: each document counted once
        client.delete_collection(name)


def test_a_replica_rebuilt_from_an_empty_data_dir_gives_the_same_keyword_results(
    one_group: LocalCluster,
) -> None:
    peer, victim = one_group.shards[0]
    victim.kill()
    shutil.rmtree(one_group.root / "data" / victim.name)
    victim.start()
    victim.wait_ready(120)  # serving once its first catch-up from the peer is over
    tokenizer = tokenizer_for(KeywordSettings())
    for text in _queries()[:10]:
        terms = list(dict.fromkeys(tokenizer.terms(text)))
        request = shard_pb2.ShardKeywordSearchRequest(
            collection=COLLECTION,
            queries=[shard_pb2.KeywordQuery(terms=terms, weights=[1.0] * len(terms))],
            average_length=40.0,
            k=K,
            include=common_pb2.Include(),
        )
        answers: list[shard_pb2.ShardSearchResponse] = []
        statistics: list[shard_pb2.ShardKeywordStatsResponse] = []
        for shard in (peer, victim):
            with replicas.shard_stub(shard.address) as stub:
                answers.append(stub.KeywordSearch(request, timeout=30))
                stats_request = shard_pb2.ShardKeywordStatsRequest(
                    collection=COLLECTION, terms=terms
                )
                statistics.append(stub.KeywordStats(stats_request, timeout=30))
        assert answers[0] == answers[1] and statistics[0] == statistics[1]
        assert answers[0].results[0].hits
