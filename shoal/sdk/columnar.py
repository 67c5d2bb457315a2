"""Search, get and scroll results as columns, decoded from the reply in one pass.

Ids and scores come out as numpy arrays; distances, metadata, texts, vectors and
the per-hit (`Hit`) and per-document (`Document`) objects are made only when
first asked for, and then once. Building a Python object graph per hit cost the
SDK about 40-65 µs per query of 10 hits (more than the coordinator's own work
per query); the ids and scores of the same reply cost about 4 µs.

In a chunking collection each hit also has its best chunk: `chunks` (the chunk's
index, int32, -1 where the document has no chunks), `chunk_spans` ([start, end)
character spans, int32) and `chunk_texts` (when text was included), columns
whichever form the reply came in.

Each result is also the sequence it was before: a `SearchBatchResult` is a
sequence of `SearchResult`s, a `Documents` one of `Document`s, and
`SearchResult.hits` is the list of `Hit`s, so code written against per-hit
objects keeps working and pays for them only where it uses them.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from shoal.runtime.proto_values import Metadata, metadata_from_proto
from shoal.sdk.results import (
    Coverage,
    Document,
    Hit,
    coverage_from_proto,
    document_from_proto,
    hit_from_proto,
)
from shoal.v1 import common_pb2, shoal_pb2

#: Document ids (Python `str`s) in a numpy array of dtype object.
Ids = npt.NDArray[np.object_]
Floats = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]
Int32s = npt.NDArray[np.int32]

#: Where a query had fewer hits than the widest one: its id and score cells.
MISSING_ID = ""
MISSING_SCORE = np.float32(np.nan)
#: The chunk index and span of a hit without a chunk (a collection without
#: chunking, a document stored without chunks, or a padding cell).
NO_CHUNK = -1


@dataclass(frozen=True)
class _Chunks:
    """Hits' best chunks: index, [start, end) span (int32, -1 for none), and texts
    (None unless text was included)."""

    chunks: Int32s
    starts: Int32s
    ends: Int32s
    texts: Sequence[str] | None

    @staticmethod
    def of_packed(packed: shoal_pb2.PackedHits) -> "_Chunks | None":
        if not (packed.chunks_i32 or packed.chunk_starts_i32 or packed.chunk_ends_i32):
            return None
        return _Chunks(
            _int32s(packed.chunks_i32),
            _int32s(packed.chunk_starts_i32),
            _int32s(packed.chunk_ends_i32),
            packed.chunk_texts if len(packed.chunk_texts) else None,
        )

    @staticmethod
    def of_hits(hits: Sequence[common_pb2.Hit]) -> "_Chunks":
        chunks = [hit.chunk if hit.HasField("chunk") else NO_CHUNK for hit in hits]
        spans = [
            (hit.chunk_span.start, hit.chunk_span.end)
            if hit.HasField("chunk_span")
            else (NO_CHUNK, NO_CHUNK)
            for hit in hits
        ]
        texts = [hit.chunk_text for hit in hits]
        return _Chunks(
            np.array(chunks, dtype=np.int32),
            np.array([start for start, _ in spans], dtype=np.int32),
            np.array([end for _, end in spans], dtype=np.int32),
            texts if any(texts) else None,
        )

    @staticmethod
    def none(count: int) -> "_Chunks":
        missing = np.full(count, NO_CHUNK, dtype=np.int32)
        return _Chunks(missing, missing.copy(), missing.copy(), None)

    def part(self, start: int, stop: int) -> "_Chunks":
        return _Chunks(
            self.chunks[start:stop],
            self.starts[start:stop],
            self.ends[start:stop],
            None if self.texts is None else self.texts[start:stop],
        )

    def spans(self) -> Int32s:
        return np.stack([self.starts, self.ends], axis=1).astype(np.int32)

    def fields(self, position: int) -> tuple[int | None, tuple[int, int] | None, str | None]:
        """One hit's `Hit.chunk`, `chunk_span` and `chunk_text`."""
        chunk = int(self.chunks[position])
        if chunk < 0:
            return None, None, None
        text = None if self.texts is None else self.texts[position] or None
        return chunk, (int(self.starts[position]), int(self.ends[position])), text


def _int32s(data: bytes) -> Int32s:
    return np.frombuffer(data, dtype="<i4").astype(np.int32)  # a writable copy


