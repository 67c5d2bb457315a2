"""Snapshots: one consistent cut of one collection or all, and restore into any cluster.

Taking one (see docs/snapshots.md for why it is exact):

1. The cut C is an HLC version `LEAD_MS` ahead of the wall clock, so every
   write already stored is older than C.
2. Every reachable replica of every group pins C for every collection: from then
   on a write newer than C keeps the record it replaces. A replica holding a
   version newer than C (a coordinator's clock ahead by more than the lead)
   refuses, and the snapshot starts again with a later cut. Each group needs
   `replicas_to_read(R)` of its R replicas pinned: enough that every set of
   replicas a QUORUM write reached holds one of them.
3. Once the wall clock is `SETTLE_MS` past C, writes stamped at or before C have
   landed or timed out; each replica seals the pin (refusing any later write at
   or before C) and streams its records as of C in id order.
4. The streams of every pinned replica of every group are merged by id and
   the newest version of each id wins (so a write a quorum acknowledged is
   there even if one replica missed it, and documents of a partition moved to
   another group are found where they are); tombstones are dropped, and each
   live record goes to the data file of its partition.
5. The files go to the store, the manifest (settings, partitions, cut, sha256
   of every file, Shoal version, time) last: a snapshot without one is incomplete.

Restore reads the manifest, checks every file's size and sha256 (DATA_LOSS
naming the first damaged file, before anything is created), creates each
collection (under a new name if asked), and streams each partition's records to
every replica of the group that owns the partition in this cluster's topology,
in batches the shards apply with one index insert each. If loading fails the
collection is deleted again: nothing is left half restored.
"""

import asyncio
import dataclasses
import heapq
import itertools
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from coordinator.core.catalog import CollectionCatalog
from coordinator.core.clock import MS_SHIFT, wall_clock_ms
from coordinator.core.deadline import Deadline
from coordinator.core.model import WriteConsistency
from coordinator.core.ports import CollectionConfig
from coordinator.core.snapshot_files import (
    CollectionEntry,
    DataFile,
    DataFiles,
    Manifest,
    check_file,
    check_snapshot_name,
    collection_entry,
    read_records,
)
from coordinator.core.snapshot_ports import SnapshotRecord, SnapshotShardClient, SnapshotStore
from shoal.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ShoalError,
    Unavailable,
)
from shoal.partitioning import partition_of
from shoal.topology import Topology

log = logging.getLogger(__name__)

#: How far ahead of the wall clock the cut lies: time to pin every replica.
LEAD_MS = 500
#: How long after the cut the scans start: writes stamped before it land meanwhile.
SETTLE_MS = 1000
#: Attempts at a cut when replicas hold versions newer than the one taken.
CUT_ATTEMPTS = 3
#: Timeout of one pin, release or catalog call.
CALL_TIMEOUT_S = 30.0
#: Records per restore batch (one shard write, one hnswlib add_items).
RESTORE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Progress:
    phase: str
    documents: int = 0
    total_documents: int = 0
    bytes: int = 0
    done: bool = False
    manifest: Manifest | None = None


@dataclass(frozen=True, slots=True)
class SnapshotTiming:
    lead_ms: int = LEAD_MS
    settle_ms: int = SETTLE_MS


def replicas_to_read(replicas: int) -> int:
    """Replicas of a group a snapshot must read so that every QUORUM write is on one
    of them: R - quorum + 1."""
    return replicas - WriteConsistency.QUORUM.required(replicas) + 1


def cut_at(ms: int) -> int:
    """The last HLC version of millisecond `ms`."""
    return (ms << MS_SHIFT) | ((1 << MS_SHIFT) - 1)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _shoal_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shoal")
    except PackageNotFoundError:
        return "unknown"


