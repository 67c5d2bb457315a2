"""Replies of the replication calls (Digest, ListVersions) from the core's types.

(Fetch's records are `shard.proto_records.write_to_proto`'s, which the peer
client reads back.)
"""

from collections.abc import Iterable, Mapping

from shoal.replication import PartitionDigest, VersionState
from shoal.v1 import shard_pb2


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
