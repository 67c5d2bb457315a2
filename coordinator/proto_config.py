"""`CollectionConfig` and `Include` messages <-> the coordinator core's types.

(The way out, `config_to_proto`, is shoal.runtime.proto_values': the shard's
config has the same fields.)

Both of the coordinator's APIs carry these `common.proto` messages: the public
API it serves (coordinator.api) and the shard API it calls (coordinator.clients).
So their mapping sits here, beside both adapters, rather than in one of them:
the api layer never imports the clients.
"""

from coordinator.core.ports import CollectionConfig, Include
from shoal.distance_metric import Metric
from shoal.runtime.proto_values import (
    chunking_from_proto,
    keyword_from_proto,
    metric_from_proto,
)
from shoal.v1 import common_pb2


def config_from_proto(
    config: common_pb2.CollectionConfig, metric: Metric = Metric.COSINE
) -> CollectionConfig:
    """`metric` stands in for a metric value this build does not know."""
    return CollectionConfig(
        name=config.name,
        dimension=config.dimension,
        metric=metric_from_proto(config.metric) or metric,
        hnsw_m=config.hnsw_m,
        hnsw_ef_construction=config.hnsw_ef_construction,
        hnsw_ef=config.hnsw_ef,
        embedding_model=config.embedding_model,
        partitions=config.partitions,
        keyword=keyword_from_proto(config.keyword),
        chunking=chunking_from_proto(config.chunking),
    )


def include_to_proto(include: Include) -> common_pb2.Include:
    return common_pb2.Include(metadata=include.metadata, text=include.text, vector=include.vector)


def include_from_proto(include: common_pb2.Include) -> Include:
    return Include(metadata=include.metadata, text=include.text, vector=include.vector)
