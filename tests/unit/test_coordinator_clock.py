"""The hybrid logical clock: versions only ever grow, whatever the wall clock does."""

import itertools

import pytest

from coordinator.core.clock import (
    MAX_COUNTER,
    HybridLogicalClock,
    split_version,
)


class FakeWallClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_version_layout() -> None:
    wall = FakeWallClock(1_700_000_000_000)
    clock = HybridLogicalClock(42, wall)
    first, second = clock.next(), clock.next()
    assert split_version(first) == (1_700_000_000_000, 0, 42)
    assert split_version(second) == (1_700_000_000_000, 1, 42)
    assert first == 1_700_000_000_000 << 20 | 0 << 8 | 42
    wall.ms += 5
    assert split_version(clock.next()) == (1_700_000_000_005, 0, 42)


def test_versions_grow_when_the_wall_clock_steps_back() -> None:
    wall = FakeWallClock(10_000)
    clock = HybridLogicalClock(1, wall)
    versions = [clock.next() for _ in range(10)]
    wall.ms = 5_000  # an NTP step backwards
    versions += [clock.next() for _ in range(10)]
    wall.ms = 10_001
    versions += clock.next_many(10)
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert all(split_version(v)[0] >= 10_000 for v in versions)


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    wall = FakeWallClock(500)
    clock = HybridLogicalClock(3, wall)
    versions = clock.next_many(MAX_COUNTER + 3)
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert split_version(versions[MAX_COUNTER]) == (500, MAX_COUNTER, 3)
    assert split_version(versions[MAX_COUNTER + 1]) == (501, 0, 3)
    # The wall clock reaching the borrowed millisecond does not go back.
    wall.ms = 501
    assert clock.next() > versions[-1]


def test_real_clock_is_monotonic() -> None:
    clock = HybridLogicalClock(0)
    versions = [clock.next() for _ in range(20_000)]
    assert all(a < b for a, b in itertools.pairwise(versions))


def test_coordinators_never_issue_the_same_version() -> None:
    wall = FakeWallClock(1_000)
    a, b = HybridLogicalClock(1, wall), HybridLogicalClock(2, wall)
    assert not set(a.next_many(100)) & set(b.next_many(100))


@pytest.mark.parametrize("bad_id", [-1, 256])
def test_coordinator_id_must_fit_eight_bits(bad_id: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        HybridLogicalClock(bad_id)


def test_a_version_observed_from_a_clock_ahead_is_exceeded() -> None:
    wall = FakeWallClock(1_000)
    ours, ahead = HybridLogicalClock(1, wall), HybridLogicalClock(2, lambda: 1_050)
    seen = ahead.next_many(3)[-1]
    ours.observe(seen)
    assert ours.next() > seen
    # An older version changes nothing.
    before = ours.next()
    ours.observe(seen - (10 << 20))
    assert ours.next() > before
