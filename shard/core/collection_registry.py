"""Every collection on this replica: loading them on start, create, delete, lookup, close."""

import json
import logging
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

from shard.core.collection import Collection, LoadInfo
from shard.core.config import CollectionConfig
from shard.core.documents import MetadataReader, TextReader, no_metadata, no_text
from shard.core.search_plan import Strategy
from shard.storage.document_store import StoreMemory
from shard.storage.layout import DataDir
from shoal.errors import AlreadyExists, DataLoss, NotFound, Unavailable
from shoal.limits import COLLECTION_NAME, check_collection_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadReport:
    collections: int
    documents: int
    seconds: float
    failed: list[str]


def _differences(stored: CollectionConfig, asked: CollectionConfig) -> str:
    return ", ".join(
        f"{f.name} {getattr(stored, f.name)} (asked {getattr(asked, f.name)})"
        for f in fields(CollectionConfig)
        if getattr(stored, f.name) != getattr(asked, f.name)
    )


def check_incarnation(held: CollectionConfig, incarnation: int) -> None:
    """Refuse a call for another incarnation than the one held: NotFound when it
    is older (the caller's was dropped), Unavailable when newer (this replica has
    yet to learn of it from the catalog; another replica or a retry will do)."""
    if held.incarnation == incarnation:
        return
    if held.incarnation > incarnation:
        raise NotFound(
            f"collection {held.name!r} incarnation {incarnation} was dropped;"
            f" the current one is {held.incarnation}"
        )
    raise Unavailable(
        f"collection {held.name!r}: this replica holds incarnation {held.incarnation}"
        f" and has yet to create {incarnation}; retry"
    )


