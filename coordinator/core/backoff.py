"""Exponential back-off that stays bounded however long something keeps failing.

A replica may stay down for hours and every call to it counts a failure, so
nothing here may grow with the outage: the count of failures in a row stops at
the number of doublings that reaches the longest wait (past it the wait no longer
changes), and the arithmetic is done on floats of bounded size. (An unbounded
count once made `0.5 * 2**1024` raise OverflowError after 1,024 failures.)
"""

import math


class Backoff:
    """Waits of `first_s`, doubling per failure in a row, at most `max_s`. Not thread-safe."""

    __slots__ = ("_cap", "failures", "first_s", "max_s")

    def __init__(self, first_s: float, max_s: float) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"back-off from {first_s} s to {max_s} s: need 0 < first <= max")
        self.first_s = first_s
        self.max_s = max_s
        #: Failures in a row, counted up to `_cap` only.
        self.failures = 0
        self._cap = math.ceil(math.log2(max_s / first_s))

    def failed(self) -> float:
        """One more failure in a row; the seconds to wait before the next try."""
        wait = min(self.max_s, self.first_s * 2.0**self.failures)
        self.failures = min(self.failures + 1, self._cap)
        return wait

    def reset(self) -> None:
        """A success: the next failure waits `first_s` again."""
        self.failures = 0
