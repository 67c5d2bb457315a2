"""SearchCoalescer: concurrent searches with one key share calls; each caller gets its rows."""

import asyncio

import numpy as np
import pytest

from coordinator.clients.coalescer import SearchCoalescer
from coordinator.core.ports import Vector
from shoal.errors import DeadlineExceeded, Unavailable


class FakeShard:
    """Answers each query row with (key, the row's first value); holds calls until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []  # (key, rows) per call
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def send(self, key: str, queries: Vector, timeout_s: float) -> list[tuple[str, float]]:
        self.calls.append((key, len(queries)))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [(key, float(row[0])) for row in queries]


def rows(*values: float) -> Vector:
    return np.array([[value, 0.0] for value in values], dtype=np.float32)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_search_goes_out_at_once() -> None:
    shard = FakeShard()
    shard.release.set()
    coalescer = SearchCoalescer(shard.send)
    assert await coalescer.search("a", rows(1, 2), 5) == [("a", 1.0), ("a", 2.0)]
    assert shard.calls == [("a", 2)]


async def test_queries_queued_behind_busy_calls_share_the_next_call() -> None:
    shard = FakeShard()
    coalescer = SearchCoalescer(shard.send, max_in_flight=2)
    searches = [asyncio.create_task(coalescer.search("a", rows(value), 5)) for value in range(6)]
    other = asyncio.create_task(coalescer.search("b", rows(9), 5))
    await settle()
    # Two calls out for key a; key b has a lane of its own.
    assert sorted(shard.calls) == [("a", 1), ("a", 1), ("b", 1)]
    shard.release.set()
    answers = await asyncio.gather(*searches)
    assert answers == [[("a", float(value))] for value in range(6)]
    assert await other == [("b", 9.0)]
    # The four queued queries went out together once a call came back.
    assert sorted(shard.calls) == [("a", 1), ("a", 1), ("a", 4), ("b", 1)]


async def test_a_call_takes_at_most_max_queries_rows() -> None:
    shard = FakeShard()
    coalescer = SearchCoalescer(shard.send, max_in_flight=1, max_queries=3)
    searches = [asyncio.create_task(coalescer.search("a", rows(v, v), 5)) for v in range(4)]
    await settle()
    shard.release.set()
    answers = await asyncio.gather(*searches)
    assert answers == [[("a", float(v)), ("a", float(v))] for v in range(4)]
    assert [size for _, size in shard.calls] == [2, 2, 2, 2]


async def test_a_failed_call_fails_every_query_in_it() -> None:
    shard = FakeShard()
    shard.fail = Unavailable("replica down")
    coalescer = SearchCoalescer(shard.send, max_in_flight=1)
    searches = [asyncio.create_task(coalescer.search("a", rows(v), 5)) for v in range(3)]
    await settle()
    shard.release.set()
    outcomes = await asyncio.gather(*searches, return_exceptions=True)
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)


async def test_a_caller_stops_waiting_at_its_own_deadline_and_others_still_get_answers() -> None:
    shard = FakeShard()
    coalescer = SearchCoalescer(shard.send, max_in_flight=1)
    patient = asyncio.create_task(coalescer.search("a", rows(1), 30))
    await settle()
    with pytest.raises(DeadlineExceeded):
        await coalescer.search("a", rows(2), 0.05)
    shard.release.set()
    assert await patient == [("a", 1.0)]
    # The query whose caller gave up was not sent.
    assert shard.calls == [("a", 1)]


async def test_a_short_answer_is_an_error_not_a_misattribution() -> None:
    async def short(key: str, queries: Vector, timeout_s: float) -> list[str]:
        return ["only one"]

    coalescer = SearchCoalescer(short)
    with pytest.raises(Exception, match="answered 1 of 2"):
        await coalescer.search("a", rows(1, 2), 5)


async def test_a_search_with_no_time_left_fails_at_once_and_sends_nothing() -> None:
    shard = FakeShard()
    shard.release.set()
    coalescer = SearchCoalescer(shard.send)
    with pytest.raises(DeadlineExceeded, match=r"within 0\.000 s"):
        await coalescer.search("a", rows(1), 0.0)
    assert shard.calls == []


async def test_a_cancelled_caller_s_query_is_not_sent() -> None:
    shard = FakeShard()
    coalescer = SearchCoalescer(shard.send, max_in_flight=1)
    first = asyncio.create_task(coalescer.search("a", rows(1), 30))
    await settle()
    gone = asyncio.create_task(coalescer.search("a", rows(2), 30))
    await settle()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    shard.release.set()
    assert await first == [("a", 1.0)]
    await settle()
    assert shard.calls == [("a", 1)]
