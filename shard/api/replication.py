"""Proto conversion for the replication calls (Digest, ListVersions, Fetch).

A fetched record goes out as the `ShardWrite` that would have produced it: its
payload (the deterministic bytes of a `Document` with text and metadata, see
`convert`) is unpacked into the write's text and metadata, and the receiving
replica packs them again into the same bytes, so equal versions keep comparing
equal everywhere.
"""

from collections.abc import Iterable, Mapping

from google.protobuf.message import DecodeError

from shard.core.documents import WriteOp
from shoal.errors import DataLoss
from shoal.replication import PartitionDigest, VersionState
from shoal.v1 import common_pb2, shard_pb2


def write_to_proto(op: WriteOp) -> shard_pb2.ShardWrite:
    write = shard_pb2.ShardWrite(id=op.id, version=op.version, deleted=op.deleted)
    if op.deleted:
        return write
    write.vector_f32 = op.vector
    if op.payload:
        try:
            stored = common_pb2.Document.FromString(op.payload)
        except DecodeError as error:
            raise DataLoss(f"stored text/metadata of document {op.id!r} is corrupt") from error
        if stored.HasField("text"):
            write.text = stored.text
        for key, value in stored.metadata.items():
            write.metadata[key].CopyFrom(value)
    return write


def digests_to_proto(digests: Iterable[PartitionDigest]) -> shard_pb2.ShardDigestResponse:
    return shard_pb2.ShardDigestResponse(
        partitions=[
            shard_pb2.PartitionDigest(partition=d.partition, records=d.records, hash=d.hash)
            for d in digests
        ]
    )


def versions_to_proto(versions: Mapping[str, VersionState]) -> shard_pb2.ShardListVersionsResponse:
    return shard_pb2.ShardListVersionsResponse(
        records=[
            shard_pb2.RecordVersion(id=doc_id, version=state.version, deleted=state.deleted)
            for doc_id, state in sorted(versions.items())
        ]
    )
