"""The coordinator core's ports: what it needs from the services it calls, free of gRPC.

Core is written against these protocols and value types; `coordinator.clients`
implements them over gRPC (`GrpcShardClient`, `GrpcEmbedderClient`), and unit
tests implement them in memory (tests/unit/coordinator_fakes.py).
Implementations raise `shoal.errors` exceptions and never gRPC errors:
Unavailable for an unreachable replica, DeadlineExceeded when `timeout_s` runs
out, NotFound for an unknown collection, and so on. Every call takes
`timeout_s`, the seconds it may take (what is left of the caller's deadline, or
this attempt's share of it).

Payloads the coordinator only passes along stay opaque: filters and document
metadata going to shards, and hits and documents coming back. Those are the
services' protobuf messages, which core never imports: it reads the id and score
of a hit and the id of a document through the `HitMessage` and
`DocumentMessage` protocols and hands the rest on untouched. Not converting the
rest keeps the per-hit cost of a search fan-out low.
"""

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from shoal.chunking import ChunkingSettings
from shoal.distance_metric import Metric
from shoal.keyword import KeywordSettings, TermStatistics
from shoal.replication import PartitionDigest, VersionState

if TYPE_CHECKING:
    from coordinator.core.packed import PackedBatch

Vector = npt.NDArray[np.float32]

#: A metadata filter exactly as the caller sent it (the public `Filter` message).
#: Shards evaluate filters; core never looks inside one, it only passes it on.
OpaqueFilter = object


class Health(enum.Enum):
    SERVING = "serving"
    NOT_SERVING = "not_serving"
    UNREACHABLE = "unreachable"
    #: Serving, but some collections could not be loaded (a corrupt store).
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class CollectionConfig:
    """Everything fixed when a collection is created. Zero fields mean "take the
    default" in a create request only, never in a stored config."""

    name: str
    dimension: int = 0
    metric: Metric = Metric.COSINE
    hnsw_m: int = 0
    hnsw_ef_construction: int = 0
    hnsw_ef: int = 0
    embedding_model: str = ""
    partitions: int = 0
    #: The catalog's id of this collection, new on every create (0: no catalog).
    incarnation: int = 0
    keyword: KeywordSettings = field(default_factory=KeywordSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)


@dataclass(frozen=True, slots=True)
class WeightedTerms:
    """One keyword query as shards score it: distinct index terms, and per term its
    weight (cluster-wide idf x occurrences in the query); or, for a call with
    `HybridCall.local_statistics`, per term its occurrences in the query."""

    terms: Sequence[str]
    weights: Sequence[float]
    occurrences: Sequence[int] = ()


@dataclass(frozen=True, slots=True)
class HybridCall:
    """What one `ShardClient.hybrid_search` asks a replica for: the vector list of
    `vectors` (None: no vector list) and the keyword list of `keyword` (empty: none),
    each `k` deep, and the statistics of `statistics_terms` as the keyword list saw
    them. `filter` and `score_threshold` apply to both lists."""

    vectors: "Vector | None"
    keyword: Sequence[WeightedTerms]
    average_length: float
    statistics_terms: Sequence[str]
    k: int
    ef: int
    include: "Include"
    filter: "OpaqueFilter | None" = None
    score_threshold: float | None = None
    #: Hits without their `Document` message when `include` asks for no field (a
    #: caller that builds its own hits from ids and scores: cheaper on both sides).
    bare_hits: bool = False
    #: Partitions whose documents the statistics leave out (see `ShardClient.count`).
    skip_partitions: Sequence[int] = ()
    #: Each replica weights `keyword` (occurrences) with its own statistics, read
    #: under the index lock that scores; `average_length` is not read.
    local_statistics: bool = False


@dataclass(frozen=True, slots=True)
class HybridAnswer:
    """One replica's answer to a `HybridCall`: per query its vector and keyword lists,
    as columns (no queries where that list was not asked for), and the statistics."""

    vector: "PackedBatch"
    keyword: "PackedBatch"
    statistics: TermStatistics


