"""bench.loadgen.alternating: the kinds of request take turns call by call, so their
latencies are measured under the same load, and each kind gets its own answers."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from bench import loadgen

METHOD = "/bench.Echo/Call"


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        received.append(request)
        return request

    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("bench.Echo", {"Call": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", received
    server.stop(None)


def test_kinds_take_turns_call_by_call(recording_server: tuple[str, list[bytes]]) -> None:
    address, received = recording_server
    requests = {
        "a": [b"a%d" % i for i in range(5)],
        "b": [b"b%d" % i for i in range(4)],  # the shorter kind bounds the rounds
    }
    calls = loadgen.alternating(address, METHOD, requests, 10.0, warmup=1)
    measured = received[2:]  # the warm-up round: a0, b0
    assert measured == [b"a0", b"b0", b"b1", b"a1", b"a2", b"b2", b"b3", b"a3"]
    assert calls["a"].responses == requests["a"][:4]
    assert calls["b"].responses == requests["b"]
    for kind in requests:
        assert len(calls[kind].latencies) == calls[kind].count == 4
        assert calls[kind].seconds == pytest.approx(sum(calls[kind].latencies))
