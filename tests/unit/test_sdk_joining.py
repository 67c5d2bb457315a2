"""Joining concurrent single searches (shoal/sdk/joining.py) against a scripted sender:
which calls go out, and what each caller gets back.

The sender answers each query with a hit whose id is the query's text, so a
caller that got someone else's answer shows; it holds the first calls open
until the test lets them go, so that the searches behind them queue.
"""

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from shoal.errors import InvalidArgument, Unavailable
from shoal.sdk.calls import Call
from shoal.sdk.columnar import SearchResult
from shoal.sdk.joining import (
    CALLS_IN_FLIGHT,
    MOST_JOINED,
    AsyncSearchJoiner,
    SearchJoiner,
    batch_request,
    join_key,
)
from shoal.sdk.where import combined_filter
from shoal.v1 import common_pb2, shoal_pb2

TIMEOUT = 30.0
#: The searches that go alone, each its own call, before any waits to be joined.
ALONE = [f"alone{i}" for i in range(CALLS_IN_FLIGHT)]


def request(text: str, k: int = 10, **fields: Any) -> shoal_pb2.SearchRequest:
    return shoal_pb2.SearchRequest(
        collection="c", query=shoal_pb2.Query(text=text), k=k, packed=True, **fields
    )


def search_call(text: str) -> Call[SearchResult]:
    """A single search's call, as `shoal.sdk.calls.search` makes it."""
    return Call("Search", request(text), SearchResult.from_reply)


def hits_of(query: shoal_pb2.Query) -> list[common_pb2.Hit]:
    return [common_pb2.Hit(id=query.text, score=1.0)]


class Sender:
    """Answers Search and SearchBatch; a query whose text starts with "bad" fails
    its call with `failure`. Calls wait for `open` (set it to answer at once)."""

    def __init__(self, failure: Callable[[str], Exception] = InvalidArgument) -> None:
        self.calls: list[tuple[str, list[str], float]] = []
        self.open = threading.Event()
        self.failure = failure
        self.arrived = 0  # calls made, answered or not
        self._lock = threading.Lock()

    def answer(self, method: str, message: Any, seconds: float) -> Any:
        queries = [message.query] if method == "Search" else list(message.queries)
        with self._lock:
            self.calls.append((method, [query.text for query in queries], seconds))
        if any(query.text.startswith("bad") for query in queries):
            raise self.failure(f"{method}: a bad query")
        if method == "Search":
            return shoal_pb2.SearchResponse(hits=hits_of(message.query))
        results = [shoal_pb2.SearchResult(hits=hits_of(query)) for query in queries]
        return shoal_pb2.SearchBatchResponse(results=results)

    def __call__(self, method: str, message: Any, seconds: float) -> Any:
        with self._lock:
            self.arrived += 1
        assert self.open.wait(TIMEOUT)
        return self.answer(method, message, seconds)

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.calls]


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def waiting(joiner: SearchJoiner | AsyncSearchJoiner) -> int:
    return sum(len(line.waiting) for line in joiner._lines._lines.values())


