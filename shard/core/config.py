"""A collection's fixed settings, their defaults and their validation."""

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

from shoal.chunking import ChunkingSettings
from shoal.distance_metric import Metric
from shoal.errors import DataLoss, InvalidArgument
from shoal.keyword import KeywordSettings
from shoal.limits import (
    DEFAULT_HNSW_EF,
    DEFAULT_HNSW_EF_CONSTRUCTION,
    DEFAULT_HNSW_M,
    MAX_DIMENSION,
    MAX_EF,
    MAX_HNSW_M,
    MAX_PARTITIONS,
    check_collection_name,
)


@dataclass(frozen=True)
class CollectionConfig:
    name: str
    dimension: int
    metric: Metric = Metric.COSINE
    hnsw_m: int = 0
    hnsw_ef_construction: int = 0
    hnsw_ef: int = 0
    embedding_model: str = ""
    partitions: int = 0
    #: The catalog's id of this collection (new on every create); 0 for a collection
    #: made without a catalog (before the cluster had one).
    incarnation: int = 0
    keyword: KeywordSettings = field(default_factory=KeywordSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)

    def same_settings(self, other: "CollectionConfig") -> bool:
        """Equal in everything but the incarnation."""
        return replace(self, incarnation=0) == replace(other, incarnation=0)

    def to_settings(self) -> dict[str, object]:
        """The settings as the catalog (`shoal.catalog`) holds them."""
        settings = asdict(self)
        del settings["name"], settings["incarnation"]
        settings["metric"] = self.metric.value
        settings["keyword"] = self.keyword.to_dict()
        settings["chunking"] = self.chunking.to_dict()
        return settings

    @classmethod
    def from_catalog(
        cls, name: str, settings: Mapping[str, object], incarnation: int
    ) -> "CollectionConfig":
        try:
            fields = dict(settings)
            fields["metric"] = Metric(str(fields["metric"]))
            fields["keyword"] = KeywordSettings.from_dict(fields.get("keyword"))
            fields["chunking"] = ChunkingSettings.from_dict(fields.get("chunking"))
            return cls(name=name, incarnation=incarnation, **fields)  # type: ignore[arg-type]
        except (ValueError, KeyError, TypeError) as error:
            raise DataLoss(f"catalog entry for {name!r} is unreadable: {error}") from error

    def with_defaults(self) -> "CollectionConfig":
        """Unset (0) HNSW parameters and keyword settings replaced by the defaults, so
        equal settings compare equal."""
        return replace(
            self,
            hnsw_m=self.hnsw_m or DEFAULT_HNSW_M,
            hnsw_ef_construction=self.hnsw_ef_construction or DEFAULT_HNSW_EF_CONSTRUCTION,
            hnsw_ef=self.hnsw_ef or DEFAULT_HNSW_EF,
            keyword=self.keyword.with_defaults(),
        )

    def validate(self) -> None:
        check_collection_name(self.name)
        if not 1 <= self.dimension <= MAX_DIMENSION:
            raise InvalidArgument(
                f"dimension is {self.dimension}; it must be between 1 and {MAX_DIMENSION}"
            )
        if not 2 <= self.hnsw_m <= MAX_HNSW_M:
            raise InvalidArgument(f"hnsw_m is {self.hnsw_m}; it must be between 2 and {MAX_HNSW_M}")
        if not 1 <= self.hnsw_ef_construction <= MAX_EF:
            raise InvalidArgument(
                f"hnsw_ef_construction is {self.hnsw_ef_construction};"
                f" it must be between 1 and {MAX_EF}"
            )
        if not 1 <= self.hnsw_ef <= MAX_EF:
            raise InvalidArgument(f"hnsw_ef is {self.hnsw_ef}; it must be between 1 and {MAX_EF}")
        if self.partitions > MAX_PARTITIONS:
            raise InvalidArgument(f"partitions is {self.partitions}; the limit is {MAX_PARTITIONS}")
        self.keyword.validate()

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "CollectionConfig":
        try:
            fields = json.loads(data)
            fields["metric"] = Metric(fields["metric"])
            # Collections stored before keyword indexes existed get the defaults.
            fields["keyword"] = KeywordSettings.from_dict(fields.get("keyword"))
            fields["chunking"] = ChunkingSettings.from_dict(fields.get("chunking"))
            return cls(**fields)
        except (ValueError, KeyError, TypeError) as error:
            raise DataLoss(f"stored collection config is unreadable: {error}") from error