class Collections:
    """Thread-safe. Calls fail with UNAVAILABLE until `load` has finished.

    With `follows_catalog`, a name not held here is UNAVAILABLE (not NOT_FOUND)
    until `catalog_applied` says the catalog's collections have been created
    here: a replica started on an empty data dir, or one that was down when a
    collection was created, would otherwise answer NOT_FOUND for a collection
    that exists, which a coordinator passes to the caller instead of asking
    another replica (and a peer catching up would take for "nothing to copy").
    """

    def __init__(
        self,
        data_dir: DataDir,
        sync_writes: bool = False,
        read_metadata: MetadataReader = no_metadata,
        filtered_search: Strategy = Strategy.AUTO,
        read_text: TextReader = no_text,
        store_memory: StoreMemory | None = None,
        follows_catalog: bool = False,
    ) -> None:
        self._dir = data_dir
        self._catalog_applied = not follows_catalog
        # One RocksDB budget (block cache) for every collection of this shard.
        self._store_memory = store_memory if store_memory is not None else StoreMemory()
        self._read_text = read_text
        self._sync_writes = sync_writes
        self._read_metadata = read_metadata
        self._filtered_search = filtered_search
        self._lock = threading.Lock()  # create, delete, close
        self._open: dict[str, Collection] = {}
        self._broken: dict[str, str] = {}  # collections that failed to load, and why
        self._ready = False

    def load(self) -> LoadReport:
        """Open every collection in the data directory and bring its index back."""
        started = time.monotonic()
        with self._lock:
            self._dir.prepare()
            self._dir.clean_leftovers()
            for name in self._dir.names():
                if not COLLECTION_NAME.fullmatch(name):
                    log.warning("ignoring %s: not a collection name", self._dir.path(name))
                    continue
                self._load_one(name)
            self._ready = True
        documents = sum(collection.count() for collection in self._open.values())
        return LoadReport(
            collections=len(self._open),
            documents=documents,
            seconds=time.monotonic() - started,
            failed=sorted(self._broken),
        )

    def _load_one(self, name: str) -> None:
        started = time.monotonic()
        try:
            collection, info = self._open_collection(self._dir.path(name))
        except Exception as error:
            log.exception("collection %r failed to load", name)
            self._broken[name] = str(error)
            return
        self._open[name] = collection
        details = {
            "event": "collection_loaded",
            "collection": name,
            "documents": info.documents,
            "index_source": info.source,
            "records_applied": info.applied,
            "load_seconds": round(time.monotonic() - started, 3),
        }
        log.info("%s", json.dumps(details))

    def _open_collection(self, path: Path) -> tuple[Collection, LoadInfo]:
        return Collection.open(
            path,
            self._sync_writes,
            self._read_metadata,
            self._filtered_search,
            self._read_text,
            self._store_memory,
        )

    def _require_ready(self) -> None:
        if not self._ready:
            raise Unavailable("shard is loading its collections; try another replica or retry")

    def get(self, name: str, incarnation: int = 0) -> Collection:
        """The collection; with `incarnation` (not 0), only that incarnation of it."""
        self._require_ready()
        check_collection_name(name)
        collection = self._open.get(name)
        if collection is not None:
            if incarnation:
                check_incarnation(collection.config, incarnation)
            return collection
        reason = self._broken.get(name)
        if reason is not None:
            raise DataLoss(f"collection {name!r} could not be loaded on this replica: {reason}")
        if not self._catalog_applied:
            raise Unavailable(
                f"collection {name!r} is not on this replica yet: it has not created the"
                " collections of the catalog (etcd) since it started; ask another replica"
                " or retry"
            )
        raise NotFound(f"collection {name!r} not found")

    def catalog_applied(self) -> None:
        """The catalog's collections have been followed here (a full reconcile; one
        that could not be created was logged): from now on a name not held here is
        unknown (NOT_FOUND)."""
        if not self._catalog_applied:
            log.info("the collections of the catalog are all on this replica")
        self._catalog_applied = True

    def create(self, config: CollectionConfig) -> tuple[CollectionConfig, bool]:
        """Create the collection; (its config, created). Same settings again is no error.

        With a catalog incarnation: an older incarnation held here was dropped in
        the catalog, so it is replaced; one made before the catalog (incarnation 0)
        with the same settings adopts the new incarnation and keeps its data; a
        request for an older incarnation than the one held is stale (NotFound).
        """
        self._require_ready()
        config = config.with_defaults()
        config.validate()
        with self._lock:
            existing = self._open.get(config.name)
            if existing is not None and config.incarnation:
                held = existing.config
                if held.incarnation == 0 and held.same_settings(config):
                    existing.adopt(config.incarnation)
                    log.info(
                        "collection %r adopted incarnation %d", config.name, config.incarnation
                    )
                    return existing.config, False
                if held.incarnation > config.incarnation:
                    raise NotFound(
                        f"collection {config.name!r} incarnation {config.incarnation} was"
                        f" dropped; this replica holds incarnation {held.incarnation}"
                    )
                if held.incarnation < config.incarnation:
                    log.info(
                        "collection %r: replacing incarnation %d by %d",
                        config.name,
                        held.incarnation,
                        config.incarnation,
                    )
                    self._remove_locked(config.name)
                    existing = None
            if existing is not None:
                if existing.config.same_settings(config):
                    return existing.config, False
                raise AlreadyExists(
                    f"collection {config.name!r} exists with other settings:"
                    f" {_differences(existing.config, config)}"
                )
            # A store that could not be loaded stays until it is deleted (by a drop,
            # here or in the catalog): its incarnation cannot be read, so it may be
            # the current one, and only an operator can say its data is lost.
            if config.name in self._broken:
                raise DataLoss(
                    f"collection {config.name!r} exists but could not be loaded on this replica"
                )
            path = self._dir.create(config.name, lambda tmp: Collection.initialize(tmp, config))
            collection, _ = self._open_collection(path)
            self._open[config.name] = collection
        log.info("created collection %r: %s", config.name, config)
        return config, True

    def delete(self, name: str, incarnation: int = 0) -> bool:
        """Remove the collection and its data; False if there was none. With
        `incarnation` (not 0), only an incarnation up to that one: a newer one
        held here is a create that came after the drop."""
        self._require_ready()
        check_collection_name(name)
        with self._lock:
            held = self._open.get(name)
            if incarnation and held is not None and held.config.incarnation > incarnation:
                return False
            return self._remove_locked(name)

    def _remove_locked(self, name: str) -> bool:
        collection = self._open.pop(name, None)
        broken = self._broken.pop(name, None)
        if collection is None and broken is None:
            return False
        if collection is not None:
            collection.close(checkpoint=False)
        self._dir.remove(name)
        log.info("deleted collection %r", name)
        return True

    def list_collections(self) -> list[tuple[CollectionConfig, int]]:
        """(config, live document count) of every collection, by name."""
        self._require_ready()
        result = []
        for name, collection in sorted(self._open.items()):
            try:
                result.append((collection.config, collection.count()))
            except NotFound:
                log.debug("collection %r deleted while listing", name)
        return result

    def chunk_counts(self) -> dict[str, int]:
        """Indexed vectors per open collection: chunks of chunked documents, 1 per other."""
        self._require_ready()
        return {name: collection.chunk_count() for name, collection in self._open.items()}

    def failed(self) -> dict[str, str]:
        """Collections on disk that could not be loaded, and why; calls on them
        answer DATA_LOSS until the collection is deleted."""
        return dict(self._broken)

    def open_collections(self) -> list[Collection]:
        return list(self._open.values())

    def close(self) -> None:
        """Checkpoint and close every collection (the server is stopping)."""
        with self._lock:
            self._ready = False
            for collection in self._open.values():
                collection.close(checkpoint=True)
            self._open.clear()
