"""Concurrent single searches with the same options, joined into SearchBatch calls.

Threads sharing a `Client` (or tasks sharing an `AsyncClient`) that search at
the same time pay gRPC's per-call cost, in the client, the coordinator and the
shards, once per joined call instead of once per query. It works as the
coordinator's joining of shard calls (coordinator/clients/coalescer.py): at most
CALLS_IN_FLIGHT calls per set of options are out at once; searches that come
meanwhile wait, and when a call returns, the first of them sends the next call
with up to MOST_JOINED of them. Nothing waits on a timer: a lone search goes at
once, as a plain Search, and so does each search of a "joined" call of one.

Each caller keeps its own answer and its own deadline (the joined call gets the
least time any of its searches has left). A joined call that fails for a reason
one query could cause (a bad vector, a text too long, a limit) is retried search
by search, each by its own caller, so everyone gets the answer or the error its
own Search would have got; failures of the call itself (unavailable, deadline,
API key) are every caller's.
"""

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.errors import (
    DeadlineExceeded,
    PermissionDenied,
    ShoalError,
    Unauthenticated,
    Unavailable,
)
from shoal.sdk.calls import Call
from shoal.sdk.columnar import SearchBatchResult, SearchResult
from shoal.v1 import shoal_pb2

#: Calls out at once per set of options, as the coordinator's shard calls: one
#: answering while the next is on its way. Measured against 3 and 4 in one run
#: (docs/benchmarks.md): 2 serves 8 and 16 threads best, and costs 4 threads
#: 11-23% of their throughput, waiting (`join_searches=False` turns joining off).
CALLS_IN_FLIGHT = 2
#: Searches one joined call takes at most.
MOST_JOINED = 32

#: Failures of a call, not of any one query in it: every caller of a joined call gets them.
_CALL_FAILURES = (Unavailable, DeadlineExceeded, Unauthenticated, PermissionDenied)

#: The method ("Search", "SearchBatch"), the request and the seconds left: the reply.
Send = Callable[[str, Any, float], Any]
AsyncSend = Callable[[str, Any, float], Awaitable[Any]]


@dataclass(frozen=True)
class JoinKey:
    """What searches must share to be joined: the kind of query (vector, text or
    both) and every other field of the request, serialized."""

    has_vector: bool
    has_text: bool
    options: bytes


def join_key(request: shoal_pb2.SearchRequest) -> JoinKey | None:
    """None for a search that goes alone (more-like-this: an unknown id fails the
    whole batch, and a missing document is not a fault of the other queries')."""
    query = request.query
    if query.like_id or query.vector:
        return None
    options = shoal_pb2.SearchRequest()
    options.CopyFrom(request)
    options.ClearField("query")
    return JoinKey(
        bool(query.vector_f32), bool(query.text), options.SerializeToString(deterministic=True)
    )


def batch_request(key: JoinKey, queries: list[shoal_pb2.Query]) -> shoal_pb2.SearchBatchRequest:
    """The SearchBatch of `queries` with the key's options. SearchBatchRequest
    numbers its fields as SearchRequest does, `queries` being `query` repeated
    (tests/unit/test_sdk_joining.py holds them so), so the options' bytes read
    as a SearchBatchRequest."""
    request = shoal_pb2.SearchBatchRequest.FromString(key.options)
    request.queries.extend(queries)
    return request


@dataclass(eq=False)
class _Search:
    """One caller's search: its call (`shoal.sdk.calls.search`'s, sent as it is when
    alone), its deadline and, once answered, its result or error (neither: the
    caller sends it alone)."""

    call: Call[SearchResult]
    deadline: float
    result: SearchResult | None = None
    error: ShoalError | None = None
    #: Set on the search whose caller is to send the next call: the searches it takes.
    leads: "list[_Search] | None" = None
    #: Wakes a waiting caller (its event's `set`).
    wake: Callable[[], None] | None = None

    @property
    def query(self) -> shoal_pb2.Query:
        query: shoal_pb2.Query = self.call.request.query
        return query

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass(eq=False)
class _Line:
    """The searches of one set of options: calls out, searches waiting."""

    in_flight: int = 0
    waiting: list[_Search] = field(default_factory=list)


class _Lines:
    """The bookkeeping both joiners share; the threaded one holds a lock around it."""

    def __init__(self) -> None:
        self._lines: dict[JoinKey, _Line] = {}

    def enter(self, key: JoinKey, search: _Search) -> _Line:
        """Lead a call of `search` alone if the line has room, else wait in it."""
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line()
        if line.in_flight < CALLS_IN_FLIGHT:
            line.in_flight += 1
            search.leads = [search]
        else:
            line.waiting.append(search)
        return line

    def hand_on(self, key: JoinKey, line: _Line) -> _Search | None:
        """After a call: the waiting search that now leads the next one (None: the
        line has a call fewer out)."""
        if line.waiting:
            taken = line.waiting[:MOST_JOINED]
            del line.waiting[:MOST_JOINED]
            taken[0].leads = taken
            return taken[0]
        line.in_flight -= 1
        if not line.in_flight:
            del self._lines[key]
        return None


