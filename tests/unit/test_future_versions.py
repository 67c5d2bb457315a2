"""coordinator.core.future_versions: what a repair leaves out, and says so."""

import logging

import pytest

from coordinator.core.future_versions import without_future
from coordinator.core.ports import WriteOp
from shoal.replication import VERSION_MS_SHIFT
from shoal.version_horizon import VersionHorizon

NOW_MS = 1_700_000_000_000
HORIZON = VersionHorizon(max_skew_s=60, now_ms=lambda: NOW_MS)


def op(doc_id: str, ms: int) -> WriteOp:
    return WriteOp(doc_id, ms << VERSION_MS_SHIFT, deleted=True)


def test_records_beyond_the_horizon_are_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ops = [op("now", NOW_MS), op("edge", NOW_MS + 60_000), op("pinned", NOW_MS + 61_000)]
    with caplog.at_level(logging.WARNING):
        kept, skipped = without_future(HORIZON, ops, "read repair of 'c' on s1")
    assert [o.id for o in kept] == ["now", "edge"]
    assert [o.id for o in skipped] == ["pinned"]
    assert "read repair of 'c' on s1: not copying 1 record(s)" in caplog.text
    assert "'pinned'" in caplog.text


def test_nothing_to_leave_out_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    ops = [op("now", NOW_MS)]
    with caplog.at_level(logging.WARNING):
        assert without_future(HORIZON, ops, "x") == (ops, [])
    assert not caplog.text
