"""Hinted handoff: writes a replica missed, kept here and replayed once it takes writes again.

When a write to one replica fails with UNAVAILABLE or runs out of time, the
coordinator keeps that replica's part of the write (the versioned ShardWrites,
exactly as sent) and a background task replays it once the replica answers,
trying again with a growing backoff meanwhile. Versions make replays safe: a
replica keeps the newest version of each id whatever order writes reach it in,
and a write it already has changes nothing.

A hint is kept even when the request as a whole failed (too few replicas
acknowledged): some replicas may hold the write already, and the point is that
replicas end up agreeing. A write reported as failed may therefore still become
visible later, as with any write whose outcome was not acknowledged.

Hints live in this coordinator's memory only, bounded per replica in writes and
in age. What they cannot cover (a full queue, hints older than the age limit, a
coordinator that crashes or restarts, a write cut off with the coordinator) is
left to anti-entropy: each shard compares partition digests with its peers and
copies what it lacks, and VerifyReplicas repairs on demand. Hints only make the
common case (a replica down for seconds or minutes) converge without a scan.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coordinator.core.backoff import Backoff
from coordinator.core.observer import NO_REPLICATION_OBSERVER, ReplicationObserver
from coordinator.core.ports import ShardClient, WriteOp
from shoal.errors import DeadlineExceeded, ShoalError, Unavailable
from shoal.runtime.periodic import PeriodicTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HintLimits:
    #: Writes (document versions) kept per replica; beyond it new hints are dropped.
    max_writes: int = 20_000
    #: Hints older than this are dropped unreplayed. Keep it well below the shards'
    #: tombstone grace period, so a replayed write never outlives a purged delete.
    max_age_s: float = 3 * 3600.0
    #: Replay retries per replica back off from here, doubling, up to `max_backoff_s`.
    first_backoff_s: float = 0.25
    max_backoff_s: float = 5.0
    #: How often the replay task looks for due hints, and each replay's deadline.
    tick_s: float = 0.25
    replay_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Hint:
    collection: str
    ops: tuple[WriteOp, ...]
    created: float
    #: The collection's catalog incarnation when written: a replay reaches only that
    #: incarnation, never a collection created again under the same name.
    incarnation: int = 0
    #: The topology version the write was routed with: a replica whose group has
    #: since lost the partition refuses the replay, and the hint is dropped.
    topology_version: int = 0


@dataclass
class _Queue:
    backoff: Backoff
    hints: deque[Hint] = field(default_factory=deque)
    writes: int = 0
    retry_at: float = 0.0


class HintStore:
    """Per-replica queues of missed writes, oldest first. Used from one event loop."""

    def __init__(
        self,
        limits: HintLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        observer: ReplicationObserver = NO_REPLICATION_OBSERVER,
    ) -> None:
        self.limits = limits or HintLimits()
        self._clock = clock
        self._observer = observer
        self._queues: dict[str, _Queue] = {}

    def add(
        self,
        replica: str,
        collection: str,
        ops: Sequence[WriteOp],
        incarnation: int = 0,
        topology_version: int = 0,
    ) -> bool:
        """Keep `ops` for `replica`; False (and dropped) when its queue is full."""
        if not ops:
            return True
        queue = self._queues.get(replica)
        if queue is None:
            backoff = Backoff(self.limits.first_backoff_s, self.limits.max_backoff_s)
            queue = self._queues[replica] = _Queue(backoff)
        if queue.writes + len(ops) > self.limits.max_writes:
            log.warning(
                "hints for %s are full (%d writes); %d writes to %r left to anti-entropy",
                replica,
                queue.writes,
                len(ops),
                collection,
            )
            self._observer.record_hints(replica, "dropped", len(ops))
            return False
        queue.hints.append(
            Hint(collection, tuple(ops), self._clock(), incarnation, topology_version)
        )
        queue.writes += len(ops)
        self._observer.record_hints(replica, "queued", len(ops))
        return True

    def pending(self, replica: str | None = None) -> int:
        """Writes waiting for `replica`, or for every replica."""
        if replica is not None:
            queue = self._queues.get(replica)
            return 0 if queue is None else queue.writes
        return sum(queue.writes for queue in self._queues.values())

    def due(self) -> list[str]:
        """Replicas holding hints whose backoff has passed."""
        now = self._clock()
        return [
            replica
            for replica, queue in self._queues.items()
            if queue.hints and queue.retry_at <= now
        ]

    def oldest(self, replica: str) -> Hint | None:
        """The next hint to replay to `replica`, dropping those past the age limit."""
        queue = self._queues.get(replica)
        if queue is None:
            return None
        expired_before = self._clock() - self.limits.max_age_s
        while queue.hints and queue.hints[0].created < expired_before:
            self._remove(replica, queue, "dropped")
        return queue.hints[0] if queue.hints else None

    def replayed(self, replica: str) -> None:
        """The oldest hint reached the replica."""
        queue = self._queues[replica]
        self._remove(replica, queue, "replayed")
        queue.backoff.reset()
        queue.retry_at = 0.0

    def discard(self, replica: str) -> None:
        """The oldest hint can never be applied (its collection is gone)."""
        self._remove(replica, self._queues[replica], "dropped")

    def failed(self, replica: str) -> float:
        """The replica did not take the oldest hint; returns the backoff before the next try."""
        queue = self._queues[replica]
        backoff = queue.backoff.failed()
        queue.retry_at = self._clock() + backoff
        return backoff

    def _remove(self, replica: str, queue: _Queue, outcome: str) -> None:
        hint = queue.hints.popleft()
        queue.writes -= len(hint.ops)
        self._observer.record_hints(replica, outcome, len(hint.ops))
        if not queue.hints:
            del self._queues[replica]


class HintReplayer:
    """Replays hints in the background: per replica in order, backing off while it fails."""

    def __init__(self, store: HintStore, shards: Callable[[str], ShardClient | None]) -> None:
        """`shards`: the client of a replica address (None: unknown, hints dropped)."""
        self._store = store
        self._shards = shards
        self._periodic = PeriodicTask("hint replay", self.replay_due, store.limits.tick_s)

    async def replay_due(self) -> int:
        """Replay what is due now; how many writes reached their replicas."""
        results = await asyncio.gather(*(self._replay(r) for r in self._store.due()))
        return sum(results)

    async def _replay(self, replica: str) -> int:
        client = self._shards(replica)
        replayed = 0
        while (hint := self._store.oldest(replica)) is not None:
            if client is None:
                self._store.discard(replica)
                continue
            try:
                await client.write(
                    hint.collection,
                    hint.ops,
                    self._store.limits.replay_timeout_s,
                    incarnation=hint.incarnation,
                    topology_version=hint.topology_version,
                )
            except (Unavailable, DeadlineExceeded) as error:
                backoff = self._store.failed(replica)
                log.debug("hint replay to %s failed (%s); retry in %.2fs", replica, error, backoff)
                return replayed
            except ShoalError as error:
                # NotFound (the collection was deleted), InvalidArgument, PartitionMoved
                # (the write belongs to another group now): no retry here helps.
                log.warning("dropping a hint for %s: %s", replica, error)
                self._store.discard(replica)
                continue
            self._store.replayed(replica)
            replayed += len(hint.ops)
        if replayed:
            log.info("replayed %d hinted writes to %s", replayed, replica)
        return replayed

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
