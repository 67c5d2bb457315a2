"""Search hits as columns: one group's answer to a batch of queries, and one query's hits.

A shard answers a vector search in the packed form (ids, float32 scores and
distances for all queries at once, see shard.proto), and the coordinator keeps
it that way through the merge (`packed_merge`) up to the reply: no Python
object per hit. `PackedHits.hits` makes objects only for the paths that want
them (hybrid fusion, explanations).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt

from coordinator.core.ports import DocumentMessage

Floats = npt.NDArray[np.float32]
Offsets = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PackedHit:
    """One hit read out of a `PackedHits` (a `HitMessage`)."""

    id: str
    score: float
    distance: float
    document: DocumentMessage | None = None


@dataclass(frozen=True, slots=True)
class PackedHits:
    """One query's hits, best first (a `RankedHits`): parallel columns.

    `documents` is None unless the search asked for stored fields; then it holds
    each hit's `Document` as the shard returned it.
    """

    ids: Sequence[str]
    scores: Floats
    distances: Floats
    documents: Sequence[DocumentMessage] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def hits(self) -> list[PackedHit]:
        documents: Sequence[DocumentMessage | None] = (
            self.documents if self.documents is not None else [None] * len(self.ids)
        )
        return [
            PackedHit(doc_id, score, distance, document)
            for doc_id, score, distance, document in zip(
                self.ids, self.scores.tolist(), self.distances.tolist(), documents, strict=True
            )
        ]


class PackedBatch(Sequence[PackedHits]):
    """One group's answer to n queries: the hits of all queries one after the other,
    query i's from offsets[i] to offsets[i + 1]. A sequence of `PackedHits`; a slice
    is a batch again (the coalescer hands each caller its rows)."""

    __slots__ = ("distances", "documents", "ids", "offsets", "scores")

    def __init__(
        self,
        offsets: Offsets,
        ids: Sequence[str],
        scores: Floats,
        distances: Floats,
        documents: Sequence[DocumentMessage] | None = None,
    ) -> None:
        if not (len(ids) == len(scores) == len(distances) == int(offsets[-1] - offsets[0])):
            raise ValueError(
                f"a packed batch needs as many ids ({len(ids)}), scores ({len(scores)}) and"
                f" distances ({len(distances)}) as its counts add up to"
                f" ({int(offsets[-1] - offsets[0])})"
            )
        if documents is not None and len(documents) != len(ids):
            raise ValueError(f"{len(documents)} documents for {len(ids)} hits")
        self.offsets = offsets  # n + 1 positions into the columns, offsets[0] == 0
        self.ids = ids
        self.scores = scores
        self.distances = distances
        self.documents = documents

    @staticmethod
    def from_counts(
        counts: Sequence[int] | npt.NDArray[np.integer],
        ids: Sequence[str],
        scores: Floats,
        distances: Floats,
        documents: Sequence[DocumentMessage] | None = None,
    ) -> "PackedBatch":
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return PackedBatch(offsets, ids, scores, distances, documents)

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
        )

    def __iter__(self) -> Iterator[PackedHits]:
        return (self[i] for i in range(len(self)))
