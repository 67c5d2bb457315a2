"""Domain values that cross the api/core boundary: writes, stored documents, hits."""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

#: Reads the metadata out of a payload. The payload's encoding belongs to the api
#: layer, which hands the core this function; values are str, int, float, bool or
#: lists of those.
MetadataReader = Callable[[bytes], Mapping[str, object]]


def no_metadata(payload: bytes) -> Mapping[str, object]:
    """The reader for payloads without metadata: filters then see no keys at all."""
    return {}


#: Reads the text out of a payload (None: the document has none), like MetadataReader.
TextReader = Callable[[bytes], str | None]


def no_text(payload: bytes) -> str | None:
    """The reader for payloads without text: the keyword index then stays empty."""
    return None


#: A partial update of a stored payload (see WriteOp.patch).
PayloadPatch = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One versioned change to one document, as the coordinator sent it."""

    id: str
    version: int
    deleted: bool
    vector: bytes  # little-endian float32; empty for a tombstone
    payload: bytes  # text and metadata, encoded by the api layer; opaque to the core
    #: A partial update: the stored payload -> the new one (built by the api layer,
    #: which owns the payload's encoding). Applied under the write lock to the live
    #: record held; an empty `vector` keeps the stored one. None: a whole record.
    patch: PayloadPatch | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    applied: int  # writes newer than what this replica held
    deleted: int  # tombstones that removed a live document


@dataclass(frozen=True, slots=True)
class Include:
    """Which stored fields a read returns besides the id."""

    vector: bool = False
    payload: bool = False  # text and/or metadata

    @property
    def any(self) -> bool:
        return self.vector or self.payload


@dataclass(frozen=True, slots=True)
class StoredDocument:
    id: str
    vector: bytes  # empty unless asked for
    payload: bytes  # empty unless asked for


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float  # higher is more similar
    distance: float  # lower is more similar
    document: StoredDocument | None  # None unless fields were asked for


@dataclass(frozen=True, slots=True)
class QueryHits:
    """One query's hits, best first, as parallel lists (no object per hit on the hot path).

    `documents` is None unless fields were asked for; then it is parallel to `ids`.
    Indexing and iterating give `Hit`s.
    """

    ids: list[str]
    scores: list[float]
    distances: list[float]
    documents: list[StoredDocument] | None = None
    #: In a collection holding chunked documents: per hit, the chunk that scored it
    #: (its index among the document's chunks); None otherwise.
    chunks: list[int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, position: int) -> Hit:
        document = self.documents[position] if self.documents is not None else None
        return Hit(self.ids[position], self.scores[position], self.distances[position], document)

    def __iter__(self) -> Iterator[Hit]:
        return (self[position] for position in range(len(self.ids)))
