"""`CollectionConfig` messages -> the shard core's `CollectionConfig`.

(The way out, `config_to_proto`, is shoal.runtime.proto_values': the
coordinator's config has the same fields.)

The servicer (shard.api) reads and answers them, and the peer client
(shard.clients) reads a peer's, so the mapping sits beside both.
"""

from shard.core.config import CollectionConfig
from shoal.errors import InvalidArgument
from shoal.runtime.proto_values import (
    chunking_from_proto,
    keyword_from_proto,
    metric_from_proto,
)
from shoal.v1 import common_pb2


def config_from_proto(
    config: common_pb2.CollectionConfig, incarnation: int = 0
) -> CollectionConfig:
    metric = metric_from_proto(config.metric)
    if metric is None:
        raise InvalidArgument(f"unknown metric {config.metric}; use cosine, l2 or inner product")
    return CollectionConfig(
        name=config.name,
        dimension=config.dimension,
        metric=metric,
        hnsw_m=config.hnsw_m,
        hnsw_ef_construction=config.hnsw_ef_construction,
        hnsw_ef=config.hnsw_ef,
        embedding_model=config.embedding_model,
        partitions=config.partitions,
        keyword=keyword_from_proto(config.keyword),
        chunking=chunking_from_proto(config.chunking),
        incarnation=incarnation,
    )
