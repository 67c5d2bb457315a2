"""Shard anti-entropy against in-memory replicas: what is pulled, readiness, learning
collections; the peer directory; tombstone expiry in digests."""

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shard.core.anti_entropy import AntiEntropy, AntiEntropySettings, Readiness
from shard.core.config import CollectionConfig
from shard.core.digests import digest_entries, versions_in
from shard.core.documents import WriteOp
from shard.core.peer_directory import PeerDirectory
from shard.core.tombstones import TombstoneGrace
from shoal.errors import NotFound, Unavailable
from shoal.replication import VERSION_MS_SHIFT, PartitionDigest, VersionState, record_hash
from shoal.runtime.wait import async_wait_for
from shoal.topology import Topology
from shoal.topology_source import TopologyFile
from shoal.version_horizon import VersionHorizon

PARTITIONS = 8
CONFIG = CollectionConfig(name="c", dimension=2, partitions=PARTITIONS)
FAST = AntiEntropySettings(interval_s=0.05, first_wait_s=0.3, retry_s=0.05, fetch_batch=3)


def live(doc_id: str, version: int) -> WriteOp:
    return WriteOp(doc_id, version, False, b"\x00" * 8, f"payload {version}".encode())


def tombstone(doc_id: str, version: int) -> WriteOp:
    return WriteOp(doc_id, version, True, b"", b"")


@dataclass
class MemoryReplica:
    """Both sides of anti-entropy in memory: a peer and a local replica."""

    address: str
    data: dict[str, dict[str, WriteOp]] = field(default_factory=dict)
    configs: dict[str, CollectionConfig] = field(default_factory=dict)
    down: bool = False
    fetched: list[str] = field(default_factory=list)
    #: How many calls this replica refused while down.
    refused: int = 0

    def add(self, config: CollectionConfig, *ops: WriteOp) -> None:
        self.configs[config.name] = config
        store = self.data.setdefault(config.name, {})
        for op in ops:
            store[op.id] = op

    def _store(self, collection: str) -> dict[str, WriteOp]:
        if self.down:
            self.refused += 1
            raise Unavailable(f"{self.address} is down")
        if collection not in self.data:
            raise NotFound(f"collection {collection!r} not found")
        return self.data[collection]

    def _entries(self, collection: str) -> list[tuple[str, int, bool]]:
        return [(op.id, op.version, op.deleted) for op in self._store(collection).values()]

    # Peer
    async def list_collections(self, timeout_s: float) -> list[CollectionConfig]:
        if self.down:
            self.refused += 1
            raise Unavailable("down")
        return list(self.configs.values())

    async def digest(
        self, collection: str, timeout_s: float = 0, incarnation: int = 0
    ) -> list[PartitionDigest]:
        return digest_entries(self._entries(collection), PARTITIONS, 0)

    async def list_versions(
        self,
        collection: str,
        partitions: Sequence[int],
        timeout_s: float = 0,
        incarnation: int = 0,
    ) -> dict[str, VersionState]:
        return versions_in(self._entries(collection), PARTITIONS, partitions, 0)

    async def fetch(
        self, collection: str, ids: Sequence[str], timeout_s: float, incarnation: int = 0
    ) -> list[WriteOp]:
        store = self._store(collection)
        self.fetched.extend(ids)
        return [store[i] for i in ids if i in store]

    # LocalReplica
    async def collection_configs(self) -> list[CollectionConfig]:
        return list(self.configs.values())

    async def create_collection(self, config: CollectionConfig) -> None:
        self.add(config)

    async def versions(
        self, collection: str, partitions: Sequence[int], incarnation: int = 0
    ) -> dict[str, VersionState]:
        return await self.list_versions(collection, partitions)

    async def apply(self, collection: str, ops: Sequence[WriteOp], incarnation: int = 0) -> int:
        store = self._store(collection)
        applied = 0
        for op in ops:
            old = store.get(op.id)
            if old is None or (op.version, op.deleted) > (old.version, old.deleted):
                store[op.id] = op
                applied += 1
        return applied


def engine(local: MemoryReplica, *peers: MemoryReplica) -> AntiEntropy:
    by_address = {peer.address: peer for peer in peers}
    return AntiEntropy(local, lambda: list(by_address), by_address.__getitem__, FAST, Readiness())


