"""Domain types the coordinator works with, free of gRPC and generated code.

Payloads that the coordinator only passes along (document metadata going to
shards, hits and documents coming back) stay opaque here: core reads the few
fields it needs through small protocols and never converts the rest, which keeps
the per-hit cost of a search fan-out low.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


class Metric(enum.Enum):
    COSINE = "cosine"
    L2 = "l2"
    INNER_PRODUCT = "ip"


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


class Health(enum.Enum):
    SERVING = "serving"
    NOT_SERVING = "not_serving"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class CollectionConfig:
    """Everything fixed when a collection is created; zero means "take the default"
    only in a create request, never in a stored config."""

    name: str
    dimension: int = 0
    metric: Metric = Metric.COSINE
    hnsw_m: int = 0
    hnsw_ef_construction: int = 0
    hnsw_ef: int = 0
    embedding_model: str = ""
    partitions: int = 0


@dataclass(frozen=True, slots=True)
class Include:
    """Which stored fields a read returns besides id and score."""

    metadata: bool = False
    text: bool = False
    vector: bool = False


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


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One versioned change to one document, as sent to every replica of its group."""

    id: str
    version: int
    deleted: bool = False
    vector_f32: bytes = b""
    text: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WriteAck:
    applied: int
    deleted: int


@dataclass(slots=True)
class QueryInput:
    """A search query: a vector or a text (exactly one)."""

    vector: Vector | None = None
    text: str | None = None


class Scored(Protocol):
    """What core needs of a search hit: the rest of it is passed through untouched."""

    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...


class Keyed(Protocol):
    """What core needs of a stored document returned by Get."""

    @property
    def id(self) -> str: ...


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
class SearchResults:
    hits: list[list[Scored]]  # hits[i] answers query i, best first
    coverage: Coverage


@dataclass(frozen=True, slots=True)
class FoundDocuments:
    documents: list[Keyed]  # in request order, missing ids left out
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
class ShardCollection:
    """One collection as one replica holds it."""

    config: CollectionConfig
    document_count: int


@dataclass(frozen=True, slots=True)
class EmbedderInfo:
    model: str
    dimension: int
    max_batch: int
    max_input_chars: int


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    address: str
    health: Health
    collections: list[tuple[str, int]]  # (collection, live documents)


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
