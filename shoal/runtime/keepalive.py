"""gRPC keepalive, in one place: how often clients ping, and how often servers let them.

Channels between Shoal services (the coordinator's to shards and the embedder,
a shard's to its peers, the SDK's) ping a connection every `interval_ms`, idle
or not, to notice a dead peer within `interval_ms + timeout_ms` and to keep
middleboxes from dropping idle connections. A gRPC server by default lets a
client ping an idle connection only once per five minutes, and answers the
third ping that comes sooner with GOAWAY ENHANCE_YOUR_CALM "too_many_pings",
closing the connection (calls on it then fail or wait for a reconnect). So a
Shoal server, built with the same `Keepalive`, accepts pings as often as every
`interval_ms / 2`: half, so that timer jitter never makes a strike.

Every service takes the interval from `--keepalive-ms` (SHOAL_KEEPALIVE_MS),
used for its own server and its own channels; give every service of a cluster
the same value. Other clients must not ping more often than every half interval.
"""

from dataclasses import dataclass
from typing import Any

DEFAULT_INTERVAL_MS = 20_000
DEFAULT_TIMEOUT_MS = 10_000
#: gRPC does not let a client ping more often than this whatever it is told.
MIN_INTERVAL_MS = 1_000


@dataclass(frozen=True)
class Keepalive:
    #: A client pings every this many milliseconds.
    interval_ms: int = DEFAULT_INTERVAL_MS
    #: A ping not answered within this many milliseconds closes the connection.
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def __post_init__(self) -> None:
        if self.interval_ms < MIN_INTERVAL_MS:
            raise ValueError(
                f"keepalive interval {self.interval_ms} ms: it must be at least"
                f" {MIN_INTERVAL_MS} ms"
            )
        if self.timeout_ms <= 0:
            raise ValueError(f"keepalive timeout {self.timeout_ms} ms: it must be positive")

    @property
    def min_ping_interval_ms(self) -> int:
        """The most often a server accepts pings from a client."""
        return self.interval_ms // 2

    def client_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.keepalive_time_ms", self.interval_ms),
            ("grpc.keepalive_timeout_ms", self.timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]

    def server_options(self) -> list[tuple[str, Any]]:
        return [
            # The server pings its clients too, to drop connections of dead ones.
            ("grpc.keepalive_time_ms", self.interval_ms),
            ("grpc.keepalive_timeout_ms", self.timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            # How often clients may ping while no data flows (gRPC core's
            # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS; 5 minutes if unset).
            ("grpc.http2.min_ping_interval_without_data_ms", self.min_ping_interval_ms),
        ]
