"""Driving one partition move through its phases (see `shoal.moves`).

Every phase is a topology change (compare-and-swap on its version, a no-op
when the topology already shows it) or a copy by version (a no-op for what the
target already holds), so a driver that dies anywhere is replaced by one that
reads the record from the store and runs the phase it names again.

The copy reuses replication's calls: ListVersions of the partition on a source
replica and on each target replica, Fetch of what the target lacks or holds
older (tombstones included), and a Write of those records, with their own
versions, to the target replica, routed with topology version 0 (not routed
by partition: a replica never refuses it). The clean-up tombstones the source's
records one version above their own, on the source's replicas only: the source
owns the partition no more, so no copy ever reads them from there again.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from coordinator.core.catalog import CollectionCatalog
from coordinator.core.deadline import Deadline
from coordinator.core.ports import CollectionConfig, ShardClient, WriteOp
from coordinator.core.routing import Routing
from shoal.errors import DeadlineExceeded, FailedPrecondition, ShoalError, Unavailable
from shoal.moves import MoveRecord, abort_move, begin_move, finish_move, switch_move
from shoal.replication import VersionState, newer_than_mine
from shoal.topology import Topology

log = logging.getLogger(__name__)

#: Records fetched and written per call.
COPY_BATCH = 256
#: Per shard call of a move.
CALL_TIMEOUT_S = 30.0
#: Topology changes tried per step when another change got in between.
CHANGE_TRIES = 8
#: Before a phase relies on the fencing of the last topology change, every
#: replica of both groups that answers must report that version (etcd's watch
#: brings it within milliseconds); a step waits this long for them, then fails
#: (and is run again).
CONFIRM_S = 30.0
#: Between the asks while some replica is behind, and per ask.
CONFIRM_POLL_S = 0.05
CONFIRM_CALL_S = 5.0
#: A replica that cannot report its version (a shard from before the call) is
#: given this long to see the change instead.
SETTLE_S = 1.0


@dataclass
class CopyCount:
    records: int = 0
    bytes: int = 0

    def add(self, ops: Sequence[WriteOp]) -> None:
        self.records += len(ops)
        self.bytes += sum(len(op.id) + len(op.vector_f32) + len(op.text or "") + 64 for op in ops)


#: Called with a record whenever a phase made progress (the store keeps it).
Progress = Callable[[MoveRecord], Awaitable[None]]


class PartitionMover:
    def __init__(
        self,
        routing: Routing,
        catalog: CollectionCatalog,
        settle_s: float = SETTLE_S,
        confirm_s: float = CONFIRM_S,
    ) -> None:
        self._routing = routing
        self._catalog = catalog
        self._settle_s = settle_s
        self._confirm_s = confirm_s

    async def step(self, record: MoveRecord, progress: Progress) -> MoveRecord:
        """Run the phase `record` is in; the record of the next one."""
        p, source, target = record.partition, record.source, record.target
        if record.phase == "started":
            if record.cancel:
                return record.at("cancelled")
            await self._change(lambda t: begin_move(t, p, source, target))
            return record.at("copying", started_s=record.started_s or time.time())
        if record.phase == "copying":
            if record.cancel:
                # Writes routed with the mark went to the target too: once the mark
                # is gone and every write routed with it has landed, the copies go,
                # as the source's do after a switch (reads cut to owned partitions
                # only while a move is in flight, so copies left would count twice).
                await self._change(lambda t: abort_move(t, p))
                await self._confirm(record)
                cleaned = await self._clean(target, p)
                return record.at("cancelled", cleaned=record.cleaned + cleaned)
            await self._confirm(record)
            count = await self._copy(record, every_source=False, progress=progress)
            await self._change(lambda t: switch_move(t, p, source, target))
            return record.at(
                "switched",
                copied=record.copied + count.records,
                copied_bytes=record.copied_bytes + count.bytes,
            )
        if record.phase == "switched":
            await self._confirm(record)
            count = await self._copy(record, every_source=True, progress=progress)
            return record.at(
                "cleaning",
                copied=record.copied + count.records,
                copied_bytes=record.copied_bytes + count.bytes,
            )
        if record.phase == "cleaning":
            cleaned = await self._clean(source, p)
            await self._change(lambda t: finish_move(t, p))
            return record.at("done", cleaned=record.cleaned + cleaned)
        return record

    async def _change(self, change: Callable[[Topology], Topology]) -> Topology:
        """Apply `change` to the newest topology, again if another change got in first."""
        for _ in range(CHANGE_TRIES):
            current = self._routing.topology
            wanted = change(current)
            if wanted.same_layout(current):
                return current
            try:
                return await self._routing.update(current.version, wanted)
            except FailedPrecondition as error:
                if "expected version" not in str(error):
                    raise
                await self._routing.learn(None)
        raise Unavailable("the topology kept changing under a move; it will be tried again")

    async def _confirm(self, record: MoveRecord) -> None:
        """Wait until every replica of the source and target groups that answers checks
        routed writes against the current topology version (or a newer one): from then
        on each refuses a write routed with an older one, which the next phase relies on
        (before the copy: no write reaches the source alone; before the last copy and
        the clean-up: none reaches the source at all).

        Coordinators need no asking: one routing with an older version is refused by
        these replicas and routes again. A replica that does not answer is down or cut
        off; when it starts it takes no routed write before it has etcd's topology (see
        `shard.core.ownership`), which is at least this one."""
        # The newest version, not what this coordinator's watch has brought: one that
        # took over a move may not have seen the step before yet.
        await self._routing.learn(None)
        version = self._routing.topology.version
        replicas = self._replicas(record.source) + self._replicas(record.target)
        deadline = time.monotonic() + self._confirm_s
        while True:
            behind: list[str] = []
            unsure = False
            for replica in replicas:
                try:
                    seen = await replica.topology_version(CONFIRM_CALL_S)
                except (Unavailable, DeadlineExceeded):
                    continue
                except ShoalError as error:
                    log.info("%s cannot report its topology version: %s", replica.address, error)
                    unsure = True
                    continue
                if seen < version:
                    behind.append(f"{replica.address} (version {seen})")
            if not behind:
                if unsure:
                    await asyncio.sleep(self._settle_s)
                return
            if time.monotonic() >= deadline:
                raise Unavailable(
                    f"move of partition {record.partition}: replicas {', '.join(behind)} have"
                    f" not seen topology version {version} within {self._confirm_s:g}s; the move"
                    " waits for them"
                )
            await asyncio.sleep(CONFIRM_POLL_S)

    def _replicas(self, group: int) -> list[ShardClient]:
        topology = self._routing.topology
        if group >= len(topology.groups):
            raise FailedPrecondition(f"shard group {group} is not in the topology any more")
        clients = [self._routing.client(a) for a in topology.groups[group].replicas]
        return [client for client in clients if client is not None]

    async def _collections(self, partition: int) -> list[CollectionConfig]:
        configs = await self._catalog.list_all(Deadline.after(CALL_TIMEOUT_S))
        return [config for config in configs if partition < config.partitions]

    async def _copy(self, record: MoveRecord, every_source: bool, progress: Progress) -> CopyCount:
        """The partition's records from the source's replicas (one that answers, or
        every one that answers) to every target replica."""
        count = CopyCount()
        sources = self._replicas(record.source)
        targets = self._replicas(record.target)
        for config in await self._collections(record.partition):
            copied_from = 0
            errors: list[str] = []
            for source in sources:
                try:
                    await self._copy_collection(config, record.partition, source, targets, count)
                except (Unavailable, DeadlineExceeded) as error:
                    errors.append(f"{source.address}: {error}")
                    continue
                copied_from += 1
                await progress(
                    record.at(
                        record.phase,
                        copied=record.copied + count.records,
                        copied_bytes=record.copied_bytes + count.bytes,
                    )
                )
                if not every_source:
                    break
            if not copied_from:
                raise Unavailable(
                    f"no replica of source group {record.source} could be copied from: "
                    + "; ".join(errors)
                )
        return count

    async def _copy_collection(
        self,
        config: CollectionConfig,
        partition: int,
        source: ShardClient,
        targets: Sequence[ShardClient],
        count: CopyCount,
    ) -> None:
        name = config.name
        theirs = await source.list_versions(name, [partition], CALL_TIMEOUT_S)
        for target in targets:
            # A target replica that cannot be reached fails the phase: it is run again.
            mine = await target.list_versions(name, [partition], CALL_TIMEOUT_S)
            missing = newer_than_mine(mine, theirs)
            hidden = frozenset(_hidden_by_clean_up(mine, theirs))
            wanted = sorted({*missing, *hidden})
            for start in range(0, len(wanted), COPY_BATCH):
                ops = await source.fetch(name, wanted[start : start + COPY_BATCH], CALL_TIMEOUT_S)
                ops = [replace(op, version=op.version + 2) if op.id in hidden else op for op in ops]
                if ops:
                    await target.write(name, ops, CALL_TIMEOUT_S, incarnation=config.incarnation)
                    count.add(ops)

    async def _clean(self, group: int, partition: int) -> int:
        """Tombstone the partition's records on every replica of `group` (all must
        answer), the same tombstones everywhere, so the replicas stay equal."""
        cleaned = 0
        for config in await self._collections(partition):
            sources = self._replicas(group)
            held: dict[str, VersionState] = {}
            for source in sources:
                listed = await source.list_versions(config.name, [partition], CALL_TIMEOUT_S)
                for doc_id, state in listed.items():
                    if doc_id not in held or state > held[doc_id]:
                        held[doc_id] = state
            ops = _tombstones(held)
            for source in sources:
                for start in range(0, len(ops), COPY_BATCH):
                    await source.write(
                        config.name,
                        ops[start : start + COPY_BATCH],
                        CALL_TIMEOUT_S,
                        incarnation=config.incarnation,
                    )
            cleaned += sum(not state.deleted for state in held.values())
        return cleaned


def _hidden_by_clean_up(
    mine: dict[str, VersionState], theirs: dict[str, VersionState]
) -> list[str]:
    """Ids the target holds a clean-up tombstone of (one version above the source's
    live record: this group gave the partition away before and has not purged
    them yet). The source's record goes over it two versions up: still older than
    any write made since, which carries a newer clock."""
    return [
        doc_id
        for doc_id, state in theirs.items()
        if not state.deleted
        and (held := mine.get(doc_id)) is not None
        and held.deleted
        and held.version == state.version + 1
    ]


def _tombstones(held: dict[str, VersionState]) -> list[WriteOp]:
    """A tombstone above each live record; a deleted one as it is (for replicas
    that lack it)."""
    return [
        WriteOp(id=doc_id, version=state.version + (0 if state.deleted else 1), deleted=True)
        for doc_id, state in sorted(held.items())
    ]


async def drive(
    mover: PartitionMover,
    record: MoveRecord,
    progress: Progress,
    fresh: Callable[[MoveRecord], Awaitable[MoveRecord]],
) -> MoveRecord:
    """Run `record` to its end; `fresh` reads it again (a cancel set meanwhile)."""
    while not record.finished:
        record = await fresh(record)
        if record.finished:
            break
        try:
            record = await mover.step(record, progress)
        except ShoalError as error:
            log.warning("move of partition %d: %s", record.partition, error)
            await progress(record.at(record.phase, error=str(error)))
            raise
        await progress(record.at(record.phase, error=""))
        log.info(
            "move %s of partition %d (group %d -> %d): %s",
            record.id,
            record.partition,
            record.source,
            record.target,
            record.phase,
        )
    return record
