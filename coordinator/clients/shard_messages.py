"""The shard API's own messages <-> the coordinator core's types: writes and filters.

(`CollectionConfig` and `Include`, which the public API carries too, are in
coordinator.proto_config.)
"""

from collections.abc import Mapping
from typing import cast

from coordinator.core.ports import OpaqueFilter, WriteOp
from shoal.v1 import common_pb2, shard_pb2


def filter_to_proto(spec: OpaqueFilter | None) -> common_pb2.Filter | None:
    """The caller's filter message, passed on as it came."""
    return cast(common_pb2.Filter | None, spec)


def write_from_proto(write: shard_pb2.ShardWrite) -> WriteOp:
    """A replica's stored record (from Fetch); its metadata stays the protobuf map."""
    return WriteOp(
        id=write.id,
        version=write.version,
        deleted=write.deleted,
        vector_f32=write.vector_f32,
        text=write.text if write.HasField("text") else None,
        metadata=write.metadata,
    )


def write_to_proto(op: WriteOp) -> shard_pb2.ShardWrite:
    # The metadata is the map of `Value`s the caller sent: copied, not converted.
    metadata = cast(Mapping[str, common_pb2.Value], op.metadata)
    return shard_pb2.ShardWrite(
        id=op.id,
        version=op.version,
        deleted=op.deleted,
        vector_f32=op.vector_f32,
        text=op.text,
        metadata=metadata,
    )
