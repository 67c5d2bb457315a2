"""What a partial update starts from: the newest record of each id that a shard
group's replicas hold.

A partial update is a read-modify-write made here, in the coordinator, not on
each replica: replicas that hold different records (one missed a write and has
not caught up yet) would otherwise patch different bases into records of the
same new version, which the version digests of anti-entropy and verify can
never tell apart. Read here, the patched record goes to every replica whole, as
an ordinary versioned write.

Every replica of the group is asked at once, so the newest record any of them
holds is the base. The read needs as many answers as the update's write
consistency needs acknowledgements (an update at ONE works with one replica up);
once that many have answered, the others get a short grace and are then left
out.
"""

import asyncio
from collections.abc import Sequence

from coordinator.core.deadline import Deadline
from coordinator.core.ports import WriteOp
from coordinator.core.read_repair import choose, fetched
from coordinator.core.replicas import Replica, ReplicaGroup
from shoal.errors import DeadlineExceeded, Unavailable

#: How long the replicas still answering are waited for once enough have.
GRACE_S = 0.5


async def newest_records(
    group: ReplicaGroup,
    collection: str,
    ids: Sequence[str],
    needed: int,
    deadline: Deadline,
) -> dict[str, WriteOp]:
    """id -> the newest record (maybe a tombstone) among the replicas that answered;
    ids no replica holds are absent."""
    timeout_s = deadline.check(f"reading shard group {group.group} for an update")
    running: dict[asyncio.Task[list[WriteOp]], Replica] = {
        asyncio.create_task(replica.client.fetch(collection, list(ids), timeout_s)): replica
        for replica in group.replicas
    }
    answers: dict[str, list[WriteOp]] = {}
    reasons: list[str] = []
    needed = max(1, min(needed, len(running)))
    try:
        while running:
            grace = min(GRACE_S, deadline.remaining()) if len(answers) >= needed else None
            done, _ = await asyncio.wait(
                running, timeout=grace, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break
            for task in done:
                replica = running.pop(task)
                records = fetched(task, replica)
                if isinstance(records, Exception):
                    reasons.append(f"{replica.address}: {records}")
                else:
                    answers[replica.address] = records
    finally:
        for task in running:
            task.cancel()
    if len(answers) < needed:
        message = (
            f"shard group {group.group}: {len(answers)} of {len(group)} replicas answered the"
            f" read an update starts from, {needed} needed ({'; '.join(reasons)})"
        )
        if deadline.expired:
            raise DeadlineExceeded(message)
        raise Unavailable(message)
    return choose(answers).newest
