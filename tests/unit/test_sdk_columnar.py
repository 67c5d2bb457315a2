"""The SDK's columnar results: ids and scores decoded in one pass, the rest on demand."""

import math

import numpy as np
import pytest

from shoal.runtime import proto_values
from shoal.runtime.proto_values import metadata_to_proto
from shoal.sdk import columnar, results
from shoal.sdk.columnar import Documents, SearchBatchResult, SearchResult
from shoal.sdk.results import Coverage, Document, Hit
from shoal.v1 import common_pb2, shoal_pb2


def _hit(
    doc_id: str,
    score: float,
    metadata: dict[str, object] | None = None,
    text: str | None = None,
    vector: list[float] | None = None,
) -> common_pb2.Hit:
    hit = common_pb2.Hit(id=doc_id, score=score, distance=1 - score)
    hit.document.CopyFrom(_document(doc_id, metadata, text, vector))
    return hit


def _document(
    doc_id: str,
    metadata: dict[str, object] | None = None,
    text: str | None = None,
    vector: list[float] | None = None,
) -> common_pb2.Document:
    message = common_pb2.Document(id=doc_id, metadata=metadata_to_proto(metadata or {}))
    if text is not None:
        message.text = text
    if vector is not None:
        message.vector_f32 = np.asarray(vector, dtype="<f4").tobytes()
    return message


def _batch(rows: list[list[common_pb2.Hit]], asked: int = 2, answered: int = 2) -> bytes:
    reply = shoal_pb2.SearchBatchResponse(
        results=[shoal_pb2.SearchResult(hits=hits) for hits in rows],
        coverage=common_pb2.Coverage(groups_asked=asked, groups_answered=answered),
    )
    return reply.SerializeToString()


def _parse(data: bytes) -> shoal_pb2.SearchBatchResponse:
    return shoal_pb2.SearchBatchResponse.FromString(data)


def test_batch_ids_and_scores_are_matrices_row_per_query() -> None:
    reply = _parse(_batch([[_hit("a", 0.9), _hit("b", 0.5)], [_hit("c", 0.8), _hit("a", 0.1)]]))
    result = SearchBatchResult([reply])
    assert result.ids.shape == (2, 2) and result.ids.dtype == object
    assert result.ids.tolist() == [["a", "b"], ["c", "a"]]
    assert result.scores.dtype == np.float32
    np.testing.assert_allclose(result.scores, [[0.9, 0.5], [0.8, 0.1]], rtol=1e-6)
    assert result.counts.tolist() == [2, 2]
    np.testing.assert_allclose(result.distances, [[0.1, 0.5], [0.2, 0.9]], rtol=1e-6)
    assert result.coverage == Coverage(2, 2)


def test_a_query_with_fewer_hits_is_padded_and_counted() -> None:
    reply = _parse(_batch([[_hit("a", 0.9), _hit("b", 0.5)], [], [_hit("c", 0.3)]]))
    result = SearchBatchResult([reply])
    assert result.counts.tolist() == [2, 0, 1]
    assert result.ids.tolist() == [["a", "b"], ["", ""], ["c", ""]]
    assert result.scores[0, 1] == pytest.approx(0.5)
    assert math.isnan(result.scores[1, 0]) and math.isnan(result.scores[2, 1])
    assert math.isnan(result.distances[2, 1])
    assert result[1].ids.tolist() == [] and result[1].hits == []
    assert result[2].ids.tolist() == ["c"]


def test_a_batch_reads_as_the_list_of_results_it_was() -> None:
    reply = _parse(_batch([[_hit("a", 0.9, metadata={"n": 1}, text="x")], [_hit("b", 0.4)]], 3, 2))
    result = SearchBatchResult([reply])
    assert len(result) == 2
    first = result[0]
    assert isinstance(first, SearchResult) and result[0] is first  # made once
    [hit] = first.hits
    assert (hit.id, hit.metadata, hit.text, hit.vector, hit.explanation) == (
        "a",
        {"n": 1},
        "x",
        None,
        None,
    )
    assert hit.score == pytest.approx(0.9) and hit.distance == pytest.approx(0.1)
    assert first.coverage == Coverage(3, 2) and not first.coverage.complete
    assert [r.ids.tolist() for r in result] == [["a"], ["b"]]
    assert result[-1] is result[1]
    assert [r.ids.tolist() for r in result[1:]] == [["b"]]
    with pytest.raises(IndexError):
        result[2]
    assert SearchBatchResult([reply]) == result


