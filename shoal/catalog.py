"""The collection catalog: what exists, as one source of truth (etcd) keeps it.

Domain types and the port (`CatalogStore`) the services' cores are written
against; `shoal.etcd.catalog_store` implements it over etcd. Nothing here touches
gRPC.

Each entry is a collection name with its settings and an incarnation: a number
new on every create (the etcd revision of the creating transaction, so a later
create has a larger one). Everything a shard stores or exchanges about a
collection carries the incarnation, so nothing of a dropped collection can reach
a new one with the same name. A drop leaves the entry in place, marked dropped,
so "dropped" and "never existed" stay distinguishable: a replica holding data of
a dropped collection deletes it, while a replica holding a collection the
catalog never heard of (a data dir from before the catalog existed) registers it.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shoal.errors import ShoalError, Unavailable
from shoal.loop_task import LoopTask

log = logging.getLogger(__name__)

#: The settings a collection is created with, as JSON-able values: dimension,
#: metric (its string value), hnsw_m, hnsw_ef_construction, hnsw_ef,
#: embedding_model, partitions.
Settings = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    settings: Settings
    incarnation: int
    dropped: bool = False


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """One entry as it is now (a put), or `entry` None when its key went away."""

    name: str
    entry: CatalogEntry | None
    revision: int


@dataclass(frozen=True, slots=True)
class CatalogListing:
    entries: dict[str, CatalogEntry]
    revision: int  # the store's revision the listing is as of


class CatalogStore(Protocol):
    """Calls raise Unavailable when the store cannot be reached."""

    async def listing(self) -> CatalogListing: ...

    async def create(self, name: str, settings: Settings) -> tuple[CatalogEntry, bool]:
        """The live entry for `name` and whether this call created it. Of concurrent
        creates exactly one creates; the others get the winner's entry (the caller
        compares settings)."""
        ...

    async def drop(self, name: str) -> "CatalogChange | None":
        """Mark the live entry dropped; the change (the dropped entry at the drop's
        revision), or None if none was live."""
        ...

    async def register(self, name: str, settings: Settings, incarnation: int) -> CatalogEntry:
        """Enter a collection that exists on a replica but that the catalog never
        knew (`incarnation` 0: give it a new one); the entry now in the catalog,
        which is another one when the name is known (live or dropped)."""
        ...

    def watch(self, after_revision: int) -> AsyncIterator[list[CatalogChange]]:
        """Changes after `after_revision`, batch by batch, until the store is lost
        (raises Unavailable) or history is compacted (raises Compacted)."""
        ...


class Compacted(ShoalError):
    """The watch started from a revision the store no longer keeps: list again."""


@dataclass
class CatalogView:
    """The latest catalog a `CatalogFollower` has seen."""

    entries: dict[str, CatalogEntry] = field(default_factory=dict)
    revision: int = 0  # the watch's position
    #: Per name, the store revision its entry is as of.
    revisions: dict[str, int] = field(default_factory=dict)

    def update(self, change: "CatalogChange") -> bool:
        """Take `change` unless the entry held is as new; whether it was taken."""
        if change.revision <= self.revisions.get(change.name, 0):
            return False
        self.revisions[change.name] = change.revision
        if change.entry is None:
            self.entries.pop(change.name, None)
        else:
            self.entries[change.name] = change.entry
        return True

    def live(self, name: str) -> CatalogEntry | None:
        entry = self.entries.get(name)
        return None if entry is None or entry.dropped else entry

    def live_entries(self) -> list[CatalogEntry]:
        return [e for _, e in sorted(self.entries.items()) if not e.dropped]


#: Called with the whole view after a (re)listing, then per batch of changes.
Listener = Callable[[CatalogView, list[CatalogChange] | None], Awaitable[None]]


class CatalogFollower:
    """Keeps a `CatalogView` current: list, then watch from there; on losing the
    store, keep the last view (the data path goes on with it) and list again once
    it is back. Listeners see a full listing (changes None) after every (re)list,
    then each batch of changes."""

    def __init__(
        self,
        store: CatalogStore,
        listeners: list[Listener] | None = None,
        retry_s: float = 0.5,
        max_retry_s: float = 5.0,
    ) -> None:
        self.store = store
        self.view = CatalogView()
        self._listeners = list(listeners or [])
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._synced = asyncio.Event()
        self._connected = False
        self._loop = LoopTask("catalog follower", self._run)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def synced(self) -> bool:
        """Whether a listing has arrived at least once."""
        return self._synced.is_set()

    @property
    def connected(self) -> bool:
        """Whether the watch is running now (False while the store is away)."""
        return self._connected

    async def wait_synced(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._synced.wait(), timeout_s)
        except TimeoutError:
            raise Unavailable(
                "the collection catalog (etcd) has not been reached yet; retry shortly"
            ) from None

    async def refresh(self) -> None:
        """List now and tell the listeners (also what a watch restart does)."""
        listing = await self.store.listing()
        if listing.revision < self.view.revision:
            return  # an older answer than what the watch already gave
        self.view = CatalogView(
            dict(listing.entries),
            listing.revision,
            {name: listing.revision for name in listing.entries},
        )
        for listener in self._listeners:
            await listener(self.view, None)
        self._synced.set()  # only now: a shard waits for its collections to match

    async def apply(self, changes: list[CatalogChange]) -> None:
        """Changes from the watch, in revision order."""
        for change in changes:
            self.view.update(change)
            self.view.revision = max(self.view.revision, change.revision)
        for listener in self._listeners:
            await listener(self.view, changes)

    def note(self, change: CatalogChange) -> None:
        """A change this process made itself: seen at once, before the watch
        brings it (which then changes nothing)."""
        self.view.update(change)

    async def _run(self) -> None:
        backoff = self._retry_s
        while True:
            try:
                await self.refresh()
                self._connected = True
                backoff = self._retry_s
                async for changes in self.store.watch(self.view.revision):
                    await self.apply(changes)
                raise Unavailable("the catalog watch ended")
            except (Unavailable, Compacted) as error:
                if self._connected:
                    log.warning("catalog watch lost (%s); going on with the last catalog", error)
                self._connected = False
            except ShoalError as error:
                self._connected = False
                log.warning("catalog watch failed: %s", error)
            except Exception:
                self._connected = False
                log.exception("catalog watch failed")
            await asyncio.sleep(backoff)
            backoff = min(self._max_retry_s, backoff * 2)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
