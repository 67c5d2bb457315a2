"""The coordinator's own request and result types (see `clients.contracts` for
the types it exchanges with shards and the embedder)."""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from coordinator.clients.contracts import (
    CollectionConfig,
    Filter,
    Health,
    Include,
    Keyed,
    RankedHits,
    Scored,
    Vector,
)


class WriteConsistency(enum.Enum):
    """How many replicas of a shard group must acknowledge a write."""

    ONE = "one"
    QUORUM = "quorum"
    ALL = "all"

    def required(self, replicas: int) -> int:
        if self is WriteConsistency.ONE:
            return min(1, replicas)
        if self is WriteConsistency.ALL:
            return replicas
        return replicas // 2 + 1


class ReadConsistency(enum.Enum):
    """How many replicas of a shard group a get reads before answering."""

    ONE = "one"
    QUORUM = "quorum"
    ALL = "all"

    def required(self, replicas: int) -> int:
        if self is ReadConsistency.ONE:
            return min(1, replicas)
        if self is ReadConsistency.ALL:
            return replicas
        return replicas // 2 + 1


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
    """A search query: a vector or a text (exactly one)."""

    vector: Vector | None = None
    text: str | None = None


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


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """Everything about a search besides its queries."""

    k: int
    ef: int = 0  # 0: the collection's default
    include: Include = field(default_factory=Include)
    allow_partial: bool = False
    filter: Filter | None = None
    score_threshold: float | None = None


@dataclass(frozen=True, slots=True)
class MergedHits:
    """The top-k of several groups for one query, best first."""

    hits: list[Scored]


@dataclass(frozen=True, slots=True)
class SearchResults:
    results: list[RankedHits]  # results[i] answers query i
    coverage: Coverage


@dataclass(frozen=True, slots=True)
class FoundDocuments:
    documents: list[Keyed]  # in request order, missing ids left out
    coverage: Coverage


@dataclass(frozen=True, slots=True)
class ScrollResults:
    documents: list[Keyed]  # in id order
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