def test_per_hit_fields_are_decoded_only_when_asked_and_then_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[str] = []
    real_hit = results.hit_from_proto
    real_metadata = proto_values.metadata_from_proto

    def counting_hit(hit: common_pb2.Hit) -> Hit:
        decoded.append("hit")
        return real_hit(hit)

    def counting_metadata(metadata: object) -> object:
        decoded.append("metadata")
        return real_metadata(metadata)  # type: ignore[arg-type]

    monkeypatch.setattr(columnar, "hit_from_proto", counting_hit)
    monkeypatch.setattr(columnar, "metadata_from_proto", counting_metadata)
    hits = [_hit("a", 0.9, metadata={"k": "v"}), _hit("b", 0.8, metadata={"k": "w"})]
    result = SearchBatchResult([_parse(_batch([hits]))])
    row = result[0]
    assert row.ids.tolist() == ["a", "b"]
    row.scores.tolist()
    assert decoded == []
    assert row.metadatas == [{"k": "v"}, {"k": "w"}]
    assert row.metadatas is row.metadatas
    assert decoded == ["metadata", "metadata"]
    assert [hit.id for hit in row.hits] == ["a", "b"]
    assert [hit.id for hit in row.hits] == ["a", "b"]
    assert decoded.count("hit") == 2


def test_texts_and_vectors_as_columns() -> None:
    hits = [
        _hit("a", 0.9, text="first", vector=[1.0, 2.0]),
        _hit("b", 0.8, vector=[3.0, 4.0]),
    ]
    row = SearchBatchResult([_parse(_batch([hits]))])[0]
    assert row.texts == ["first", None]
    assert row.vectors is not None and row.vectors.dtype == np.float32
    np.testing.assert_array_equal(row.vectors, [[1.0, 2.0], [3.0, 4.0]])
    row.vectors /= 2  # a writable matrix
    without = SearchBatchResult([_parse(_batch([[_hit("a", 0.9)]]))])[0]
    assert without.vectors is None


def test_batches_answered_in_several_calls_join_in_order() -> None:
    first = _parse(_batch([[_hit("a", 0.9)], [_hit("b", 0.8)]], 2, 2))
    second = _parse(_batch([[_hit("c", 0.7), _hit("d", 0.6)]], 2, 1))
    result = SearchBatchResult([first, second])
    assert result.ids.tolist() == [["a", ""], ["b", ""], ["c", "d"]]
    assert result.counts.tolist() == [1, 1, 2]
    assert result.coverage == Coverage(2, 1)
    assert [r.ids.tolist() for r in result] == [["a"], ["b"], ["c", "d"]]


def test_an_empty_batch() -> None:
    result = SearchBatchResult([_parse(_batch([]))])
    assert len(result) == 0 and result.ids.shape == (0, 0) and result.scores.shape == (0, 0)
    assert list(result) == []


def test_a_single_search_result() -> None:
    reply = shoal_pb2.SearchResponse(
        hits=[_hit("a", 0.9, metadata={"n": 2}), _hit("b", 0.25)],
        coverage=common_pb2.Coverage(groups_asked=1, groups_answered=1),
    )
    result = SearchResult.from_reply(shoal_pb2.SearchResponse.FromString(reply.SerializeToString()))
    assert result.ids.tolist() == ["a", "b"] and len(result) == 2
    np.testing.assert_allclose(result.scores, [0.9, 0.25], rtol=1e-6)
    np.testing.assert_allclose(result.distances, [0.1, 0.75], rtol=1e-6)
    assert result.metadatas == [{"n": 2}, {}]
    assert result.hits[0].metadata == {"n": 2} and result.coverage.complete
    empty = SearchResult.from_reply(shoal_pb2.SearchResponse())
    assert empty.ids.tolist() == [] and empty.scores.shape == (0,) and empty.hits == []


