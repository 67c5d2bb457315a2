"""Requests made ahead of time, answers mapped back to rows, and service logs and profiles read."""

import numpy as np

from bench import messages
from bench.embedding import batch_sizes
from bench.memory import load_seconds
from bench.profile import layer_shares
from shoal.v1 import common_pb2, shard_pb2, shoal_pb2


def test_search_requests_carry_one_query_each_as_float32_bytes() -> None:
    queries = np.arange(12, dtype=np.float32).reshape(3, 4)
    requests = [
        shoal_pb2.SearchRequest.FromString(r)
        for r in messages.search_requests("c", queries, 10, 32)
    ]
    assert len(requests) == 3
    assert requests[1].k == 10
    assert requests[1].ef == 32
    assert np.array_equal(np.frombuffer(requests[1].query.vector_f32, "<f4"), queries[1])
    assert not requests[1].include.metadata


def test_batch_requests_split_the_queries_into_batches() -> None:
    queries = np.zeros((5, 4), dtype=np.float32)
    batches = messages.search_batch_requests("c", queries, 10, 16, batch=2)
    assert [len(shoal_pb2.SearchBatchRequest.FromString(b).queries) for b in batches] == [2, 2, 1]
    shard = messages.shard_search_requests("c", queries, 10, 16, batch=2)
    sizes = [len(shard_pb2.ShardSearchRequest.FromString(b).queries_f32) // 16 for b in shard]
    assert sizes == [2, 2, 1]


def test_upserts_use_row_numbers_as_ids() -> None:
    documents = np.ones((3, 4), dtype=np.float32)
    (request,) = messages.upsert_requests("c", documents, batch=10, first_row=7)
    parsed = shoal_pb2.UpsertRequest.FromString(request)
    assert [document.id for document in parsed.documents] == ["7", "8", "9"]


def test_answers_map_back_to_rows() -> None:
    hits = [common_pb2.Hit(id="4"), common_pb2.Hit(id="2")]
    single = shoal_pb2.SearchResponse(hits=hits).SerializeToString()
    assert messages.search_rows([single]) == [[4, 2]]
    batch = shoal_pb2.SearchBatchResponse(
        results=[shoal_pb2.SearchResult(hits=hits), shoal_pb2.SearchResult()]
    ).SerializeToString()
    assert messages.search_batch_rows([batch, batch]) == [[4, 2], [], [4, 2], []]
    shard = shard_pb2.ShardSearchResponse(
        results=[shard_pb2.ShardSearchResult(hits=hits[:1])]
    ).SerializeToString()
    assert messages.shard_search_rows([shard]) == [[4]]


def test_service_logs_are_read_for_batch_sizes_and_load_time() -> None:
    embedder_log = (
        "2026-01-01 10:00:00,000 DEBUG embedder.core.batcher: encoded 64 texts in 80.1 ms\n"
        "2026-01-01 10:00:00,100 INFO shoal.runtime.server: serving\n"
        "2026-01-01 10:00:00,200 DEBUG embedder.core.batcher [req-1]: encoded 3 texts in 9.0 ms\n"
        "2026-01-01 10:00:00,300 INFO embedder.core.batcher [-]: encoded 768 texts in 24 batches\n"
    )
    assert batch_sizes(embedder_log) == [64, 3]
    shard_log = (
        'x INFO shard: {"event": "shard_loaded", "documents": 5, "load_seconds": 1.5}\n'
        'y INFO shard: {"event": "shard_loaded", "documents": 5, "load_seconds": 0.25}\n'
    )
    assert load_seconds(shard_log) == 0.25
    assert load_seconds("nothing here") is None


def test_profile_samples_are_charged_to_the_innermost_known_layer() -> None:
    collapsed = (
        "run (asyncio/runners.py:118);ShardServicer._search (shard/api/servicer.py:102);"
        "HnswIndex.search (shard/storage/hnsw_index.py:135) 6\n"
        "run (asyncio/runners.py:118);ShardServicer._search (shard/api/servicer.py:102) 2\n"
        "run (asyncio/runners.py:118);Handle._run (asyncio/events.py:80) 2\n"
    )
    assert layer_shares(collapsed) == {
        "hnswlib": 0.6,
        "shard code": 0.2,
        "gRPC Cython callbacks on the event loop": 0.2,
    }
    assert layer_shares("") == {}