async def test_versions_beyond_the_clock_skew_are_neither_fetched_nor_applied() -> None:
    """A record with version 2^64 - 1 on one replica (written before shards checked
    versions, or by hand) must not spread to the others (issue 14)."""
    now_ms = 1_700_000_000_000
    horizon = VersionHorizon(max_skew_s=60, now_ms=lambda: now_ms)
    ok = (now_ms + 59_000) << VERSION_MS_SHIFT
    local = MemoryReplica("me")
    peer = MemoryReplica("peer")
    local.add(CONFIG, live("pinned", 5))
    peer.add(
        CONFIG,
        live("pinned", 2**64 - 1),
        tombstone("tomb", (now_ms + 61_000) << VERSION_MS_SHIFT),
        live("fine", ok),
    )
    pulling = AntiEntropy(local, lambda: ["peer"], lambda _: peer, FAST, Readiness(), None, horizon)
    report = await pulling.pass_once()
    assert report.copied == 1
    assert {i: op.version for i, op in local.data["c"].items()} == {"pinned": 5, "fine": ok}
    assert peer.fetched == ["fine"]


async def test_a_pass_pulls_newer_versions_and_tombstones_and_nothing_else() -> None:
    local = MemoryReplica("me")
    peer = MemoryReplica("peer")
    local.add(CONFIG, live("same", 5), live("old", 1), live("mine-newer", 9), live("gone", 2))
    peer.add(
        CONFIG,
        live("same", 5),
        live("old", 4),  # newer there
        live("mine-newer", 3),  # older there: the peer's to pull, not ours to push
        tombstone("gone", 6),  # deleted there
        live("new", 1),  # missing here
        tombstone("never-seen", 3),  # a delete of something this replica never had
    )
    report = await engine(local, peer).pass_once()
    assert report.reached == ["peer"] and report.copied == 4
    assert {i: (op.version, op.deleted) for i, op in local.data["c"].items()} == {
        "same": (5, False),
        "old": (4, False),
        "mine-newer": (9, False),
        "gone": (6, True),
        "new": (1, False),
        "never-seen": (3, True),
    }
    assert local.data["c"]["old"].payload == b"payload 4"
    assert peer.data["c"]["mine-newer"].version == 3  # pull only
    assert "same" not in peer.fetched and "mine-newer" not in peer.fetched
    assert await local.digest("c") != await peer.digest("c")  # mine-newer still differs
    # A second pass has nothing left to copy.
    assert (await engine(local, peer).pass_once()).copied == 0


async def test_replicas_converge_when_each_pulls_from_the_other() -> None:
    a = MemoryReplica("a")
    b = MemoryReplica("b")
    a.add(CONFIG, *[live(f"a{i}", i + 1) for i in range(20)], live("both", 7))
    b.add(CONFIG, *[live(f"b{i}", i + 1) for i in range(20)], tombstone("both", 8))
    await engine(a, b).pass_once()
    await engine(b, a).pass_once()
    assert await a.digest("c") == await b.digest("c")
    assert a.data["c"] == b.data["c"]


async def test_first_catch_up_gates_reads_until_it_has_caught_up() -> None:
    local = MemoryReplica("me")
    peer = MemoryReplica("peer")
    local.add(CONFIG)
    peer.add(CONFIG, live("x", 1))
    anti_entropy = engine(local, peer)
    with pytest.raises(Unavailable, match="catching up"):
        anti_entropy.readiness.require()
    report = await anti_entropy.first_catch_up()
    assert report is not None and report.copied == 1
    anti_entropy.readiness.require()


async def test_first_catch_up_serves_anyway_when_no_peer_answers_in_time() -> None:
    local = MemoryReplica("me")
    local.add(CONFIG, live("x", 1))
    peer = MemoryReplica("peer", down=True)
    anti_entropy = engine(local, peer)
    assert await anti_entropy.first_catch_up() is None
    assert anti_entropy.readiness.ready


async def test_first_catch_up_without_peers_is_ready_at_once() -> None:
    anti_entropy = engine(MemoryReplica("me"))
    assert await anti_entropy.first_catch_up() is None
    assert anti_entropy.readiness.ready


async def test_first_catch_up_waits_for_a_peer_that_comes_back() -> None:
    local = MemoryReplica("me")
    local.add(CONFIG)
    peer = MemoryReplica("peer", down=True)
    peer.add(CONFIG, live("x", 1))

    anti_entropy = engine(local, peer)
    task = asyncio.create_task(anti_entropy.first_catch_up())
    # Refused twice (a first try and a retry): still catching up.
    await async_wait_for(lambda: peer.refused >= 2, 5, "a retry of the peer that is down")
    assert not anti_entropy.readiness.ready
    peer.down = False
    report = await task
    assert report is not None and report.copied == 1


async def test_an_empty_replica_learns_the_collections_and_every_record() -> None:
    local = MemoryReplica("me")
    peer = MemoryReplica("peer")
    other = CollectionConfig(name="other", dimension=4, partitions=PARTITIONS)
    peer.add(CONFIG, *[live(f"d{i}", i + 1) for i in range(10)], tombstone("t", 5))
    peer.add(other, live("o", 1))
    report = await engine(local, peer).pass_once()
    assert sorted(report.learned) == ["c", "other"]
    assert local.configs == peer.configs
    assert local.data == peer.data


