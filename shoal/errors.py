"""Domain errors shared by every Shoal service, the SDK and the CLI.

Core code raises these and never touches gRPC; `shoal.status` maps them to and
from gRPC status codes, one function per direction.
"""


class ShoalError(Exception):
    """Base of all expected failures. The message is shown to the caller."""

    #: Whether the coordinator may retry the call on another replica.
    retryable = False


class InvalidArgument(ShoalError):
    """Bad input: dimension, NaN/inf, k out of range, bad name or id."""


class NotFound(ShoalError):
    """Unknown collection or document."""


class AlreadyExists(ShoalError):
    """A collection exists with other settings."""


class ResourceExhausted(ShoalError):
    """Too large, too many, or rate limited."""


class Unavailable(ShoalError):
    """Replica down or loading, quorum not met, embedder unreachable."""

    retryable = True


class DeadlineExceeded(ShoalError):
    """The caller's deadline passed."""


class DataLoss(ShoalError):
    """A corrupt store or index."""


class Internal(ShoalError):
    """Anything else; the details are in the server log."""
