"""One deadline for a whole call, shared by all the downstream calls it makes."""

import time

from shoal.errors import DeadlineExceeded


class Deadline:
    """An absolute point in time (monotonic clock) by which a call must finish."""

    __slots__ = ("_expires_at",)

    def __init__(self, expires_at: float) -> None:
        self._expires_at = expires_at

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.monotonic() + seconds)

    @classmethod
    def from_remaining(cls, remaining: float | None, default: float) -> "Deadline":
        """The caller's deadline if it set one, else `default` seconds from now."""
        return cls.after(default if remaining is None else remaining)

    def remaining(self) -> float:
        return max(0.0, self._expires_at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._expires_at

    def check(self, what: str) -> float:
        """The seconds left; raises DeadlineExceeded if none are."""
        left = self._expires_at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"deadline exceeded before {what}")
        return left
