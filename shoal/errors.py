"""Domain errors shared by every Shoal service, the SDK and the CLI.

Core code raises these and never touches gRPC; `shoal.runtime.status` maps them to and
from gRPC status codes, one function per direction.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.topology import Topology


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


class FailedPrecondition(ShoalError):
    """The cluster is not in the state the call assumed: an expected topology
    version that is no longer the current one, a change that needs etcd."""


class PartitionMoved(FailedPrecondition):
    """A shard refused a write routed with an older topology, under which its group
    owned a partition it no longer owns. `topology` is the newer one the shard
    knows (None when it could not be passed on): the coordinator routes with it,
    or reads the topology again, and retries."""

    def __init__(self, message: str, topology: "Topology | None" = None) -> None:
        super().__init__(message)
        self.topology = topology


class Unauthenticated(ShoalError):
    """No API key, or one the cluster does not know."""


class PermissionDenied(ShoalError):
    """The API key's role or collections do not allow the call."""


class DataLoss(ShoalError):
    """A corrupt store or index."""


class Internal(ShoalError):
    """Anything else; the details are in the server log."""
