"""`Client` and `AsyncClient`: one API, and search_batch's pipelined calls.

The pipelining tests talk to an in-process gRPC server (threads, 127.0.0.1:0)
whose SearchBatch answers each query with the id of its first value, so the
order of the answers shows, and which holds its first two calls until both
have arrived, so a client that sent one call at a time would fail them.
"""

import inspect
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest

from shoal import AsyncClient, Client
from shoal.errors import FailedPrecondition, InvalidArgument
from shoal.v1 import common_pb2, shoal_pb2

FAIL_AT = 666.0  # a query whose first value is this fails its call with INVALID_ARGUMENT
TOGETHER_TIMEOUT_S = 10.0


def _public(cls: type) -> dict[str, Callable[..., object]]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member)
    }


def test_both_clients_have_the_same_methods_with_the_same_parameters() -> None:
    sync, asynchronous = _public(Client), _public(AsyncClient)
    assert sorted(sync) == sorted(asynchronous)
    for name, method in sync.items():
        other = asynchronous[name]
        assert inspect.iscoroutinefunction(other) or inspect.isasyncgenfunction(other), name
        ours = inspect.signature(method)
        theirs = inspect.signature(other)
        assert list(ours.parameters.values()) == list(theirs.parameters.values()), name
        if name not in ("scroll", "scroll_pages"):  # Iterator vs AsyncIterator
            assert ours.return_annotation == theirs.return_annotation, name


class _Batches:
    """A ShoalService that answers SearchBatch only."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls = 0
        self.first_two = threading.Barrier(2)
        self.together = True  # the first two calls wait for each other
        self.keys: list[str | bytes | None] = []  # each call's authorization metadata
        self.forms: list[str] = []  # each call's queries: "matrix" or "messages"
        self.reads_matrices = True  # False: as a coordinator older than queries_f32

    def _note_key(self, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.keys.append(dict(context.invocation_metadata()).get("authorization"))

    def ListSnapshots(
        self, request: shoal_pb2.ListSnapshotsRequest, context: grpc.ServicerContext
    ) -> shoal_pb2.ListSnapshotsResponse:
        self._note_key(context)
        return shoal_pb2.ListSnapshotsResponse()

    def SearchBatch(
        self, request: shoal_pb2.SearchBatchRequest, context: grpc.ServicerContext
    ) -> shoal_pb2.SearchBatchResponse:
        self._note_key(context)
        with self.lock:
            self.calls += 1
            number = self.calls
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if number <= 2 and self.together:
                self.first_two.wait(TOGETHER_TIMEOUT_S)  # BrokenBarrierError: sent one by one
            firsts = self._firsts(request)
            if FAIL_AT in firsts:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "query 666 is not allowed")
            reply = shoal_pb2.SearchBatchResponse(
                coverage=common_pb2.Coverage(groups_asked=1, groups_answered=1)
            )
            for first in firsts:
                reply.results.add().hits.add(id=str(int(first)), score=first)
            return reply
        finally:
            with self.lock:
                self.in_flight -= 1

    def _firsts(self, request: shoal_pb2.SearchBatchRequest) -> list[float]:
        """Each query's first value, from whichever form the queries came in."""
        with self.lock:
            self.forms.append("matrix" if request.queries_f32 else "messages")
        if request.queries_f32 and self.reads_matrices:
            matrix = np.frombuffer(request.queries_f32, dtype="<f4")
            return [float(value) for value in matrix.reshape(-1, request.dimension)[:, 0]]
        return [float(np.frombuffer(q.vector_f32, dtype="<f4")[0]) for q in request.queries]


@pytest.fixture
def server() -> Iterator[tuple[str, _Batches]]:
    servicer = _Batches()
    running = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    method = grpc.unary_unary_rpc_method_handler(
        servicer.SearchBatch,
        request_deserializer=shoal_pb2.SearchBatchRequest.FromString,
        response_serializer=shoal_pb2.SearchBatchResponse.SerializeToString,
    )
    snapshots = grpc.unary_unary_rpc_method_handler(
        servicer.ListSnapshots,
        request_deserializer=shoal_pb2.ListSnapshotsRequest.FromString,
        response_serializer=shoal_pb2.ListSnapshotsResponse.SerializeToString,
    )
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "SearchBatch": method,
        "ListSnapshots": snapshots,
    }
    running.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("shoal.v1.ShoalService", handlers),)
    )
    port = running.add_insecure_port("127.0.0.1:0")
    running.start()
    yield f"127.0.0.1:{port}", servicer
    running.stop(grace=None)


def _queries(count: int) -> np.ndarray:
    return np.repeat(np.arange(count, dtype=np.float32)[:, None], 4, axis=1)


def test_search_batch_keeps_calls_in_flight_and_answers_in_order(
    server: tuple[str, _Batches],
) -> None:
    address, servicer = server
    with Client(address, timeout=30) as client:
        result = client.search_batch("c", _queries(10), batch_size=3, in_flight=2)
    assert servicer.calls == 4 and servicer.most_in_flight == 2
    assert result.ids[:, 0].tolist() == [str(i) for i in range(10)]
    assert result.counts.tolist() == [1] * 10