def _ids(values: list[str]) -> Ids:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _padded(flat: Ids | Floats | Int32s, counts: npt.NDArray[np.int64], fill: Any) -> Any:
    """The flat cells of every query as a (queries, widest) matrix, `fill` past each count."""
    width = int(counts.max()) if len(counts) else 0
    if flat.size == len(counts) * width:
        return flat.reshape(len(counts), width)
    matrix = np.full((len(counts), width), fill, dtype=flat.dtype)
    matrix[np.arange(width) < counts[:, None]] = flat
    return matrix


def _vector_bytes(document: common_pb2.Document) -> bytes:
    if document.vector_f32:
        return document.vector_f32
    return np.asarray(document.vector, dtype="<f4").tobytes()


def vector_matrix(documents: Iterable[common_pb2.Document]) -> Matrix | None:
    """The documents' vectors as one (n, dimension) float32 matrix; None when the
    reply carries no vectors (they were not asked for)."""
    blobs = [_vector_bytes(document) for document in documents]
    if not any(blobs):
        return None
    if len({len(blob) for blob in blobs}) != 1:
        raise ValueError("the reply's vectors differ in dimension or some are missing")
    # A bytearray, so the matrix is writable (normalize it in place, ...).
    joined = bytearray().join(blobs)
    return np.frombuffer(joined, dtype="<f4").reshape(len(blobs), -1)


def _text(document: common_pb2.Document) -> str | None:
    return document.text if document.HasField("text") else None


class SearchResult:
    """One query's hits, best first.

    `ids` (numpy, dtype object, of str) and `scores` (float32) are decoded with
    the reply; `distances`, `metadatas`, `texts`, `vectors` (an (n, dimension)
    float32 matrix, None unless asked for with include) and `hits` (a `Hit` per
    hit) on first access, and so are a chunking collection's `chunks`,
    `chunk_spans` and `chunk_texts`. The reply held either a `Hit` message per
    hit (`messages`) or columns (packed: `distances`, `documents` when stored
    fields were asked for, the chunk columns in a chunking collection).
    """

    def __init__(
        self,
        ids: Ids,
        scores: Floats,
        coverage: Coverage,
        messages: Sequence[common_pb2.Hit] | None = None,
        distances: Floats | None = None,
        documents: Sequence[common_pb2.Document] | None = None,
        chunks: _Chunks | None = None,
    ) -> None:
        self.ids = ids
        self.scores = scores
        self.coverage = coverage
        self._messages = messages
        self._distances = distances
        self._documents = documents
        self._chunk_columns = chunks

    @classmethod
    def from_reply(cls, reply: shoal_pb2.SearchResponse) -> "SearchResult":
        coverage = coverage_from_proto(reply.coverage)
        if reply.HasField("packed"):
            packed = reply.packed
            return cls(
                _ids(list(packed.ids)),
                _floats(packed.scores_f32),
                coverage,
                distances=_floats(packed.distances_f32),
                documents=packed.documents or None,
                chunks=_Chunks.of_packed(packed),
            )
        ids: list[str] = []
        scores: list[float] = []
        hits = reply.hits
        for hit in hits:
            ids.append(hit.id)
            scores.append(hit.score)
        return cls(_ids(ids), np.array(scores, dtype=np.float32), coverage, hits)

    def __len__(self) -> int:
        return len(self.ids)

    def _stored(self) -> Sequence[common_pb2.Document] | None:
        """Each hit's document (id and the fields asked for); None when a packed reply
        carried no stored fields."""
        if self._messages is not None:
            return [hit.document for hit in self._messages]
        return self._documents

    @cached_property
    def distances(self) -> Floats:
        if self._messages is None:
            return self._distances if self._distances is not None else _floats(b"")
        return np.array([hit.distance for hit in self._messages], dtype=np.float32)

    @cached_property
    def _chunks(self) -> _Chunks:
        if self._messages is not None:
            return _Chunks.of_hits(self._messages)
        return self._chunk_columns or _Chunks.none(len(self))

    @property
    def chunks(self) -> Int32s:
        """Each hit's best chunk (its index among the document's chunks), int32; -1
        where there is none (a collection without chunking)."""
        return self._chunks.chunks

    @cached_property
    def chunk_spans(self) -> Int32s:
        """Each hit's best chunk as an (n, 2) int32 matrix of [start, end) character
        offsets into the document's text; -1 where there is none."""
        return self._chunks.spans()

    @cached_property
    def chunk_texts(self) -> list[str | None]:
        """Each hit's best chunk's text, when text was included; else None each."""
        texts = self._chunks.texts
        if texts is None:
            return [None] * len(self)
        return [text or None for text in texts]

    @cached_property
    def hits(self) -> list[Hit]:
        if self._messages is not None:
            return [hit_from_proto(hit) for hit in self._messages]
        stored = self._stored()
        documents = (
            [document_from_proto(document) for document in stored]
            if stored is not None
            else [Document(str(doc_id)) for doc_id in self.ids]
        )
        chunks = self._chunk_columns
        return [
            Hit(
                doc_id,
                score,
                distance,
                document.metadata,
                document.text,
                document.vector,
                None,
                *(chunks.fields(position) if chunks is not None else (None, None, None)),
            )
            for position, (doc_id, score, distance, document) in enumerate(
                zip(
                    self.ids.tolist(),
                    self.scores.tolist(),
                    self.distances.tolist(),
                    documents,
                    strict=True,
                )
            )
        ]

    @cached_property
    def metadatas(self) -> list[Metadata]:
        stored = self._stored()
        if stored is None:
            return [{} for _ in range(len(self))]
        return [metadata_from_proto(document.metadata) for document in stored]

    @cached_property
    def texts(self) -> list[str | None]:
        stored = self._stored()
        if stored is None:
            return [None] * len(self)
        return [_text(document) for document in stored]

    @cached_property
    def vectors(self) -> Matrix | None:
        stored = self._stored()
        return None if stored is None else vector_matrix(stored)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchResult):
            return NotImplemented
        return self.hits == other.hits and self.coverage == other.coverage

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"SearchResult(ids={self.ids.tolist()!r}, scores={self.scores.tolist()!r},"
            f" coverage={self.coverage!r})"
        )


