"""Runs the moves the store holds, one after another, in whichever coordinator
holds the move lock.

Any coordinator may be asked to start moves: it only writes their records to
the store. Every coordinator runs this loop; the one that holds the lock (an
etcd key under a lease, so it passes on within seconds of a SIGKILL) drives the
oldest unfinished move to its end, then the next. A coordinator that takes the
lock over resumes each move at the phase its record names.
"""

import asyncio
import logging
import time
import uuid

from coordinator.core.mover import PartitionMover, drive
from shoal.errors import NotFound, ShoalError
from shoal.loop_task import LoopTask
from shoal.moves import MoveLock, MoveRecord, MoveStore, PlannedMove

log = logging.getLogger(__name__)

#: How often a coordinator looks for moves to drive (and for the lock).
POLL_S = 0.5
#: After a failed step, how long before it is tried again.
RETRY_S = 1.0


class MoveRunner:
    def __init__(
        self,
        mover: PartitionMover,
        store: MoveStore,
        lock: MoveLock,
        poll_s: float = POLL_S,
        retry_s: float = RETRY_S,
    ) -> None:
        self._mover = mover
        self.store = store
        self._lock = lock
        self._poll_s = poll_s
        self._retry_s = retry_s
        self._loop = LoopTask("move runner", self._run)

    async def submit(self, moves: list[PlannedMove]) -> list[MoveRecord]:
        """Store `moves` to be run in order; their records."""
        records = []
        # Ids sort in the order the moves were asked for: the store lists them so.
        plan = f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"
        for position, move in enumerate(moves):
            record = MoveRecord(
                id=f"{plan}-{position:04d}",
                partition=move.partition,
                source=move.source,
                target=move.target,
            )
            await self.store.put(record)
            records.append(record)
        return records

    async def cancel(self) -> list[MoveRecord]:
        """Ask every unfinished move to stop (those past the switch finish instead)."""
        cancelled = []
        for record in await self.store.list():
            if not record.finished and not record.cancel:
                record = record.at(record.phase, cancel=True)
                await self.store.put(record)
                cancelled.append(record)
        return cancelled

    async def _fresh(self, record: MoveRecord) -> MoveRecord:
        for stored in await self.store.list():
            if stored.id == record.id:
                return record.at(record.phase, cancel=record.cancel or stored.cancel)
        raise NotFound(f"move {record.id} is no longer in the store")

    async def _run(self) -> None:
        while True:
            try:
                if await self._lock.acquire():
                    await self._drive_pending()
            except ShoalError as error:
                log.warning("moves: %s; trying again", error)
                await asyncio.sleep(self._retry_s)
            except Exception:
                log.exception("moves: unexpected failure; trying again")
                await asyncio.sleep(self._retry_s)
            await asyncio.sleep(self._poll_s)

    async def _drive_pending(self) -> None:
        for record in await self.store.list():
            if record.finished:
                continue
            if not await self._lock.acquire():
                return
            await drive(self._mover, record, self.store.put, self._fresh)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._lock.release()
