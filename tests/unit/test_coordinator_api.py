"""The api layer's proto handling: wire-compatible pass-through and fast query parsing."""

import numpy as np
import pytest

from coordinator.api.public_messages import add_hits, queries_from_proto
from coordinator.core.model import MergedHits
from shoal.v1 import common_pb2, shard_pb2, shoal_pb2


def test_shard_results_and_public_results_share_their_wire_form() -> None:
    """`add_hits` copies a shard's answer as bytes into the public messages; that
    is only right while field 1 of each is `repeated Hit hits` and the shard's
    message has nothing else."""
    shard = shard_pb2.ShardSearchResult.DESCRIPTOR
    assert [f.number for f in shard.fields] == [1]
    for public in (shoal_pb2.SearchResult.DESCRIPTOR, shoal_pb2.SearchResponse.DESCRIPTOR):
        theirs, ours = shard.fields_by_number[1], public.fields_by_number[1]
        assert ours.name == theirs.name == "hits"
        assert ours.message_type is theirs.message_type is common_pb2.Hit.DESCRIPTOR
        assert ours.is_repeated and theirs.is_repeated


def hit(doc_id: str, score: float) -> common_pb2.Hit:
    return common_pb2.Hit(
        id=doc_id,
        score=score,
        distance=1 - score,
        document=common_pb2.Document(id=doc_id, metadata={"n": common_pb2.Value(int_value=3)}),
    )


def test_add_hits_copies_a_shard_answer_whole() -> None:
    answer = shard_pb2.ShardSearchResult(hits=[hit("a", 0.9), hit("b", 0.5)])
    batch = shoal_pb2.SearchBatchResponse()
    add_hits(batch.results.add(), answer)
    assert list(batch.results[0].hits) == list(answer.hits)
    single = shoal_pb2.SearchResponse(coverage=common_pb2.Coverage(groups_asked=2))
    add_hits(single, answer)
    assert list(single.hits) == list(answer.hits)
    assert single.coverage.groups_asked == 2


def test_add_hits_copies_merged_hits() -> None:
    hits = [hit("a", 0.9), hit("c", 0.7)]
    result = shoal_pb2.SearchResult()
    add_hits(result, MergedHits(list(hits)))
    assert list(result.hits) == hits


def test_queries_all_given_as_bytes_become_one_matrix() -> None:
    vectors = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    queries = [shoal_pb2.Query(vector_f32=v.tobytes()) for v in vectors]
    parsed = queries_from_proto(queries)
    assert isinstance(parsed, np.ndarray)
    np.testing.assert_array_equal(parsed, vectors)


@pytest.mark.parametrize(
    "odd_one",
    [
        shoal_pb2.Query(text="hello"),
        shoal_pb2.Query(vector=[1.0, 2.0, 3.0, 4.0]),
        shoal_pb2.Query(vector_f32=np.ones(3, np.float32).tobytes()),
        shoal_pb2.Query(),
    ],
)
def test_other_query_mixes_are_parsed_one_by_one(odd_one: shoal_pb2.Query) -> None:
    queries = [shoal_pb2.Query(vector_f32=np.ones(4, np.float32).tobytes()), odd_one]
    parsed = queries_from_proto(queries)
    assert isinstance(parsed, list) and len(parsed) == 2
