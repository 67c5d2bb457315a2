"""What a partial update or a write by filter starts from, read from as many of a
shard group's replicas as the write's consistency needs.

A partial update is a read-modify-write made here, in the coordinator, not on
each replica: replicas that hold different records (one missed a write and has
not caught up yet) would otherwise patch different bases into records of the
same new version, which the version digests of anti-entropy and verify can
never tell apart. Read here, the patched record goes to every replica whole, as
an ordinary versioned write.

A write by filter (an update or a delete) must reach the documents whose newest
record matches, and only those. One replica's listing is not enough: a replica
that missed a write lists a document by the record it holds, which may match
where the newest does not (a delete would then erase a document that no longer
matches), or not match where the newest does (the write would skip it). So the
matching ids are listed by as many replicas as the write needs acknowledgements,
merged, and each listed document is kept only if its newest record, judged by
the replica that holds it, matches. Two quorums of a group share a replica, so a
write acknowledged by a quorum is seen by a quorum's listing.

Every replica of the group is asked at once. Once as many have answered as the
consistency needs (one at ONE, so a write at ONE works with one replica up),
the others get a short grace and are then left out.
"""

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from coordinator.core.deadline import Deadline
from coordinator.core.ports import Include, OpaqueFilter, ShardClient, WriteOp
from coordinator.core.read_repair import choose, fetched, state_of
from coordinator.core.replicas import Replica, ReplicaGroup
from shoal.errors import DeadlineExceeded, Unavailable

#: How long the replicas still answering are waited for once enough have.
GRACE_S = 0.5

T = TypeVar("T")


async def newest_records(
    group: ReplicaGroup,
    collection: str,
    ids: Sequence[str],
    needed: int,
    deadline: Deadline,
    filter: OpaqueFilter | None = None,
) -> dict[str, WriteOp]:
    """id -> the newest record (maybe a tombstone) among the replicas that answered;
    ids no replica holds are absent. With a `filter`, only the live records that
    match it, as judged by a replica holding that very version."""

    async def fetch(client: ShardClient, timeout_s: float) -> tuple[list[WriteOp], frozenset[str]]:
        if filter is None:
            return await client.fetch(collection, list(ids), timeout_s), frozenset()
        return await client.fetch_matching(collection, list(ids), filter, timeout_s)

    answers = await _from_replicas(group, needed, deadline, "the read of the newest records", fetch)
    newest = choose({address: records for address, (records, _) in answers.items()}).newest
    if filter is None:
        return newest
    matched = {
        op.id
        for records, matching in answers.values()
        for op in records
        if op.id in matching and state_of(op) == state_of(newest[op.id])
    }
    return {doc_id: op for doc_id, op in newest.items() if doc_id in matched}


async def matching_ids(
    group: ReplicaGroup,
    collection: str,
    filter: OpaqueFilter,
    after_id: str,
    page_size: int,
    needed: int,
    deadline: Deadline,
) -> tuple[list[str], str]:
    """A page of the ids that `needed` replicas list as matching `filter` after
    `after_id` (merged, in id order), and the id to list the next page after (""
    at the end). Check each with `newest_records` before writing it."""

    async def scroll(client: ShardClient, timeout_s: float) -> tuple[list[str], str]:
        page = await client.scroll(collection, filter, after_id, page_size, Include(), timeout_s)
        ids = [document.id for document in page.documents]
        if not page.more:
            return ids, ""
        # During a move a page may be cut to the partitions the group owns, even to
        # nothing: the replica listed up to `last_listed` all the same.
        return ids, page.last_listed or ids[-1]

    answers = await _from_replicas(
        group, needed, deadline, f"the listing of {collection!r}", scroll
    )
    # Up to where every replica has listed: a replica with more to list has listed
    # nothing beyond its page's last id, so the merged page stops at the lowest one.
    ends = [end for _, end in answers.values() if end]
    end = min(ends, default="")
    merged = {doc_id for ids, _ in answers.values() for doc_id in ids if not end or doc_id <= end}
    return sorted(merged), end


async def _from_replicas(
    group: ReplicaGroup,
    needed: int,
    deadline: Deadline,
    what: str,
    call: Callable[[ShardClient, float], Coroutine[Any, Any, T]],
) -> dict[str, T]:
    """`call` on every replica of `group` at once: the answers (by address) of at
    least `needed` of them, those still out given a short grace once enough have
    answered; Unavailable (or DeadlineExceeded) when fewer answer."""
    timeout_s = deadline.check(f"reading shard group {group.group}")
    running: dict[asyncio.Task[T], Replica] = {
        asyncio.create_task(call(replica.client, timeout_s)): replica for replica in group.replicas
    }
    answers: dict[str, T] = {}
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
                answer = fetched(task, replica)
                if isinstance(answer, Exception):
                    reasons.append(f"{replica.address}: {answer}")
                else:
                    answers[replica.address] = answer
    finally:
        for task in running:
            task.cancel()
    if len(answers) < needed:
        message = (
            f"shard group {group.group}: {len(answers)} of {len(group)} replicas answered"
            f" {what}, {needed} needed ({'; '.join(reasons)})"
        )
        if deadline.expired:
            raise DeadlineExceeded(message)
        raise Unavailable(message)
    return answers