@contextmanager
def _staging(root: Path | None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="shoal-snapshot-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class SnapshotService:
    def __init__(
        self,
        topology: Callable[[], Topology],
        catalog: CollectionCatalog,
        shard: Callable[[str], SnapshotShardClient],
        store: SnapshotStore | None,
        staging: Path | None = None,
        timing: SnapshotTiming = SnapshotTiming(),
    ) -> None:
        self._topology = topology
        self._catalog = catalog
        self._shard = shard
        self._store = store
        self._staging = staging
        self._timing = timing

    def _require_store(self) -> SnapshotStore:
        if self._store is None:
            raise FailedPrecondition(
                "this coordinator keeps no snapshots: start it with --snapshot-location"
                " (a directory or s3://bucket/prefix)"
            )
        return self._store

    # -- list, delete ------------------------------------------------------------

    async def list_snapshots(self) -> list[Manifest]:
        store = self._require_store()
        names = await asyncio.to_thread(store.list_snapshots)
        manifests = []
        for name in sorted(names):
            data = await asyncio.to_thread(store.get_manifest, name)
            if data is not None:
                manifests.append(Manifest.from_json(name, data))
        return manifests

    async def delete(self, name: str) -> bool:
        check_snapshot_name(name)
        store = self._require_store()
        return await asyncio.to_thread(store.delete, name)

    # -- create ------------------------------------------------------------------

    async def create(self, name: str, collections: Sequence[str]) -> AsyncIterator[Progress]:
        store = self._require_store()
        name = name or "snapshot-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        check_snapshot_name(name)
        if await asyncio.to_thread(store.get_manifest, name) is not None:
            raise AlreadyExists(f"snapshot {name!r} exists; delete it or take another name")
        deadline = Deadline.after(CALL_TIMEOUT_S)
        configs = await self._configs(collections, deadline)
        topology = self._topology()
        yield Progress("pinning")
        cut, pinned = await self._pin_all(topology, configs)
        try:
            with _staging(self._staging) as staging:
                entries: list[CollectionEntry] = []
                total = 0
                total_bytes = 0
                for index, config in enumerate(configs):
                    files = DataFiles(staging, index)
                    documents = 0
                    # Every pinned replica of every group in one merge: the newest
                    # version of each id wherever it lives (a partition moved to
                    # another group keeps its older documents where they were).
                    replicas = [
                        client
                        for group in topology.groups
                        for client in pinned[(config.name, group.group)]
                    ]
                    async for record in self._merged(config, cut, replicas):
                        files.append(partition_of(record.id, config.partitions), record.data)
                        documents += 1
                        total_bytes += len(record.data) + 4
                        if documents % RESTORE_BATCH == 0:
                            yield Progress("copying", total + documents, 0, total_bytes)
                    entries.append(collection_entry(config, documents, files.close()))
                    total += documents
                    yield Progress("copying", total, 0, total_bytes)
                read_from = {
                    str(group.group): sorted(
                        {c.address for (_, g), cs in pinned.items() if g == group.group for c in cs}
                    )
                    for group in topology.groups
                }
                await self._release_all(cut, configs, pinned)
                pinned = {}
                manifest = Manifest(
                    name=name,
                    cut=cut,
                    created_at=_now_iso(),
                    shoal_version=_shoal_version(),
                    collections=entries,
                    read_from=read_from,
                )
                uploaded = 0
                for entry in entries:
                    for data_file in entry.files:
                        await asyncio.to_thread(
                            store.put_file, name, data_file.name, staging / data_file.name
                        )
                        uploaded += data_file.records
                        yield Progress("uploading", uploaded, total, total_bytes)
                await asyncio.to_thread(store.put_manifest, name, manifest.to_json())
        finally:
            if pinned:
                await self._release_all(cut, configs, pinned)
        yield Progress("done", total, total, total_bytes, done=True, manifest=manifest)

    async def _configs(self, names: Sequence[str], deadline: Deadline) -> list[CollectionConfig]:
        if not names:
            configs = await self._catalog.list_all(deadline)
            if not configs:
                raise NotFound("there are no collections to snapshot")
            return sorted(configs, key=lambda c: c.name)
        if len(set(names)) != len(names):
            raise InvalidArgument("a collection is named twice")
        return [await self._catalog.config(n, deadline) for n in names]

    async def _pin_all(
        self, topology: Topology, configs: Sequence[CollectionConfig]
    ) -> tuple[int, dict[tuple[str, int], list[SnapshotShardClient]]]:
        """Pin a cut on enough of every group's replicas (`replicas_to_read`), for
        every collection."""
        newest = 0
        for _ in range(CUT_ATTEMPTS):
            cut = cut_at(max(wall_clock_ms(), newest >> MS_SHIFT) + self._timing.lead_ms)
            pinned: dict[tuple[str, int], list[SnapshotShardClient]] = {}
            ahead = 0
            try:
                for config in configs:
                    for group in topology.groups:
                        clients = [self._shard(a) for a in group.replicas]
                        outcomes = await asyncio.gather(
                            *(
                                c.pin_snapshot(config.name, config.incarnation, cut, CALL_TIMEOUT_S)
                                for c in clients
                            ),
                            return_exceptions=True,
                        )
                        ok = []
                        failures = []
                        for client, outcome in zip(clients, outcomes, strict=True):
                            if isinstance(outcome, FailedPrecondition):
                                ahead = max(ahead, _version_in(str(outcome)))
                                failures.append(f"{client.address}: {outcome}")
                            elif isinstance(outcome, BaseException):
                                failures.append(f"{client.address}: {outcome}")
                            else:
                                ok.append(client)
                        pinned[(config.name, group.group)] = ok
                        if ahead:
                            raise _CutTooEarly(ahead)
                        needed = replicas_to_read(len(clients))
                        if len(ok) < needed:
                            raise Unavailable(
                                f"snapshot of {config.name!r}: only {len(ok)} of the"
                                f" {len(clients)} replicas of group {group.group} could be"
                                f" pinned ({'; '.join(failures)}); {needed} must be"
                            )
            except _CutTooEarly as early:
                await self._release_all(cut, configs, pinned)
                newest = max(newest, early.version)
                continue
            except BaseException:
                await self._release_all(cut, configs, pinned)
                raise
            settle_until = (cut >> MS_SHIFT) + self._timing.settle_ms
            # One wait for a point in time (no condition to wake on sooner).
            await asyncio.sleep(max(0, settle_until - wall_clock_ms()) / 1000)
            return cut, pinned
        raise Unavailable(
            f"replicas kept holding versions newer than the cut after {CUT_ATTEMPTS} attempts;"
            " a coordinator's clock runs ahead"
        )

    async def _release_all(
        self,
        cut: int,
        configs: Sequence[CollectionConfig],
        pinned: dict[tuple[str, int], list[SnapshotShardClient]],
    ) -> None:
        by_name = {c.name: c for c in configs}
        calls = [
            client.release_snapshot(name, by_name[name].incarnation, cut, CALL_TIMEOUT_S)
            for (name, _), clients in pinned.items()
            for client in clients
        ]
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(outcome, BaseException):
                # The pin expires by itself (its ttl); only memory is held meanwhile.
                log.warning("releasing a snapshot pin failed: %s", outcome)

    async def _merged(
        self, config: CollectionConfig, cut: int, replicas: Sequence[SnapshotShardClient]
    ) -> AsyncIterator[SnapshotRecord]:
        """The live records as of the cut, newest version per id across `replicas`."""
        streams = [
            replica.scan_snapshot(config.name, config.incarnation, cut) for replica in replicas
        ]
        heap: list[tuple[str, int, int, SnapshotRecord]] = []
        pages: list[Iterator[SnapshotRecord]] = [iter(()) for _ in streams]

        async def advance(index: int) -> None:
            while True:
                record = next(pages[index], None)
                if record is not None:
                    heapq.heappush(heap, (record.id, -record.version, index, record))
                    return
                try:
                    page = await anext(streams[index])
                except StopAsyncIteration:
                    return
                pages[index] = iter(page)

        try:
            await asyncio.gather(*(advance(i) for i in range(len(streams))))
            while heap:
                doc_id, _, index, best = heapq.heappop(heap)
                await advance(index)
                while heap and heap[0][0] == doc_id:
                    _, _, other, _ = heapq.heappop(heap)
                    await advance(other)
                if best.version > cut:
                    raise ShoalError(f"replica sent version {best.version} after cut {cut}")
                if not best.deleted:
                    yield best
        finally:
            for stream in streams:
                close = getattr(stream, "aclose", None)
                if close is not None:
                    await close()

    # -- restore -----------------------------------------------------------------

    async def restore(
        self, name: str, collections: Sequence[str], new_name: str
    ) -> AsyncIterator[Progress]:
        check_snapshot_name(name)
        store = self._require_store()
        data = await asyncio.to_thread(store.get_manifest, name)
        if data is None:
            raise NotFound(f"snapshot {name!r} does not exist in {store.location}")
        manifest = Manifest.from_json(name, data)
        entries = _chosen(manifest, collections, new_name)
        deadline = Deadline.after(CALL_TIMEOUT_S)
        for target, _ in entries:
            await self._require_absent(target, deadline)
        total = sum(entry.documents for _, entry in entries)
        with _staging(self._staging) as staging:
            yield Progress("verifying", 0, total)
            local: dict[str, Path] = {}
            checked = 0
            for _, entry in entries:
                for data_file in entry.files:
                    path = await asyncio.to_thread(store.get_file, name, data_file.name, staging)
                    await asyncio.to_thread(check_file, name, data_file, path)
                    local[data_file.name] = path
                    checked += data_file.records
                    yield Progress("verifying", checked, total)
            loaded = 0
            for target, entry in entries:
                config = dataclasses.replace(entry.config, name=target, incarnation=0)
                created = await self._catalog.create(config, Deadline.after(CALL_TIMEOUT_S))
                if not created.created:
                    raise AlreadyExists(f"collection {target!r} was created meanwhile")
                try:
                    async for count in self._load(name, created.config, entry, local):
                        loaded += count
                        yield Progress("loading", loaded, total)
                except BaseException:
                    log.warning("restore of %r failed; deleting the half-loaded collection", target)
                    await self._catalog.delete(target, Deadline.after(CALL_TIMEOUT_S))
                    raise
        yield Progress("done", loaded, total, done=True, manifest=manifest)

    async def _require_absent(self, name: str, deadline: Deadline) -> None:
        try:
            await self._catalog.config(name, deadline)
        except NotFound:
            return
        raise AlreadyExists(
            f"collection {name!r} exists; delete it first or restore under another name"
        )

    async def _load(
        self,
        snapshot: str,
        config: CollectionConfig,
        entry: CollectionEntry,
        local: dict[str, Path],
    ) -> AsyncIterator[int]:
        """Every partition file to every replica of the group owning it here."""
        topology = self._topology()
        by_group: dict[int, list[DataFile]] = {}
        for data_file in entry.files:
            by_group.setdefault(topology.group_of_partition(data_file.partition), []).append(
                data_file
            )
        progress: asyncio.Queue[int] = asyncio.Queue()

        async def batches(files: list[DataFile], report: bool) -> AsyncIterator[Sequence[bytes]]:
            for data_file in files:
                path = local[data_file.name]
                reader = read_records(snapshot, data_file.name, path)
                while True:
                    batch = await asyncio.to_thread(_take, reader, RESTORE_BATCH)
                    if not batch:
                        break
                    if report:
                        progress.put_nowait(len(batch))
                    yield batch

        loads: list[asyncio.Task[int]] = []
        for group_id, files in by_group.items():
            group = topology.groups[group_id]
            for position, address in enumerate(group.replicas):
                client = self._shard(address)
                stream = batches(files, report=position == 0)
                loads.append(asyncio.create_task(client.bulk_load(config, stream)))
        task: asyncio.Future[list[int]] = asyncio.gather(*loads)
        try:
            while not task.done():
                getter: asyncio.Future[int] = asyncio.ensure_future(progress.get())
                waiting: list[asyncio.Future[object]] = [task, getter]  # type: ignore[list-item]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            await task
            while not progress.empty():
                yield progress.get_nowait()
        finally:
            # One load failed (or the caller went away): stop the others before the
            # collection is deleted under them.
            for load in loads:
                load.cancel()
            await asyncio.gather(*loads, return_exceptions=True)


class _CutTooEarly(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(f"a replica holds version {version}")
        self.version = version


def _version_in(message: str) -> int:
    """The version a replica's refusal names ("holds version N, newer than ...")."""
    words = message.split()
    for before, word in itertools.pairwise(words):
        if before == "version" and word.rstrip(",").isdigit():
            return int(word.rstrip(","))
    return 0


def _take(reader: Iterator[bytes], count: int) -> list[bytes]:
    batch = []
    for data in reader:
        batch.append(data)
        if len(batch) >= count:
            break
    return batch


def _chosen(
    manifest: Manifest, names: Sequence[str], new_name: str
) -> list[tuple[str, CollectionEntry]]:
    """(target name, entry) for each collection to restore."""
    by_name = {entry.name: entry for entry in manifest.collections}
    if new_name and len(names) != 1:
        raise InvalidArgument("a new name needs exactly one collection to restore")
    for name in names:
        if name not in by_name:
            raise NotFound(
                f"snapshot {manifest.name!r} holds no collection {name!r};"
                f" it holds {', '.join(sorted(by_name)) or 'none'}"
            )
    chosen = [by_name[n] for n in names] if names else manifest.collections
    return [(new_name or entry.name, entry) for entry in chosen]
