"""Per-call load balancing for gRPC's long-lived connections, and reconnecting soon.

A gRPC channel keeps one HTTP/2 connection and sends every call over it, so a
client behind a plain Kubernetes ClusterIP Service (one virtual IP, balanced per
connection) sends all its calls to one pod: coordinators an HPA added, and the
second embedder, sit idle. Balancing per call needs either an L7 gRPC-aware
proxy or the client itself: resolve a headless Service's name to every pod's
address (`dns:///`) and spread calls over them with the round_robin policy.
Servers close connections after a few minutes (`CONNECTION_AGE_OPTIONS`), so
clients resolve the name again and find pods added since.
"""

import json
import re
from typing import Any

#: gRPC's default service config for a channel: round_robin over every resolved
#: address instead of pick_first's single connection.
ROUND_ROBIN_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
ROUND_ROBIN_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG),
]

#: A server that comes back (restarted on its port, a pod rolled) should be used
#: again within half a second, not after gRPC's default reconnect backoff of up
#: to 2 minutes: while a channel waits to reconnect, calls on it fail at once.
#: Reconnecting to a dead address costs one refused connection per attempt.
RECONNECT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]

#: Server side: close a connection after 5 minutes (gRPC adds +-10% jitter) with
#: GOAWAY, letting calls on it finish within the grace. Clients reconnect at once
#: and resolve the name again, which is how they learn of new pods.
CONNECTION_AGE_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_connection_age_ms", 5 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 60 * 1000),
]

_SCHEME = re.compile(r"^(dns|ipv4|ipv6|unix|unix-abstract|vsock|xds):")


def dns_target(address: str) -> str:
    """`dns:///HOST:PORT` for a plain HOST:PORT, so every address the name
    resolves to is used; a target that names its scheme is kept as it is."""
    return address if _SCHEME.match(address) else f"dns:///{address}"