def _settle(searches: list[_Search], reply: Any) -> None:
    for search, result in zip(searches, SearchBatchResult([reply]), strict=True):
        search.result = result


def _settle_failed(searches: list[_Search], error: BaseException) -> None:
    """A call failure is everyone's (a copy each: each caller raises its own);
    after any other, each search is left to be sent alone."""
    if isinstance(error, _CALL_FAILURES):
        for search in searches:
            search.error = type(error)(*error.args)


def _wake(searches: list[_Search], leader: _Search | None) -> None:
    """Wake the callers of a call's searches (not its sender's) and the next leader."""
    for search in [*searches[1:], *([leader] if leader is not None else [])]:
        if search.wake is not None:
            search.wake()


def _answer(search: _Search) -> SearchResult:
    if search.error is not None:
        raise search.error
    assert search.result is not None
    return search.result


class SearchJoiner:
    """Joins the searches of threads sharing a blocking client."""

    def __init__(self, send: Send, join: bool = True) -> None:
        self._send = send
        self._join = join
        self._lines = _Lines()
        self._lock = threading.Lock()

    def search(self, call: Call[SearchResult], seconds: float) -> SearchResult:
        """The answer to a Search `call`, joined or alone, within `seconds`."""
        key = join_key(call.request) if self._join else None
        search = _Search(call, time.monotonic() + seconds)
        if key is None:
            return self._alone(search)
        with self._lock:
            line = self._lines.enter(key, search)
            if search.leads is None:
                woken = threading.Event()
                search.wake = woken.set
        if search.leads is None:
            woken.wait()
        if search.leads is not None:
            self._lead(key, line, search.leads)
        if search.result is None and search.error is None:
            return self._alone(search)
        return _answer(search)

    def _alone(self, search: _Search) -> SearchResult:
        call = search.call
        return call.decode(self._send(call.method, call.request, search.seconds_left()))

    def _lead(self, key: JoinKey, line: _Line, searches: list[_Search]) -> None:
        """Send the call of `searches` (the first is this caller's), then hand on."""
        try:
            if len(searches) == 1:
                searches[0].result = self._alone(searches[0])
                return
            seconds = min(search.seconds_left() for search in searches)
            queries = [search.query for search in searches]
            try:
                reply = self._send("SearchBatch", batch_request(key, queries), seconds)
            except Exception as error:
                _settle_failed(searches, error)
            else:
                _settle(searches, reply)
        finally:
            with self._lock:
                leader = self._lines.hand_on(key, line)
            _wake(searches, leader)


class AsyncSearchJoiner:
    """Joins the searches of tasks sharing an asyncio client (one event loop)."""

    def __init__(self, send: AsyncSend, join: bool = True) -> None:
        self._send = send
        self._join = join
        self._lines = _Lines()
        #: Calls sent for a caller cancelled while it was to lead them.
        self._orphaned: set[asyncio.Task[None]] = set()

    async def search(self, call: Call[SearchResult], seconds: float) -> SearchResult:
        """As `SearchJoiner.search`."""
        key = join_key(call.request) if self._join else None
        search = _Search(call, time.monotonic() + seconds)
        if key is None:
            return await self._alone(search)
        line = self._lines.enter(key, search)
        if search.leads is None:
            woken = asyncio.Event()
            search.wake = woken.set
            try:
                await woken.wait()
            except asyncio.CancelledError:
                self._leave(key, line, search)
                raise
        if search.leads is not None:
            await self._lead(key, line, search.leads)
        if search.result is None and search.error is None:
            return await self._alone(search)
        return _answer(search)

    def _leave(self, key: JoinKey, line: _Line, search: _Search) -> None:
        """A waiting caller cancelled: out of the line, or, if it was to lead the
        next call, that call goes on without it (the others' searches need it; a
        call of its search alone is not sent)."""
        if search.leads == [search]:  # its call was its own: hand the slot on
            _wake(search.leads, self._lines.hand_on(key, line))
        elif search.leads is not None:
            task = asyncio.ensure_future(self._lead(key, line, search.leads))
            self._orphaned.add(task)
            task.add_done_callback(self._orphaned.discard)
        elif search in line.waiting:
            line.waiting.remove(search)

    async def _alone(self, search: _Search) -> SearchResult:
        call = search.call
        return call.decode(await self._send(call.method, call.request, search.seconds_left()))

    async def _lead(self, key: JoinKey, line: _Line, searches: list[_Search]) -> None:
        """As `SearchJoiner._lead`."""
        try:
            if len(searches) == 1:
                searches[0].result = await self._alone(searches[0])
                return
            seconds = min(search.seconds_left() for search in searches)
            queries = [search.query for search in searches]
            try:
                reply = await self._send("SearchBatch", batch_request(key, queries), seconds)
            except Exception as error:
                _settle_failed(searches, error)
            else:
                _settle(searches, reply)
        finally:
            _wake(searches, self._lines.hand_on(key, line))
