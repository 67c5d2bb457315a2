"""How long tombstones are kept, and the background task that purges older ones.

A delete is a tombstone: a record with the delete's version and no document, so
a replica that missed the delete learns it from a peer like any other write,
and an older write arriving late (a replay, a slow replica's copy) cannot bring
the document back. A tombstone must therefore live until every replica has seen
it. After the grace period (default 7 days) it is purged.

The rule that makes this safe: a replica that has been down, or cut off, for
longer than the grace period must not rejoin with its old data; it rejoins with
an empty data directory and is rebuilt from its peers. Otherwise it could hold
a live version whose delete every other replica has already purged, and
anti-entropy would copy that document back to them.

A tombstone's age comes from its version (the hybrid logical clock's
milliseconds), so every replica judges it the same way. Tombstones past the
grace period are already left out of digests and version lists before they are
physically purged, so replicas that purge at slightly different times still
compare equal.
"""

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from shoal.errors import NotFound
from shoal.replication import VERSION_MS_SHIFT
from shoal.runtime.periodic import PeriodicThread

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 7 * 24 * 3600.0
DEFAULT_PURGE_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class TombstoneGrace:
    grace_s: float = DEFAULT_GRACE_S
    clock: Callable[[], float] = time.time  # wall clock: versions carry wall-clock ms

    def cutoff_version(self) -> int:
        """Tombstones with a version below this are past the grace period."""
        cutoff_ms = int((self.clock() - self.grace_s) * 1000)
        return max(0, cutoff_ms) << VERSION_MS_SHIFT

    def expired(self, version: int, deleted: bool, cutoff: int) -> bool:
        return deleted and version < cutoff


class Purgeable(Protocol):
    @property
    def name(self) -> str: ...

    def purge_tombstones(self, before_version: int) -> int:
        """Remove tombstones with a version below `before_version`; how many."""
        ...


class TombstonePurger:
    """Purges expired tombstones every `interval_s`, on a thread of its own (it scans)."""

    def __init__(
        self,
        collections: Callable[[], Iterable[Purgeable]],
        grace: TombstoneGrace,
        interval_s: float = DEFAULT_PURGE_INTERVAL_S,
        record: Callable[[str, int], None] | None = None,
    ) -> None:
        self._collections = collections
        self._grace = grace
        self._record = record
        self._loop = PeriodicThread("tombstone-purger", self.run_once, interval_s)

    def run_once(self) -> int:
        cutoff = self._grace.cutoff_version()
        purged = 0
        for collection in list(self._collections()):
            if self._loop.stopping:
                break
            try:
                count = collection.purge_tombstones(cutoff)
            except NotFound:
                continue  # deleted meanwhile
            except Exception:
                log.exception("purging tombstones of collection %r failed", collection.name)
                continue
            if count:
                log.info("collection %r: purged %d expired tombstones", collection.name, count)
                if self._record is not None:
                    self._record(collection.name, count)
            purged += count
        return purged

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        """Stop after the purge in progress, if any."""
        self._loop.stop()
