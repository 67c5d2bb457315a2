"""A real shard collection's replication reads (digest, versions, fetch), tombstone purge,
the Fetch wire form, and two collections converging through anti-entropy."""

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from shard.core.anti_entropy import AntiEntropy, Peer
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import Include, WriteOp
from shard.core.local_replica import CollectionsReplica
from shard.core.tombstones import TombstoneGrace, TombstonePurger
from shard.proto_records import write_from_proto, write_to_proto
from shard.storage.layout import DataDir
from shoal.partitioning import partition_of
from shoal.replication import PartitionDigest, VersionState, digest_records
from shoal.v1 import common_pb2, shard_pb2
from shoal.version_horizon import VersionHorizon

DIM = 4
PARTITIONS = 4
NOW_S = 2_000_000_000.0  # the wall clock the tests pretend it is
MS = 1 << 20  # one millisecond of version


def version_at(seconds_ago: float, counter: int = 0) -> int:
    return (int((NOW_S - seconds_ago) * 1000) << 20) | (counter << 8)


def live(doc_id: str, version: int, payload: bytes = b"") -> WriteOp:
    vector = np.full(DIM, float(len(doc_id)) + version % 7, dtype="<f4").tobytes()
    return WriteOp(doc_id, version, False, vector, payload)


def payload(text: str, **metadata: int) -> bytes:
    document = common_pb2.Document(text=text)
    for key, value in metadata.items():
        document.metadata[key].int_value = value
    return document.SerializeToString(deterministic=True)


@pytest.fixture
def collections(tmp_path: Path) -> Iterator[Collections]:
    registry = Collections(DataDir(tmp_path / "data"))
    registry.load()
    registry.create(CollectionConfig("c", DIM, partitions=PARTITIONS))
    yield registry
    registry.close()


def test_digest_versions_and_fetch_cover_tombstones(collections: Collections) -> None:
    collection = collections.get("c")
    collection.write([live(f"d{i}", 10 + i) for i in range(12)])
    collection.write([WriteOp("d3", 50, True, b"", b""), WriteOp("ghost", 7, True, b"", b"")])
    expected = {f"d{i}": 10 + i for i in range(12)} | {"d3": 50, "ghost": 7}
    assert collection.digest(0) == digest_records(expected.items(), PARTITIONS)
    wanted = [partition_of("d3", PARTITIONS)]
    versions = collection.versions(wanted, 0)
    assert versions == {
        doc_id: VersionState(version, doc_id in ("d3", "ghost"))
        for doc_id, version in expected.items()
        if partition_of(doc_id, PARTITIONS) in wanted
    }
    fetched = {op.id: op for op in collection.fetch(["d3", "d4", "ghost", "never", "d4"])}
    assert set(fetched) == {"d3", "d4", "ghost"}
    assert fetched["d3"].deleted and fetched["d3"].version == 50
    assert fetched["d4"] == live("d4", 14)


def test_fetch_wire_form_round_trips_to_the_same_payload_bytes(collections: Collections) -> None:
    collection = collections.get("c")
    original = live("a", 3, payload("hello", year=2024, n=1))
    collection.write([original, live("b", 4)])
    for op in collection.fetch(["a", "b"]):
        wire = shard_pb2.ShardWrite.FromString(write_to_proto(op).SerializeToString())
        assert write_from_proto(wire) == op  # a peer stores exactly these bytes
    tombstone = WriteOp("a", 9, True, b"", b"")
    collection.write([tombstone])
    [fetched] = collection.fetch(["a"])
    assert write_from_proto(write_to_proto(fetched)) == tombstone


def test_expired_tombstones_leave_digests_and_are_purged_once_checkpointed(
    collections: Collections,
) -> None:
    collection = collections.get("c")
    grace = TombstoneGrace(grace_s=3600, clock=lambda: NOW_S)
    cutoff = grace.cutoff_version()
    old, recent = version_at(7200), version_at(60)
    collection.write([live("keep", old), live("x", old), live("y", old)])
    collection.write([WriteOp("x", old + MS, True, b"", b""), WriteOp("y", recent, True, b"", b"")])
    digest = collection.digest(cutoff)
    assert digest == digest_records([("keep", old), ("y", recent)], PARTITIONS)
    assert "x" not in collection.versions(range(PARTITIONS), cutoff)

    purger = TombstonePurger(collections.open_collections, grace)
    assert purger.run_once() == 0  # no checkpoint covers the tombstone yet
    assert collection.checkpoint()
    assert purger.run_once() == 1
    assert {op.id for op in collection.fetch(["keep", "x", "y"])} == {"keep", "y"}
    assert collection.digest(cutoff) == digest  # the digest did not change
    assert collection.count() == 1


