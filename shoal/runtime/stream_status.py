"""The error model for streaming handlers, which `handlers.method_handlers` serves
unwrapped: a domain error ends the stream with its status, anything else with
INTERNAL (logged with its trace), as `status.with_error_mapping` does for unary
calls."""

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc.aio

from shoal import errors
from shoal.runtime.status import INTERNAL_MESSAGE, to_status, trailers_of

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")
Context = grpc.aio.ServicerContext[Any, Any]


def server_stream(
    handler: Callable[[Self, Req, Context], AsyncIterator[Resp]],
) -> Callable[[Self, Req, Context], AsyncIterator[Resp]]:
    """For a servicer method that yields its responses."""

    @functools.wraps(handler)
    async def call(self: Self, request: Req, context: Context) -> AsyncIterator[Resp]:
        try:
            async for response in handler(self, request, context):
                yield response
        except errors.ShoalError as error:
            await context.abort(to_status(error), str(error), trailers_of(error))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected error in %s", handler.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

    return call


def client_stream(
    handler: Callable[[Self, Req, Context], Awaitable[Resp]],
) -> Callable[[Self, Req, Context], Awaitable[Resp]]:
    """For a servicer method that reads a stream of requests and answers once."""

    @functools.wraps(handler)
    async def call(self: Self, requests: Req, context: Context) -> Resp:
        try:
            return await handler(self, requests, context)
        except errors.ShoalError as error:
            await context.abort(to_status(error), str(error), trailers_of(error))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected error in %s", handler.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        raise AssertionError("context.abort returned")

    return call
