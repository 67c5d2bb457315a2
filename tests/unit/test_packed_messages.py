"""The packed shard search reply: what the shard writes is what the coordinator reads,
and the public reply made from it is the one the per-hit form gave."""

import numpy as np
import pytest

from coordinator.api.packed_replies import (
    add_packed_hits,
    add_packed_results,
    results_wire_bytes,
)
from coordinator.api.public_messages import add_hits
from coordinator.clients.packed_results import packed_from_reply
from coordinator.core.packed import PackedBatch
from shard.api import proto_reads
from shard.api.packed_hits import packed_response
from shard.core.documents import QueryHits, StoredDocument
from shoal.errors import Internal
from shoal.v1 import common_pb2, shard_pb2, shoal_pb2

NO_FIELDS = common_pb2.Include()
METADATA = common_pb2.Include(metadata=True, text=True)


def answers() -> list[QueryHits]:
    return [
        QueryHits(["a", "b"], [0.9, 0.25], [0.1, 0.75]),
        QueryHits([], [], []),
        QueryHits(["c"], [-1.5], [1.5]),
    ]


def per_hit(results: list[QueryHits], include: common_pb2.Include) -> shard_pb2.ShardSearchResponse:
    response = shard_pb2.ShardSearchResponse()
    for hits in results:
        proto_reads.hits_to_proto(hits, include, response.results.add())
    return response


def test_packed_round_trip() -> None:
    wire = packed_response(answers(), NO_FIELDS).SerializeToString()
    reply = shard_pb2.ShardSearchResponse.FromString(wire)
    assert not reply.results  # nothing per hit
    batch = packed_from_reply(reply, 3)
    assert isinstance(batch, PackedBatch)
    assert batch.counts.tolist() == [2, 0, 1]
    assert batch.ids == ["a", "b", "c"]
    assert batch.scores.dtype == np.float32
    assert batch.scores.tolist() == pytest.approx([0.9, 0.25, -1.5])
    assert batch.distances.tolist() == pytest.approx([0.1, 0.75, 1.5])
    assert batch.documents is None


def test_the_public_reply_is_the_one_the_per_hit_form_gave() -> None:
    old = shoal_pb2.SearchBatchResponse()
    for result in per_hit(answers(), NO_FIELDS).results:
        add_hits(old.results.add(), result)
    reply = shard_pb2.ShardSearchResponse.FromString(
        packed_response(answers(), NO_FIELDS).SerializeToString()
    )
    batch = packed_from_reply(reply, 3)
    assert isinstance(batch, PackedBatch)
    new = shoal_pb2.SearchBatchResponse()
    add_packed_results(new, batch)
    assert new == old
    single = shoal_pb2.SearchResponse()
    add_packed_hits(single, batch[0])
    assert list(single.hits) == list(old.results[0].hits)


def test_stored_fields_ride_along_per_hit() -> None:
    payload = common_pb2.Document(text="hello", metadata={"n": common_pb2.Value(int_value=3)})
    stored = StoredDocument("a", b"", payload.SerializeToString())
    results = [QueryHits(["a"], [0.5], [0.5], [stored])]
    reply = shard_pb2.ShardSearchResponse.FromString(
        packed_response(results, METADATA).SerializeToString()
    )
    batch = packed_from_reply(reply, 1)
    assert isinstance(batch, PackedBatch) and batch.documents is not None
    public = shoal_pb2.SearchBatchResponse()
    add_packed_results(public, batch)
    old = shoal_pb2.SearchBatchResponse()
    add_hits(old.results.add(), per_hit(results, METADATA).results[0])
    assert public == old
    assert public.results[0].hits[0].document.text == "hello"


TEXT = "alpha beta gamma delta epsilon"
SPANS = [(0, 10), (6, 22), (17, 30)]