@dataclass(frozen=True, slots=True)
class ShardCollection:
    """One collection as one replica holds it."""

    config: CollectionConfig
    document_count: int
    chunk_count: int = 0  # indexed vectors: chunks, and 1 per unchunked document


@dataclass(frozen=True, slots=True)
class CollectionListing:
    """What one replica holds: the collections it serves, and those it holds on
    disk but could not load (name -> why), on which its calls answer DATA_LOSS."""

    collections: list[ShardCollection]
    failed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Include:
    """Which stored fields a read returns besides id and score."""

    metadata: bool = False
    text: bool = False
    vector: bool = False


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One versioned change to one document, as sent to every replica of its group.

    `metadata` is the caller's metadata exactly as the api layer received it.
    A `patch` is a partial update: each replica merges `metadata` into the record
    it holds, removes `remove_metadata`, replaces the text if given and the vector
    if non-empty.
    """

    id: str
    version: int
    deleted: bool = False
    vector_f32: bytes = b""
    text: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)
    patch: bool = False
    remove_metadata: Sequence[str] = ()
    #: A chunked document: `vector_f32` holds one vector per chunk, in the order of
    #: these (start, end) character spans of its text.
    chunks: Sequence[tuple[int, int]] = ()


@dataclass(frozen=True, slots=True)
class WriteAck:
    applied: int  # writes newer than what the replica held
    deleted: int  # tombstones that removed a live document


class HitMessage(Protocol):
    """A search hit as a shard returned it: the `Hit` protobuf message (or a hit the
    coordinator fused itself). Core reads its id and score; the rest of it, the
    stored fields asked for included, is passed through untouched."""

    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def document(self) -> "DocumentMessage | None":
        """The stored fields asked for (the `Document` message; its id alone when none)."""
        ...


class RankedHits(Protocol):
    """One replica's answer to one query: its hits, best first.

    When a search needs no merging (one group answered) the coordinator hands
    this object back as it is, so the api layer can copy it out whole."""

    @property
    def hits(self) -> Sequence[HitMessage]: ...


class DocumentMessage(Protocol):
    """A stored document as a shard returned it: the `Document` protobuf message, or
    for a get at QUORUM or ALL the replica's record (a `WriteOp`). Core reads only
    its id."""

    @property
    def id(self) -> str: ...


class VectorMessage(Protocol):
    """A stored document read with its vector: the `Document` message (or a
    replica's record) as a shard returned it, its vector as float32 bytes."""

    @property
    def id(self) -> str: ...

    @property
    def vector_f32(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ScrollPage:
    documents: list[DocumentMessage]  # in id order
    more: bool  # documents remain after the last one returned
    #: The last id the replica listed, when `documents` was cut afterwards
    #: (to the partitions its group owns, during moves); "" when it was not.
    last_listed: str = ""


@dataclass(frozen=True, slots=True)
class EmbedderInfo:
    model: str
    dimension: int
    max_batch: int
    max_input_chars: int
    max_seq_tokens: int = 0


class ShardClient(Protocol):
    """One replica of one shard group."""

    @property
    def address(self) -> str: ...

    async def create_collection(
        self, config: CollectionConfig, timeout_s: float
    ) -> tuple[CollectionConfig, bool]:
        """The replica's config and whether this call created the collection (of
        `config.incarnation`, when not 0)."""
        ...

    async def delete_collection(self, name: str, timeout_s: float, incarnation: int = 0) -> bool:
        """Whether the replica held the collection (an incarnation up to `incarnation`)."""
        ...

    async def list_collections(
        self, timeout_s: float, skip_partitions: Sequence[int] = ()
    ) -> CollectionListing:
        """The replica's collections; their counts leave out the documents of
        `skip_partitions` (see `count`)."""
        ...

    async def write(
        self,
        collection: str,
        writes: Sequence[WriteOp],
        timeout_s: float,
        incarnation: int = 0,
        topology_version: int = 0,
    ) -> WriteAck:
        """With `incarnation` (not 0) the replica applies the writes only to that
        incarnation of the collection: NotFound when it was dropped. With
        `topology_version` (not 0, the version the writes were routed with) it
        refuses them with PartitionMoved when, under a newer topology it knows,
        its group no longer owns one of their partitions."""
        ...

    async def get(
        self, collection: str, ids: Sequence[str], include: Include, timeout_s: float
    ) -> list[DocumentMessage]: ...

    async def search(
        self,
        collection: str,
        queries: Vector,
        k: int,
        ef: int,
        include: Include,
        timeout_s: float,
        filter: OpaqueFilter | None = None,
        score_threshold: float | None = None,
    ) -> Sequence[RankedHits]:
        """Per query (row of `queries`, n x dimension), the replica's own top-k."""
        ...

    async def keyword_stats(
        self,
        collection: str,
        terms: Sequence[str],
        timeout_s: float,
        skip_partitions: Sequence[int] = (),
        vocabulary_limit: int = 0,
    ) -> TermStatistics:
        """The replica's documents with text, their total length, and per term how many
        hold it; documents of `skip_partitions` left out (see `count`). With a
        `vocabulary_limit`, also every term it holds with its frequency (`vocabulary`),
        unless it holds more terms than that."""
        ...

    async def hybrid_search(
        self, collection: str, call: HybridCall, timeout_s: float
    ) -> HybridAnswer:
        """The replica's own vector and keyword top-k in one call (see `HybridCall`)."""
        ...

    async def count(
        self,
        collection: str,
        timeout_s: float,
        filter: OpaqueFilter | None = None,
        skip_partitions: Sequence[int] = (),
    ) -> int:
        """Live documents (matching `filter`), those of `skip_partitions` left out:
        partitions a group holds copies of during a move without owning them."""
        ...

    async def scroll(
        self,
        collection: str,
        filter: OpaqueFilter | None,
        after_id: str,
        limit: int,
        include: Include,
        timeout_s: float,
    ) -> ScrollPage:
        """Live documents with id > after_id matching the filter, in id order."""
        ...

    async def health(self, timeout_s: float) -> Health:
        """UNREACHABLE rather than an error when the replica cannot be reached."""
        ...

    async def digest(self, collection: str, timeout_s: float) -> list[PartitionDigest]:
        """Per partition holding records: how many (tombstones included) and their hash."""
        ...

    async def list_versions(
        self, collection: str, partitions: Sequence[int], timeout_s: float
    ) -> dict[str, VersionState]:
        """Every record's version in the given partitions, tombstones included."""
        ...

    async def fetch(self, collection: str, ids: Sequence[str], timeout_s: float) -> list[WriteOp]:
        """The stored records among `ids` (tombstones included), as writes that
        copy them to another replica; ids never written are left out."""
        ...

    async def fetch_matching(
        self, collection: str, ids: Sequence[str], filter: OpaqueFilter, timeout_s: float
    ) -> tuple[list[WriteOp], frozenset[str]]:
        """As `fetch`, and the ids of the live records among them that match `filter`
        (each judged from the record returned)."""
        ...

    async def topology_version(self, timeout_s: float) -> int:
        """The topology version the replica checks routed writes against (0: none yet)."""
        ...


@dataclass(frozen=True, slots=True)
class ChunkedText:
    """One text as the embedder chunked it: (start, end) character spans, and a
    (len(spans), dimension) matrix of their vectors."""

    spans: list[tuple[int, int]]
    vectors: Vector


class EmbedderClient(Protocol):
    @property
    def address(self) -> str: ...

    async def info(self, timeout_s: float) -> EmbedderInfo: ...

    async def embed(self, texts: Sequence[str], model: str, timeout_s: float) -> Vector:
        """A (len(texts), dimension) float32 matrix, row i embedding texts[i]."""
        ...

    async def embed_chunks(
        self,
        texts: Sequence[str],
        model: str,
        chunk_tokens: int,
        overlap_tokens: int,
        timeout_s: float,
    ) -> list[ChunkedText]:
        """Each text split into chunks of at most `chunk_tokens` model tokens, each
        chunk embedded."""
        ...

    async def health(self, timeout_s: float) -> Health: ...
