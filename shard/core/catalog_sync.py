"""This replica's collections follow the catalog (`shoal.catalog`).

A `CatalogFollower` listener: after every full listing (on start, and whenever
the watch is re-established) it reconciles every collection; then it applies
each change as it comes. A live entry is created here (replacing an older
incarnation, or adopted by a pre-catalog collection with the same settings); a
dropped one is deleted here. A collection held here that the catalog never
heard of was made before the cluster had a catalog: it is registered (keeping
its data), or, if another replica registered the name first with other
settings, replaced by the catalog's.

A collection held here that could not be loaded (a corrupt store) is left as
it is, whatever the catalog says, until it is dropped: it may hold the current
incarnation's data, so it is an operator's call (the replica shows DEGRADED).

Until the first reconcile is over, a name not held here answers UNAVAILABLE
rather than NOT_FOUND (`Collections.catalog_applied`): the collection may well
exist and just not be created here yet, and a coordinator asks another replica
on UNAVAILABLE but hands NOT_FOUND to its caller.

Nothing here is on the data path: while etcd is away the collections stay as
they are and writes and reads go on.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TypeVar

from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shoal.catalog import CatalogChange, CatalogEntry, CatalogStore, CatalogView
from shoal.errors import ShoalError

log = logging.getLogger(__name__)

R = TypeVar("R")


class CatalogSync:
    def __init__(
        self,
        collections: Collections,
        store: CatalogStore,
        executor: Executor,
        after_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._collections = collections
        self._store = store
        self._executor = executor
        #: Called after each reconcile or batch of changes (the servicer's health
        #: report, which names the collections that could not be loaded).
        self._after_change = after_change
        self._lock = asyncio.Lock()  # one reconcile or change at a time

    async def _run(self, work: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def __call__(self, view: CatalogView, changes: list[CatalogChange] | None) -> None:
        async with self._lock:
            if changes is None:
                await self.reconcile(view)
            else:
                for change in changes:
                    if change.entry is not None:
                        await self._follow(change.entry)
            if self._after_change is not None:
                await self._after_change()

    async def reconcile(self, view: CatalogView) -> None:
        listed = await self._run(self._collections.list_collections)
        for entry in view.live_entries():
            await self._follow(entry)
        for config, _ in listed:
            known = view.entries.get(config.name)
            if known is None:
                await self._register(config)
            elif known.dropped:
                await self._follow(known)
        # Only now may this replica say NOT_FOUND for a name it does not hold.
        self._collections.catalog_applied()

    async def _follow(self, entry: CatalogEntry) -> None:
        try:
            if entry.dropped:
                deleted = await self._run(
                    lambda: self._collections.delete(entry.name, entry.incarnation)
                )
                if deleted:
                    log.info("catalog: dropped %r (incarnation %d)", entry.name, entry.incarnation)
                return
            config = CollectionConfig.from_catalog(entry.name, entry.settings, entry.incarnation)
            _, created = await self._run(lambda: self._collections.create(config))
            if created:
                log.info("catalog: created %r (incarnation %d)", entry.name, entry.incarnation)
        except ShoalError as error:
            log.warning("catalog: cannot follow %r: %s", entry.name, error)

    async def _register(self, config: CollectionConfig) -> None:
        """A collection the catalog never knew (a data dir from before the catalog)."""
        entry = await self._store.register(config.name, config.to_settings(), config.incarnation)
        if entry.incarnation != config.incarnation or entry.dropped:
            log.info(
                "catalog: registered %r as incarnation %d%s",
                config.name,
                entry.incarnation,
                " (dropped)" if entry.dropped else "",
            )
        await self._follow(entry)
