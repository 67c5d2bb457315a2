"""The coordinator's packed public reply: columns in, `PackedHits` out, and None
(the reply keeps its `Hit`s) where it was not asked for or the hits are not columns."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from coordinator.api.packed_public import is_columns, packed_hits
from coordinator.core.packed import ChunkColumns, PackedBatch
from shoal.v1 import common_pb2, shard_pb2, shoal_pb2

ASKED = shoal_pb2.SearchBatchRequest(packed=True)


@dataclass(frozen=True)
class Columns:
    """What a vector search's merged hits look like: one query's columns."""

    ids: Sequence[str]
    scores: npt.NDArray[np.float32]
    distances: npt.NDArray[np.float32]
    documents: Sequence[object] | None = None


@dataclass(frozen=True)
class Batch:
    """A whole batch as one set of columns, query i's from offsets[i] to offsets[i + 1]."""

    offsets: npt.NDArray[np.int64]
    ids: Sequence[str]
    scores: npt.NDArray[np.float32]
    distances: npt.NDArray[np.float32]
    documents: Sequence[object] | None = None


def _f32(*values: float) -> npt.NDArray[np.float32]:
    return np.array(values, dtype=np.float32)


def test_per_query_columns_are_packed_in_order() -> None:
    results = [Columns(["a", "b"], _f32(0.9, 0.5), _f32(0.1, 0.5)), Columns([], _f32(), _f32())]
    results.append(Columns(["c"], _f32(0.3), _f32(0.7)))
    packed = packed_hits(ASKED, results)
    assert packed is not None
    assert list(packed.counts) == [2, 0, 1] and list(packed.ids) == ["a", "b", "c"]
    np.testing.assert_allclose(np.frombuffer(packed.scores_f32, "<f4"), [0.9, 0.5, 0.3])
    np.testing.assert_allclose(np.frombuffer(packed.distances_f32, "<f4"), [0.1, 0.5, 0.7])
    assert len(packed.documents) == 0


def test_stored_fields_go_along() -> None:
    documents = [common_pb2.Document(id="a", text="x"), common_pb2.Document(id="b")]
    results = [Columns(["a", "b"], _f32(0.9, 0.5), _f32(0.1, 0.5), documents)]
    packed = packed_hits(shoal_pb2.SearchRequest(packed=True), results)
    assert packed is not None and list(packed.documents) == documents


def test_a_batch_of_columns_is_packed_whole() -> None:
    batch = Batch(np.array([0, 2, 2, 3]), ["a", "b", "c"], _f32(0.9, 0.5, 0.3), _f32(0.1, 0.5, 0.7))
    packed = packed_hits(ASKED, batch)  # type: ignore[arg-type]
    assert packed is not None and list(packed.counts) == [2, 0, 1]
    assert list(packed.ids) == ["a", "b", "c"]


def test_no_packing_unless_asked_without_explanations_and_all_columns() -> None:
    columns = [Columns(["a"], _f32(0.9), _f32(0.1))]
    assert packed_hits(shoal_pb2.SearchBatchRequest(), columns) is None
    assert packed_hits(shoal_pb2.SearchBatchRequest(packed=True, explain=True), columns) is None
    per_hit = shard_pb2.ShardSearchResult(hits=[common_pb2.Hit(id="b", score=0.5)])
    assert packed_hits(ASKED, [*columns, per_hit]) is None
    mixed = [*columns, Columns(["b"], _f32(0.5), _f32(0.5), [common_pb2.Document(id="b")])]
    assert packed_hits(ASKED, mixed) is None


def test_chunk_columns_are_packed_with_their_hits() -> None:
    first = Chunked(["a", "b"], _f32(0.9, 0.5), _f32(0.1, 0.5), None)
    first.chunks = ChunkColumns(ints(2, -1), ints(10, -1), ints(20, -1), ["x", ""])
    second = Chunked(["c"], _f32(0.3), _f32(0.7), None)
    second.chunks = ChunkColumns(ints(0), ints(0), ints(5), ["hello"])
    packed = packed_hits(ASKED, [first, Columns([], _f32(), _f32()), second])
    assert packed is not None and list(packed.counts) == [2, 0, 1]
    assert np.frombuffer(packed.chunks_i32, "<i4").tolist() == [2, -1, 0]
    assert np.frombuffer(packed.chunk_starts_i32, "<i4").tolist() == [10, -1, 0]
    assert np.frombuffer(packed.chunk_ends_i32, "<i4").tolist() == [20, -1, 5]
    assert list(packed.chunk_texts) == ["x", "", "hello"]
    # A query's hits without chunk columns beside ones with: not one set of columns.
    assert packed_hits(ASKED, [first, Columns(["d"], _f32(0.2), _f32(0.8))]) is None
    plain = packed_hits(ASKED, [Columns(["d"], _f32(0.2), _f32(0.8))])
    assert plain is not None and not plain.chunks_i32 and not plain.chunk_texts


def ints(*values: int) -> npt.NDArray[np.int32]:
    return np.array(values, dtype=np.int32)


@dataclass
class Chunked:
    """A chunking collection's query: columns with chunk columns."""

    ids: Sequence[str]
    scores: npt.NDArray[np.float32]
    distances: npt.NDArray[np.float32]
    documents: Sequence[object] | None
    chunks: ChunkColumns | None = None


def test_what_counts_as_columns_is_what_the_merge_gives_and_not_a_message_per_hit() -> None:
    merged = PackedBatch(np.array([0, 1]), ["a"], _f32(0.9), _f32(0.1))
    assert is_columns(merged) and is_columns(merged[0]) and is_columns(Columns([], _f32(), _f32()))
    assert not is_columns(shard_pb2.ShardSearchResult(hits=[common_pb2.Hit(id="b", score=0.5)]))