def test_documents_are_columns_and_a_sequence_of_documents() -> None:
    reply = shoal_pb2.GetResponse(
        documents=[
            _document("a", {"n": 1}, "text a", [1.0, 0.0]),
            _document("b", {}, None, [0.0, 1.0]),
        ]
    )
    documents = Documents(shoal_pb2.GetResponse.FromString(reply.SerializeToString()).documents)
    assert documents.ids.tolist() == ["a", "b"] and len(documents) == 2
    assert documents.metadatas == [{"n": 1}, {}]
    assert documents.texts == ["text a", None]
    assert documents.vectors is not None
    np.testing.assert_array_equal(documents.vectors, [[1.0, 0.0], [0.0, 1.0]])
    assert documents[0] == Document("a", [1.0, 0.0], "text a", {"n": 1})
    assert documents[0] is documents[0]
    assert [d.id for d in documents] == ["a", "b"]
    assert documents == [documents[0], documents[1]]
    assert Documents(shoal_pb2.GetResponse().documents) == []
    ids_only = Documents(shoal_pb2.GetResponse(documents=[_document("c")]).documents)
    assert ids_only.vectors is None and ids_only.texts == [None]


def test_vectors_of_different_dimensions_are_refused() -> None:
    mixed = [_document("a", vector=[1.0]), _document("b", vector=[1.0, 2.0])]
    with pytest.raises(ValueError, match="dimension"):
        columnar.vector_matrix(mixed)


def _packed(data: bytes, stored: bool) -> shoal_pb2.SearchBatchResponse:
    """The same reply in the packed form a server answers with when asked."""
    reply = _parse(data)
    hits = [hit for result in reply.results for hit in result.hits]
    packed = shoal_pb2.PackedHits(
        counts=[len(result.hits) for result in reply.results],
        ids=[hit.id for hit in hits],
        scores_f32=np.array([hit.score for hit in hits], dtype="<f4").tobytes(),
        distances_f32=np.array([hit.distance for hit in hits], dtype="<f4").tobytes(),
        documents=[hit.document for hit in hits] if stored else [],
    )
    return shoal_pb2.SearchBatchResponse(coverage=reply.coverage, packed=packed)


@pytest.mark.parametrize("stored", [True, False])
def test_a_packed_reply_reads_as_the_same_result(stored: bool) -> None:
    rows = [
        [
            _hit("a", 0.9, metadata={"n": 1}, text="x", vector=[1.0, 0.0]),
            _hit("b", 0.5, vector=[0.0, 1.0]),
        ],
        [],
        [_hit("c", 0.3, metadata={"s": "v"}, vector=[0.5, 0.5])],
    ]
    if not stored:  # what the server sends for include=[]: ids only
        rows = [[_hit(hit.id, hit.score) for hit in row] for row in rows]
    data = _batch(rows, 2, 1)
    per_hit = SearchBatchResult([_parse(data)])
    packed = SearchBatchResult([_packed(data, stored)])
    assert packed.ids.tolist() == per_hit.ids.tolist()
    np.testing.assert_array_equal(packed.scores, per_hit.scores)
    np.testing.assert_array_equal(packed.distances, per_hit.distances)
    assert packed.counts.tolist() == per_hit.counts.tolist() == [2, 0, 1]
    assert packed.coverage == per_hit.coverage
    for ours, theirs in zip(packed, per_hit, strict=True):
        assert ours.hits == theirs.hits
        assert ours.metadatas == theirs.metadatas and ours.texts == theirs.texts
        np.testing.assert_array_equal(ours.distances, theirs.distances)
        if theirs.vectors is None:
            assert ours.vectors is None
        else:
            np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    assert packed == per_hit
    # Several replies, packed or not, join in order.
    both = SearchBatchResult([_packed(data, stored), _parse(data)])
    assert both.ids.tolist() == per_hit.ids.tolist() * 2
    assert list(both) == list(per_hit) * 2


def test_a_packed_single_search_reply() -> None:
    hits = [_hit("a", 0.9, metadata={"n": 2}), _hit("b", 0.25)]
    packed = shoal_pb2.PackedHits(
        counts=[2],
        ids=["a", "b"],
        scores_f32=np.array([0.9, 0.25], dtype="<f4").tobytes(),
        distances_f32=np.array([0.1, 0.75], dtype="<f4").tobytes(),
        documents=[hit.document for hit in hits],
    )
    coverage = common_pb2.Coverage(groups_asked=1, groups_answered=1)
    ours = SearchResult.from_reply(shoal_pb2.SearchResponse(packed=packed, coverage=coverage))
    theirs = SearchResult.from_reply(shoal_pb2.SearchResponse(hits=hits, coverage=coverage))
    assert ours.ids.tolist() == ["a", "b"] and ours == theirs
    np.testing.assert_array_equal(ours.distances, theirs.distances)
    ours.scores[0] = 0  # a writable array, as the per-hit form gives


