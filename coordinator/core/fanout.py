"""Running one call on many shard groups or replicas at once, under one deadline."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from coordinator.core.deadline import Deadline
from coordinator.core.model import Coverage
from coordinator.core.ports import ShardClient
from coordinator.core.replicas import Replica, ReplicaGroup
from shoal.errors import DeadlineExceeded, ShoalError, Unavailable

T = TypeVar("T")

ShardCall = Callable[[ShardClient, float], Awaitable[T]]

#: With partial results allowed, the share of the deadline the groups get, so
#: that the groups that did answer still reach the caller in time.
PARTIAL_SHARE = 0.9


def every_group(
    groups: Sequence[ReplicaGroup], call: ShardCall[T]
) -> list[tuple[ReplicaGroup, ShardCall[T]]]:
    """The same call for every group, as `fan_out` takes it."""
    return [(group, call) for group in groups]


async def fan_out(
    targets: Sequence[tuple[ReplicaGroup, ShardCall[T]]],
    deadline: Deadline,
    what: str,
    allow_partial: bool,
    operation: str = "read",
) -> tuple[list[T], Coverage]:
    """Each group's call on one of its replicas, all groups at once, with failover.

    Returns the answers of the groups that answered, in group order. A group
    with no live replica makes the whole call UNAVAILABLE unless `allow_partial`,
    in which case it is only missing from the coverage. Any other error (an
    unknown collection, bad input) is raised as it is.
    """
    group_deadline = deadline
    if allow_partial:
        group_deadline = Deadline.after(deadline.remaining() * PARTIAL_SHARE)
    reads = [group.read(call, group_deadline, what, operation) for group, call in targets]
    if len(reads) == 1:  # no task to create and gather
        outcomes: list[T | BaseException] = [await _result_or_error(reads[0])]
    else:
        outcomes = await asyncio.gather(*reads, return_exceptions=True)
    answers: list[T] = []
    missing: list[str] = []
    for outcome in outcomes:
        if isinstance(outcome, Unavailable | DeadlineExceeded):
            if isinstance(outcome, DeadlineExceeded) and (deadline.expired or not allow_partial):
                raise outcome
            missing.append(str(outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            answers.append(outcome)
    if missing and not allow_partial:
        raise Unavailable(
            f"{'; '.join(missing)}; allow partial results to get the answers of the groups"
            " that are up"
        )
    return answers, Coverage(len(targets), len(answers))


async def _result_or_error(read: Awaitable[T]) -> T | BaseException:
    """The answer or the error, as `asyncio.gather(..., return_exceptions=True)` gives them."""
    try:
        return await read
    except Exception as error:
        return error


async def on_every_replica(
    replicas: Sequence[Replica], call: ShardCall[T], deadline: Deadline
) -> list[T | ShoalError]:
    """`call` on every replica at once; each one's answer or domain error, in order."""

    async def one(replica: Replica) -> T:
        try:
            result = await call(replica.client, deadline.check("calling the shards"))
        except Unavailable:
            replica.failed()
            raise
        replica.succeeded()
        return result

    outcomes = await asyncio.gather(*(one(replica) for replica in replicas), return_exceptions=True)
    results: list[T | ShoalError] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, ShoalError):
            raise outcome
        results.append(outcome)
    return results
