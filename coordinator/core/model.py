"""The coordinator's own request and result types (see `ports` for the types it
exchanges with shards and the embedder)."""

import enum
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from coordinator.core.ports import (
    CollectionConfig,
    DocumentMessage,
    Health,
    HitMessage,
    Include,
    OpaqueFilter,
    RankedHits,
    Vector,
)
from shoal import limits


class _ReplicaCount(enum.Enum):
    """ONE, QUORUM or ALL of a group's replicas (an enum with members of its own
    subclasses this one; enums with members cannot be subclassed)."""

    def required(self, replicas: int) -> int:
        if self.value == "one":
            return min(1, replicas)
        if self.value == "all":
            return replicas
        return replicas // 2 + 1


class WriteConsistency(_ReplicaCount):
    """How many replicas of a shard group must acknowledge a write."""

    ONE = "one"
    QUORUM = "quorum"
    ALL = "all"


class ReadConsistency(_ReplicaCount):
    """How many replicas of a shard group a get reads before answering."""

    ONE = "one"
    QUORUM = "quorum"
    ALL = "all"


@dataclass(slots=True)
class DocumentInput:
    """A document as the caller sent it.

    `metadata` is the caller's metadata in whatever form the api layer received
    it; core only counts its keys and hands it to the shard client unchanged.
    """

    id: str
    vector: Vector | None = None
    text: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class QueryInput:
    """A search query: a vector or a text; a hybrid query may have both (the text
    for the keyword side, the vector for the vector side)."""

    vector: Vector | None = None
    text: str | None = None
    #: More-like-this: the stored vector of this document is the query, and the
    #: document is left out of the hits (see `more_like_this`).
    like_id: str | None = None


class SearchMode(enum.Enum):
    VECTOR = "vector"
    KEYWORD = "keyword"
    HYBRID = "hybrid"


class Fusion(enum.Enum):
    RRF = "rrf"
    RELATIVE_SCORE = "relative_score"


#: Reciprocal rank fusion's constant when the request gives none (Cormack et al.).
DEFAULT_RRF_K = 60
DEFAULT_ALPHA = 0.5


@dataclass(frozen=True, slots=True)
class HybridOptions:
    """How keyword and vector candidates are fused (see `fusion`)."""

    fusion: Fusion = Fusion.RRF
    alpha: float = DEFAULT_ALPHA  # 0: keyword only, 1: vector only
    rrf_k: int = DEFAULT_RRF_K
    candidates: int = 0  # depth of each list; 0: `default_candidates`

    def depth(self, k: int) -> int:
        return self.candidates or default_candidates(k, self.rrf_k)


def default_candidates(k: int, rrf_k: int) -> int:
    """2k + rrf_k, capped at the largest k: a document beyond that depth in both lists
    scores at most 1 / (rrf_k + 2k + 1) by RRF, below the k-th fused score, which is at
    least max(alpha, 1 - alpha) / (rrf_k + k) >= 1 / (2 (rrf_k + k)). So the fused top k
    never misses a document that neither list found."""
    return min(max(k, 2 * k + rrf_k), limits.MAX_K)


@dataclass(frozen=True, slots=True)
class Coverage:
    """How many shard groups a read asked and how many answered."""

    asked: int
    answered: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    """`acknowledged` is the fewest acknowledgements any touched group gave."""

    written: int
    acknowledged: int
    replicas: int
    deleted: int = 0
    applied: int = 0  # writes some replica found newer than what it held


#: The groups one hit belongs to under a group_by key: (a hashable key, the value
#: as the api layer will show it) per value; none when the hit lacks the key.
GroupValues = Callable[[HitMessage, str], Sequence[tuple[Hashable, object]]]


@dataclass(frozen=True, slots=True)
class GroupBy:
    key: str
    size: int  # hits per group at most
    values: GroupValues  # reads a hit's values of `key` (the api layer's hit format)


@dataclass(frozen=True, slots=True)
class GroupedHits:
    """Hits group after group, groups in the order of their best hit; `groups[i]`
    is the value of the group `hits[i]` belongs to."""

    hits: list[HitMessage]
    groups: list[object]


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """Everything about a search besides its queries."""

    k: int
    ef: int = 0  # 0: the collection's default
    include: Include = field(default_factory=Include)
    allow_partial: bool = False
    filter: OpaqueFilter | None = None
    score_threshold: float | None = None
    mode: SearchMode = SearchMode.VECTOR
    hybrid: HybridOptions = field(default_factory=HybridOptions)
    explain: bool = False
    #: Group search: group the hits by this metadata key (see `grouping`).
    group_by: GroupBy | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Where a hit's score came from; ranks count from 1 in each candidate list."""

    vector_rank: int | None = None
    vector_score: float | None = None
    keyword_rank: int | None = None
    keyword_score: float | None = None


@dataclass(frozen=True, slots=True)
class FusedHit:
    """A hit the coordinator scored itself (fused, or explained); `document` holds the
    stored fields asked for, as a shard returned them."""

    id: str
    score: float
    explanation: Explanation | None = None
    document: DocumentMessage | None = None
    #: The vector search's hit of this document, if it had one: in a chunking
    #: collection the document's best chunk (index, span, text) is read from it.
    chunk_of: HitMessage | None = None

    @property
    def distance(self) -> float:
        return -self.score


@dataclass(frozen=True, slots=True)
class MergedHits:
    """The top-k of several groups for one query, best first."""

    hits: list[HitMessage]


@dataclass(frozen=True, slots=True)
class SearchResults:
    results: Sequence[RankedHits]  # results[i] answers query i (a `PackedBatch` when packed)
    coverage: Coverage


@dataclass(frozen=True, slots=True)
class FoundDocuments:
    documents: list[DocumentMessage]  # in request order, missing ids left out
    coverage: Coverage


@dataclass(frozen=True, slots=True)
class ScrollResults:
    documents: list[DocumentMessage]  # in id order
    cursor: str  # where the next page starts; empty when there is none
    coverage: Coverage


@dataclass(frozen=True, slots=True)
class CountResult:
    count: int
    coverage: Coverage


@dataclass(frozen=True, slots=True)
class CollectionStats:
    config: CollectionConfig
    document_count: int
    chunk_count: int = 0


@dataclass(frozen=True, slots=True)
class CreateResult:
    config: CollectionConfig
    created: bool


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    address: str
    health: Health
    collections: list[tuple[str, int]]  # (collection, live documents)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (collection, why)
    member: bool | None = None  # holds a live registration; None: not known (no etcd)


@dataclass(frozen=True, slots=True)
class GroupInfo:
    group: int
    replicas: list[ReplicaInfo]


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    topology_version: int
    replication_factor: int
    groups: list[GroupInfo]
    embedder_address: str
    embedder_health: Health