def _chunked_hit(doc_id: str, score: float, chunk: int | None, text: str) -> common_pb2.Hit:
    """A chunking collection's hit: the chunk [chunk, chunk + 3) of `text`."""
    hit = _hit(doc_id, score, text=text)
    if chunk is not None:
        hit.chunk = chunk
        hit.chunk_span.CopyFrom(common_pb2.ChunkSpan(start=chunk, end=chunk + 3))
        hit.chunk_text = text[chunk : chunk + 3]
    return hit


def _with_chunk_columns(reply: shoal_pb2.SearchBatchResponse) -> shoal_pb2.SearchBatchResponse:
    """`reply` (packed, from `_packed`) with the chunk columns the server sends."""
    hits = [hit for result in _parse(_chunked_data()).results for hit in result.hits]

    def column(values: list[int]) -> bytes:
        return np.array(values, dtype="<i4").tobytes()

    packed = reply.packed
    packed.chunks_i32 = column([h.chunk if h.HasField("chunk") else -1 for h in hits])
    spans = [
        (h.chunk_span.start, h.chunk_span.end) if h.HasField("chunk") else (-1, -1) for h in hits
    ]
    packed.chunk_starts_i32 = column([start for start, _ in spans])
    packed.chunk_ends_i32 = column([end for _, end in spans])
    packed.chunk_texts.extend(hit.chunk_text for hit in hits)
    return reply


def _chunked_data() -> bytes:
    return _batch(
        [
            [_chunked_hit("a", 0.9, 4, "0123456789"), _chunked_hit("b", 0.5, None, "none")],
            [],
            [_chunked_hit("c", 0.3, 0, "abcdef")],
        ]
    )


@pytest.mark.parametrize("packed", [False, True], ids=["per hit", "packed"])
def test_chunks_as_columns(packed: bool) -> None:
    """A chunking collection's best chunks read the same from either form of reply:
    index and span as int32 columns (-1 for none and past a query's count)."""
    data = _chunked_data()
    reply = _with_chunk_columns(_packed(data, stored=True)) if packed else _parse(data)
    batch = SearchBatchResult([reply])
    assert batch.chunks.tolist() == [[4, -1], [-1, -1], [0, -1]]
    assert batch.chunk_spans.tolist() == [
        [[4, 7], [-1, -1]],
        [[-1, -1], [-1, -1]],
        [[0, 3], [-1, -1]],
    ]
    first = batch[0]
    assert first.chunks.dtype == np.int32 and first.chunks.tolist() == [4, -1]
    assert first.chunk_spans.tolist() == [[4, 7], [-1, -1]]
    assert first.chunk_texts == ["456", None]
    assert [(h.chunk, h.chunk_span, h.chunk_text) for h in first.hits] == [
        (4, (4, 7), "456"),
        (None, None, None),
    ]
    assert batch == SearchBatchResult([_parse(data)])
    single = SearchResult.from_reply(
        shoal_pb2.SearchResponse(packed=reply.packed)
        if packed
        else shoal_pb2.SearchResponse(hits=reply.results[2].hits)
    )
    if packed:  # the whole batch's columns as one query's
        assert single.chunks.tolist() == [4, -1, 0]
    else:
        assert single.chunks.tolist() == [0] and single.chunk_texts == ["abc"]


def test_results_without_chunks_have_none() -> None:
    data = _batch([[_hit("a", 0.9), _hit("b", 0.5)]])
    for reply in (_parse(data), _packed(data, stored=False)):
        batch = SearchBatchResult([reply])
        assert batch.chunks.tolist() == [[-1, -1]]
        assert batch.chunk_spans.shape == (1, 2, 2)
        assert batch[0].chunk_texts == [None, None]
        assert batch[0].chunks.tolist() == [-1, -1]
