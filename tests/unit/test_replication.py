"""shoal.replication: digests, the per-id diff, and what a replica fetches from a peer."""

import hashlib
import random

from shoal.partitioning import partition_of
from shoal.replication import (
    Divergence,
    PartitionDigest,
    VersionState,
    diff,
    differing_partitions,
    digest_records,
    newer_than_mine,
    record_hash,
    version_ms,
)

PARTITIONS = 8


def records(count: int, version: int = 1) -> list[tuple[str, int]]:
    return [(f"doc-{i}", version + i) for i in range(count)]


def test_record_hash_is_stable_and_depends_on_id_and_version() -> None:
    # The same value in every process and release: replicas compare it.
    assert record_hash("a", 1) == record_hash("a", 1)
    assert record_hash("a", 1) != record_hash("a", 2)
    assert record_hash("a", 1) != record_hash("b", 1)
    # The separator keeps ("ab", v) and ("a", v') with colliding bytes apart.
    assert record_hash("a", 0x62) != record_hash("ab", 0)
    # Pinned: replicas of different releases must keep agreeing.
    spec = hashlib.blake2b(b"doc-1\x00" + (7).to_bytes(8, "little"), digest_size=8)
    assert record_hash("doc-1", 7) == int.from_bytes(spec.digest(), "little")
    assert record_hash("doc-1", 7) == 0x80E3A7F88E0C481F


def test_digest_is_independent_of_order() -> None:
    pairs = records(200)
    shuffled = list(pairs)
    random.Random(4).shuffle(shuffled)
    assert digest_records(pairs, PARTITIONS) == digest_records(shuffled, PARTITIONS)


def test_digest_counts_records_per_partition_and_lists_only_non_empty_ones() -> None:
    pairs = records(50)
    digests = digest_records(pairs, PARTITIONS)
    assert sum(d.records for d in digests) == 50
    for digest in digests:
        members = [(i, v) for i, v in pairs if partition_of(i, PARTITIONS) == digest.partition]
        assert digest.records == len(members)
        expected = 0
        for doc_id, version in members:
            expected ^= record_hash(doc_id, version)
        assert digest.hash == expected
    assert digest_records([], PARTITIONS) == []


def test_a_newer_version_changes_only_its_partition() -> None:
    before = {d.partition: d for d in digest_records(records(50), PARTITIONS)}
    changed = [("doc-3", 999) if doc_id == "doc-3" else (doc_id, v) for doc_id, v in records(50)]
    after = {d.partition: d for d in digest_records(changed, PARTITIONS)}
    moved = [p for p in before if before[p] != after[p]]
    assert moved == [partition_of("doc-3", PARTITIONS)]
    assert differing_partitions([before.values(), after.values()]) == moved


def test_differing_partitions_treats_an_absent_partition_as_empty() -> None:
    one = [PartitionDigest(0, 2, 5), PartitionDigest(3, 1, 9)]
    other = [PartitionDigest(0, 2, 5)]
    assert differing_partitions([one, other]) == [3]
    assert differing_partitions([one, one, one]) == []
    assert differing_partitions([[PartitionDigest(1, 0, 0)], []]) == []


def test_diff_names_the_newest_state_its_source_and_every_replica_behind() -> None:
    a = {"x": VersionState(5), "y": VersionState(2), "z": VersionState(1)}
    b = {"x": VersionState(3), "y": VersionState(2, deleted=True)}
    c = {"x": VersionState(5), "y": VersionState(2), "z": VersionState(1)}
    found = diff({"a": a, "b": b, "c": c})
    assert found == [
        Divergence("x", VersionState(5), "a", ("b",)),
        # At an equal version the tombstone wins, as on the shards.
        Divergence("y", VersionState(2, deleted=True), "b", ("a", "c")),
        Divergence("z", VersionState(1), "a", ("b",)),
    ]


def test_diff_of_agreeing_replicas_is_empty() -> None:
    same = {"x": VersionState(5), "y": VersionState(7, deleted=True)}
    assert diff({"a": same, "b": dict(same)}) == []
    assert diff({"a": same}) == []
    assert diff({}) == []


def test_newer_than_mine_lists_what_the_peer_has_newer_including_tombstones() -> None:
    mine = {"a": VersionState(5), "b": VersionState(5), "c": VersionState(9)}
    theirs = {
        "a": VersionState(5),  # same
        "b": VersionState(6, deleted=True),  # a newer delete
        "c": VersionState(8),  # mine is newer: theirs to fetch, not mine
        "d": VersionState(1),  # missing here
    }
    assert newer_than_mine(mine, theirs) == ["b", "d"]


def test_version_ms_reads_the_clock_part_of_a_version() -> None:
    version = (1_700_000_000_123 << 20) | (5 << 8) | 7
    assert version_ms(version) == 1_700_000_000_123
