"""The shard API's own messages <-> the coordinator core's types: writes, filters,
and the bytes of a Search request.

(`CollectionConfig` and `Include`, which the public API carries too, are in
coordinator.proto_config.)
"""

from collections.abc import Mapping
from typing import cast

import numpy as np

from coordinator.core.ports import HybridCall, OpaqueFilter, Vector, WriteOp
from coordinator.proto_config import include_to_proto
from shoal.v1 import common_pb2, shard_pb2

#: The tag of `ShardSearchRequest.queries_f32`: its field number, wire type 2
#: (length-delimited).
_QUERIES_TAG = (
    shard_pb2.ShardSearchRequest.DESCRIPTOR.fields_by_name["queries_f32"].number << 3
) | 2


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
        chunks=[(span.start, span.end) for span in write.chunks],
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
        patch=op.patch,
        remove_metadata=op.remove_metadata,
        chunks=[common_pb2.ChunkSpan(start=start, end=end) for start, end in op.chunks],
    )


def hybrid_request(
    collection: str, call: HybridCall, packed: bool
) -> shard_pb2.ShardHybridSearchRequest:
    """The `ShardHybridSearchRequest` of `call`; with `packed` the shard answers both
    lists as columns (see `packed_results.hybrid_answer`), else a `Hit` per hit."""
    return shard_pb2.ShardHybridSearchRequest(
        collection=collection,
        queries_f32=b"" if call.vectors is None else call.vectors.astype("<f4").tobytes(),
        ef=call.ef,
        keyword_queries=[
            shard_pb2.KeywordQuery(
                terms=query.terms, weights=query.weights, occurrences=query.occurrences
            )
            for query in call.keyword
        ],
        average_length=call.average_length,
        statistics_terms=call.statistics_terms,
        k=call.k,
        include=include_to_proto(call.include),
        filter=filter_to_proto(call.filter),
        score_threshold=call.score_threshold,
        bare_hits=call.bare_hits,
        skip_partitions=call.skip_partitions,
        local_statistics=call.local_statistics,
        packed=packed,
    )


def search_parameters(
    collection: str,
    k: int,
    ef: int,
    include: common_pb2.Include,
    filter: common_pb2.Filter | None,
    score_threshold: float | None,
) -> bytes:
    """Everything of a `ShardSearchRequest` but its queries, serialized deterministically:
    equal parameters give equal bytes, so the bytes are the key concurrent searches
    are joined by (see coalescer), and the start of the request sent. The shard is
    asked for its packed answer (see `packed_results`)."""
    return shard_pb2.ShardSearchRequest(
        collection=collection,
        k=k,
        ef=ef,
        include=include,
        filter=filter,
        score_threshold=score_threshold,
        packed=True,
    ).SerializeToString(deterministic=True)


def search_request(parameters: bytes, queries: Vector) -> bytes:
    """The serialized `ShardSearchRequest` of `parameters` (from `search_parameters`)
    with `queries` (n x dimension) as its queries_f32.

    A message's serialization followed by a field's is the serialization of the
    message with that field set (protobuf's wire format is a sequence of fields), so
    the request is the parameters' bytes, the field's tag and length, and the
    queries' bytes: nothing is parsed back or serialized twice, and the queries are
    copied once.
    """
    data = np.ascontiguousarray(queries, dtype="<f4")
    return b"".join((parameters, _varint(_QUERIES_TAG), _varint(data.nbytes), data.data))


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint: seven bits a byte, low first, the top bit set on
    every byte but the last."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
