import grpc
import grpc.aio
import pytest

from shoal import errors
from shoal.runtime.status import from_rpc_error, to_status


def failed_call(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound, grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
        (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
        (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.DataLoss, grpc.StatusCode.DATA_LOSS),
        (errors.Internal, grpc.StatusCode.INTERNAL),
    ],
)
def test_each_error_maps_to_its_code_and_back(
    error: type[errors.ShoalError], code: grpc.StatusCode
) -> None:
    assert to_status(error("x")) == code
    back = from_rpc_error(failed_call(code, "what went wrong"))
    assert type(back) is error
    assert str(back) == "what went wrong"


def test_only_unavailable_is_retryable() -> None:
    assert errors.Unavailable("x").retryable
    assert not errors.InvalidArgument("x").retryable


def test_unknown_codes_become_internal() -> None:
    assert type(from_rpc_error(failed_call(grpc.StatusCode.UNKNOWN, "?"))) is errors.Internal
