"""Collections on every replica: defaults, idempotent create, delete, cached configs."""

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from coordinator.core.catalog import CollectionCatalog
from coordinator.core.collection_config import from_entry, to_settings, with_defaults
from coordinator.core.embedding import Embedding
from coordinator.core.model import DocumentInput, WriteConsistency
from coordinator.core.ports import CollectionConfig, Health
from coordinator.core.replicas import Replica, ReplicaGroup
from shard.core.config import CollectionConfig as ShardConfig
from shoal.catalog import (
    CatalogChange,
    CatalogEntry,
    CatalogFollower,
    CatalogListing,
    Settings,
)
from shoal.distance_metric import Metric
from shoal.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from shoal.keyword import KeywordSettings
from tests.unit.coordinator_fakes import FakeCluster, FakeEmbedder, FakeShard, deadline


def request(name: str = "c", **fields: object) -> CollectionConfig:
    return dataclasses.replace(CollectionConfig(name), **fields)  # type: ignore[arg-type]


async def test_create_fills_defaults_on_every_replica() -> None:
    cluster = FakeCluster(groups=2, replicas=2)
    result = await cluster.core.catalog.create(request(dimension=8), deadline())
    assert result.created
    keyword = KeywordSettings(True, "english", True, True, 1.2, 0.75)
    assert result.config == CollectionConfig(
        "c", 8, Metric.COSINE, 16, 200, 64, "", 64, keyword=keyword
    )
    assert all(shard.collections["c"] == result.config for shard in cluster.all_shards)


async def test_create_again_with_the_same_settings_is_ok_and_other_settings_are_not() -> None:
    cluster = FakeCluster(groups=2, replicas=2)

    await cluster.core.catalog.create(request(dimension=8), deadline())
    again = await cluster.core.catalog.create(request(dimension=8), deadline())
    assert not again.created
    with pytest.raises(AlreadyExists, match="'c' exists with other settings"):
        await cluster.core.catalog.create(request(dimension=16), deadline())


async def test_embedding_model_gives_the_dimension() -> None:
    cluster = FakeCluster(embedder=FakeEmbedder(model="hash-8", dimension=8))

    made = await cluster.core.catalog.create(request(embedding_model="hash-8"), deadline())
    assert made.config.dimension == 8
    with pytest.raises(InvalidArgument, match="the embedder serves 'hash-8'"):
        await cluster.core.catalog.create(request("x", embedding_model="other"), deadline())
    with pytest.raises(InvalidArgument, match="dimension 5 does not match"):
        await cluster.core.catalog.create(
            request("y", embedding_model="hash-8", dimension=5), deadline()
        )
    with pytest.raises(InvalidArgument, match="dimension is 0"):
        await cluster.core.catalog.create(request("z"), deadline())


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"name": "../up"}, "name"),
        ({"dimension": 5000}, "dimension"),
        ({"hnsw_m": 1}, "hnsw_m"),
        ({"hnsw_ef": 100_000}, "hnsw_ef"),
        ({"partitions": 100_000}, "partitions"),
    ],
)
async def test_create_rejects_bad_settings(fields: dict[str, object], words: str) -> None:
    cluster = FakeCluster()
    config = dataclasses.replace(request(dimension=8), **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=words):
        await cluster.core.catalog.create(config, deadline())
    assert all("create_collection" not in shard.calls for shard in cluster.all_shards)


async def test_create_with_a_replica_down_names_it_and_a_retry_completes() -> None:
    cluster = FakeCluster(groups=2, replicas=2)
    down = cluster.shards[1][1]

    down.fail = Unavailable("connection refused")
    with pytest.raises(Unavailable) as caught:
        await cluster.core.catalog.create(request(dimension=8), deadline())
    assert f"group 1 replica {down.address}" in str(caught.value)
    assert "retry" in str(caught.value)
    down.fail = None
    result = await cluster.core.catalog.create(request(dimension=8), deadline())
    assert result.created  # on the replica that missed it
    assert all("c" in shard.collections for shard in cluster.all_shards)


