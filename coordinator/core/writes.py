"""Upserts and deletes: versioned writes to every replica of the owning groups.

Each document gets a fresh version from the hybrid logical clock and goes to
every replica of its group at once. A group's write succeeds as soon as the
requested consistency (ONE, QUORUM, ALL) has acknowledged; the calls to slower
replicas are left to finish in the background rather than cancelled, so those
replicas still get the write. Versions make that safe: a replica keeps the
newest version of each document, whatever order writes arrive in. A replica
that fails its part with UNAVAILABLE or a timeout gets it later as a hint
(see `hints`).

While a partition moves to another group, its documents go to both groups,
the target counted as a group of its own: the write is acknowledged only once
both meet the consistency, so a move's copy never has to find it later.

Each write is routed with the topology held when it starts (`routing`) and
carries that version. A replica whose group no longer owns a partition under
a newer version it knows refuses the write (PartitionMoved, with its topology):
the coordinator then takes the newer topology (or reads etcd's), routes the
refused part again and retries, a few times at most, so the caller never sees
a move that happened while its write was on the way.

The module is a little over the house's ~400 lines: routing, the retry after a
move, the per-group consistency count and the hand-off to hints are one path,
read best in one place.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from coordinator.core.background import Background
from coordinator.core.catalog import CollectionCatalog
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.deadline import Deadline
from coordinator.core.embedding import Embedding
from coordinator.core.hints import HintStore
from coordinator.core.model import DocumentInput, WriteConsistency, WriteResult
from coordinator.core.ports import (
    CollectionConfig,
    OpaqueFilter,
    WriteAck,
    WriteOp,
)
from coordinator.core.quorum_reads import matching_ids, newest_records
from coordinator.core.replicas import Replica, ReplicaGroup
from coordinator.core.routing import Routing
from coordinator.core.scroll_cursor import MAX_PAGE_SIZE
from coordinator.core.validation import check_documents, check_ids
from shoal import limits
from shoal.errors import (
    AlreadyExists,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PartitionMoved,
    ResourceExhausted,
    ShoalError,
    Unavailable,
)

log = logging.getLogger(__name__)

#: After a group's write has failed, how long to wait for the replicas still
#: answering before reporting how many acknowledged.
FAILURE_GRACE_S = 0.5

#: Errors that say the request itself is wrong, whichever replica answers.
CALLER_ERRORS = (NotFound, InvalidArgument, ResourceExhausted, AlreadyExists)

#: The writes for a page of matching ids of one group (each with a fresh version).
OpsForIds = Callable[[ReplicaGroup, Sequence[str]], Awaitable[list[WriteOp]]]

#: Routings of one write: the first, and retries after replicas refused it for
#: partitions that had moved under a newer topology.
MAX_ROUTINGS = 4


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    group: int
    replicas: int
    needed: int
    writes: int
    acks: list[WriteAck]
    failures: list[tuple[str, ShoalError]]  # (replica address, error)
    pending: int  # replicas that had not answered when the group was settled
    ops: list[WriteOp] = field(default_factory=list)  # what was written to the group

    @property
    def met(self) -> bool:
        return len(self.acks) >= self.needed

    @property
    def moved(self) -> list[PartitionMoved]:
        """Refusals: the group no longer owns a partition under a newer topology."""
        return [error for _, error in self.failures if isinstance(error, PartitionMoved)]


class Writer:
    def __init__(
        self,
        routing: Routing,
        catalog: CollectionCatalog,
        embedding: Embedding,
        clock: HybridLogicalClock,
        background: Background,
        hints: HintStore | None = None,
    ) -> None:
        self._routing = routing
        self._catalog = catalog
        self._embedding = embedding
        self._clock = clock
        self._background = background
        self._hints = hints

    async def upsert(
        self,
        collection: str,
        documents: Sequence[DocumentInput],
        consistency: WriteConsistency,
        deadline: Deadline,
    ) -> WriteResult:
        limits.check_collection_name(collection)
        config = await self._catalog.config(collection, deadline)
        to_embed = check_documents(config, documents)
        vectors = [
            b"" if document.vector is None else np.asarray(document.vector, "<f4").tobytes()
            for document in documents
        ]
        spans: dict[int, list[tuple[int, int]]] = {}
        if to_embed and config.chunking.enabled:
            chunked = await self._embedding.embed_chunks(
                [documents[position].text or "" for position in to_embed], config, deadline
            )
            for position, text in zip(to_embed, chunked, strict=True):
                vectors[position] = np.ascontiguousarray(text.vectors, "<f4").tobytes()
                spans[position] = text.spans
        elif to_embed:
            texts = [documents[position].text or "" for position in to_embed]
            embedded = await self._embedding.embed(
                texts, config.embedding_model, config.dimension, deadline
            )
            for row, position in enumerate(to_embed):
                vectors[position] = embedded[row].tobytes()
        versions = self._clock.next_many(len(documents))
        ops = [
            WriteOp(
                id=document.id,
                version=versions[position],
                vector_f32=vectors[position],
                text=document.text,
                metadata=document.metadata,
                chunks=spans.get(position, ()),
            )
            for position, document in enumerate(documents)
        ]
        return await self._write(collection, config, ops, consistency, deadline)

    async def delete(
        self,
        collection: str,
        ids: Sequence[str],
        consistency: WriteConsistency,
        deadline: Deadline,
        filter: OpaqueFilter | None = None,
    ) -> WriteResult:
        """Tombstones for `ids`, or for every document matching `filter` (not
        both); `deleted` says how many documents existed."""
        if filter is not None:
            if ids:
                raise InvalidArgument("give ids or a filter to delete by, not both")
            return await self.delete_matching(collection, filter, consistency, deadline)
        limits.check_collection_name(collection)
        check_ids(ids, "ids")
        config = await self._catalog.config(collection, deadline)
        return await self._write(collection, config, self._tombstones(ids), consistency, deadline)

    def _tombstones(self, ids: Sequence[str]) -> list[WriteOp]:
        """A tombstone of each id, each with a fresh version."""
        versions = self._clock.next_many(len(ids))
        return [
            WriteOp(id=doc_id, version=version, deleted=True)
            for doc_id, version in zip(ids, versions, strict=True)
        ]

    async def delete_matching(
        self,
        collection: str,
        filter: OpaqueFilter,
        consistency: WriteConsistency,
        deadline: Deadline,
    ) -> WriteResult:
        """Tombstones for every document whose newest record matches `filter`, group
        by group (see `quorum_reads`), each newer than the record it deletes."""

        async def tombstones(group: ReplicaGroup, ids: Sequence[str]) -> list[WriteOp]:
            needed = consistency.required(len(group))
            live = await newest_records(group, collection, ids, needed, deadline, filter)
            for record in live.values():
                self._clock.observe(record.version)
            return self._tombstones(sorted(live))

        return await self.write_matching(collection, filter, tombstones, consistency, deadline)

    async def write_matching(
        self,
        collection: str,
        filter: OpaqueFilter,
        make_ops: OpsForIds,
        consistency: WriteConsistency,
        deadline: Deadline,
        page_size: int = MAX_PAGE_SIZE,
    ) -> WriteResult:
        """The writes `make_ops` builds for the documents matching `filter`, group by
        group: each group lists its matching ids `page_size` at a time (merged from
        as many replicas as `consistency` needs, see `quorum_reads`) and writes them
        to all of its replicas."""
        limits.check_collection_name(collection)
        config = await self._catalog.config(collection, deadline)
        per_group = await asyncio.gather(
            *(
                self._write_matching_in(
                    group, collection, filter, make_ops, consistency, deadline, config, page_size
                )
                for group in self._routing.groups
            )
        )
        outcomes = [outcome for pages in per_group for outcome in pages]
        self._raise_unmet(collection, outcomes, deadline)
        if not outcomes:
            replicas = self._routing.topology.replication_factor
            return WriteResult(0, consistency.required(replicas), replicas)
        deleted = sum(max((a.deleted for a in outcome.acks), default=0) for outcome in outcomes)
        return WriteResult(
            written=sum(outcome.writes for outcome in outcomes),
            acknowledged=min(len(outcome.acks) for outcome in outcomes),
            replicas=max(outcome.replicas for outcome in outcomes),
            deleted=deleted,
            applied=sum(max((a.applied for a in outcome.acks), default=0) for outcome in outcomes),
        )

    async def _write_matching_in(
        self,
        group: ReplicaGroup,
        collection: str,
        filter: OpaqueFilter,
        make_ops: OpsForIds,
        consistency: WriteConsistency,
        deadline: Deadline,
        config: CollectionConfig,
        page_size: int = MAX_PAGE_SIZE,
    ) -> list[GroupOutcome]:
        outcomes: list[GroupOutcome] = []
        after_id = ""
        needed = consistency.required(len(group))
        while True:
            ids, after_id = await matching_ids(
                group, collection, filter, after_id, page_size, needed, deadline
            )
            ops = await make_ops(group, ids) if ids else []
            routed: list[GroupOutcome] = []
            if not ops:
                pass  # nothing of the page is left to write (an update's documents deleted)
            elif self._routing.topology.moves_in_flight:
                # A moving partition's documents are in two groups: route the
                # writes like any other, so both get them.
                routed = await self._route_and_write(collection, config, ops, consistency, deadline)
            else:
                routed = [
                    await self._write_group(
                        group, collection, ops, consistency, deadline, config.incarnation
                    )
                ]
            outcomes += routed
            if not all(outcome.met for outcome in routed) or not after_id:
                return outcomes

    async def write_ops(
        self,
        collection: str,
        config: CollectionConfig,
        ops: list[WriteOp],
        consistency: WriteConsistency,
        deadline: Deadline,
    ) -> WriteResult:
        """`ops` (versions already drawn) to the replicas of their groups."""
        return await self._write(collection, config, ops, consistency, deadline)

    async def _write(
        self,
        collection: str,
        config: CollectionConfig,
        ops: list[WriteOp],
        consistency: WriteConsistency,
        deadline: Deadline,
    ) -> WriteResult:
        """`ops` routed by partition to their groups, all groups at once; the part a
        group refused because its partitions moved is routed again and retried."""
        if not ops:
            replicas = self._routing.topology.replication_factor
            return WriteResult(0, consistency.required(replicas), replicas)
        outcomes = await self._route_and_write(collection, config, ops, consistency, deadline)
        self._raise_unmet(collection, outcomes, deadline)
        return WriteResult(
            written=len(ops),
            acknowledged=min(len(outcome.acks) for outcome in outcomes),
            replicas=max(outcome.replicas for outcome in outcomes),
            deleted=sum(
                max((ack.deleted for ack in outcome.acks), default=0) for outcome in outcomes
            ),
            applied=sum(
                max((ack.applied for ack in outcome.acks), default=0) for outcome in outcomes
            ),
        )

    async def _route_and_write(
        self,
        collection: str,
        config: CollectionConfig,
        ops: list[WriteOp],
        consistency: WriteConsistency,
        deadline: Deadline,
    ) -> list[GroupOutcome]:
        """Each group's outcome, after routing again what a group refused."""
        outcomes: list[GroupOutcome] = []
        todo = ops
        for routing in range(1, MAX_ROUTINGS + 1):
            table = self._routing.table
            by_group = table.topology.split_for_write((op.id for op in todo), config.partitions)
            routed = await asyncio.gather(
                *(
                    self._write_group(
                        table.groups[group],
                        collection,
                        [todo[position] for position in positions],
                        consistency,
                        deadline,
                        config.incarnation,
                        table.version,
                    )
                    for group, positions in sorted(by_group.items())
                )
            )
            refused = [outcome for outcome in routed if outcome.moved]
            outcomes += [outcome for outcome in routed if not outcome.moved]
            if not refused:
                break
            moved = refused[0].moved[0]
            learnt = await self._routing.learn(moved.topology)
            # The watch may have brought the newer topology while the write was on
            # its way: routing has moved on since, though learning changed nothing.
            newer = learnt or self._routing.table.version > table.version
            if routing == MAX_ROUTINGS or not newer:
                raise Unavailable(
                    f"shard group {refused[0].group} refused the write as routed with topology"
                    f" version {table.version} ({moved}), and no newer topology could be"
                    " learnt (etcd unreachable?); retry"
                )
            log.info(
                "write to %r: %s; routing again with topology version %d",
                collection,
                moved,
                self._routing.table.version,
            )
            todo = list({op.id: op for outcome in refused for op in outcome.ops}.values())
        return outcomes

    async def _write_group(
        self,
        group: ReplicaGroup,
        collection: str,
        ops: list[WriteOp],
        consistency: WriteConsistency,
        deadline: Deadline,
        incarnation: int = 0,
        topology_version: int = 0,
    ) -> GroupOutcome:
        """Write to every replica of the group; return once the consistency is met
        or can no longer be met, leaving the other calls running."""
        needed = consistency.required(len(group))
        timeout_s = deadline.check(f"writing to shard group {group.group}")
        pending = {
            asyncio.create_task(
                _write_replica(
                    replica,
                    collection,
                    ops,
                    timeout_s,
                    self._hints,
                    incarnation,
                    topology_version,
                )
            ): replica
            for replica in group.replicas
        }
        acks: list[WriteAck] = []
        failures: list[tuple[str, ShoalError]] = []

        def collect(done: set[asyncio.Task[WriteAck]]) -> None:
            for task in done:
                replica = pending.pop(task)
                error = task.exception()
                if error is None:
                    acks.append(task.result())
                elif isinstance(error, ShoalError):
                    failures.append((replica.address, error))
                else:
                    raise error

        while pending and len(acks) < needed and len(group) - len(failures) >= needed:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            collect(done)
        if pending and len(acks) < needed:
            # The write has failed. Give the replicas still answering a moment, so
            # the error can say how many did acknowledge.
            grace = min(FAILURE_GRACE_S, deadline.remaining())
            if grace > 0:
                done, _ = await asyncio.wait(pending, timeout=grace)
                collect(done)
        for task, replica in pending.items():
            self._background.adopt(task, f"write to {replica.address}")
        return GroupOutcome(
            group.group, len(group), needed, len(ops), acks, failures, len(pending), ops
        )

    def _raise_unmet(
        self, collection: str, outcomes: Sequence[GroupOutcome], deadline: Deadline
    ) -> None:
        unmet = [outcome for outcome in outcomes if not outcome.met]
        if not unmet:
            return
        for outcome in unmet:
            for _, error in outcome.failures:
                # An error every replica would give (unknown collection, bad input)
                # is the caller's to see as it is, not an availability problem.
                if isinstance(error, CALLER_ERRORS):
                    if isinstance(error, NotFound):
                        self._catalog.invalidate(collection)
                    raise error
        details = "; ".join(
            f"shard group {outcome.group}: {len(outcome.acks)} of {outcome.replicas} replicas"
            f" acknowledged, {outcome.needed} needed ("
            + ", ".join(f"{address}: {error}" for address, error in outcome.failures)
            + (f"; {outcome.pending} still answering" if outcome.pending else "")
            + ")"
            for outcome in unmet
        )
        if deadline.expired:
            raise DeadlineExceeded(
                f"deadline exceeded before the write was acknowledged: {details}"
            )
        raise Unavailable(f"write consistency not met: {details}")


async def _write_replica(
    replica: Replica,
    collection: str,
    ops: list[WriteOp],
    timeout_s: float,
    hints: HintStore | None,
    incarnation: int = 0,
    topology_version: int = 0,
) -> WriteAck:
    try:
        ack = await replica.client.write(
            collection,
            ops,
            timeout_s,
            incarnation=incarnation,
            topology_version=topology_version,
        )
    except (Unavailable, DeadlineExceeded) as error:
        # The hint first: whatever happens next, the replica gets the write later.
        if hints is not None:
            hints.add(replica.address, collection, ops, incarnation, topology_version)
        if isinstance(error, Unavailable):
            replica.failed()
        raise
    replica.succeeded()
    return ack
