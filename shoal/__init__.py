"""Shoal: a distributed vector search service. This package holds the Python SDK."""

from shoal.client import Client, Collection, Coverage, Document, Hit, SearchResult, WriteResult
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

__all__ = [
    "AlreadyExists",
    "Client",
    "Collection",
    "Coverage",
    "DataLoss",
    "DeadlineExceeded",
    "Document",
    "FailedPrecondition",
    "Hit",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "SearchResult",
    "ShoalError",
    "Unavailable",
    "WriteResult",
]