async def test_get_sums_one_replica_per_group_and_list_is_sorted() -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    await cluster.create("b", 4)
    await cluster.create("a", 4)
    docs = [DocumentInput(f"d{i}", np.ones(4, np.float32)) for i in range(25)]
    await cluster.core.writer.upsert("b", docs, WriteConsistency.ALL, deadline())
    stats = await cluster.core.catalog.get("b", deadline())
    assert stats.document_count == 25
    assert stats.config.name == "b"
    names = [c.name for c in await cluster.core.catalog.list_all(deadline())]
    assert names == ["a", "b"]
    with pytest.raises(NotFound, match="'zzz'"):
        await cluster.core.catalog.get("zzz", deadline())


async def test_list_needs_only_one_group() -> None:
    cluster = FakeCluster(groups=2, replicas=1)

    await cluster.create("a", 4)
    cluster.shards[0][0].fail = Unavailable("down")
    assert [c.name for c in await cluster.core.catalog.list_all(deadline())] == ["a"]
    cluster.shards[1][0].fail = Unavailable("down")
    with pytest.raises(Unavailable):
        await cluster.core.catalog.list_all(deadline())


async def test_delete_goes_to_every_replica() -> None:
    cluster = FakeCluster(groups=2, replicas=2)

    await cluster.create("c", 4)
    cluster.shards[0][1].fail = Unavailable("connection refused")
    with pytest.raises(Unavailable, match="not deleted on every replica"):
        await cluster.core.catalog.delete("c", deadline())
    cluster.shards[0][1].fail = None
    await cluster.core.catalog.delete("c", deadline())
    assert all("c" not in shard.collections for shard in cluster.all_shards)
    with pytest.raises(NotFound):
        await cluster.core.catalog.delete("c", deadline())
    with pytest.raises(NotFound):
        await cluster.core.catalog.config("c", deadline())


async def test_configs_are_cached_for_a_short_while() -> None:
    now = [0.0]
    shard = FakeShard("h:1")
    group = ReplicaGroup(0, [Replica(shard)])
    catalog = CollectionCatalog(
        lambda: [group], Embedding(FakeEmbedder()), ttl=5.0, clock=lambda: now[0]
    )

    await catalog.create(request(dimension=8), deadline())
    before = shard.calls.count("list_collections")
    for _ in range(3):
        assert (await catalog.config("c", deadline())).dimension == 8
    assert shard.calls.count("list_collections") == before
    now[0] += 6
    await catalog.config("c", deadline())
    assert shard.calls.count("list_collections") == before + 1
    catalog.invalidate("c")
    await catalog.config("c", deadline())
    assert shard.calls.count("list_collections") == before + 2


async def test_cluster_info_reports_health_and_counts() -> None:
    cluster = FakeCluster(groups=2, replicas=2)

    await cluster.create("c", 4)
    docs = [DocumentInput(f"d{i}", np.ones(4, np.float32)) for i in range(10)]
    await cluster.core.writer.upsert("c", docs, WriteConsistency.ALL, deadline())
    cluster.shards[1][0].fail = Unavailable("down")
    info = await cluster.core.inspector.describe(deadline())
    assert (info.topology_version, info.replication_factor) == (1, 2)
    assert info.embedder_health is Health.SERVING
    healths = [[r.health for r in g.replicas] for g in info.groups]
    assert healths == [[Health.SERVING] * 2, [Health.UNREACHABLE, Health.SERVING]]
    counts = [dict(g.replicas[1].collections)["c"] for g in info.groups]
    assert sum(counts) == 10
    assert info.groups[1].replicas[0].collections == []


async def test_a_replica_that_could_not_load_a_collection_is_reported_and_passed_over() -> None:
    """Its listing names the collection as failed: cluster info shows the replica
    DEGRADED with the reason, and the catalog asks the other replica for the
    config and the counts (that replica alone would have said NOT_FOUND)."""
    cluster = FakeCluster(groups=1, replicas=2)

    await cluster.create("c", 4)
    docs = [DocumentInput(f"d{i}", np.ones(4, np.float32)) for i in range(10)]
    await cluster.core.writer.upsert("c", docs, WriteConsistency.ALL, deadline())
    cluster.shards[0][0].broken["c"] = "Corruption: CURRENT file corrupted"
    info = await cluster.core.inspector.describe(deadline())
    broken, healthy = info.groups[0].replicas
    assert broken.health is Health.DEGRADED
    assert broken.failed == [("c", "Corruption: CURRENT file corrupted")]
    assert broken.collections == []
    assert (healthy.health, healthy.failed) == (Health.SERVING, [])
    for _ in range(4):
        cluster.core.catalog.invalidate("c")
        assert (await cluster.core.catalog.config("c", deadline())).dimension == 4
        assert (await cluster.core.catalog.get("c", deadline())).document_count == 10


