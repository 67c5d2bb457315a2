"""Write versions: a hybrid logical clock.

A version is `ms << 20 | counter << 8 | coordinator_id`: wall-clock milliseconds,
a 12-bit counter for writes within one millisecond and the 8-bit id of the
coordinator that issued it. Replicas keep the highest version per document
(last writer wins), so versions must only ever grow, even when the wall clock
steps back; the coordinator id keeps versions from different coordinators
distinct.
"""

import time
from collections.abc import Callable

COUNTER_BITS = 12
ID_BITS = 8
MAX_COUNTER = (1 << COUNTER_BITS) - 1
MAX_COORDINATOR_ID = (1 << ID_BITS) - 1
MS_SHIFT = COUNTER_BITS + ID_BITS


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def split_version(version: int) -> tuple[int, int, int]:
    """(milliseconds, counter, coordinator id) of a version."""
    return version >> MS_SHIFT, (version >> ID_BITS) & MAX_COUNTER, version & MAX_COORDINATOR_ID


class HybridLogicalClock:
    """Issues strictly increasing versions for one coordinator.

    Not thread-safe; the coordinator calls it from its event loop only.
    """

    def __init__(self, coordinator_id: int, now_ms: Callable[[], int] = wall_clock_ms) -> None:
        if not 0 <= coordinator_id <= MAX_COORDINATOR_ID:
            raise ValueError(
                f"coordinator id {coordinator_id} is out of range 0..{MAX_COORDINATOR_ID}"
            )
        self._id = coordinator_id
        self._now_ms = now_ms
        self._ms = 0
        self._counter = -1

    def next(self) -> int:
        return self.next_many(1)[0]

    def next_many(self, count: int) -> list[int]:
        """`count` increasing versions, reading the wall clock once."""
        now = self._now_ms()
        if now > self._ms:
            self._ms, self._counter = now, -1
        versions = []
        for _ in range(count):
            self._counter += 1
            if self._counter > MAX_COUNTER:
                # Out of counter values in this millisecond: borrow the next one.
                # The wall clock catches up and the versions stay increasing.
                self._ms += 1
                self._counter = 0
            versions.append(self._ms << MS_SHIFT | self._counter << ID_BITS | self._id)
        return versions

    def observe(self, version: int) -> None:
        """Make every later version exceed `version`, one another coordinator issued
        (the hybrid logical clock's receive rule). A read-modify-write (a partial
        update) must write a version above the one it read, or the write would lose
        to its own base under last-writer-wins when that coordinator's clock is ahead."""
        ms, counter, _ = split_version(version)
        if (ms, counter) > (self._ms, self._counter):
            self._ms, self._counter = ms, counter