async def test_a_replica_with_collections_does_not_learn_missing_ones() -> None:
    """Copying a collection back could undo a DeleteCollection this replica missed."""
    local = MemoryReplica("me")
    local.add(CONFIG)
    peer = MemoryReplica("peer")
    peer.add(CONFIG)
    peer.add(CollectionConfig(name="other", dimension=4, partitions=PARTITIONS))
    assert (await engine(local, peer).pass_once()).learned == []
    assert set(local.configs) == {"c"}


async def test_a_peer_without_the_collection_is_skipped() -> None:
    local = MemoryReplica("me")
    local.add(CONFIG, live("x", 1))
    peer = MemoryReplica("peer")
    peer.add(CollectionConfig(name="other", dimension=4, partitions=PARTITIONS))
    report = await engine(local, peer).pass_once()
    assert report.reached == ["peer"] and report.copied == 0


async def test_the_periodic_task_keeps_pulling() -> None:
    local = MemoryReplica("me")
    local.add(CONFIG)
    peer = MemoryReplica("peer")
    peer.add(CONFIG)

    anti_entropy = engine(local, peer)
    anti_entropy.start()
    peer.add(CONFIG, live("late", 3))
    try:
        await async_wait_for(lambda: "late" in local.data["c"], 5, "a pass to pull 'late'")
    finally:
        await anti_entropy.stop()
    assert "late" in local.data["c"]


# -- peers from the topology -----------------------------------------------------


def test_peer_directory_follows_the_topology_file(tmp_path: Path) -> None:
    path = tmp_path / "topology.json"
    directory = PeerDirectory(TopologyFile(path, check_s=0), lambda: "h:2")
    assert directory.peers() == []  # not written yet
    groups = [{"replicas": ["h:1", "h:2", "h:3"]}, {"replicas": ["h:4", "h:5"]}]
    path.write_text(json.dumps({"version": 1, "groups": groups}))
    assert directory.peers() == ["h:1", "h:3"]
    groups[0]["replicas"] = ["h:2", "h:6"]
    path.write_text(json.dumps({"version": 2, "groups": groups, "pad": "changes the size"}))
    assert directory.peers() == ["h:6"]
    path.write_text(json.dumps({"version": 3, "groups": [{"replicas": ["h:9"]}]}))
    assert directory.peers() == []
    assert "not in topology" in directory.reason
    assert PeerDirectory(None, lambda: "h:2").peers() == []


# -- tombstones past the grace period --------------------------------------------


def test_expired_tombstones_are_left_out_of_digests_and_version_lists() -> None:
    grace = TombstoneGrace(grace_s=60, clock=lambda: 1_000_000.0)
    cutoff = grace.cutoff_version()
    assert cutoff == ((1_000_000 - 60) * 1000) << 20
    old, recent = cutoff - 1, cutoff + 1
    entries = [("live-old", old, False), ("dead-old", old, True), ("dead-new", recent, True)]
    digests = digest_entries(entries, 1, cutoff)
    assert digests == [
        PartitionDigest(0, 2, record_hash("live-old", old) ^ record_hash("dead-new", recent))
    ]
    assert set(versions_in(entries, 1, [0], cutoff)) == {"live-old", "dead-new"}
    assert grace.expired(old, True, cutoff) and not grace.expired(old, False, cutoff)


def test_peer_directory_follows_a_topology_that_changes_in_etcd(
    caplog: pytest.LogCaptureFixture,
) -> None:
    held: list[Topology | None] = [None]

    class Source:
        def current(self) -> Topology | None:
            return held[0]

        def describe(self) -> str:
            return "the topology in etcd"

    directory = PeerDirectory(Source(), lambda: "h:3", dynamic=True)
    assert directory.peers() == []
    held[0] = Topology.of([["h:1", "h:2"]], version=1)
    with caplog.at_level(logging.INFO):
        assert directory.peers() == []  # a new replica, not listed yet: no warning
    assert [r.levelname for r in caplog.records] == ["INFO"]
    held[0] = Topology.of([["h:1", "h:2", "h:3"]], version=2)  # added through the admin API
    assert directory.peers() == ["h:1", "h:2"]
    assert directory.group() == 0


def test_a_topology_file_is_looked_at_once_a_second_at_most(tmp_path: Path) -> None:
    """A shard asks for the topology on every write: no stat call each time."""
    path = tmp_path / "topology.json"
    now = [0.0]
    source = TopologyFile(path, clock=lambda: now[0])
    path.write_text(json.dumps({"version": 1, "groups": [{"replicas": ["h:1"]}]}))
    first = source.current()
    assert first is not None and first.version == 1
    path.write_text(json.dumps({"version": 2, "groups": [{"replicas": ["h:1", "h:2"]}]}))
    now[0] = 0.5
    assert source.current() is first
    now[0] = 1.0
    second = source.current()
    assert second is not None and second.version == 2
