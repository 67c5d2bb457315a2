"""API keys on a gRPC server: a grpc.aio server interceptor applying shoal.access.

A key comes as metadata `authorization: Bearer <key>` or `api-key: <key>` (what
Qdrant and Weaviate accept). Missing or unknown: UNAUTHENTICATED. Known but
with too small a role, or limited to other collections: PERMISSION_DENIED.
The collection is read from the request before the handler runs, so the
answer is the same whether the collection exists or not.

Health checks stay open (probes carry no key). Reflection follows the API:
any valid key may use it, no key may not.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
import grpc.aio

from shoal.access import OPEN_SERVICES, PUBLIC_RULES, Principal, Rule, denial, rule_for
from shoal.api_keys import KeyFile

log = logging.getLogger(__name__)

BEARER = "bearer "
REFLECTION_SERVICES = frozenset(
    {"grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
)
MISSING_KEY = (
    "no API key: send metadata 'authorization: Bearer <key>' or 'api-key: <key>'"
    " (shoal.Client(api_key=...), SHOAL_API_KEY, shoal --api-key)"
)
UNKNOWN_KEY = "unknown API key"


def key_from_metadata(metadata: Any) -> str | None:
    """The key a call carries, from either header; None if it carries none."""
    for name, value in metadata or ():
        if name == "authorization" and isinstance(value, str):
            if value[: len(BEARER)].lower() == BEARER:
                return value[len(BEARER) :].strip() or None
        elif name == "api-key" and isinstance(value, str):
            return value.strip() or None
    return None


def collection_named(request: object, path: str) -> str | None:
    """The request's field at a dotted `path` (None if the request has no such field,
    e.g. one that failed to parse)."""
    value: object = request
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value if isinstance(value, str) else None


def _ignore(data: bytes) -> None:
    return None


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as `handler` that answers `code` at once."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover: an async generator, as streaming handlers are

    # The request is not even parsed: a refused caller costs no more than its bytes.
    parse, serialize = _ignore, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, parse, serialize)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, parse, serialize)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, parse, serialize)
    return grpc.unary_unary_rpc_method_handler(unary, parse, serialize)


def _authorized(
    handler: grpc.RpcMethodHandler[Any, Any], principal: Principal, rule: Rule, method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler`, run only if the request names a collection `principal` may use."""
    behaviour = handler.unary_unary
    assert behaviour is not None  # the caller passes unary-unary handlers only

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        field = rule.collection_field
        collection = collection_named(request, field) if field else None
        if not principal.may(rule, collection):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, denial(principal, rule, method))
        return await behaviour(request, context)  # type: ignore[arg-type]

    return grpc.unary_unary_rpc_method_handler(
        call, handler.request_deserializer, handler.response_serializer
    )


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call but health checks and authorizes it by the role table."""

    def __init__(self, keys: KeyFile, rules: Mapping[str, Rule] = PUBLIC_RULES) -> None:
        self._keys = keys
        self._rules = rules

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        service = method.lstrip("/").split("/", 1)[0]
        handler = await continuation(handler_call_details)
        if handler is None or service in OPEN_SERVICES:
            return handler
        key = key_from_metadata(handler_call_details.invocation_metadata)
        if key is None:
            return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED, MISSING_KEY)
        principal = self._keys.lookup(key)
        if principal is None:
            return _refusing(handler, grpc.StatusCode.UNAUTHENTICATED, UNKNOWN_KEY)
        if service in REFLECTION_SERVICES:
            return handler
        rule = rule_for(method, self._rules)
        if principal.role < rule.role or (principal.collections and rule.collection_field is None):
            return _refusing(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                denial(principal, rule, method),
            )
        if not principal.collections:
            return handler
        if handler.unary_unary is None:  # no public streaming RPC names a collection
            return _refusing(
                handler, grpc.StatusCode.PERMISSION_DENIED, denial(principal, rule, method)
            )
        return _authorized(handler, principal, rule, method)
