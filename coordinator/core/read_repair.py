"""A get at QUORUM or ALL: reading the records of several replicas, choosing the
answer, and what to repair.

Each replica answers with its stored records (tombstones included, with their
versions). The newest record of each id is the answer (a tombstone means the
document is gone), and every replica that answered with something older, or
with nothing, is sent the newest record as it is: the original version, so the
write is idempotent and cannot undo anything newer that reached the replica
meanwhile.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from coordinator.core.deadline import Deadline
from coordinator.core.model import ReadConsistency
from coordinator.core.observer import ReadObserver
from coordinator.core.ports import WriteOp
from coordinator.core.replicas import RETRY_ANOTHER_REPLICA, Replica, ReplicaGroup
from shoal.errors import DeadlineExceeded, Internal, Unavailable
from shoal.replication import VersionState, diff

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReadChoice:
    newest: dict[str, WriteOp]  # id -> the newest record any replica holds (maybe a tombstone)
    repairs: dict[str, list[WriteOp]]  # replica -> records it lacks, in id order


def state_of(op: WriteOp) -> VersionState:
    return VersionState(op.version, op.deleted)


def choose(answers: Mapping[str, Sequence[WriteOp]]) -> ReadChoice:
    """`answers`: each replica asked (by address) and the records it returned."""
    by_replica = {replica: {op.id: op for op in ops} for replica, ops in answers.items()}
    newest: dict[str, WriteOp] = {}
    for records in by_replica.values():
        for doc_id, op in records.items():
            current = newest.get(doc_id)
            if current is None or state_of(op) > state_of(current):
                newest[doc_id] = op
    versions = {
        replica: {doc_id: state_of(op) for doc_id, op in records.items()}
        for replica, records in by_replica.items()
    }
    repairs: dict[str, list[WriteOp]] = {}
    for divergence in diff(versions):
        for replica in divergence.behind:
            repairs.setdefault(replica, []).append(newest[divergence.id])
    return ReadChoice(newest, repairs)


def fetched(task: "asyncio.Task[T]", replica: Replica) -> T | Exception:
    """What a finished call to `replica` (a fetch, a listing) returned, or its error
    when another replica can stand in for it; raises what the request itself caused."""
    error = task.exception()
    if error is None:
        replica.succeeded()
        return task.result()
    if isinstance(error, RETRY_ANOTHER_REPLICA):
        replica.failed()
        return error
    if isinstance(error, Internal):
        # A fault of this replica, not of the request: say which one.
        raise type(error)(f"shard {replica.address}: {error}") from error
    raise error


async def read_records(
    group: ReplicaGroup,
    collection: str,
    ids: list[str],
    consistency: ReadConsistency,
    deadline: Deadline,
    observer: ReadObserver,
) -> list[tuple[Replica, list[WriteOp]]]:
    """The records of `ids` from as many replicas as `consistency` needs.

    Asks that many replicas at once, healthy ones first, and another one in
    place of each that fails with UNAVAILABLE, DATA_LOSS or a timeout. The
    deadline is shared with the replicas not asked yet: when the ones asked
    have not all answered within their share, one more is asked alongside
    them (the slow ones go on and may still answer), so one hung replica
    cannot take the whole deadline and leave none for another.
    """
    needed = consistency.required(len(group))
    candidates, _ = group.candidates()
    waiting = list(candidates)
    running: dict[asyncio.Task[list[WriteOp]], Replica] = {}
    answers: list[tuple[Replica, list[WriteOp]]] = []
    reasons: list[str] = []

    def ask(replica: Replica) -> None:
        timeout_s = deadline.check(f"reading shard group {group.group}")
        task = asyncio.create_task(replica.client.fetch(collection, ids, timeout_s))
        running[task] = replica

    try:
        while len(answers) < needed:
            while waiting and len(running) + len(answers) < needed:
                ask(waiting.pop(0))
            if not running:
                break
            share_s = deadline.remaining() / (len(waiting) + 1) if waiting else None
            done, _ = await asyncio.wait(
                running, timeout=share_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                # Their share is over: they count as failed, as a read's timeout
                # does, and a spare replica is asked alongside them.
                for replica in running.values():
                    replica.failed()
                observer.record_failover(group.group, "DeadlineExceeded")
                ask(waiting.pop(0))
                continue
            for task in done:
                replica = running.pop(task)
                records = fetched(task, replica)
                if isinstance(records, Exception):
                    reasons.append(f"{replica.address}: {records}")
                    observer.record_failover(group.group, type(records).__name__)
                else:
                    answers.append((replica, records))
    finally:
        for task in running:
            task.cancel()
    if len(answers) < needed:
        detail = f" ({'; '.join(reasons)})" if reasons else ""
        message = (
            f"shard group {group.group}: {len(answers)} of {len(group)} replicas answered,"
            f" read consistency {consistency.value} needs {needed}{detail}"
        )
        if deadline.expired:
            raise DeadlineExceeded(message)
        raise Unavailable(message)
    return answers
