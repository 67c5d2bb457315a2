"""A collection's settings: the defaults a create fills in, the ranges they must be
in, and their form in the catalog (etcd).

The rules live apart from `catalog.CollectionCatalog`, which applies them, so a
new setting is added here and in `ports.CollectionConfig` only.
"""

import dataclasses

from coordinator.core.ports import CollectionConfig
from shoal import limits
from shoal.catalog import CatalogEntry
from shoal.chunking import ChunkingSettings
from shoal.distance_metric import Metric
from shoal.errors import DataLoss, InvalidArgument
from shoal.keyword import KeywordSettings

DEFAULT_PARTITIONS = 64


def with_defaults(config: CollectionConfig) -> CollectionConfig:
    """Zero fields take the defaults; the dimension is left to `CollectionCatalog`,
    and an unspecified metric is already cosine when it reaches core."""
    return dataclasses.replace(
        config,
        hnsw_m=config.hnsw_m or limits.DEFAULT_HNSW_M,
        hnsw_ef_construction=config.hnsw_ef_construction or limits.DEFAULT_HNSW_EF_CONSTRUCTION,
        hnsw_ef=config.hnsw_ef or limits.DEFAULT_HNSW_EF,
        partitions=config.partitions or DEFAULT_PARTITIONS,
        keyword=config.keyword.with_defaults(),
    )


def check_config(config: CollectionConfig) -> None:
    """Ranges of a config with its defaults filled in."""
    limits.check_collection_name(config.name)
    if not 1 <= config.dimension <= limits.MAX_DIMENSION:
        raise InvalidArgument(
            f"dimension is {config.dimension}; it must be between 1 and {limits.MAX_DIMENSION}"
        )
    if not 2 <= config.hnsw_m <= limits.MAX_HNSW_M:
        raise InvalidArgument(
            f"hnsw_m is {config.hnsw_m}; it must be between 2 and {limits.MAX_HNSW_M}"
        )
    if not 1 <= config.hnsw_ef_construction <= limits.MAX_EF:
        raise InvalidArgument(
            f"hnsw_ef_construction is {config.hnsw_ef_construction};"
            f" it must be between 1 and {limits.MAX_EF}"
        )
    if not 1 <= config.hnsw_ef <= limits.MAX_EF:
        raise InvalidArgument(
            f"hnsw_ef is {config.hnsw_ef}; it must be between 1 and {limits.MAX_EF}"
        )
    if not 1 <= config.partitions <= limits.MAX_PARTITIONS:
        raise InvalidArgument(
            f"partitions is {config.partitions}; it must be between 1 and {limits.MAX_PARTITIONS}"
        )
    config.keyword.validate()
    config.chunking.validate()
    if config.chunking.enabled and not config.embedding_model:
        raise InvalidArgument(
            "chunking needs an embedding model: chunks are measured with the model's"
            " tokenizer and embedded by it; give embedding_model"
        )


def to_settings(config: CollectionConfig) -> dict[str, object]:
    """A config as the catalog holds it."""
    return {
        "dimension": config.dimension,
        "metric": config.metric.value,
        "hnsw_m": config.hnsw_m,
        "hnsw_ef_construction": config.hnsw_ef_construction,
        "hnsw_ef": config.hnsw_ef,
        "embedding_model": config.embedding_model,
        "partitions": config.partitions,
        "keyword": config.keyword.to_dict(),
        "chunking": config.chunking.to_dict(),
    }


def from_entry(entry: CatalogEntry) -> CollectionConfig:
    settings = entry.settings
    try:
        return CollectionConfig(
            name=entry.name,
            dimension=int(str(settings["dimension"])),
            metric=Metric(str(settings["metric"])),
            hnsw_m=int(str(settings["hnsw_m"])),
            hnsw_ef_construction=int(str(settings["hnsw_ef_construction"])),
            hnsw_ef=int(str(settings["hnsw_ef"])),
            embedding_model=str(settings.get("embedding_model", "")),
            partitions=int(str(settings["partitions"])),
            incarnation=entry.incarnation,
            keyword=KeywordSettings.from_dict(settings.get("keyword")),
            chunking=ChunkingSettings.from_dict(settings.get("chunking")),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise DataLoss(f"catalog entry for {entry.name!r} is unreadable: {error}") from error


def differences(stored: CollectionConfig, asked: CollectionConfig) -> str:
    return ", ".join(
        f"{field} {value} (asked {to_settings(asked)[field]})"
        for field, value in to_settings(stored).items()
        if to_settings(asked)[field] != value
    )
