"""Collections: creating, describing, listing and deleting them on every replica.

Every replica of every shard group holds every collection, so a create or a
delete goes to all of them.

With a catalog (etcd, `shoal.catalog`), the catalog is the one source of truth:
a create or delete is first a transaction there (of concurrent creates of one
name exactly one wins, with a new incarnation), then pushed to every replica it
can reach; replicas that miss the push follow the catalog themselves. Settings
come from this coordinator's watch of the catalog, never from a timed cache, so
a create or drop through another coordinator is seen as soon as the watch
delivers it, and a replica refuses a write for a dropped incarnation meanwhile.
While etcd is away the last catalog seen serves reads and writes; creates and
deletes fail with UNAVAILABLE.

Without a catalog (the pre-etcd mode, kept for tests of the parts), any replica
can say what a collection's settings are; configs are cached for a short
while, and a NotFound from a shard drops the cached entry.

A replica may hold a collection on disk that it could not load (a corrupt
store); it lists it as failed, and the catalog asks another replica about it,
as reads do.
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from coordinator.core.collection_config import (
    check_config,
    differences,
    from_entry,
    to_settings,
    with_defaults,
)
from coordinator.core.deadline import Deadline
from coordinator.core.embedding import Embedding
from coordinator.core.fanout import ShardCall, every_group, fan_out, on_every_replica
from coordinator.core.model import CollectionStats, CreateResult
from coordinator.core.owned_hits import Ownership, owned_targets
from coordinator.core.ports import CollectionConfig, ShardClient, ShardCollection
from coordinator.core.replicas import Replica, ReplicaGroup
from shoal import limits
from shoal.catalog import CatalogChange, CatalogEntry, CatalogFollower, CatalogStore, CatalogView
from shoal.errors import (
    AlreadyExists,
    DataLoss,
    InvalidArgument,
    NotFound,
    ShoalError,
    Unavailable,
)
from shoal.topology import Topology

log = logging.getLogger(__name__)

#: How long a collection's config is trusted before asking a shard again.
CONFIG_TTL_S = 5.0


def not_found(name: str) -> NotFound:
    return NotFound(f"collection {name!r} does not exist")


#: How long a call waits for this coordinator's first view of the catalog.
CATALOG_WAIT_S = 5.0


def catalog_unavailable(error: Unavailable, what: str) -> Unavailable:
    return Unavailable(
        f"cannot {what}: the collection catalog (etcd) is unreachable ({error});"
        " documents can still be read and written, collections cannot be created or"
        " deleted until it is back"
    )


class CollectionCatalog:
    def __init__(
        self,
        groups: Callable[[], Sequence[ReplicaGroup]],
        embedding: Embedding,
        ttl: float = CONFIG_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        follower: CatalogFollower | None = None,
        topology: Callable[[], Topology] | None = None,
    ) -> None:
        self._groups = groups  # the groups of the topology routed with now
        #: That topology (None: no partition ever moves).
        self._topology = topology
        self._embedding = embedding
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[CollectionConfig, float]] = {}
        #: With a catalog: each name's entry as last parsed, and its config. Every
        #: read asks for the config; parsing the entry's settings each time cost
        #: a single Search a few percent of the coordinator's CPU.
        self._parsed: dict[str, tuple[CatalogEntry, CollectionConfig]] = {}
        self._follower = follower
        self._relisting: asyncio.Future[None] | None = None

    # -- the config cache ---------------------------------------------------

    async def _catalog_view(self, deadline: Deadline) -> CatalogView:
        assert self._follower is not None
        if not self._follower.synced:
            await self._follower.wait_synced(min(CATALOG_WAIT_S, deadline.remaining()))
        return self._follower.view

    async def config(self, name: str, deadline: Deadline) -> CollectionConfig:
        """A collection's config: the catalog's, or from the cache when it is fresh."""
        if self._follower is not None:
            limits.check_collection_name(name)
            entry = (await self._catalog_view(deadline)).live(name) or await self._read_through(
                name, deadline
            )
            if entry is None:
                self._parsed.pop(name, None)
                raise not_found(name)
            return self._config_of(entry)
        cached = self._cache.get(name)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        limits.check_collection_name(name)
        collections = await self._list_from_any_replica(name, deadline)
        self._remember(collections)
        for collection in collections:
            if collection.config.name == name:
                return collection.config
        self.invalidate(name)
        raise not_found(name)

    async def _read_through(self, name: str, deadline: Deadline) -> CatalogEntry | None:
        """A name the view does not hold, looked up in the catalog itself.

        The watch brings another coordinator's create within milliseconds, but a
        client told "created" may call this coordinator sooner: asking the catalog
        on a miss makes every create visible here as soon as it is acknowledged.
        Only misses pay, and concurrent misses share one listing. With the catalog
        away, the view answers.
        """
        assert self._follower is not None
        if self._relisting is None or self._relisting.done():
            self._relisting = asyncio.ensure_future(self._follower.refresh())
            # A caller may have given up waiting: nobody else reads its outcome.
            self._relisting.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            await asyncio.wait_for(asyncio.shield(self._relisting), deadline.remaining())
        except (ShoalError, TimeoutError) as error:
            log.info("catalog lookup of %r failed (%s); answering from the last view", name, error)
        return self._follower.view.live(name)

    def invalidate(self, name: str) -> None:
        self._cache.pop(name, None)
        self._parsed.pop(name, None)

    def _config_of(self, entry: CatalogEntry) -> CollectionConfig:
        """`from_entry(entry)`, parsed once per entry: the view replaces an entry
        (frozen) whenever the catalog changes it, so the same object means the
        same settings."""
        parsed = self._parsed.get(entry.name)
        if parsed is not None and parsed[0] is entry:
            return parsed[1]
        config = from_entry(entry)
        self._parsed[entry.name] = (entry, config)
        return config

    def _remember(self, collections: Sequence[ShardCollection]) -> None:
        expires = self._clock() + self._ttl
        for collection in collections:
            self._cache[collection.config.name] = (collection.config, expires)

    async def _list_from_any_replica(self, name: str, deadline: Deadline) -> list[ShardCollection]:
        """Any replica that could load `name` knows every collection: ask groups
        in turn until one answers."""
        failures: list[str] = []
        for group in self._groups():
            try:
                return await group.read(_listing_with(name), deadline, "ListCollections")
            except (Unavailable, DataLoss) as error:
                failures.append(str(error))
        raise Unavailable(f"no shard replica answered: {'; '.join(failures)}")

    # -- the public operations ----------------------------------------------

    async def create(self, request: CollectionConfig, deadline: Deadline) -> CreateResult:
        limits.check_collection_name(request.name)
        config = with_defaults(request)
        if config.embedding_model:
            info = await self._embedding.info(deadline)
            if config.embedding_model != info.model:
                raise InvalidArgument(
                    f"embedding model {config.embedding_model!r} is not served here;"
                    f" the embedder serves {info.model!r}"
                )
            config = dataclasses.replace(
                config, chunking=config.chunking.with_defaults(info.max_seq_tokens)
            )
            if config.dimension == 0:
                config = dataclasses.replace(config, dimension=info.dimension)
            elif config.dimension != info.dimension:
                raise InvalidArgument(
                    f"dimension {config.dimension} does not match embedding model"
                    f" {info.model!r}, which gives {info.dimension}"
                )
        elif config.dimension == 0:
            raise InvalidArgument("dimension is 0: give a dimension or an embedding model")
        check_config(config)
        if self._follower is not None:
            return await self._create_in_catalog(self._follower.store, config, deadline)

        replicas = self._every_replica()

        async def create(client: ShardClient, timeout_s: float) -> tuple[CollectionConfig, bool]:
            return await client.create_collection(config, timeout_s)

        outcomes = await on_every_replica([r for _, r in replicas], create, deadline)
        created = False
        stored = config
        failures: list[str] = []
        for (group, replica), outcome in zip(replicas, outcomes, strict=True):
            if isinstance(outcome, AlreadyExists | InvalidArgument):
                # The shard's message names the collection and the settings that differ.
                self.invalidate(config.name)
                raise outcome
            if isinstance(outcome, BaseException):
                failures.append(f"group {group} replica {replica.address}: {outcome}")
                continue
            stored, replica_created = outcome
            created = created or replica_created
        if failures:
            self.invalidate(config.name)
            raise Unavailable(
                f"collection {config.name!r} was not created on every replica"
                f" ({'; '.join(failures)}); retry with the same settings"
            )
        self._cache[stored.name] = (stored, self._clock() + self._ttl)
        return CreateResult(stored, created)

    async def _create_in_catalog(
        self, store: CatalogStore, config: CollectionConfig, deadline: Deadline
    ) -> CreateResult:
        try:
            entry, created = await store.create(config.name, to_settings(config))
        except Unavailable as error:
            raise catalog_unavailable(error, f"create collection {config.name!r}") from None
        stored = from_entry(entry)
        if not created and to_settings(stored) != to_settings(config):
            raise AlreadyExists(
                f"collection {config.name!r} exists with other settings:"
                f" {differences(stored, config)}"
            )
        if self._follower is not None and created:
            self._follower.note(CatalogChange(entry.name, entry, entry.incarnation))
        await self._push(stored, deadline)
        return CreateResult(stored, created)

    async def _push(self, config: CollectionConfig, deadline: Deadline) -> None:
        """Create the collection on every replica reachable now; one that is not
        creates it from the catalog when it comes back."""

        async def create(client: ShardClient, timeout_s: float) -> tuple[CollectionConfig, bool]:
            return await client.create_collection(config, timeout_s)

        replicas = self._every_replica()
        outcomes = await on_every_replica([r for _, r in replicas], create, deadline)
        for (group, replica), outcome in zip(replicas, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning(
                    "collection %r incarnation %d not created on group %d replica %s yet: %s",
                    config.name,
                    config.incarnation,
                    group,
                    replica.address,
                    outcome,
                )

    async def _delete_in_catalog(self, store: CatalogStore, name: str, deadline: Deadline) -> None:
        try:
            change = await store.drop(name)
        except Unavailable as error:
            raise catalog_unavailable(error, f"delete collection {name!r}") from None
        if change is None or change.entry is None:
            raise not_found(name)
        entry = change.entry
        if self._follower is not None:
            self._follower.note(change)

        async def delete(client: ShardClient, timeout_s: float) -> bool:
            return await client.delete_collection(name, timeout_s, entry.incarnation)

        replicas = self._every_replica()
        outcomes = await on_every_replica([r for _, r in replicas], delete, deadline)
        for (group, replica), outcome in zip(replicas, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, NotFound):
                log.warning(
                    "collection %r not deleted on group %d replica %s yet: %s",
                    name,
                    group,
                    replica.address,
                    outcome,
                )

    async def get(self, name: str, deadline: Deadline) -> CollectionStats:
        """The config and live document count, summed over all groups."""
        limits.check_collection_name(name)
        if self._follower is not None:
            config = await self.config(name, deadline)
            answers = await self._listings(name, config.partitions, deadline)
            mine = [
                c
                for collections in answers
                for c in collections
                if c.config.name == name and c.config.incarnation == config.incarnation
            ]
            return CollectionStats(
                config,
                sum(c.document_count for c in mine),
                sum(c.chunk_count or c.document_count for c in mine),
            )
        partitions = 0
        if self._topology is not None and self._topology().moves_in_flight:
            partitions = (await self.config(name, deadline)).partitions
        answers = await self._listings(name, partitions, deadline)
        found = [c for collections in answers for c in collections if c.config.name == name]
        if not found:
            self.invalidate(name)
            raise not_found(name)
        self._remember(found[:1])
        return CollectionStats(
            found[0].config,
            sum(c.document_count for c in found),
            sum(c.chunk_count or c.document_count for c in found),
        )

    async def _listings(
        self, name: str, partitions: int, deadline: Deadline
    ) -> list[list[ShardCollection]]:
        """Every group's listing (see `_listing_with`); while partitions move, each
        group's counts leave out what it holds without owning (see `owned_hits`)."""

        def listing(owned: Ownership | None) -> ShardCall[list[ShardCollection]]:
            return _listing_with(name, () if owned is None else owned.skipped)

        groups = self._groups()
        if self._topology is None:
            targets = every_group(groups, listing(None))
        else:
            targets = owned_targets(groups, self._topology(), partitions, listing)
        answers, _ = await fan_out(targets, deadline, "ListCollections", allow_partial=False)
        return answers

    async def list_all(self, deadline: Deadline) -> list[CollectionConfig]:
        """Every collection; one group answering is enough, as each holds them all."""
        if self._follower is not None:
            view = await self._catalog_view(deadline)
            return [from_entry(entry) for entry in view.live_entries()]
        answers, _ = await fan_out(
            every_group(self._groups(), _list_collections),
            deadline,
            "ListCollections",
            allow_partial=True,
        )
        if not answers:
            raise Unavailable("no shard group answered ListCollections")
        configs: dict[str, CollectionConfig] = {}
        for collections in answers:
            for collection in collections:
                configs.setdefault(collection.config.name, collection.config)
        return [configs[name] for name in sorted(configs)]

    async def delete(self, name: str, deadline: Deadline) -> None:
        limits.check_collection_name(name)
        if self._follower is not None:
            await self._delete_in_catalog(self._follower.store, name, deadline)
            return
        self.invalidate(name)
        replicas = self._every_replica()

        async def delete(client: ShardClient, timeout_s: float) -> bool:
            return await client.delete_collection(name, timeout_s)

        outcomes = await on_every_replica([r for _, r in replicas], delete, deadline)
        self.invalidate(name)
        deleted = False
        failures: list[str] = []
        for (group, replica), outcome in zip(replicas, outcomes, strict=True):
            if isinstance(outcome, NotFound):
                continue
            if isinstance(outcome, BaseException):
                failures.append(f"group {group} replica {replica.address}: {outcome}")
                continue
            deleted = deleted or outcome
        if failures:
            raise Unavailable(
                f"collection {name!r} was not deleted on every replica"
                f" ({'; '.join(failures)}); retry the delete"
            )
        if not deleted:
            raise not_found(name)

    def _every_replica(self) -> list[tuple[int, Replica]]:
        return [(group.group, replica) for group in self._groups() for replica in group.replicas]


async def _list_collections(client: ShardClient, timeout_s: float) -> list[ShardCollection]:
    return (await client.list_collections(timeout_s)).collections


def _listing_with(name: str, skip: Sequence[int] = ()) -> ShardCall[list[ShardCollection]]:
    """A replica's collections, as long as it could load `name`: DATA_LOSS (so
    another replica is asked) if it holds `name` but could not load it. The counts
    leave out the partitions `skip`."""

    async def listing(client: ShardClient, timeout_s: float) -> list[ShardCollection]:
        listed = await client.list_collections(timeout_s, skip)
        reason = listed.failed.get(name)
        if reason is not None:
            raise DataLoss(f"collection {name!r} could not be loaded on this replica: {reason}")
        return listed.collections

    return listing
