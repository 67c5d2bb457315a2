"""Chunking on ingest, end to end: 2 shard groups x 2 replicas, the hash model.

Long documents (Debian descriptions joined 8 at a time) go into a chunking
collection: each document keeps its id, text and metadata, its chunks are
indexed as records of it, search returns distinct documents scored by their best
chunk (with that chunk's span and text), replacing or deleting a document
replaces or deletes all of its chunks on every replica.
"""

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from bench import long_documents
from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.sdk.requests import Field, SearchModeName
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "manuals"
MODEL = "hash-64"
CHUNK_TOKENS = 40  # words, for the hash model: several chunks per document


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=2, replicas=2, model=MODEL)
    long = long_documents.build(datasets.load().documents)
    with Client(cluster.address, timeout=120) as client:
        client.create_collection(
            COLLECTION,
            embedding_model=MODEL,
            chunking={"chunk_tokens": CHUNK_TOKENS, "overlap_tokens": 5},
        )
        client.upsert(COLLECTION, long.documents, "all")
    return cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address, timeout=60) as client:
        yield client


def replica_chunks(shard: ServiceProcess) -> tuple[int, int]:
    """(documents, chunks) one replica holds in the collection."""
    with grpc.insecure_channel(shard.address) as channel:
        reply = shard_pb2_grpc.ShardServiceStub(channel).ListCollections(
            shard_pb2.ShardListCollectionsRequest(), timeout=30
        )
    [listed] = [c for c in reply.collections if c.config.name == COLLECTION]
    return listed.document_count, listed.chunk_count


def replica_document(shard: ServiceProcess, doc_id: str) -> common_pb2.Document | None:
    with grpc.insecure_channel(shard.address) as channel:
        reply = shard_pb2_grpc.ShardServiceStub(channel).Get(
            shard_pb2.ShardGetRequest(
                collection=COLLECTION,
                ids=[doc_id],
                include=common_pb2.Include(text=True, metadata=True),
            ),
            timeout=30,
        )
    return reply.documents[0] if reply.documents else None


def test_documents_keep_their_text_and_have_chunks(client: Client) -> None:
    long = long_documents.build(datasets.load().documents)
    info = client.get_collection(COLLECTION)
    assert info.document_count == len(long.documents)
    assert info.chunk_count is not None and info.chunk_count > 2 * len(long.documents)
    assert info.chunking.enabled and info.chunking.chunk_tokens == CHUNK_TOKENS
    assert client.count(COLLECTION) == len(long.documents)
    first = long.documents[0]
    [document] = client.get(COLLECTION, [first["id"]], include=["text", "metadata"])
    assert document.text == first["text"]
    assert document.metadata == first["metadata"]
    assert len(document.chunks) > 1
    assert document.chunks[0][0] == 0 and document.chunks[-1][1] <= len(first["text"])
    assert all(a[0] < b[0] for a, b in zip(document.chunks, document.chunks[1:], strict=False))


def test_search_returns_distinct_documents_by_their_best_chunk(client: Client) -> None:
    data = datasets.load()
    long = long_documents.build(data.documents)
    total = len(long.documents)
    for query in data.queries[:30]:
        hits = client.search(COLLECTION, text=query["text"], k=25, include=["text"]).hits
        ids = [hit.id for hit in hits]
        assert len(ids) == 25 and len(set(ids)) == 25, "a document came back twice"
        for hit in hits:
            assert hit.chunk is not None and hit.chunk_span is not None
            start, end = hit.chunk_span
            assert hit.text is not None and hit.chunk_text == hit.text[start:end]
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    everything = client.search(COLLECTION, text="the", k=total + 50, include=[]).hits
    assert len({hit.id for hit in everything}) == len(everything) == total


