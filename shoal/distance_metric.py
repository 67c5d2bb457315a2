"""A collection's distance metric, one definition for every service.

The coordinator and the shard each keep their own `CollectionConfig` (the
shard's also validates and stores itself), but both hold the same `Metric`, so
a metric means the same on both sides of the shard API. Free of generated code,
for the services' core layers; the protobuf values are in `shoal.runtime.proto_values`.
"""

from enum import StrEnum


class Metric(StrEnum):
    """Values are hnswlib's space names."""

    COSINE = "cosine"
    L2 = "l2"
    INNER_PRODUCT = "ip"