def chunked_answers() -> list[QueryHits]:
    """A chunking collection's hits: "long" in 3 chunks, "one" in 1 (no chunk per hit
    from the index for it would be 0), "bare" stored without chunks (a vector upsert)."""
    long_payload = common_pb2.Document(
        text=TEXT,
        metadata={"n": common_pb2.Value(int_value=1)},
        chunks=[common_pb2.ChunkSpan(start=a, end=b) for a, b in SPANS],
    ).SerializeToString()
    one_payload = common_pb2.Document(
        text="short", chunks=[common_pb2.ChunkSpan(start=0, end=5)]
    ).SerializeToString()
    long_doc = StoredDocument("long", b"", long_payload)
    one = StoredDocument("one", b"", one_payload)
    bare = StoredDocument("bare", b"", b"")
    return [
        QueryHits(["long", "one"], [0.9, 0.5], [0.1, 0.5], [long_doc, one], chunks=[2, 0]),
        QueryHits([], [], [], [], chunks=[]),
        QueryHits(["bare", "long"], [0.8, 0.7], [0.2, 0.3], [bare, long_doc], chunks=[0, 1]),
    ]


@pytest.mark.parametrize("include", [NO_FIELDS, METADATA], ids=["bare hits", "stored fields"])
def test_a_chunking_collection_answers_packed_with_the_hits_chunks(
    include: common_pb2.Include,
) -> None:
    """The chunk each hit scored by travels as int32 columns (and the chunk's text
    when text was asked for), and the public reply carries the same chunk fields
    the per-hit form gave."""
    reply = shard_pb2.ShardSearchResponse.FromString(
        packed_response(chunked_answers(), include, chunked=True).SerializeToString()
    )
    assert not reply.results  # nothing per hit
    batch = packed_from_reply(reply, 3)
    assert batch.chunks is not None
    assert batch.chunks.chunks.tolist() == [2, 0, -1, 1]
    assert batch.chunks.starts.tolist() == [17, 0, -1, 6]
    assert batch.chunks.ends.tolist() == [30, 5, -1, 22]
    with_text = include.text
    expected_texts = ["delta epsilon", "short", "", "beta gamma delta"] if with_text else None
    assert batch.chunks.texts == expected_texts
    public = shoal_pb2.SearchBatchResponse()
    add_packed_results(public, batch)
    hits = [hit for result in public.results for hit in result.hits]
    assert [(h.id, h.chunk if h.HasField("chunk") else None) for h in hits] == [
        ("long", 2),
        ("one", 0),
        ("bare", None),
        ("long", 1),
    ]
    assert [(h.chunk_span.start, h.chunk_span.end) for h in hits if h.HasField("chunk")] == [
        (17, 30),
        (0, 5),
        (6, 22),
    ]
    assert not hits[2].HasField("chunk_span")
    assert [h.chunk_text for h in hits] == (expected_texts or ["", "", "", ""])
    # What the per-hit form gave for the hits whose chunk the index named.
    old = per_hit(chunked_answers(), include)
    assert public.results[0].hits[0] == old.results[0].hits[0]
    assert public.results[2].hits[1] == old.results[2].hits[1]
    single = shoal_pb2.SearchResponse()
    add_packed_hits(single, batch[2])
    assert list(single.hits) == list(public.results[2].hits)


def test_a_chunk_the_stored_document_no_longer_has_goes_as_none() -> None:
    """The index found chunk 2 of a document that was replaced, before its payload was
    read, by a one-chunk text: the hit comes without a chunk, the search does not fail."""
    payload = common_pb2.Document(text="short", chunks=[common_pb2.ChunkSpan(start=0, end=5)])
    stored = StoredDocument("a", b"", payload.SerializeToString())
    results = [QueryHits(["a"], [0.5], [0.5], [stored], chunks=[2])]
    batch = packed_from_reply(packed_response(results, METADATA, chunked=True), 1)
    assert batch.chunks is not None and batch.chunks.chunks.tolist() == [-1]
    assert batch.chunks.texts == [""]


def test_a_per_hit_answer_gives_a_chunk_the_document_no_longer_has_as_none() -> None:
    """The same race on the per-hit path (the candidate lists of hybrid search)."""
    payload = common_pb2.Document(text="short", chunks=[common_pb2.ChunkSpan(start=0, end=5)])
    stored = StoredDocument("a", b"", payload.SerializeToString())
    target = shard_pb2.ShardSearchResult()
    hits = QueryHits(["a"], [0.5], [0.5], [stored], chunks=[2])
    proto_reads.hits_to_proto(hits, METADATA, target)
    [hit] = target.hits
    assert hit.id == "a" and not hit.HasField("chunk") and not hit.chunk_text


