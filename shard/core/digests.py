"""What a replica tells its peers about one collection: partition digests and version lists.

Both are computed by scanning the collection's records (tombstones included)
each time they are asked for: simple, always right, and cheap at the sizes a
shard holds today (a scan reads headers, not vectors). A replica with many
millions of records would keep the digests up to date on every write instead;
the XOR hash (see shoal.replication) allows exactly that.

Tombstones past the grace period are left out (see `tombstones`): they are as
good as purged, and replicas purge them at slightly different moments.
"""

from collections.abc import Collection, Iterable

from shoal.partitioning import partition_of
from shoal.replication import DigestBuilder, PartitionDigest, VersionState

#: (id, version, deleted) of one stored record.
Entry = tuple[str, int, bool]


def digest_entries(
    entries: Iterable[Entry], partitions: int, expired_before: int
) -> list[PartitionDigest]:
    """Partition digests of the records, leaving out tombstones older than `expired_before`."""
    builder = DigestBuilder(partitions)
    for doc_id, version, deleted in entries:
        if deleted and version < expired_before:
            continue
        builder.add(doc_id, version)
    return builder.digests()


def versions_in(
    entries: Iterable[Entry],
    partitions: int,
    wanted: Collection[int],
    expired_before: int,
) -> dict[str, VersionState]:
    """The versions of the records in the `wanted` partitions (same tombstone rule)."""
    wanted = frozenset(wanted)
    return {
        doc_id: VersionState(version, deleted)
        for doc_id, version, deleted in entries
        if not (deleted and version < expired_before) and partition_of(doc_id, partitions) in wanted
    }
