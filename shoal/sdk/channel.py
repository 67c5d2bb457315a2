"""The one place the SDK opens a channel to a coordinator, for `Client` and `AsyncClient`.

Both clients call `open_channel` and send `call_metadata` with every call, so what
a connection needs (gRPC options, the round-robin policy, TLS, the API key) is
decided here once and both clients get it alike.
"""

import os
from typing import Literal, overload

import grpc
import grpc.aio

from shoal.runtime.balancing import ROUND_ROBIN_OPTIONS
from shoal.runtime.server import GRPC_OPTIONS

DEFAULT_ADDRESS = "127.0.0.1:50051"
API_KEY_ENV = "SHOAL_API_KEY"

#: Metadata: a tuple of (name, value) pairs, as grpc's `metadata=` takes it.
Metadata = tuple[tuple[str, str], ...]


def resolve_api_key(api_key: str | None) -> str | None:
    """The key given, else SHOAL_API_KEY, else None (no key: for clusters without keys)."""
    return api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)


def call_metadata(api_key: str | None) -> Metadata:
    """What every call sends: `authorization: Bearer <key>` when there is a key
    (given, else SHOAL_API_KEY)."""
    key = resolve_api_key(api_key)
    return (("authorization", f"Bearer {key}"),) if key else ()


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
