"""The catalog store against a real etcd: transactions, incarnations, watches."""

import asyncio
from collections.abc import Callable

from shoal.catalog import CatalogChange, CatalogFollower, CatalogView
from shoal.errors import Unavailable
from shoal.etcd.catalog_store import EtcdCatalog
from shoal.etcd.client import EtcdClient
from shoal.runtime.wait import async_wait_for
from tests.conftest import StartEtcd

SETTINGS = {"dimension": 4, "metric": "cosine", "partitions": 8}


async def test_concurrent_creates_of_one_name_have_one_winner(start_etcd: StartEtcd) -> None:
    etcd = start_etcd()

    clients = [EtcdClient(etcd.endpoints) for _ in range(4)]
    try:
        catalogs = [EtcdCatalog(c) for c in clients]
        for round_ in range(10):
            name = f"c{round_}"
            outcomes = await asyncio.gather(
                *(catalogs[i % 4].create(name, {**SETTINGS, "dimension": i + 1}) for i in range(8))
            )
            assert sum(created for _, created in outcomes) == 1
            winners = {entry.incarnation for entry, _ in outcomes}
            settings = {entry.settings["dimension"] for entry, _ in outcomes}
            assert len(winners) == 1 and len(settings) == 1
    finally:
        for client in clients:
            await client.close()


async def test_recreate_gets_a_larger_incarnation_and_drops_are_kept(start_etcd: StartEtcd) -> None:
    etcd = start_etcd()

    client = EtcdClient(etcd.endpoints)
    try:
        catalog = EtcdCatalog(client)
        first, created = await catalog.create("docs", SETTINGS)
        assert created
        drop = await catalog.drop("docs")
        assert drop is not None and drop.entry is not None and drop.entry.dropped
        assert drop.entry.incarnation == first.incarnation
        assert await catalog.drop("docs") is None
        second, created = await catalog.create("docs", SETTINGS)
        assert created and second.incarnation > first.incarnation
        # A replica's pre-catalog collection is not registered over a known name.
        assert (await catalog.register("docs", SETTINGS, 0)).incarnation == second.incarnation
        legacy = await catalog.register("legacy", SETTINGS, 0)
        assert legacy.incarnation > second.incarnation
        listing = await catalog.listing()
        assert sorted(listing.entries) == ["docs", "legacy"]
    finally:
        await client.close()


async def test_follower_sees_changes_and_keeps_its_view_while_etcd_is_down(
    start_etcd: StartEtcd,
) -> None:
    etcd = start_etcd()

    writer = EtcdClient(etcd.endpoints, timeout_s=2.0)
    reader = EtcdClient(etcd.endpoints, timeout_s=1.0)
    seen: list[list[CatalogChange] | None] = []

    async def listen(view: CatalogView, changes: list[CatalogChange] | None) -> None:
        seen.append(changes)

    follower = CatalogFollower(EtcdCatalog(reader), [listen], retry_s=0.1, max_retry_s=0.5)
    try:
        await EtcdCatalog(writer).create("before", SETTINGS)
        follower.start()
        await follower.wait_synced(10)
        assert follower.view.live("before") is not None
        await EtcdCatalog(writer).create("after", SETTINGS)
        await _until(lambda: follower.view.live("after") is not None)
        etcd.stop()
        await _until(lambda: not follower.connected)
        assert follower.view.live("after") is not None  # the last known catalog stays
        try:
            await EtcdCatalog(writer).create("while-down", SETTINGS)
            raise AssertionError("a create succeeded with etcd stopped")
        except Unavailable as error:
            assert "etcd" in str(error)
        etcd.start()
        await EtcdCatalog(writer).drop("before")
        await _until(lambda: follower.view.live("before") is None, within_s=15)
        assert follower.connected
    finally:
        await follower.stop()
        await writer.close()
        await reader.close()


async def _until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """The tests' one wait helper, polling on the event loop so the watch goes on meanwhile."""
    await async_wait_for(condition, within_s, "the catalog follower")
