"""The gRPC side of the error model: domain errors <-> status codes.

`to_status` is used by servers (through `with_error_mapping`, which shoal.runtime.server
puts around every handler), `from_rpc_error` by clients of other Shoal services
(most through `unary_call`) and by the SDK.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import grpc.aio

from shoal import errors
from shoal.runtime.logs import outgoing_metadata
from shoal.topology import Topology, TopologyError

log = logging.getLogger(__name__)

Resp = TypeVar("Resp")

_CODE_BY_ERROR: dict[type[errors.ShoalError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.DataLoss: grpc.StatusCode.DATA_LOSS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Internal: grpc.StatusCode.INTERNAL,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
_ERROR_BY_CODE = {code: error for error, code in _CODE_BY_ERROR.items()}
# Codes with no domain twin of their own.
_ERROR_BY_CODE[grpc.StatusCode.CANCELLED] = errors.Unavailable
_ERROR_BY_CODE[grpc.StatusCode.OUT_OF_RANGE] = errors.InvalidArgument

INTERNAL_MESSAGE = "internal error; the details are in the server log"

#: Trailing metadata of a PartitionMoved: the newer topology the shard knows, as JSON.
TOPOLOGY_TRAILER = "shoal-topology"
#: A topology bigger than this (a long partition map) is not sent along: gRPC's
#: metadata limit is 8 KiB, and the caller can read the topology from etcd.
MAX_TOPOLOGY_TRAILER = 4096

Metadata = Sequence[tuple[str, str]]


def to_status(error: errors.ShoalError) -> grpc.StatusCode:
    """The status code a domain error is reported with."""
    for cls in type(error).__mro__:
        code = _CODE_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def trailers_of(error: errors.ShoalError) -> Metadata:
    """What a domain error sends along besides its message: a PartitionMoved's topology."""
    if isinstance(error, errors.PartitionMoved) and error.topology is not None:
        encoded = json.dumps(error.topology.to_dict(), separators=(",", ":"))
        if len(encoded) <= MAX_TOPOLOGY_TRAILER:
            return ((TOPOLOGY_TRAILER, encoded),)
    return ()


def _topology_in(trailers: Metadata | None) -> Topology | None:
    for key, value in trailers or ():
        if key == TOPOLOGY_TRAILER:
            try:
                return Topology.from_dict(json.loads(value))
            except (ValueError, TopologyError):
                log.warning("ignoring an unreadable topology sent with an error")
    return None


def from_rpc_error(error: grpc.RpcError) -> errors.ShoalError:
    """The domain error for a failed call to another service."""
    trailers: Any = None
    if isinstance(error, grpc.Call | grpc.aio.AioRpcError):
        code, details = error.code(), error.details() or ""
        trailers = error.trailing_metadata()
    else:
        code, details = grpc.StatusCode.UNKNOWN, ""
    details = details or code.name
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        topology = _topology_in(trailers)
        if topology is not None:
            return errors.PartitionMoved(details, topology)
    return _ERROR_BY_CODE.get(code, errors.Internal)(details)


async def unary_call(
    method: Callable[..., Awaitable[Resp]], request: object, timeout_s: float
) -> Resp:
    """One call to another service, carrying the current request id (shoal.runtime.logs);
    a failed call raises its domain error, not gRPC's."""
    try:
        return await method(request, timeout=timeout_s, metadata=outgoing_metadata())
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


if TYPE_CHECKING:
    from shoal.runtime.handlers import Handler


def with_error_mapping(method: str, handler: Handler) -> Handler:
    """Domain errors become their status; anything else INTERNAL, logged with its trace."""

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await handler(request, context)
        except errors.ShoalError as error:
            await context.abort(to_status(error), str(error), trailers_of(error))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected error in %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

    return call
