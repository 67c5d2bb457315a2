"""shoal.runtime.logs: request ids from metadata, carried across a real gRPC hop; JSON lines."""

import io
import json
import logging
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio
import pytest

from shoal.runtime.handlers import wrap_handler
from shoal.runtime.logs import (
    REQUEST_ID_KEY,
    JsonFormatter,
    RequestIdFilter,
    configure_logging,
    current_request_id,
    outgoing_metadata,
    request_context,
    request_id_from_metadata,
    with_request_context,
    with_request_id,
)


def test_request_id_comes_from_metadata_when_sensible() -> None:
    assert request_id_from_metadata([("other", "x"), ("X-Request-Id", "ghz-42")]) == "ghz-42"
    assert request_id_from_metadata([(REQUEST_ID_KEY, b"abc-1")]) == "abc-1"


@pytest.mark.parametrize(
    "metadata",
    [None, [], [(REQUEST_ID_KEY, "")], [(REQUEST_ID_KEY, "a b")], [(REQUEST_ID_KEY, "x" * 200)]],
)
def test_a_missing_or_unsafe_request_id_is_replaced(metadata: Any) -> None:
    request_id = request_id_from_metadata(metadata)
    assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert request_id_from_metadata(metadata) != request_id


def test_outgoing_metadata_carries_the_current_id() -> None:
    assert outgoing_metadata() == ()
    assert outgoing_metadata([("k", "v")]) == (("k", "v"),)
    with request_context("req-1"):
        assert current_request_id() == "req-1"
        assert outgoing_metadata([("k", "v")]) == ((REQUEST_ID_KEY, "req-1"), ("k", "v"))
    assert current_request_id() is None


def test_thread_pool_work_keeps_the_request_id() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool, request_context("req-2"):
        assert pool.submit(current_request_id).result() is None  # what the wrapper fixes
        assert pool.submit(with_request_context(current_request_id)).result() == "req-2"


def _record(message: str, **extra: Any) -> logging.LogRecord:
    return logging.getLogger("shard.core").makeRecord(
        "shard.core", logging.WARNING, __file__, 1, message, (), None, extra=extra
    )


def test_json_lines_have_time_level_logger_service_request_id_and_extras() -> None:
    formatter = JsonFormatter("shard")
    with request_context("req-3"):
        entry = json.loads(formatter.format(_record("slow query", collection="docs")))
    assert entry["time"].endswith("Z") and entry["time"][10] == "T"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "shard.core"
    assert entry["message"] == "slow query"
    assert entry["service"] == "shard"
    assert entry["request_id"] == "req-3"
    assert entry["collection"] == "docs"
    outside = json.loads(formatter.format(_record("idle")))
    assert "request_id" not in outside


def test_json_lines_include_the_exception() -> None:
    try:
        raise ValueError("bad index")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: bad index" in entry["exception"]
    assert "service" not in entry


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level


@pytest.mark.usefixtures("restore_root_logger")
def test_configure_logging_installs_one_handler() -> None:
    configure_logging("embedder", level="debug", fmt="json")
    handler = configure_logging("embedder", level="debug", fmt="json")
    assert logging.getLogger().handlers == [handler]
    assert logging.getLogger().level == logging.DEBUG
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    with request_context("req-4"):
        logging.getLogger("embedder.batcher").info("batch of %d", 8)
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "batch of 8" and entry["request_id"] == "req-4"
    with pytest.raises(ValueError, match="log format"):
        configure_logging("embedder", fmt="xml")


def test_text_logs_show_the_request_id() -> None:
    record = _record("hello")
    RequestIdFilter().filter(record)
    assert getattr(record, "request_id", None) == "-"
    with request_context("req-5"):
        record = _record("hello")
        RequestIdFilter().filter(record)
    assert getattr(record, "request_id", None) == "req-5"


# A front service (like the coordinator) calls a back service (like a shard);
# the back service answers with the request id it received in metadata.


async def _back(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    received = dict(context.invocation_metadata() or ()).get(REQUEST_ID_KEY, "")
    text = received.decode() if isinstance(received, bytes) else received
    return f"{text}|{current_request_id()}".encode()


async def _serve(handler: Any) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Call": grpc.unary_unary_rpc_method_handler(
            wrap_handler("/t.S/Call", handler, [with_request_id])
        )
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.S", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _call(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/t.S/Call")
    reply = await call(b"", metadata=metadata, timeout=10)
    return reply.decode()


async def _hop(client_metadata: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """(what the front saw, what the back received|saw)."""
    back, back_port = await _serve(_back)
    back_channel = grpc.aio.insecure_channel(f"127.0.0.1:{back_port}")
    seen: list[str] = []

    async def front(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        seen.append(current_request_id() or "")
        return (await _call(back_channel, outgoing_metadata())).encode()

    front_server, front_port = await _serve(front)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{front_port}") as channel:
            reply = await _call(channel, client_metadata)
    finally:
        await back_channel.close()
        await front_server.stop(None)
        await back.stop(None)
    return seen[0], reply


async def test_the_callers_request_id_reaches_the_next_service() -> None:
    front, back = await _hop(((REQUEST_ID_KEY, "ghz-7"),))
    assert front == "ghz-7"
    assert back == "ghz-7|ghz-7"


async def test_a_request_without_an_id_gets_one_that_travels_on() -> None:
    front, back = await _hop(())
    assert len(front) == 32
    assert back == f"{front}|{front}"
