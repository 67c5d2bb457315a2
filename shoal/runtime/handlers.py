"""Registering a servicer with every unary handler wrapped in a chain of wrappers, once.

Request ids (shoal.runtime.logs), metrics (shoal.runtime.metrics) and the error model
(shoal.runtime.status) each provide a `Wrapper`; `shoal.runtime.server` applies them here when
it registers a servicer, so each RPC method gets its wrapped handler built
once at start-up. (A grpc.aio server interceptor would rebuild the chain, and
await one more coroutine, on every call.) Streaming RPCs (health Watch,
reflection) pass through untouched.

The method handlers are built here from the service's descriptor, rather than
by the generated `add_..._to_server` function, so that request parsing is ours
too: grpc.aio answers a request that fails to parse (a string field that is not
valid UTF-8, messages nested past protobuf's recursion limit) with UNKNOWN
"Unexpected DecodeError", before any handler or wrapper runs. Our parser hands
the handler a `MalformedRequest` instead, and `reject_malformed`, the innermost
wrapper, turns it into INVALID_ARGUMENT through the error model, with request
id and metrics like any other call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from google.protobuf import descriptor_pool, message, message_factory

from shoal.errors import InvalidArgument

if TYPE_CHECKING:
    Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
    #: Given the full method name and a handler, the handler with something around it.
    Wrapper = Callable[[str, Handler], Handler]

#: Nesting protobuf's parser accepts (its default recursion limit).
MAX_MESSAGE_DEPTH = 100


class MalformedRequest:
    """What a request that failed to parse is handed to the handler as."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def parse_or_mark(request_type: type[message.Message]) -> Callable[[bytes], object]:
    """A request deserializer that returns a `MalformedRequest` rather than raising."""
    name = request_type.DESCRIPTOR.full_name

    def parse(data: bytes) -> object:
        try:
            return request_type.FromString(data)
        except message.DecodeError as error:
            return MalformedRequest(
                f"the request is not a valid {name}: {error}; string fields must be valid"
                f" UTF-8 and messages may nest at most {MAX_MESSAGE_DEPTH} levels deep"
            )

    return parse


def reject_malformed(method: str, handler: Handler) -> Handler:
    """A request that failed to parse is INVALID_ARGUMENT, saying why."""

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, MalformedRequest):
            raise InvalidArgument(request.message)
        return await handler(request, context)

    return call


def wrap_handler(full_method: str, handler: Handler, wrappers: Sequence[Wrapper]) -> Handler:
    """`handler` inside `wrappers`; the first listed runs outermost."""
    for wrap in reversed(wrappers):
        handler = wrap(full_method, handler)
    return handler


def method_handlers(
    servicer: object, service: str, wrappers: Sequence[Wrapper]
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The method handlers of `servicer` (of the gRPC service named `service`, e.g.
    'shoal.v1.ShardService'): unary methods run inside `wrappers` and reject
    requests that fail to parse; streaming ones are served as they are."""
    descriptor = descriptor_pool.Default().FindServiceByName(service)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in descriptor.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        behaviour = getattr(servicer, method.name)
        serialize = response_type.SerializeToString
        if method.client_streaming and method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                behaviour, request_type.FromString, serialize
            )
        elif method.client_streaming:
            handlers[method.name] = grpc.stream_unary_rpc_method_handler(
                behaviour, request_type.FromString, serialize
            )
        elif method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                behaviour, request_type.FromString, serialize
            )
        else:
            wrapped = wrap_handler(
                f"/{service}/{method.name}", behaviour, [*wrappers, reject_malformed]
            )
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                wrapped, parse_or_mark(request_type), serialize
            )
    return handlers


def add_servicer(
    server: grpc.aio.Server, servicer: object, service: str, wrappers: Sequence[Wrapper]
) -> None:
    """Serve `servicer` as the gRPC service `service` on `server` (what the
    generated `add_..._to_server` function does, with our handlers)."""
    handlers = method_handlers(servicer, service, wrappers)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)
