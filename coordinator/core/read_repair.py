"""Choosing the answer of a get read from several replicas, and what to repair.

Each replica answers with its stored records (tombstones included, with their
versions). The newest record of each id is the answer (a tombstone means the
document is gone), and every replica that answered with something older, or
with nothing, is sent the newest record as it is: the original version, so the
write is idempotent and cannot undo anything newer that reached the replica
meanwhile.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from coordinator.core.ports import WriteOp
from shoal.replication import VersionState, diff


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
