"""The topology store against a real etcd: seeding, versioned updates, the follower."""

import asyncio
from collections.abc import Callable

import pytest

from shoal.errors import FailedPrecondition, NotFound
from shoal.etcd.client import EtcdClient
from shoal.etcd.topology_store import EtcdTopology
from shoal.runtime.wait import async_wait_for
from shoal.topology import Topology
from shoal.topology_store import TopologyFollower
from tests.conftest import StartEtcd

FILE = Topology.of([["h:1", "h:2"], ["h:3", "h:4"]], version=1)


async def test_the_file_seeds_etcd_once_and_never_overrides_it(start_etcd: StartEtcd) -> None:
    etcd = start_etcd()

    client = EtcdClient(etcd.endpoints)
    try:
        store = EtcdTopology(client)
        assert await store.read() == (None, (await store.read())[1])
        with pytest.raises(NotFound, match="holds no topology"):
            await store.update(1, FILE)
        seeds = await asyncio.gather(
            *(store.seed(Topology.of([[f"h:{i}"]], version=1)) for i in range(1, 6))
        )
        assert len(set(seeds)) == 1  # one seed landed; the others got it back
        stored, _ = await store.read()
        assert stored == seeds[0]
        # An edited file later changes nothing.
        assert await store.seed(FILE) == stored
    finally:
        await client.close()


async def test_of_concurrent_updates_from_one_version_exactly_one_lands(
    start_etcd: StartEtcd,
) -> None:
    etcd = start_etcd()

    clients = [EtcdClient(etcd.endpoints) for _ in range(4)]
    try:
        stores = [EtcdTopology(client) for client in clients]
        await stores[0].seed(FILE)
        version = FILE.version
        for round_ in range(10):
            changes = [Topology(0, FILE.groups, {p: 1 - p % 2}) for p in range(8)]
            outcomes = await asyncio.gather(
                *(stores[i % 4].update(version, t) for i, t in enumerate(changes)),
                return_exceptions=True,
            )
            landed = [o for o in outcomes if isinstance(o, Topology)]
            refused = [o for o in outcomes if isinstance(o, FailedPrecondition)]
            assert len(landed) == 1 and len(refused) == 7, f"round {round_}: {outcomes}"
            assert landed[0].version == version + 1
            assert (await stores[0].read())[0] == landed[0]
            version += 1
        assert "not at the expected version 1" in str(refused[0])
    finally:
        for client in clients:
            await client.close()


async def test_the_follower_takes_each_new_version_and_keeps_the_last_while_etcd_is_down(
    start_etcd: StartEtcd,
) -> None:
    etcd = start_etcd()

    writer = EtcdClient(etcd.endpoints, timeout_s=2.0)
    reader = EtcdClient(etcd.endpoints, timeout_s=1.0)
    seen: list[int] = []
    watched = CountingReads(reader)
    follower = TopologyFollower(watched, seed=FILE, retry_s=0.1, max_retry_s=0.5)
    follower.add_listener(lambda topology: seen.append(topology.version))
    store = EtcdTopology(writer)
    try:
        follower.start()
        assert await follower.wait_seen(10)
        assert follower.topology == FILE  # it seeded etcd from its file
        second = await store.update(1, Topology(0, FILE.groups, {0: 1}))
        await _until(lambda: follower.topology == second)
        etcd.stop()
        # The follower has lost the watch and tried to read again, and failed.
        await _until(lambda: watched.failed_reads >= 1)
        assert follower.topology == second  # the last one seen stands
        etcd.start()
        third = await store.update(2, Topology(0, FILE.groups, {}))
        await _until(lambda: follower.topology == third, within_s=15)
        assert seen == [1, 2, 3]
        # One passed on by a shard is taken if newer, never if older.
        assert not await follower.offer(second)
        assert await follower.offer(third.with_version(9))
    finally:
        await follower.stop()
        await writer.close()
        await reader.close()


class CountingReads(EtcdTopology):
    """The store, counting the reads that failed (etcd down), to wait for one."""

    def __init__(self, client: EtcdClient) -> None:
        super().__init__(client)
        self.failed_reads = 0

    async def read(self) -> tuple[Topology | None, int]:
        try:
            return await super().read()
        except Exception:  # Unavailable, or whatever the follower logs
            self.failed_reads += 1
            raise


async def _until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Polls on the event loop, so the watch goes on meanwhile."""
    await async_wait_for(condition, within_s, "the topology follower")