def test_a_chunking_collections_shards_answer_packed_with_chunk_columns(
    cluster: LocalCluster, client: Client
) -> None:
    """The shard answers a chunking collection's search in the packed form like any
    other (no `Hit` per hit), the chunk each hit scored by as int32 columns."""
    first = long_documents.build(datasets.load().documents).documents[0]
    [document] = client.get(COLLECTION, [first["id"]], include=["vector"])
    assert document.vector is not None
    query = np.asarray([document.vector, document.vector], dtype="<f4")
    shard = cluster.shards[0][0]
    with grpc.insecure_channel(shard.address) as channel:
        reply = shard_pb2_grpc.ShardServiceStub(channel).Search(
            shard_pb2.ShardSearchRequest(
                collection=COLLECTION, queries_f32=query.tobytes(), k=10, packed=True
            ),
            timeout=30,
        )
    hits = sum(reply.hit_counts)
    assert not reply.results and list(reply.hit_counts) == [10, 10]
    chunks = np.frombuffer(reply.chunks_i32, dtype="<i4")
    starts = np.frombuffer(reply.chunk_starts_i32, dtype="<i4")
    ends = np.frombuffer(reply.chunk_ends_i32, dtype="<i4")
    assert len(chunks) == len(starts) == len(ends) == hits
    assert (chunks >= 0).all() and (starts < ends).all()
    assert not reply.chunk_texts  # no text asked for


def test_a_batch_search_carries_each_hits_chunk_as_columns(client: Client) -> None:
    data = datasets.load()
    texts = [query["text"] for query in data.queries[:20]]
    batch = client.search_batch(COLLECTION, texts=texts, k=8, include=["text"])
    assert batch.chunks.shape == batch.ids.shape == (20, 8)
    assert batch.chunk_spans.shape == (20, 8, 2)
    assert (batch.chunks >= 0).all()
    for row, result in enumerate(batch):
        assert result.chunks.tolist() == batch.chunks[row].tolist()
        assert result.chunk_spans.tolist() == batch.chunk_spans[row].tolist()
        for hit, (start, end), chunk_text in zip(
            result.hits, result.chunk_spans.tolist(), result.chunk_texts, strict=True
        ):
            assert hit.chunk_span == (start, end) and hit.chunk is not None
            assert hit.text is not None and chunk_text == hit.chunk_text == hit.text[start:end]
        # The same hits and chunks as a single search of the same text.
        single = client.search(COLLECTION, text=texts[row], k=8, include=[])
        assert single.ids.tolist() == result.ids.tolist()
        assert single.chunks.tolist() == result.chunks.tolist()
        assert single.chunk_texts == [None] * 8


def test_filters_keyword_hybrid_and_more_like_this_work_on_chunks(client: Client) -> None:
    long = long_documents.build(datasets.load().documents)
    section = long.documents[0]["metadata"]["section"]
    in_section = sum(1 for doc in long.documents if doc["metadata"]["section"] == section)
    hits = client.search(
        COLLECTION, text="library", k=50, where={"section": section}, include=["metadata"]
    ).hits
    assert len(hits) == min(50, in_section)
    assert all(hit.metadata["section"] == section for hit in hits)
    assert len({hit.id for hit in hits}) == len(hits)
    keyword = client.search(COLLECTION, text="python library", k=10, mode="keyword").hits
    hybrid = client.search(COLLECTION, text="python library", k=10, mode="hybrid").hits
    assert len(keyword) == 10 and len({hit.id for hit in hybrid}) == len(hybrid) == 10
    alike = client.search(COLLECTION, like=long.documents[0]["id"], k=10, include=[]).hits
    assert len(alike) == 10 and long.documents[0]["id"] not in {hit.id for hit in alike}


def test_replacing_and_deleting_a_document_replaces_its_chunks_everywhere(
    cluster: LocalCluster, client: Client
) -> None:
    long = long_documents.build(datasets.load().documents)
    target = max(long.documents, key=lambda doc: len(doc["text"]))
    before = {shard.address: replica_chunks(shard) for group in cluster.shards for shard in group}
    old = replica_document(cluster.shards[0][0], target["id"]) or replica_document(
        cluster.shards[1][0], target["id"]
    )
    assert old is not None and len(old.chunks) > 3
    client.upsert(COLLECTION, [{"id": target["id"], "text": "one short line now"}], "all")
    for group in cluster.shards:
        for shard in group:
            documents, chunks = replica_chunks(shard)
            was_documents, was_chunks = before[shard.address]
            assert documents == was_documents
            held = replica_document(shard, target["id"])
            if held is None:
                assert chunks == was_chunks  # the other group
                continue
            assert [(s.start, s.end) for s in held.chunks] == [(0, 18)]
            assert chunks == was_chunks - len(old.chunks) + 1
    hits = client.search(COLLECTION, text="one short line now", k=3, include=["text"]).hits
    assert hits[0].id == target["id"] and hits[0].chunk == 0
    assert hits[0].chunk_text == "one short line now"
    client.delete(COLLECTION, [target["id"]], consistency="all")
    for group in cluster.shards:
        for shard in group:
            documents, chunks = replica_chunks(shard)
            assert replica_document(shard, target["id"]) is None
    total = sum(replica_chunks(group[0])[1] for group in cluster.shards)
    assert total == sum(before[group[0].address][1] for group in cluster.shards) - len(old.chunks)
    client.upsert(COLLECTION, [target], "all")  # the other tests expect the whole set


