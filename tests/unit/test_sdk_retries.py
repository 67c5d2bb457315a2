"""Both clients retry a call the coordinator could not take (UNAVAILABLE) by
themselves, with backoff, and nothing else: a coordinator restarting, a pod
rolled, a connection refused for a moment is not the user's error to handle.

The server is in-process (threads, 127.0.0.1:0): its ListCollections answers
UNAVAILABLE a given number of times before it answers, and its DeleteCollection
always answers INVALID_ARGUMENT.
"""

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from shoal import AsyncClient, Client
from shoal.errors import InvalidArgument, Unavailable
from shoal.sdk.channel import RETRY_ATTEMPTS
from shoal.v1 import shoal_pb2


class _Flaky:
    """A ShoalService whose ListCollections fails `failures` times first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures = 0
        self.calls = 0

    def ListCollections(
        self, request: shoal_pb2.ListCollectionsRequest, context: grpc.ServicerContext
    ) -> shoal_pb2.ListCollectionsResponse:
        with self.lock:
            self.calls += 1
            failing = self.calls <= self.failures
        if failing:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the coordinator is starting")
        return shoal_pb2.ListCollectionsResponse()

    def DeleteCollection(
        self, request: shoal_pb2.DeleteCollectionRequest, context: grpc.ServicerContext
    ) -> shoal_pb2.DeleteCollectionResponse:
        with self.lock:
            self.calls += 1
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no such name")


@pytest.fixture
def server() -> Iterator[tuple[str, _Flaky]]:
    service = _Flaky()
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "ListCollections": grpc.unary_unary_rpc_method_handler(
            service.ListCollections,
            request_deserializer=shoal_pb2.ListCollectionsRequest.FromString,
            response_serializer=shoal_pb2.ListCollectionsResponse.SerializeToString,
        ),
        "DeleteCollection": grpc.unary_unary_rpc_method_handler(
            service.DeleteCollection,
            request_deserializer=shoal_pb2.DeleteCollectionRequest.FromString,
            response_serializer=shoal_pb2.DeleteCollectionResponse.SerializeToString,
        ),
    }
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    grpc_server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("shoal.v1.ShoalService", handlers),)
    )
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        yield f"127.0.0.1:{port}", service
    finally:
        grpc_server.stop(None)


def test_a_call_answered_unavailable_is_retried_until_it_is_taken(
    server: tuple[str, _Flaky],
) -> None:
    address, service = server
    service.failures = RETRY_ATTEMPTS - 1
    with Client(address, timeout=30) as client:
        assert client.list_collections() == []
    assert service.calls == RETRY_ATTEMPTS


async def test_the_async_client_retries_alike(server: tuple[str, _Flaky]) -> None:
    address, service = server
    service.failures = RETRY_ATTEMPTS - 1
    async with AsyncClient(address, timeout=30) as client:
        assert await client.list_collections() == []
    assert service.calls == RETRY_ATTEMPTS


def test_retries_end_and_the_error_is_raised(server: tuple[str, _Flaky]) -> None:
    address, service = server
    service.failures = RETRY_ATTEMPTS
    with Client(address, timeout=30) as client, pytest.raises(Unavailable):
        client.list_collections()
    assert service.calls == RETRY_ATTEMPTS


def test_an_error_of_the_request_is_not_retried(server: tuple[str, _Flaky]) -> None:
    address, service = server
    with Client(address, timeout=30) as client, pytest.raises(InvalidArgument):
        client.delete_collection("x")
    assert service.calls == 1
