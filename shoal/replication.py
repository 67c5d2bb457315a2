"""Comparing replicas: partition digests and the per-id diff of version lists.

Shared by the shard (digests it serves, its own catch-up from peers) and the
coordinator (VerifyReplicas, read repair), so every process computes the same
hash and makes the same choice of winner.

A replica's state of one id is its newest (version, deleted) pair; a
tombstone is a record like any other, so a delete is compared and copied the
way an upsert is. The winner among replicas is the highest version, and at an
equal version a tombstone beats a live record: the shards' last-writer-wins
rule, restricted to what replicas can compare without moving whole records.

A partition digest is an order-independent hash of the (id, version) pairs of
every record a replica holds in the partition, tombstones included: the XOR of
a 64-bit blake2b of each pair. XOR lets a replica compute it in one scan in any
order (or keep it up to date incrementally later), and two replicas holding the
same pairs get the same value whatever order their writes arrived in.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from shoal.partitioning import partition_of

#: A version's low 20 bits are the hybrid logical clock's counter and the
#: coordinator id; the rest is the wall-clock millisecond it was made in.
VERSION_MS_SHIFT = 20


@dataclass(frozen=True, slots=True, order=True)
class VersionState:
    """What one replica holds for one id. Ordered the way replicas pick a winner."""

    version: int
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class PartitionDigest:
    partition: int
    records: int
    hash: int


@dataclass(frozen=True, slots=True)
class Divergence:
    """One id the replicas do not agree on.

    `newest` is the winning state and `source` a replica holding it; `behind`
    are the replicas that hold something older or nothing at all.
    """

    id: str
    newest: VersionState
    source: str
    behind: tuple[str, ...]


def record_hash(doc_id: str, version: int) -> int:
    """The 64-bit hash of one (id, version) pair that partition digests XOR together."""
    data = doc_id.encode() + b"\x00" + version.to_bytes(8, "little")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def version_ms(version: int) -> int:
    """The wall-clock millisecond (Unix epoch) a write version was made in."""
    return version >> VERSION_MS_SHIFT


@dataclass
class DigestBuilder:
    """Accumulates partition digests over records given in any order."""

    partitions: int
    _records: dict[int, int] = field(default_factory=dict)
    _hashes: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"a collection has at least one partition, not {self.partitions}")

    def add(self, doc_id: str, version: int) -> None:
        partition = partition_of(doc_id, self.partitions)
        self._records[partition] = self._records.get(partition, 0) + 1
        self._hashes[partition] = self._hashes.get(partition, 0) ^ record_hash(doc_id, version)

    def digests(self) -> list[PartitionDigest]:
        """Only partitions holding records, by partition number."""
        return [
            PartitionDigest(partition, self._records[partition], self._hashes[partition])
            for partition in sorted(self._records)
        ]


def digest_records(records: Iterable[tuple[str, int]], partitions: int) -> list[PartitionDigest]:
    """Partition digests of (id, version) pairs."""
    builder = DigestBuilder(partitions)
    for doc_id, version in records:
        builder.add(doc_id, version)
    return builder.digests()


def differing_partitions(
    replicas: Sequence[Iterable[PartitionDigest]],
) -> list[int]:
    """Partitions whose digest is not the same on every replica given.

    A partition a replica does not list holds nothing there (0 records, hash 0).
    """
    by_replica = [{d.partition: (d.records, d.hash) for d in digests} for digests in replicas]
    partitions = sorted({p for digests in by_replica for p in digests})
    empty = (0, 0)
    return [
        partition
        for partition in partitions
        if len({digests.get(partition, empty) for digests in by_replica}) > 1
    ]


def diff(replicas: Mapping[str, Mapping[str, VersionState]]) -> list[Divergence]:
    """Every id on which the replicas' version lists differ, by id.

    `replicas` maps a replica's name to its versions (id -> state); an id a
    replica does not list is missing there. For each id the newest state wins
    (see VersionState's order); the first replica (in mapping order) holding it
    is its source.
    """
    names = list(replicas)
    ids = sorted({doc_id for versions in replicas.values() for doc_id in versions})
    found: list[Divergence] = []
    for doc_id in ids:
        states = [replicas[name].get(doc_id) for name in names]
        newest = max(state for state in states if state is not None)
        if all(state == newest for state in states):
            continue
        source = names[states.index(newest)]
        behind = tuple(name for name, state in zip(names, states, strict=True) if state != newest)
        found.append(Divergence(doc_id, newest, source, behind))
    return found


def newer_than_mine(
    mine: Mapping[str, VersionState], theirs: Mapping[str, VersionState]
) -> list[str]:
    """Ids whose state on the peer (`theirs`) beats mine: what a replica should fetch.

    Ids where mine is newer are the peer's to fetch from me, not mine to send.
    """
    return sorted(
        doc_id
        for doc_id, state in theirs.items()
        if (current := mine.get(doc_id)) is None or state > current
    )