def test_a_collection_without_chunking_sends_no_chunk_columns() -> None:
    reply = packed_response(answers(), NO_FIELDS)
    assert not (reply.chunks_i32 or reply.chunk_starts_i32 or reply.chunk_ends_i32)
    assert not reply.chunk_texts
    assert packed_from_reply(reply, 3).chunks is None


def test_a_per_hit_answer_to_a_packed_search_is_an_internal_error() -> None:
    """Every shard answers packed when asked, chunking collections included."""
    with pytest.raises(Internal, match="0 of 3 queries in the packed form"):
        packed_from_reply(per_hit(answers(), NO_FIELDS), 3)


def test_malformed_chunk_columns_are_an_internal_error() -> None:
    reply = packed_response(chunked_answers(), NO_FIELDS, chunked=True)
    reply.chunk_ends_i32 = reply.chunk_ends_i32[:-4]
    with pytest.raises(Internal, match="malformed"):
        packed_from_reply(reply, 3)
    reply.chunk_ends_i32 = reply.chunk_ends_i32[:-1]
    with pytest.raises(Internal, match="int32"):
        packed_from_reply(reply, 3)


def test_a_reply_for_the_wrong_number_of_queries_is_an_internal_error() -> None:
    reply = packed_response(answers(), NO_FIELDS)
    with pytest.raises(Internal, match="3 of 2 queries"):
        packed_from_reply(reply, 2)
    reply.scores_f32 = reply.scores_f32[:4]
    with pytest.raises(Internal, match="malformed"):
        packed_from_reply(reply, 3)


def _plain(batch: PackedBatch) -> shoal_pb2.SearchBatchResponse:
    """The reply built a `Hit` at a time (what the wire bytes must equal)."""
    reply = shoal_pb2.SearchBatchResponse()
    for hits in batch:
        add_packed_hits(reply.results.add(), hits)
    return reply


def _random_batch(seed: int, counts: list[int], id_length: int = 12) -> PackedBatch:
    rng = np.random.default_rng(seed)
    total = sum(counts)
    alphabet = "abcdéf-日本0123456789"
    ids = [
        "".join(rng.choice(list(alphabet), int(rng.integers(1, id_length + 1))))
        for _ in range(total)
    ]
    scores = rng.standard_normal(total).astype(np.float32)
    scores[::7] = 0.0  # proto3 leaves zeros out of its own serialization
    return PackedBatch.from_counts(counts, ids, scores, -scores)


@pytest.mark.parametrize(
    "counts",
    [[10] * 20, [0, 5, 0, 0, 64], [1024], [1024, 0, 3], [0, 0]],
    ids=["full", "empty queries", "k 1024", "large and small", "nothing found"],
)
def test_wire_bytes_parse_to_the_reply_a_hit_at_a_time_gives(counts: list[int]) -> None:
    batch = _random_batch(sum(counts), counts)
    encoded = results_wire_bytes(batch)
    assert encoded is not None
    reply = shoal_pb2.SearchBatchResponse.FromString(encoded)
    assert reply == _plain(batch)
    assert len(reply.results) == len(counts)
    added = shoal_pb2.SearchBatchResponse(coverage=common_pb2.Coverage(groups_asked=2))
    add_packed_results(added, batch)  # the wire path for 64 hits or more
    assert added.results == _plain(batch).results and added.coverage.groups_asked == 2


def test_long_ids_and_stored_fields_take_the_plain_path() -> None:
    long_id = PackedBatch.from_counts(
        [1], ["x" * 56], np.ones(1, np.float32), np.zeros(1, np.float32)
    )
    assert results_wire_bytes(long_id) is None
    with_fields = PackedBatch.from_counts(
        [1], ["a"], np.ones(1, np.float32), np.zeros(1, np.float32), [common_pb2.Document(id="a")]
    )
    assert results_wire_bytes(with_fields) is None
    mixed = _random_batch(3, [40, 40], id_length=60)  # some ids over 55 bytes
    reply = shoal_pb2.SearchBatchResponse()
    add_packed_results(reply, mixed)
    assert reply == _plain(mixed)
