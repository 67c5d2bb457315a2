"""Collections: creating, describing, listing and deleting them on every replica.

Every replica of every shard group holds every collection, so a create or a
delete goes to all of them, and any one of them can say what a collection's
settings are. The coordinator keeps no state of its own; it only caches configs
for a short while, since several coordinators may run and any of them may
delete or recreate a collection. A NotFound from a shard drops the cached entry.
"""

import dataclasses
import time
from collections.abc import Callable, Sequence

from coordinator.clients.contracts import CollectionConfig, ShardClient, ShardCollection
from coordinator.core.deadline import Deadline
from coordinator.core.embedding import Embedding
from coordinator.core.fanout import every_group, fan_out, on_every_replica
from coordinator.core.model import CollectionStats, CreateResult
from coordinator.core.replicas import Replica, ReplicaGroup
from shoal import limits
from shoal.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable

#: How long a collection's config is trusted before asking a shard again.
CONFIG_TTL_S = 5.0

DEFAULT_PARTITIONS = 64


def not_found(name: str) -> NotFound:
    return NotFound(f"collection {name!r} does not exist")


def with_defaults(config: CollectionConfig) -> CollectionConfig:
    """Zero fields take the defaults; the dimension is left to `CollectionCatalog`,
    and an unspecified metric is already cosine when it reaches core."""
    return dataclasses.replace(
        config,
        hnsw_m=config.hnsw_m or limits.DEFAULT_HNSW_M,
        hnsw_ef_construction=config.hnsw_ef_construction or limits.DEFAULT_HNSW_EF_CONSTRUCTION,
        hnsw_ef=config.hnsw_ef or limits.DEFAULT_HNSW_EF,
        partitions=config.partitions or DEFAULT_PARTITIONS,
        keyword=config.keyword.with_defaults(),
    )


def check_config(config: CollectionConfig) -> None:
    """Ranges of a config with its defaults filled in."""
    limits.check_collection_name(config.name)
    if not 1 <= config.dimension <= limits.MAX_DIMENSION:
        raise InvalidArgument(
            f"dimension is {config.dimension}; it must be between 1 and {limits.MAX_DIMENSION}"
        )
    if not 2 <= config.hnsw_m <= limits.MAX_HNSW_M:
        raise InvalidArgument(
            f"hnsw_m is {config.hnsw_m}; it must be between 2 and {limits.MAX_HNSW_M}"
        )
    if not 1 <= config.hnsw_ef_construction <= limits.MAX_EF:
        raise InvalidArgument(
            f"hnsw_ef_construction is {config.hnsw_ef_construction};"
            f" it must be between 1 and {limits.MAX_EF}"
        )
    if not 1 <= config.hnsw_ef <= limits.MAX_EF:
        raise InvalidArgument(
            f"hnsw_ef is {config.hnsw_ef}; it must be between 1 and {limits.MAX_EF}"
        )
    if not 1 <= config.partitions <= limits.MAX_PARTITIONS:
        raise InvalidArgument(
            f"partitions is {config.partitions}; it must be between 1 and {limits.MAX_PARTITIONS}"
        )
    config.keyword.validate()


class CollectionCatalog:
    def __init__(
        self,
        groups: Sequence[ReplicaGroup],
        embedding: Embedding,
        ttl: float = CONFIG_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._groups = list(groups)
        self._embedding = embedding
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[CollectionConfig, float]] = {}

    # -- the config cache ---------------------------------------------------

    async def config(self, name: str, deadline: Deadline) -> CollectionConfig:
        """A collection's config, from the cache when it is fresh."""
        cached = self._cache.get(name)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        limits.check_collection_name(name)
        collections = await self._list_from_any_replica(deadline)
        self._remember(collections)
        for collection in collections:
            if collection.config.name == name:
                return collection.config
        self.invalidate(name)
        raise not_found(name)

    def invalidate(self, name: str) -> None:
        self._cache.pop(name, None)

    def _remember(self, collections: Sequence[ShardCollection]) -> None:
        expires = self._clock() + self._ttl
        for collection in collections:
            self._cache[collection.config.name] = (collection.config, expires)

    async def _list_from_any_replica(self, deadline: Deadline) -> list[ShardCollection]:
        """Any replica knows every collection: ask groups in turn until one answers."""
        failures: list[str] = []
        for group in self._groups:
            try:
                return await group.read(_list_collections, deadline, "ListCollections")
            except Unavailable as error:
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

    async def get(self, name: str, deadline: Deadline) -> CollectionStats:
        """The config and live document count, summed over all groups."""
        limits.check_collection_name(name)
        answers, _ = await fan_out(
            every_group(self._groups, _list_collections),
            deadline,
            "ListCollections",
            allow_partial=False,
        )
        found = [c for collections in answers for c in collections if c.config.name == name]
        if not found:
            self.invalidate(name)
            raise not_found(name)
        self._remember(found[:1])
        return CollectionStats(found[0].config, sum(c.document_count for c in found))

    async def list_all(self, deadline: Deadline) -> list[CollectionConfig]:
        """Every collection; one group answering is enough, as each holds them all."""
        answers, _ = await fan_out(
            every_group(self._groups, _list_collections),
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
        return [(group.group, replica) for group in self._groups for replica in group.replicas]


async def _list_collections(client: ShardClient, timeout_s: float) -> list[ShardCollection]:
    return await client.list_collections(timeout_s)