def test_updating_the_text_re_chunks_and_metadata_only_keeps_chunks(client: Client) -> None:
    long = long_documents.build(datasets.load().documents)
    doc = long.documents[3]
    [before] = client.get(COLLECTION, [doc["id"]], include=["text", "metadata"])
    client.update(COLLECTION, [doc["id"]], set_metadata={"reviewed": True}, consistency="all")
    [after] = client.get(COLLECTION, [doc["id"]], include=["text", "metadata"])
    assert after.chunks == before.chunks and after.metadata["reviewed"] is True
    client.update(COLLECTION, [doc["id"]], text="a brand new text", consistency="all")
    [rewritten] = client.get(COLLECTION, [doc["id"]], include=["text", "metadata"])
    assert rewritten.text == "a brand new text" and rewritten.chunks == [(0, 16)]
    assert rewritten.metadata["reviewed"] is True
    client.upsert(COLLECTION, [doc], "all")


@pytest.mark.parametrize(
    ("mode", "include"),
    [
        ("hybrid", ["text"]),
        ("hybrid", ["metadata"]),
        ("hybrid", ["text", "vector"]),
        ("hybrid", []),  # ids and scores only: the best chunk still comes
        ("vector", ["text"]),  # explained: hits the coordinator builds itself
        ("vector", []),
    ],
)
def test_hybrid_and_explained_hits_carry_their_best_chunk(
    client: Client, mode: SearchModeName, include: list[Field]
) -> None:
    """A fused hit found by the vector list is a document scored by its best chunk:
    it carries that chunk as a vector search's hit does, and the fields asked for."""
    data = datasets.load()
    long = {doc["id"]: doc for doc in long_documents.build(data.documents).documents}
    from_vectors = 0
    for query in data.queries[:10]:
        hits = client.search(
            COLLECTION, text=query["text"], k=10, mode=mode, include=include, explain=True
        ).hits
        for hit in hits:
            assert hit.text == (long[hit.id]["text"] if "text" in include else None)
            assert (hit.vector is not None) == ("vector" in include)
        vector = {
            hit.id: hit
            for hit in client.search(COLLECTION, text=query["text"], k=100, include=["text"]).hits
        }
        for hit in hits:
            assert hit.explanation is not None
            if hit.explanation.vector_rank is None:
                continue
            from_vectors += 1
            assert (hit.chunk, hit.chunk_span) == (vector[hit.id].chunk, vector[hit.id].chunk_span)
            assert hit.chunk_text == (vector[hit.id].chunk_text if "text" in include else None)
    assert from_vectors >= 50


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_group_by_on_chunks_in_every_mode(client: Client, mode: SearchModeName) -> None:
    """Grouping reads each hit's metadata: documents found by their chunks, by their
    text or by both carry it, and no document comes twice."""
    long = {doc["id"]: doc for doc in long_documents.build(datasets.load().documents).documents}
    hits = client.search(
        COLLECTION, text="python library for developers", k=4, mode=mode, group_by="section",
        group_size=3, include=[],
    ).hits  # fmt: skip
    assert hits and len({hit.id for hit in hits}) == len(hits)
    groups: list[object] = []
    for hit in hits:
        assert hit.group == long[hit.id]["metadata"]["section"]
        if not groups or groups[-1] != hit.group:
            groups.append(hit.group)
    assert len(groups) == len(set(groups)) == 4
    assert all(sum(hit.group == group for hit in hits) <= 3 for group in groups)