def test_keyword_settings_survive_the_catalog() -> None:
    """Coordinators read collection settings from the catalog's JSON: the keyword
    settings a collection was created with must come back, and what a shard
    registers (a collection made before the catalog) must read the same."""
    keyword = KeywordSettings(True, "german", False, True, 1.5, 0.5)
    config = with_defaults(request(dimension=8, keyword=keyword, incarnation=3))
    stored = json.loads(json.dumps(to_settings(config)))
    assert from_entry(CatalogEntry("c", stored, 3)) == config
    shard_config = ShardConfig("c", 8, partitions=64, keyword=keyword).with_defaults()
    assert json.loads(json.dumps(shard_config.to_settings())) == stored
    del stored["keyword"]  # written before keyword indexes existed: the defaults
    assert from_entry(CatalogEntry("c", stored, 3)).keyword == KeywordSettings().with_defaults()


class LaggingCatalogStore:
    """A catalog store whose watch never brings anything: another coordinator's
    create reaches this one only by asking the store."""

    def __init__(self) -> None:
        self.entries: dict[str, CatalogEntry] = {}
        self.revision = 1
        self.listings = 0

    async def listing(self) -> CatalogListing:
        self.listings += 1
        return CatalogListing(dict(self.entries), self.revision)

    async def create(self, name: str, settings: Settings) -> tuple[CatalogEntry, bool]:
        self.revision += 1
        self.entries[name] = CatalogEntry(name, settings, self.revision)
        return self.entries[name], True

    async def drop(self, name: str) -> CatalogChange | None:
        raise NotImplementedError

    async def register(self, name: str, settings: Settings, incarnation: int) -> CatalogEntry:
        raise NotImplementedError

    async def watch(self, after_revision: int) -> AsyncIterator[list[CatalogChange]]:
        await asyncio.Event().wait()
        yield []


async def test_a_create_through_another_coordinator_is_seen_as_soon_as_it_is_acknowledged() -> None:
    """The watch brings a create within milliseconds, but a client told "created"
    by one coordinator may call another sooner: a name missing from the view is
    looked up in the catalog before the answer is NOT_FOUND."""

    store = LaggingCatalogStore()
    follower = CatalogFollower(store)
    follower.start()
    await follower.wait_synced(5)
    catalog = CollectionCatalog(lambda: [], Embedding(FakeEmbedder()), follower=follower)
    settings = to_settings(with_defaults(request(dimension=8)))
    entry, _ = await store.create("c", settings)  # through another coordinator
    config = await catalog.config("c", deadline())
    assert (config.dimension, config.incarnation) == (8, entry.incarnation)
    with pytest.raises(NotFound):
        await catalog.config("nope", deadline())
    await follower.stop()


async def test_a_config_is_parsed_once_per_catalog_entry_and_again_when_the_entry_changes() -> None:
    """Every read asks for the collection's config: the entry's settings are parsed
    once, and a changed entry (another coordinator recreated the collection) is
    parsed anew, never answered from the old parse."""
    store = LaggingCatalogStore()
    follower = CatalogFollower(store)
    follower.start()
    await follower.wait_synced(5)
    catalog = CollectionCatalog(lambda: [], Embedding(FakeEmbedder()), follower=follower)
    entry, _ = await store.create("c", to_settings(with_defaults(request(dimension=8))))
    first = await catalog.config("c", deadline())
    assert await catalog.config("c", deadline()) is first
    recreated = CatalogEntry(
        "c", to_settings(with_defaults(request(dimension=16))), entry.incarnation + 5
    )
    await follower.apply([CatalogChange("c", recreated, recreated.incarnation)])
    config = await catalog.config("c", deadline())
    assert (config.dimension, config.incarnation) == (16, recreated.incarnation)
    await follower.stop()