def test_purged_tombstones_survive_a_restart_from_the_checkpoint(tmp_path: Path) -> None:
    registry = Collections(DataDir(tmp_path / "data"))
    registry.load()
    registry.create(CollectionConfig("c", DIM, partitions=PARTITIONS))
    collection = registry.get("c")
    grace = TombstoneGrace(grace_s=3600, clock=lambda: NOW_S)
    old = version_at(7200)
    collection.write([live(f"d{i}", old + i) for i in range(20)])
    collection.write([WriteOp(f"d{i}", old + 100 + i, True, b"", b"") for i in range(5)])
    collection.checkpoint()
    assert TombstonePurger(registry.open_collections, grace).run_once() == 5
    collection.write([live("late", version_at(0))])
    registry.close()

    reopened = Collections(DataDir(tmp_path / "data"))
    reopened.load()
    try:
        collection = reopened.get("c")
        assert collection.count() == 16
        docs = collection.get([f"d{i}" for i in range(20)] + ["late"], Include())
        assert {doc.id for doc in docs} == {f"d{i}" for i in range(5, 20)} | {"late"}
    finally:
        reopened.close()


class LocalPeer:
    """A peer backed by another in-process replica (what GrpcPeer does over the wire)."""

    def __init__(self, address: str, replica: CollectionsReplica, registry: Collections) -> None:
        self.address = address
        self._replica = replica
        self._registry = registry

    async def list_collections(self, timeout_s: float) -> list[CollectionConfig]:
        return await self._replica.collection_configs()

    async def digest(
        self, collection: str, timeout_s: float, incarnation: int = 0
    ) -> list[PartitionDigest]:
        return await self._replica.digest(collection, incarnation=incarnation)

    async def list_versions(
        self, collection: str, partitions: Sequence[int], timeout_s: float, incarnation: int = 0
    ) -> dict[str, VersionState]:
        return await self._replica.versions(collection, partitions, incarnation)

    async def fetch(
        self, collection: str, ids: Sequence[str], timeout_s: float, incarnation: int = 0
    ) -> list[WriteOp]:
        records = self._registry.get(collection, incarnation).fetch(ids)
        return [write_from_proto(write_to_proto(op)) for op in records]


async def test_an_empty_collections_registry_is_rebuilt_from_a_peer(tmp_path: Path) -> None:
    executor = ThreadPoolExecutor(2)
    grace = TombstoneGrace(clock=lambda: NOW_S)  # the small test versions are not expired
    source = Collections(DataDir(tmp_path / "source"))
    empty = Collections(DataDir(tmp_path / "empty"))
    source.load()
    empty.load()
    try:
        source.create(CollectionConfig("c", DIM, partitions=PARTITIONS))
        collection = source.get("c")
        base = version_at(60)
        collection.write([live(f"d{i}", base + i, payload(f"t{i}", i=i)) for i in range(300)])
        deleted = range(0, 300, 7)
        collection.write([WriteOp(f"d{i}", base + MS + i, True, b"", b"") for i in deleted])
        peer: Peer = LocalPeer("source", CollectionsReplica(source, executor, grace), source)
        engine = AntiEntropy(
            CollectionsReplica(empty, executor, grace),
            lambda: ["source"],
            lambda _: peer,
            horizon=VersionHorizon(now_ms=lambda: int(NOW_S * 1000)),
        )
        report = await engine.first_catch_up()
        assert report is not None and report.learned == ["c"] and report.copied == 300
        rebuilt = empty.get("c")
        assert rebuilt.config == collection.config
        assert rebuilt.digest(0) == collection.digest(0)
        assert rebuilt.count() == collection.count() == 300 - len(deleted)
        ids = [f"d{i}" for i in range(300)]
        everything = Include(vector=True, payload=True)
        assert rebuilt.get(ids, everything) == collection.get(ids, everything)
    finally:
        source.close()
        empty.close()
        executor.shutdown()
