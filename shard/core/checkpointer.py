"""Background index checkpoints, so a restart replays few records instead of rebuilding.

A collection is checkpointed once it has `every_writes` writes no checkpoint
holds, or has had any for `interval_s` seconds. The thread is its own (not a
request executor thread) because a save can take a while on a large index.
"""

import logging
import time
from dataclasses import dataclass

from shard.core.collection_registry import Collections
from shoal.errors import NotFound
from shoal.runtime.periodic import PeriodicThread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointPolicy:
    every_writes: int = 20_000
    interval_s: float = 60.0

    @property
    def tick_s(self) -> float:
        return min(1.0, self.interval_s / 4)


class Checkpointer:
    def __init__(self, collections: Collections, policy: CheckpointPolicy) -> None:
        self._collections = collections
        self._policy = policy
        self._loop = PeriodicThread("checkpointer", self.run_once, policy.tick_s)
        # A collection whose checkpoint failed is retried after interval_s, not every tick.
        self._retry_after: dict[str, float] = {}

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        """Stop after the checkpoint in progress, if any (the final ones are `close`'s job)."""
        self._loop.stop()

    def run_once(self) -> int:
        """Checkpoint every collection that is due; return how many were written."""
        written = 0
        now = time.monotonic()
        for collection in self._collections.open_collections():
            if self._loop.stopping:
                break
            name = collection.config.name
            if now < self._retry_after.get(name, 0.0) or not collection.checkpoint_due(
                now, self._policy.every_writes, self._policy.interval_s
            ):
                continue
            try:
                written += collection.checkpoint()
                self._retry_after.pop(name, None)
            except NotFound:
                pass  # deleted meanwhile
            except Exception:
                log.exception("checkpoint of collection %r failed", name)
                self._retry_after[name] = now + self._policy.interval_s
        return written