async def test_the_async_client_pipelines_alike(server: tuple[str, _Batches]) -> None:
    address, servicer = server
    async with AsyncClient(address, timeout=30) as client:
        result = await client.search_batch("c", _queries(10), batch_size=3, in_flight=2)
    assert servicer.calls == 4 and servicer.most_in_flight == 2
    assert result.ids[:, 0].tolist() == [str(i) for i in range(10)]


def test_vectors_go_as_one_matrix_per_call_and_ragged_ones_as_messages(
    server: tuple[str, _Batches],
) -> None:
    address, servicer = server
    servicer.together = False
    with Client(address, timeout=30) as client:
        as_list = client.search_batch("c", _queries(5).tolist(), batch_size=3)
        ragged = client.search_batch("c", [[1.0, 2.0], [3.0]], batch_size=3)
    assert servicer.forms == ["matrix", "matrix", "messages"]
    assert as_list.ids[:, 0].tolist() == [str(i) for i in range(5)]
    assert ragged.ids[:, 0].tolist() == ["1", "3"]


@pytest.mark.parametrize("in_flight", [1, 2])
def test_a_coordinator_that_ignores_the_query_matrix_is_an_error_not_an_empty_answer(
    server: tuple[str, _Batches], in_flight: int
) -> None:
    address, servicer = server
    servicer.together, servicer.reads_matrices = False, False
    with (
        Client(address, timeout=30) as client,
        pytest.raises(FailedPrecondition, match="answered 0 of 3 queries"),
    ):
        client.search_batch("c", _queries(6), batch_size=3, in_flight=in_flight)


async def test_the_async_client_refuses_an_empty_answer_alike(
    server: tuple[str, _Batches],
) -> None:
    address, servicer = server
    servicer.together, servicer.reads_matrices = False, False
    async with AsyncClient(address, timeout=30) as client:
        with pytest.raises(FailedPrecondition, match="answered 0 of 2 queries"):
            await client.search_batch("c", _queries(2))


def test_a_failing_call_raises_its_error(server: tuple[str, _Batches]) -> None:
    address, _ = server
    queries = _queries(10)
    queries[7] = FAIL_AT
    with (
        Client(address, timeout=30) as client,
        pytest.raises(InvalidArgument, match="query 666"),
    ):
        client.search_batch("c", queries, batch_size=3, in_flight=2)


async def test_a_failing_call_raises_its_error_in_the_async_client(
    server: tuple[str, _Batches],
) -> None:
    address, _ = server
    queries = _queries(10)
    queries[7] = FAIL_AT
    async with AsyncClient(address, timeout=30) as client:
        with pytest.raises(InvalidArgument, match="query 666"):
            await client.search_batch("c", queries, batch_size=3, in_flight=2)


@pytest.mark.parametrize(("batch_size", "in_flight"), [(0, 2), (10, 0)])
def test_batch_size_and_in_flight_must_be_positive(batch_size: int, in_flight: int) -> None:
    with (
        Client("127.0.0.1:1") as client,
        pytest.raises(InvalidArgument, match="at least 1"),
    ):
        client.search_batch("c", _queries(2), batch_size=batch_size, in_flight=in_flight)


@pytest.mark.parametrize(("batch_size", "in_flight"), [(3, 2), (3, 1), (100, 2)])
def test_every_search_batch_call_carries_the_api_key(
    server: tuple[str, _Batches], batch_size: int, in_flight: int
) -> None:
    address, servicer = server
    servicer.together = in_flight > 1 and batch_size < 10
    with Client(address, timeout=30, api_key="k1") as client:
        result = client.search_batch("c", _queries(10), batch_size=batch_size, in_flight=in_flight)
    assert result.ids[:, 0].tolist() == [str(i) for i in range(10)]
    assert servicer.keys == ["Bearer k1"] * servicer.calls


def test_snapshot_calls_carry_the_api_key(server: tuple[str, _Batches]) -> None:
    address, servicer = server
    with Client(address, timeout=30, api_key="k1") as client:
        assert client.list_snapshots() == []
    assert servicer.keys == ["Bearer k1"]


def test_one_call_at_a_time_answers_in_order_and_raises_the_failing_call_s_error(
    server: tuple[str, _Batches],
) -> None:
    address, servicer = server
    servicer.together = False
    queries = _queries(10)
    with Client(address, timeout=30) as client:
        result = client.search_batch("c", queries, batch_size=3, in_flight=1)
        assert result.ids[:, 0].tolist() == [str(i) for i in range(10)]
        assert servicer.calls == 4 and servicer.most_in_flight == 1
        queries[7] = FAIL_AT
        with pytest.raises(InvalidArgument, match="query 666"):
            client.search_batch("c", queries, batch_size=3, in_flight=1)
    assert servicer.calls == 7  # the failing call was the last one sent


async def test_the_async_client_one_call_at_a_time_alike(server: tuple[str, _Batches]) -> None:
    address, servicer = server
    servicer.together = False
    queries = _queries(10)
    async with AsyncClient(address, timeout=30, api_key="k1") as client:
        result = await client.search_batch("c", queries, batch_size=3, in_flight=1)
        assert result.ids[:, 0].tolist() == [str(i) for i in range(10)]
        assert servicer.calls == 4 and servicer.most_in_flight == 1
        queries[7] = FAIL_AT
        with pytest.raises(InvalidArgument, match="query 666"):
            await client.search_batch("c", queries, batch_size=3, in_flight=1)
    assert servicer.calls == 7 and servicer.keys == ["Bearer k1"] * 7
