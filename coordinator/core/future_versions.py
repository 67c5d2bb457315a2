"""Repairs never spread a record whose version is beyond the horizon.

A replica may hold such a record: one written before shards refused them, or by
a shard run with a larger --max-clock-skew-s. Every other replica refuses it
(shoal.version_horizon), so copying it would fail on every read repair and
every verify, and, where a replica still took it, pin the document there too.
Read repair and VerifyReplicas' repair therefore leave it out, say so once per
repair in a WARNING and count it (shoal_replica_repairs_skipped_total), and go
on with the rest. Removing it is an operator's job: delete the document on
that replica's data, or restore it.
"""

import logging
from collections.abc import Sequence

from coordinator.core.ports import WriteOp
from shoal.version_horizon import VersionHorizon

log = logging.getLogger(__name__)


def without_future(
    horizon: VersionHorizon, ops: Sequence[WriteOp], where: str
) -> tuple[list[WriteOp], list[WriteOp]]:
    """(the records to copy, those beyond the horizon); the latter logged as skipped.
    `where`: which repair and replica, for the log."""
    limit = horizon.limit_ms()
    kept = [op for op in ops if horizon.within(op.version, limit)]
    if len(kept) == len(ops):
        return kept, []
    skipped = [op for op in ops if not horizon.within(op.version, limit)]
    log.warning(
        "%s: not copying %d record(s) whose version is beyond the clock horizon"
        " (%g s ahead at most; e.g. %r at version %d): no replica would accept them."
        " Delete or restore these documents on the replica that holds them",
        where,
        len(skipped),
        horizon.max_skew_s,
        skipped[0].id[:64],
        skipped[0].version,
    )
    return kept, skipped