async def loop_until(condition: Callable[[], bool]) -> None:
    """Let the event loop run the tasks until `condition` holds."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the tasks never got there")


def search_in_threads(
    joiner: SearchJoiner, sender: Sender, texts: list[str]
) -> dict[str, SearchResult | Exception]:
    """Each text searched from its own thread: the first CALLS_IN_FLIGHT texts' are
    sent alone and held until all the others wait behind them."""
    answers: dict[str, SearchResult | Exception] = {}

    def search(text: str) -> None:
        try:
            answers[text] = joiner.search(search_call(text), TIMEOUT)
        except Exception as error:
            answers[text] = error

    threads = [threading.Thread(target=search, args=(text,)) for text in texts]
    for thread in threads[:CALLS_IN_FLIGHT]:
        thread.start()
    wait_until(lambda: sender.arrived == CALLS_IN_FLIGHT)
    for thread in threads[CALLS_IN_FLIGHT:]:
        thread.start()
    wait_until(lambda: waiting(joiner) == len(texts) - CALLS_IN_FLIGHT)
    sender.open.set()
    for thread in threads:
        thread.join(TIMEOUT)
    return answers


def test_batch_requests_number_their_fields_as_single_searches_do() -> None:
    single = {f.name: (f.number, f.type) for f in shoal_pb2.SearchRequest.DESCRIPTOR.fields}
    batch = {f.name: (f.number, f.type) for f in shoal_pb2.SearchBatchRequest.DESCRIPTOR.fields}
    assert single.pop("query") == batch.pop("queries")
    # A batch's own fields (its query matrix) take numbers no single search uses.
    only_batch = {name: batch.pop(name) for name in ("queries_f32", "dimension")}
    assert single == batch
    assert not {number for number, _ in only_batch.values()} & {n for n, _ in single.values()}


def test_searches_join_when_all_but_the_query_is_the_same() -> None:
    where = combined_filter({"section": "sound", "size": {"$gte": 100}}, None)
    assert join_key(request("x", filter=where)) == join_key(request("y", filter=where))
    assert join_key(request("x")) != join_key(request("x", k=5))
    assert join_key(request("x")) != join_key(request("x", filter=where))
    vector = shoal_pb2.SearchRequest(query=shoal_pb2.Query(vector_f32=b"\0\0\0\0"), k=10)
    assert join_key(vector) != join_key(request("x"))
    assert join_key(shoal_pb2.SearchRequest(query=shoal_pb2.Query(like_id="d1"))) is None

    options = request("x", filter=where, explain=True)
    key = join_key(options)
    assert key is not None
    joined = batch_request(key, [shoal_pb2.Query(text="x"), shoal_pb2.Query(text="y")])
    assert [query.text for query in joined.queries] == ["x", "y"]
    assert (joined.collection, joined.k, joined.filter, joined.explain, joined.packed) == (
        "c", 10, where, True, True,
    )  # fmt: skip


def test_a_lone_search_is_a_plain_search() -> None:
    sender = Sender()
    sender.open.set()
    joiner = SearchJoiner(sender)
    assert list(joiner.search(search_call("a"), TIMEOUT).ids) == ["a"]
    assert list(joiner.search(search_call("b"), TIMEOUT).ids) == ["b"]
    assert sender.methods() == ["Search", "Search"]


def test_searches_behind_the_calls_out_go_together_each_with_its_own_answer() -> None:
    sender = Sender()
    joiner = SearchJoiner(sender)
    texts = [f"q{i}" for i in range(CALLS_IN_FLIGHT + MOST_JOINED + 3)]
    answers = search_in_threads(joiner, sender, texts)
    for text in texts:
        answer = answers[text]
        assert isinstance(answer, SearchResult) and list(answer.ids) == [text]
    # The first searches went alone; those queued behind them in calls of at most
    # MOST_JOINED.
    alone = {queries[0] for method, queries, _ in sender.calls if method == "Search"}
    joined = [queries for method, queries, _ in sender.calls if method == "SearchBatch"]
    assert alone == set(texts[:CALLS_IN_FLIGHT])
    assert sorted(len(queries) for queries in joined) == [3, MOST_JOINED]
    assert sorted(text for queries in joined for text in queries) == sorted(texts[CALLS_IN_FLIGHT:])
    assert not joiner._lines._lines  # nothing left behind


def test_without_joining_every_search_is_its_own_call_at_once() -> None:
    sender = Sender()
    joiner = SearchJoiner(sender, join=False)
    texts = [f"q{i}" for i in range(CALLS_IN_FLIGHT + 4)]
    answers: dict[str, SearchResult] = {}

    def search(text: str) -> None:
        answers[text] = joiner.search(search_call(text), TIMEOUT)

    threads = [threading.Thread(target=search, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    wait_until(lambda: sender.arrived == len(texts))  # all out together, none waiting
    sender.open.set()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sender.methods() == ["Search"] * len(texts)
    assert all(list(answers[text].ids) == [text] for text in texts)


def test_a_query_that_fails_a_joined_call_fails_alone() -> None:
    sender = Sender()
    joiner = SearchJoiner(sender)
    texts = [*ALONE, "q1", "bad query", "q2"]
    answers = search_in_threads(joiner, sender, texts)
    assert isinstance(answers["bad query"], InvalidArgument)
    assert str(answers["bad query"]) == "Search: a bad query"  # its own call's error
    for text in [*ALONE, "q1", "q2"]:
        answer = answers[text]
        assert isinstance(answer, SearchResult) and list(answer.ids) == [text]
    assert sender.methods().count("SearchBatch") == 1
    assert sender.methods().count("Search") == len(texts)


def test_a_call_failure_is_every_callers() -> None:
    sender = Sender(failure=Unavailable)
    joiner = SearchJoiner(sender)
    answers = search_in_threads(joiner, sender, [*ALONE, "q1", "bad", "q2"])
    joined_failures = [answers[text] for text in ["q1", "bad", "q2"]]
    assert all(isinstance(failure, Unavailable) for failure in joined_failures)
    assert len({id(failure) for failure in joined_failures}) == 3  # one each
    assert sender.methods().count("SearchBatch") == 1
    assert sender.methods().count("Search") == CALLS_IN_FLIGHT  # none sent again


def test_a_joined_call_gets_the_least_time_left() -> None:
    sender = Sender()
    joiner = SearchJoiner(sender)
    search_in_threads(joiner, sender, [*ALONE, "q1", "q2"])
    (_, _, seconds), *_ = [call for call in sender.calls if call[0] == "SearchBatch"]
    assert 0 < seconds < TIMEOUT


def test_tasks_join_as_threads_do_and_a_cancelled_leader_still_sends() -> None:
    async def scenario() -> None:
        sender = Sender()
        held = {text: asyncio.Event() for text in ALONE}  # the calls out first

        async def send(method: str, message: Any, seconds: float) -> Any:
            first = message.query if method == "Search" else message.queries[0]
            if first.text in held:
                await held[first.text].wait()
            return sender.answer(method, message, seconds)

        joiner = AsyncSearchJoiner(send)
        joined = [f"j{i}" for i in range(6)]
        tasks = {
            t: asyncio.ensure_future(joiner.search(search_call(t), TIMEOUT)) for t in ALONE + joined
        }
        await loop_until(lambda: waiting(joiner) == len(joined))
        held[ALONE[0]].set()
        await loop_until(lambda: not waiting(joiner))  # a call returned: j0 sends the rest
        # j0, to lead the joined call, and j1, in it, give up before j0 sends: the
        # call goes all the same, and the others get their answers.
        tasks["j0"].cancel()
        tasks["j1"].cancel()
        for event in held.values():
            event.set()
        for text, task in tasks.items():
            if text in ("j0", "j1"):
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                assert list((await task).ids) == [text]
        assert [call[:2] for call in sender.calls if call[0] == "SearchBatch"] == [
            ("SearchBatch", joined)
        ]
        await loop_until(lambda: not joiner._lines._lines)  # the orphaned call handed on

    asyncio.run(scenario())


def test_a_task_cancelled_while_waiting_leaves_the_line() -> None:
    async def scenario() -> None:
        sender = Sender()
        gate = asyncio.Event()

        async def send(method: str, message: Any, seconds: float) -> Any:
            await gate.wait()
            return sender.answer(method, message, seconds)

        joiner = AsyncSearchJoiner(send)
        texts = [*ALONE, "j0", "j1", "j2"]
        tasks = {t: asyncio.ensure_future(joiner.search(search_call(t), TIMEOUT)) for t in texts}
        await loop_until(lambda: waiting(joiner) == 3)
        tasks["j1"].cancel()
        await loop_until(lambda: waiting(joiner) == 2)
        gate.set()
        for text in [*ALONE, "j0", "j2"]:
            assert list((await tasks[text]).ids) == [text]
        assert ("SearchBatch", ["j0", "j2"]) in [call[:2] for call in sender.calls]

    asyncio.run(scenario())


def test_a_task_cancelled_before_sending_its_own_search_sends_nothing() -> None:
    async def scenario() -> None:
        sender = Sender()
        held = {text: asyncio.Event() for text in ALONE}

        async def send(method: str, message: Any, seconds: float) -> Any:
            if message.query.text in held:
                await held[message.query.text].wait()
            return sender.answer(method, message, seconds)

        joiner = AsyncSearchJoiner(send)
        tasks = {t: asyncio.ensure_future(joiner.search(search_call(t), TIMEOUT)) for t in ALONE}
        tasks["late"] = asyncio.ensure_future(joiner.search(search_call("late"), TIMEOUT))
        await loop_until(lambda: waiting(joiner) == 1)
        held[ALONE[0]].set()
        await loop_until(lambda: not waiting(joiner))  # "late" is to send its own call
        tasks["late"].cancel()
        for event in held.values():
            event.set()
        for text in ALONE:
            assert list((await tasks[text]).ids) == [text]
        with pytest.raises(asyncio.CancelledError):
            await tasks["late"]
        assert sorted(queries[0] for _, queries, _ in sender.calls) == sorted(ALONE)
        await loop_until(lambda: not joiner._lines._lines)

    asyncio.run(scenario())