def _floats(data: bytes) -> Floats:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)  # a writable copy


@dataclass(frozen=True)
class _PackedRows:
    """Where one query's hits lie in a packed reply."""

    packed: shoal_pb2.PackedHits
    start: int
    stop: int


class SearchBatchResult(Sequence[SearchResult]):
    """Many queries' hits: `ids` (dtype object) and `scores` (float32) as
    (queries, k) matrices, row i answering query i, best first; a query with
    fewer hits than the widest one (a filter, a small collection) has `counts[i]`
    real cells, then "" and NaN. `distances` is decoded on first access, and so
    are a chunking collection's `chunks` and `chunk_spans` (-1 in padding cells).

    Indexing gives query i's `SearchResult` (made on first access), so the batch
    still reads as the list of results it was. The replies (several when the
    batch went in several calls) may each hold a `Hit` per hit or columns.
    """

    def __init__(self, replies: Sequence[shoal_pb2.SearchBatchResponse]) -> None:
        ids: list[str] = []
        scores: list[Floats] = []
        counts: list[int] = []
        self._sources: list[Sequence[common_pb2.Hit] | _PackedRows] = []
        for reply in replies:
            if reply.HasField("packed"):
                packed = reply.packed
                ids.extend(packed.ids)
                scores.append(_floats(packed.scores_f32))
                start = 0
                for count in packed.counts:
                    counts.append(count)
                    self._sources.append(_PackedRows(packed, start, start + count))
                    start += count
                continue
            reply_scores: list[float] = []
            for result in reply.results:
                hits = result.hits
                counts.append(len(hits))
                self._sources.append(hits)
                for hit in hits:
                    ids.append(hit.id)
                    reply_scores.append(hit.score)
            scores.append(np.array(reply_scores, dtype=np.float32))
        self.counts = np.array(counts, dtype=np.int64)
        self.ids: Ids = _padded(_ids(ids), self.counts, MISSING_ID)
        self.scores: Floats = _padded(_concatenated(scores), self.counts, MISSING_SCORE)
        self.coverage = joined_coverage(replies)
        self._replies = replies
        self._rows: list[SearchResult | None] = [None] * len(self._sources)

    @cached_property
    def distances(self) -> Floats:
        parts = [
            _floats(reply.packed.distances_f32)
            if reply.HasField("packed")
            else np.array(
                [hit.distance for result in reply.results for hit in result.hits],
                dtype=np.float32,
            )
            for reply in self._replies
        ]
        return _padded(_concatenated(parts), self.counts, MISSING_SCORE)  # type: ignore[no-any-return]

    @cached_property
    def _chunks(self) -> _Chunks:
        parts: list[_Chunks] = []
        for reply in self._replies:
            if reply.HasField("packed"):
                packed = reply.packed
                parts.append(_Chunks.of_packed(packed) or _Chunks.none(len(packed.ids)))
            else:
                parts.append(_Chunks.of_hits([h for r in reply.results for h in r.hits]))
        if not parts:
            return _Chunks.none(0)
        return _Chunks(
            np.concatenate([part.chunks for part in parts]),
            np.concatenate([part.starts for part in parts]),
            np.concatenate([part.ends for part in parts]),
            None,
        )

    @cached_property
    def chunks(self) -> Int32s:
        """Each hit's best chunk (index among its document's chunks) as a (queries,
        k) int32 matrix; -1 where there is none or past a query's count."""
        return _padded(self._chunks.chunks, self.counts, NO_CHUNK)  # type: ignore[no-any-return]

    @cached_property
    def chunk_spans(self) -> Int32s:
        """Each hit's best chunk's [start, end) character span as a (queries, k, 2)
        int32 array; -1 where there is none or past a query's count."""
        starts = _padded(self._chunks.starts, self.counts, NO_CHUNK)
        ends = _padded(self._chunks.ends, self.counts, NO_CHUNK)
        return np.stack([starts, ends], axis=2).astype(np.int32)

    def __len__(self) -> int:
        return len(self._sources)

    def _row(self, index: int) -> SearchResult:
        row = self._rows[index]
        if row is None:
            count = int(self.counts[index])
            ids, scores = self.ids[index, :count], self.scores[index, :count]
            source = self._sources[index]
            if isinstance(source, _PackedRows):
                documents = source.packed.documents
                chunks = _Chunks.of_packed(source.packed)
                row = SearchResult(
                    ids,
                    scores,
                    self.coverage,
                    distances=self.distances[index, :count],
                    documents=documents[source.start : source.stop] if documents else None,
                    chunks=None if chunks is None else chunks.part(source.start, source.stop),
                )
            else:
                row = SearchResult(ids, scores, self.coverage, source)
            self._rows[index] = row
        return row

    @overload
    def __getitem__(self, index: int) -> SearchResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[SearchResult]: ...

    def __getitem__(self, index: int | slice) -> SearchResult | list[SearchResult]:
        rows = range(len(self))[index]
        if isinstance(rows, range):
            return [self._row(row) for row in rows]
        return self._row(rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SearchBatchResult({len(self)} queries, coverage={self.coverage!r})"


def _concatenated(parts: list[Floats]) -> Floats:
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)


