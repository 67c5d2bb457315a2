"""The replicas of each shard group: which one to ask, and failing over.

Reads go to one replica per group: the one with the fewest requests in flight,
preferring replicas that have not failed lately. A replica that fails with
UNAVAILABLE, runs out of its share of the deadline, or answers DATA_LOSS (its
copy of the collection could not be loaded or is corrupt: another replica's copy
may be fine) is put at the back of the line for a short, growing while, and the
read moves on to the next replica.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from coordinator.core.backoff import Backoff
from coordinator.core.deadline import Deadline
from coordinator.core.observer import NO_OBSERVER, ReadObserver
from coordinator.core.ports import ShardClient
from shoal.errors import DataLoss, DeadlineExceeded, Internal, ShoalError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors of one replica that another replica may not give: the read moves on.
RETRY_ANOTHER_REPLICA = (Unavailable, DeadlineExceeded, DataLoss)

#: How long a failed replica stays at the back of the line, doubling per failure.
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0


class Membership(Protocol):
    """Which replicas hold a live registration (etcd leases: `shoal.etcd.membership`)."""

    def is_member(self, address: str) -> bool | None:
        """False for a replica whose process is gone; None when not known."""
        ...


class NoMembership:
    def is_member(self, address: str) -> bool | None:
        return None


NO_MEMBERSHIP = NoMembership()


class Replica:
    """One replica and what the coordinator has seen of it lately."""

    __slots__ = ("_backoff", "_clock", "client", "failed_until", "outstanding")

    def __init__(self, client: ShardClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.outstanding = 0
        self.failed_until = 0.0
        self._backoff = Backoff(FIRST_BACKOFF_S, MAX_BACKOFF_S)
        self._clock = clock

    @property
    def address(self) -> str:
        return self.client.address

    @property
    def failures(self) -> int:
        """Failures in a row, counted only as far as they lengthen the back-off."""
        return self._backoff.failures

    def failed(self) -> None:
        self.failed_until = self._clock() + self._backoff.failed()

    def succeeded(self) -> None:
        self._backoff.reset()
        self.failed_until = 0.0


class ReplicaGroup:
    """The replicas of one shard group."""

    def __init__(
        self,
        group: int,
        replicas: Sequence[Replica],
        clock: Callable[[], float] = time.monotonic,
        observer: ReadObserver = NO_OBSERVER,
        membership: Membership = NO_MEMBERSHIP,
    ) -> None:
        if not replicas:
            raise ValueError(f"shard group {group} has no replicas")
        self.group = group
        self.replicas = list(replicas)
        self._clock = clock
        self._observer = observer
        self.membership = membership
        self._turn = 0

    def __len__(self) -> int:
        return len(self.replicas)

    def candidates(self) -> tuple[list[Replica], int]:
        """Replicas in the order to try them, and how many of them look healthy.

        Healthy replicas come first, fewest requests in flight first; ties take
        turns so an idle cluster still spreads its reads. Replicas that failed
        lately, or whose registration is gone (a dead process), follow, the one
        whose backoff ends soonest first.
        """
        now = self._clock()
        self._turn = (self._turn + 1) % len(self.replicas)
        rotated = self.replicas[self._turn :] + self.replicas[: self._turn]
        healthy = [replica for replica in rotated if self._looks_up(replica, now)]
        healthy.sort(key=_outstanding)
        if len(healthy) == len(rotated):
            return healthy, len(healthy)
        lagging = [replica for replica in rotated if not self._looks_up(replica, now)]
        lagging.sort(key=_failed_until)
        return healthy + lagging, len(healthy)

    def _looks_up(self, replica: Replica, now: float) -> bool:
        return (
            replica.failed_until <= now and self.membership.is_member(replica.address) is not False
        )

    async def read(
        self,
        call: Callable[[ShardClient, float], Awaitable[T]],
        deadline: Deadline,
        what: str,
        operation: str = "read",
    ) -> T:
        """Run `call(client, timeout_s)` on one replica, failing over to the next on
        UNAVAILABLE, DATA_LOSS or a timeout. Other errors (NotFound,
        InvalidArgument, ...) would be the same on every replica and are raised
        at once."""
        started = time.perf_counter()
        try:
            return await self._read(call, deadline, what)
        finally:
            self._observer.observe_fanout(operation, self.group, time.perf_counter() - started)

    async def _read(
        self,
        call: Callable[[ShardClient, float], Awaitable[T]],
        deadline: Deadline,
        what: str,
    ) -> T:
        candidates, healthy = self.candidates()
        reasons: list[str] = []
        errors: list[ShoalError] = []
        for position, replica in enumerate(candidates):
            left = deadline.remaining()
            if left <= 0:
                break
            if errors:
                self._observer.record_failover(self.group, type(errors[-1]).__name__)
            # Split what is left between the healthy replicas still to try, so a
            # hung replica cannot eat the whole deadline; the last one gets it all.
            tries_left = max(1, healthy - position)
            timeout_s = left / tries_left
            replica.outstanding += 1
            try:
                result = await call(replica.client, timeout_s)
            except RETRY_ANOTHER_REPLICA as error:
                errors.append(error)
                replica.failed()
                reasons.append(f"{replica.address}: {error}")
                log.info(
                    "shard group %d: %s failed %s: %s", self.group, replica.address, what, error
                )
                continue
            except Internal as error:
                # A fault of this replica, not of the request: say which one.
                raise type(error)(f"shard {replica.address}: {error}") from error
            finally:
                replica.outstanding -= 1
            replica.succeeded()
            return result
        detail = f" ({'; '.join(reasons)})" if reasons else ""
        if len(errors) == len(candidates) and all(isinstance(e, DataLoss) for e in errors):
            # Every replica is up and none can read it: no retry will help.
            raise DataLoss(f"shard group {self.group} has no readable replica{detail}")
        if deadline.expired:
            raise DeadlineExceeded(
                f"deadline exceeded before shard group {self.group} answered{detail}"
            )
        raise Unavailable(f"shard group {self.group} has no live replica{detail}")


def _outstanding(replica: Replica) -> int:
    return replica.outstanding


def _failed_until(replica: Replica) -> float:
    return replica.failed_until
