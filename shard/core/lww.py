"""Last-writer-wins: which of two versions of one document a replica keeps.

The higher version wins. Equal versions are broken by the content (tombstone
over live, then the vector and payload bytes), never by arrival order or
replica-local fields, so every replica keeps the same winner whatever order
the writes reach it in, and a replayed write changes nothing.
"""

from shard.core.documents import WriteOp
from shard.storage.records import Record

ContentKey = tuple[int, bool, bytes, bytes]


def op_key(op: WriteOp) -> ContentKey:
    return (op.version, op.deleted, op.vector, op.payload)


def record_key(record: Record) -> ContentKey:
    return (record.version, record.deleted, record.vector, record.payload)


def supersedes(op: WriteOp, stored: Record | None) -> bool:
    """Whether `op` replaces what the replica holds (an identical replay does not)."""
    return stored is None or op_key(op) > record_key(stored)


def newest_per_id(ops: list[WriteOp]) -> list[WriteOp]:
    """The winning write per id of one batch, in first-seen order."""
    winners: dict[str, WriteOp] = {}
    for op in ops:
        current = winners.get(op.id)
        if current is None or op_key(op) > op_key(current):
            winners[op.id] = op
    return list(winners.values())