def joined_coverage(
    replies: Sequence[shoal_pb2.SearchBatchResponse | shoal_pb2.SearchResponse],
) -> Coverage:
    """The coverage of a batch answered in several calls: the fewest groups any call
    heard from, of the most asked."""
    if not replies:
        return Coverage(0, 0)
    coverages = [coverage_from_proto(reply.coverage) for reply in replies]
    return Coverage(
        max(coverage.groups_asked for coverage in coverages),
        min(coverage.groups_answered for coverage in coverages),
    )


class Documents(Sequence[Document]):
    """Documents of a get or of one scroll page, in the reply's order.

    `ids` (numpy, dtype object) is decoded with the reply; `metadatas`, `texts`,
    `vectors` (an (n, dimension) float32 matrix, None unless asked for) and each
    `Document` (by index or iteration) on first access.
    """

    def __init__(self, messages: Sequence[common_pb2.Document]) -> None:
        self._messages = messages
        self.ids = _ids([document.id for document in messages])
        self._rows: list[Document | None] = [None] * len(messages)

    def __len__(self) -> int:
        return len(self._messages)

    @cached_property
    def metadatas(self) -> list[Metadata]:
        return [metadata_from_proto(document.metadata) for document in self._messages]

    @cached_property
    def texts(self) -> list[str | None]:
        return [_text(document) for document in self._messages]

    @cached_property
    def vectors(self) -> Matrix | None:
        return vector_matrix(self._messages)

    def _row(self, index: int) -> Document:
        row = self._rows[index]
        if row is None:
            row = self._rows[index] = document_from_proto(self._messages[index])
        return row

    @overload
    def __getitem__(self, index: int) -> Document: ...

    @overload
    def __getitem__(self, index: slice) -> list[Document]: ...

    def __getitem__(self, index: int | slice) -> Document | list[Document]:
        rows = range(len(self))[index]
        if isinstance(rows, range):
            return [self._row(row) for row in rows]
        return self._row(rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Documents({self.ids.tolist()!r})"
