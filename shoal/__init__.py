"""Shoal: a distributed vector search service. `shoal.Client` is its Python SDK
(`shoal.AsyncClient` for asyncio code).

The SDK's names are loaded on first use (PEP 562): every Shoal service imports
`shoal.errors` and the other domain modules of this package, and importing them
must not load the SDK's gRPC client along with them.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from shoal.errors import (
    AlreadyExists,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ShoalError,
    Unavailable,
)

if TYPE_CHECKING:
    from shoal.sdk.async_client import AsyncClient
    from shoal.sdk.client import Client
    from shoal.sdk.columnar import Documents, SearchBatchResult, SearchResult
    from shoal.sdk.results import Collection, Coverage, Document, Hit, WriteResult

#: Where each lazily loaded name lives.
_SDK = {
    "AsyncClient": "shoal.sdk.async_client",
    "Client": "shoal.sdk.client",
    **{
        name: "shoal.sdk.results"
        for name in ("Collection", "Coverage", "Document", "Hit", "WriteResult")
    },
    **{name: "shoal.sdk.columnar" for name in ("Documents", "SearchBatchResult", "SearchResult")},
}

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "Client",
    "Collection",
    "Coverage",
    "DataLoss",
    "DeadlineExceeded",
    "Document",
    "Documents",
    "FailedPrecondition",
    "Hit",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "SearchBatchResult",
    "SearchResult",
    "ShoalError",
    "Unavailable",
    "WriteResult",
]


def __getattr__(name: str) -> object:
    module = _SDK.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value
