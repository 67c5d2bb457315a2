"""The one place the SDK opens a channel to a coordinator, for `Client` and `AsyncClient`.

Both clients call `open_channel`, so what a connection needs (gRPC options, the
round-robin policy, and later TLS, a CA, a client certificate or an API key) is
decided here once and both clients get it alike.
"""

from typing import Literal, overload

import grpc
import grpc.aio

from shoal.runtime.balancing import ROUND_ROBIN_OPTIONS
from shoal.runtime.server import GRPC_OPTIONS

DEFAULT_ADDRESS = "127.0.0.1:50051"


@overload
def open_channel(address: str, asynchronous: Literal[False] = False) -> grpc.Channel: ...


@overload
def open_channel(address: str, asynchronous: Literal[True]) -> grpc.aio.Channel: ...


def open_channel(address: str, asynchronous: bool = False) -> grpc.Channel | grpc.aio.Channel:
    """A channel to `address`: blocking for `Client`, grpc.aio for `AsyncClient`.

    Round robin over every address the name resolves to: in Kubernetes, give the
    coordinators' headless Service to balance calls over all of them.
    """
    options = [*GRPC_OPTIONS, *ROUND_ROBIN_OPTIONS]
    if asynchronous:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.insecure_channel(address, options=options)
