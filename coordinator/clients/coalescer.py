"""Concurrent searches with the same parameters share one shard call.

A single-query search costs a shard call far more in gRPC and thread hand-offs
than in hnswlib (docs/benchmarks.md), and a shard's Search takes n queries. So
the client of one replica joins the queries that wait for it with the same
parameters (collection, k, ef, fields, filter, threshold: the `key`) into one
call. No query waits for a timer: up to `max_in_flight` calls per key go out
at once; queries arriving while they are all busy queue, and the next call
takes every queued query (up to `max_queries` rows). A lone caller goes out at
once; under load the calls grow with the load.

Each caller keeps its own deadline: a call runs until the latest deadline among
its queries, and a caller whose own deadline passes first stops waiting with
DeadlineExceeded. A failed call fails every query in it, with the same error
each would have got alone (the coordinator validates queries before they
reach a shard, so one query cannot spoil the others).
"""

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from coordinator.core.ports import Vector
from shoal.errors import DeadlineExceeded, Internal, Unavailable
from shoal.limits import MAX_BATCH_QUERIES

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

#: Calls per key at once: one searching on the shard while the other's answer
#: travels back.
MAX_IN_FLIGHT = 2


def _no_answer(timeout_s: float) -> str:
    return f"no answer within {max(timeout_s, 0.0):.3f} s"


def _expire(future: "asyncio.Future[Any]", timeout_s: float) -> None:
    if not future.done():
        future.set_exception(DeadlineExceeded(_no_answer(timeout_s)))


@dataclass(eq=False)
class _Waiting(Generic[R]):
    queries: Vector
    future: "asyncio.Future[Sequence[R]]"
    deadline: float  # on the event loop's clock
    context: contextvars.Context  # the caller's (its request id goes with the call)


@dataclass(eq=False)
class _Lane(Generic[R]):
    """The queries of one key: queued, and how many calls are out."""

    queue: deque[_Waiting[R]] = field(default_factory=deque)
    in_flight: int = 0


class SearchCoalescer(Generic[K, R]):
    """`send(key, queries, timeout_s)` answers one result per query row."""

    def __init__(
        self,
        send: Callable[[K, Vector, float], Awaitable[Sequence[R]]],
        max_in_flight: int = MAX_IN_FLIGHT,
        max_queries: int = MAX_BATCH_QUERIES,
    ) -> None:
        self._send = send
        self._max_in_flight = max_in_flight
        self._max_queries = max_queries
        self._lanes: dict[K, _Lane[R]] = {}
        self._calls: set[asyncio.Task[None]] = set()  # referenced until done

    async def search(self, key: K, queries: Vector, timeout_s: float) -> Sequence[R]:
        """One result per row of `queries`, from a call shared with others of the same key."""
        if timeout_s <= 0:
            raise DeadlineExceeded(_no_answer(timeout_s))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Sequence[R]] = loop.create_future()
        deadline = loop.time() + timeout_s
        waiting: _Waiting[R] = _Waiting(queries, future, deadline, contextvars.copy_context())
        lane = self._lanes.setdefault(key, _Lane())
        lane.queue.append(waiting)
        if lane.in_flight < self._max_in_flight:
            self._dispatch(key, lane)
        # One timer rather than asyncio.wait_for, which on Python 3.11 adds a
        # future, a callback and a timer per query. On time, the future fails
        # with DeadlineExceeded; a call still carrying it skips done futures.
        timer = loop.call_at(deadline, _expire, future, timeout_s)
        try:
            return await future  # cancelling the caller cancels the future too
        finally:
            timer.cancel()

    def _dispatch(self, key: K, lane: _Lane[R]) -> None:
        """Send the queued queries of `key` (as many as one call takes), if any wait."""
        batch: list[_Waiting[R]] = []
        rows = 0
        while lane.queue:
            waiting = lane.queue[0]
            if waiting.future.done():  # its caller stopped waiting
                lane.queue.popleft()
                continue
            if batch and rows + len(waiting.queries) > self._max_queries:
                break
            batch.append(lane.queue.popleft())
            rows += len(waiting.queries)
        if not batch:
            if lane.in_flight == 0:
                del self._lanes[key]
            return
        lane.in_flight += 1
        # The call runs in its first caller's context, not in that of whoever
        # dispatched it, so the shard logs a request id that is one of the batch's.
        call = asyncio.create_task(self._call(key, lane, batch), context=batch[0].context)
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    async def _call(self, key: K, lane: _Lane[R], batch: list[_Waiting[R]]) -> None:
        try:
            await self._answer(key, batch)
        finally:
            lane.in_flight -= 1
            for waiting in batch:  # answered already, unless this call was cancelled
                if not waiting.future.done():
                    waiting.future.set_exception(Unavailable("the search was cancelled"))
            self._dispatch(key, lane)

    async def _answer(self, key: K, batch: list[_Waiting[R]]) -> None:
        try:
            queries = (
                batch[0].queries
                if len(batch) == 1
                else np.concatenate([waiting.queries for waiting in batch])
            )
            loop = asyncio.get_running_loop()
            timeout_s = max(waiting.deadline for waiting in batch) - loop.time()
            results = await self._send(key, queries, timeout_s)
            if len(results) != len(queries):
                raise Internal(f"the shard answered {len(results)} of {len(queries)} queries")
        except Exception as error:
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        start = 0
        for waiting in batch:
            stop = start + len(waiting.queries)
            if not waiting.future.done():
                waiting.future.set_result(results[start:stop])
            start = stop
