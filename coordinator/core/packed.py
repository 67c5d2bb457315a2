"""Search hits as columns: one group's answer to a batch of queries, and one query's hits.

A shard answers a vector search in the packed form (ids, float32 scores and
distances for all queries at once, see shard.proto), and the coordinator keeps
it that way through the merge (`packed_merge`), the fusion of hybrid
candidates (`fusion`) and the cut to what a group owns during partition moves
(`PackedBatch.kept`) up to the reply: no Python object per hit.
`PackedHits.hits` makes objects only for the paths that want them
(explanations of keyword hits, per-hit replies).

A chunking collection's hits carry `ChunkColumns` as well: the chunk that scored
each hit and its span (int32, -1 where a document has no chunks), and the
chunks' texts when text was asked for. Other collections' batches have none.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt

from coordinator.core.ports import DocumentMessage

Floats = npt.NDArray[np.float32]
Offsets = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]

#: A hit's chunk columns where its document was stored without chunks.
NO_CHUNK = -1


@dataclass(frozen=True, slots=True)
class ChunkColumns:
    """Per hit of a chunking collection: its best chunk's index, and that chunk's
    [start, end) span of the text; `texts` (the chunks' texts) only when the
    search asked for text."""

    chunks: Int32s
    starts: Int32s
    ends: Int32s
    texts: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.chunks)

    def check(self, hits: int) -> None:
        if not (len(self.chunks) == len(self.starts) == len(self.ends) == hits):
            raise ValueError(
                f"{hits} hits but {len(self.chunks)} chunk indexes, {len(self.starts)} starts"
                f" and {len(self.ends)} ends"
            )
        if self.texts is not None and len(self.texts) != hits:
            raise ValueError(f"{hits} hits but {len(self.texts)} chunk texts")

    def part(self, start: int, stop: int) -> "ChunkColumns":
        return ChunkColumns(
            self.chunks[start:stop],
            self.starts[start:stop],
            self.ends[start:stop],
            None if self.texts is None else self.texts[start:stop],
        )

    def take(self, positions: Offsets) -> "ChunkColumns":
        """The hits at `positions`, in that order."""
        texts = None
        if self.texts is not None:
            every = self.texts
            texts = [every[position] for position in positions.tolist()]
        return ChunkColumns(
            self.chunks[positions], self.starts[positions], self.ends[positions], texts
        )

    @staticmethod
    def none(hits: int, with_text: bool) -> "ChunkColumns":
        """`hits` hits without chunks (a batch that came without chunk columns)."""
        missing = np.full(hits, NO_CHUNK, dtype=np.int32)
        return ChunkColumns(missing, missing, missing, [""] * hits if with_text else None)

    @staticmethod
    def join(parts: Sequence["ChunkColumns | None"], sizes: Sequence[int]) -> "ChunkColumns":
        """Several batches' columns one after the other (`sizes`: their hits); a batch
        without columns counts as hits without chunks."""
        with_text = any(part is not None and part.texts is not None for part in parts)
        filled = [
            part if part is not None else ChunkColumns.none(size, with_text)
            for part, size in zip(parts, sizes, strict=True)
        ]
        texts: list[str] | None = None
        if with_text:
            texts = []
            for part in filled:
                texts.extend(part.texts if part.texts is not None else [""] * len(part))
        return ChunkColumns(
            np.concatenate([part.chunks for part in filled]),
            np.concatenate([part.starts for part in filled]),
            np.concatenate([part.ends for part in filled]),
            texts,
        )

    def hit(self, position: int) -> tuple[int | None, tuple[int, int] | None, str | None]:
        """One hit's chunk, span and text (None for each it lacks)."""
        chunk = int(self.chunks[position])
        if chunk < 0:
            return None, None, None
        text = None if self.texts is None else self.texts[position]
        return chunk, (int(self.starts[position]), int(self.ends[position])), text


@dataclass(frozen=True, slots=True)
class PackedHit:
    """One hit read out of a `PackedHits` (a `HitMessage`)."""

    id: str
    score: float
    distance: float
    document: DocumentMessage | None = None
    #: In a chunking collection: the chunk that scored the hit, its span and its
    #: text (when text was asked for); None where the document has no chunks.
    chunk: int | None = None
    chunk_span: tuple[int, int] | None = None
    chunk_text: str | None = None


@dataclass(frozen=True, slots=True)
class PackedHits:
    """One query's hits, best first (a `RankedHits`): parallel columns.

    `documents` is None unless the search asked for stored fields; then it holds
    each hit's `Document` as the shard returned it. `chunks` is None unless the
    collection chunks its documents.
    """

    ids: Sequence[str]
    scores: Floats
    distances: Floats
    documents: Sequence[DocumentMessage] | None = None
    chunks: ChunkColumns | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def hits(self) -> list[PackedHit]:
        documents: Sequence[DocumentMessage | None] = (
            self.documents if self.documents is not None else [None] * len(self.ids)
        )
        hits = [
            PackedHit(doc_id, score, distance, document)
            for doc_id, score, distance, document in zip(
                self.ids, self.scores.tolist(), self.distances.tolist(), documents, strict=True
            )
        ]
        if self.chunks is None:
            return hits
        chunks = self.chunks
        return [
            PackedHit(hit.id, hit.score, hit.distance, hit.document, *chunks.hit(position))
            for position, hit in enumerate(hits)
        ]


class PackedBatch(Sequence[PackedHits]):
    """One group's answer to n queries: the hits of all queries one after the other,
    query i's from offsets[i] to offsets[i + 1]. A sequence of `PackedHits`; a slice
    is a batch again (the coalescer hands each caller its rows)."""

    __slots__ = ("chunks", "distances", "documents", "ids", "offsets", "scores")

    def __init__(
        self,
        offsets: Offsets,
        ids: Sequence[str],
        scores: Floats,
        distances: Floats,
        documents: Sequence[DocumentMessage] | None = None,
        chunks: ChunkColumns | None = None,
    ) -> None:
        if not (len(ids) == len(scores) == len(distances) == int(offsets[-1] - offsets[0])):
            raise ValueError(
                f"a packed batch needs as many ids ({len(ids)}), scores ({len(scores)}) and"
                f" distances ({len(distances)}) as its counts add up to"
                f" ({int(offsets[-1] - offsets[0])})"
            )
        if documents is not None and len(documents) != len(ids):
            raise ValueError(f"{len(documents)} documents for {len(ids)} hits")
        if chunks is not None:
            chunks.check(len(ids))
        self.offsets = offsets  # n + 1 positions into the columns, offsets[0] == 0
        self.ids = ids
        self.scores = scores
        self.distances = distances
        self.documents = documents
        self.chunks = chunks

    @staticmethod
    def from_counts(
        counts: Sequence[int] | npt.NDArray[np.integer],
        ids: Sequence[str],
        scores: Floats,
        distances: Floats,
        documents: Sequence[DocumentMessage] | None = None,
        chunks: ChunkColumns | None = None,
    ) -> "PackedBatch":
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return PackedBatch(offsets, ids, scores, distances, documents, chunks)

    @staticmethod
    def empty(queries: int) -> "PackedBatch":
        """No hits for any of `queries` queries."""
        nothing = np.empty(0, dtype=np.float32)
        return PackedBatch(np.zeros(queries + 1, dtype=np.int64), [], nothing, nothing)

    @property
    def counts(self) -> Offsets:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, index: int) -> PackedHits: ...

    @overload
    def __getitem__(self, index: slice) -> "PackedBatch": ...

    def __getitem__(self, index: int | slice) -> "PackedHits | PackedBatch":
        if isinstance(index, slice):
            first, last, step = index.indices(len(self))
            if step != 1:
                raise ValueError("a packed batch slices only with step 1")
            last = max(first, last)
            start, stop = int(self.offsets[first]), int(self.offsets[last])
            return PackedBatch(
                self.offsets[first : last + 1] - start,
                self.ids[start:stop],
                self.scores[start:stop],
                self.distances[start:stop],
                None if self.documents is None else self.documents[start:stop],
                None if self.chunks is None else self.chunks.part(start, stop),
            )
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"query {index} of a batch of {len(self)}")
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        return PackedHits(
            self.ids[start:stop],
            self.scores[start:stop],
            self.distances[start:stop],
            None if self.documents is None else self.documents[start:stop],
            None if self.chunks is None else self.chunks.part(start, stop),
        )

    def __iter__(self) -> Iterator[PackedHits]:
        return (self[i] for i in range(len(self)))

    def kept(self, keep: npt.NDArray[np.bool_]) -> "PackedBatch":
        """The batch with only the hits `keep` (a flag per hit) marks, in order."""
        positions = np.flatnonzero(keep)
        kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept_before[1:])
        every = self.ids
        documents = self.documents
        return PackedBatch(
            kept_before[self.offsets],
            [every[position] for position in positions.tolist()],
            self.scores[positions],
            self.distances[positions],
            None if documents is None else [documents[p] for p in positions.tolist()],
            None if self.chunks is None else self.chunks.take(positions),
        )
