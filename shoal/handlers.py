"""Wrapping every unary handler of a servicer in a chain of wrappers, once.

Request ids (shoal.logs), metrics (shoal.metrics) and the error model
(shoal.status) each provide a `Wrapper`; `shoal.server` applies them here when
it registers a servicer, so each RPC method gets its wrapped handler built
once at start-up. (A grpc.aio server interceptor would rebuild the chain, and
await one more coroutine, on every call.) Streaming RPCs (health Watch,
reflection) pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import grpc.aio
from google.protobuf import descriptor_pool

if TYPE_CHECKING:
    Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
    #: Given the full method name and a handler, the handler with something around it.
    Wrapper = Callable[[str, Handler], Handler]


def wrap_handler(full_method: str, handler: Handler, wrappers: Sequence[Wrapper]) -> Handler:
    """`handler` inside `wrappers`; the first listed runs outermost."""
    for wrap in reversed(wrappers):
        handler = wrap(full_method, handler)
    return handler


def wrap_servicer(servicer: object, service: str, wrappers: Sequence[Wrapper]) -> object:
    """A stand-in for `servicer` (of the gRPC service named `service`, e.g.
    'shoal.v1.ShardService') whose unary methods run inside `wrappers`; give it
    to the generated `add_..._to_server` function instead of the servicer."""
    descriptor = descriptor_pool.Default().FindServiceByName(service)
    methods: dict[str, Any] = {}
    for method in descriptor.methods:
        handler = getattr(servicer, method.name)
        if not (method.client_streaming or method.server_streaming):
            handler = wrap_handler(f"/{service}/{method.name}", handler, wrappers)
        methods[method.name] = handler
    return SimpleNamespace(**methods)
