"""One server interceptor that wraps every unary RPC handler in a chain of wrappers.

Request ids (shoal.logs), metrics (shoal.metrics) and the error model
(shoal.status) each provide a `Wrapper`; `shoal.server` composes them here, so
the handler plumbing exists once. Streaming RPCs (health Watch, reflection)
pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import grpc.aio

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
if TYPE_CHECKING:
    Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
    #: Given the full method name and a handler, the handler with something around it.
    Wrapper = Callable[[str, Handler], Handler]


class UnaryInterceptor(grpc.aio.ServerInterceptor):
    """Applies `wrappers` to each unary handler; the first listed runs outermost."""

    def __init__(self, *wrappers: Wrapper) -> None:
        self._wrappers = wrappers

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped: Handler = handler.unary_unary  # type: ignore[assignment]  # aio handlers are async
        for wrap in reversed(self._wrappers):
            wrapped = wrap(handler_call_details.method, wrapped)
        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
