"""How the SDK reaches a coordinator: the channel and the metadata every call carries.

One place for both, so every client (`shoal.Client`, an async client) sends the
same API key the same way and later credentials (TLS) are added once.
"""

import os
from typing import Any

import grpc

from shoal.runtime.balancing import ROUND_ROBIN_OPTIONS
from shoal.runtime.server import GRPC_OPTIONS

API_KEY_ENV = "SHOAL_API_KEY"

#: Metadata: a tuple of (name, value) pairs, as grpc's `metadata=` takes it.
Metadata = tuple[tuple[str, str], ...]


def resolve_api_key(api_key: str | None) -> str | None:
    """The key given, else SHOAL_API_KEY, else None (no key: for clusters without keys)."""
    return api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)


def call_metadata(api_key: str | None) -> Metadata:
    """What every call sends: `authorization: Bearer <key>` when there is a key."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def channel_options() -> list[tuple[str, Any]]:
    # Round robin over every address the name resolves to: in Kubernetes, give
    # the coordinators' headless Service to balance calls over all of them.
    return [*GRPC_OPTIONS, *ROUND_ROBIN_OPTIONS]


def open_channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=channel_options())
