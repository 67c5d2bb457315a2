"""Server bootstrap shared by the coordinator, shard and embedder services.

Every server runs on grpc.aio; each unary handler runs inside a request id
(shoal.runtime.logs), metrics (shoal.runtime.metrics) and the error model (shoal.runtime.status). It
serves grpc.health.v1 and server reflection, reports SERVING only once `start`
has finished (a shard loads its indexes there), and on SIGTERM or SIGINT goes
NOT_SERVING, lets in-flight calls finish within the grace period and then runs
`stop` (checkpoint indexes, close RocksDB).
"""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from shoal.runtime.handlers import add_servicer
from shoal.runtime.health import ServerHealth
from shoal.runtime.keepalive import Keepalive
from shoal.runtime.logs import with_request_id
from shoal.runtime.metrics import Metrics, default_replica, serve_metrics
from shoal.runtime.settings import ServerSettings
from shoal.runtime.status import with_error_mapping
from shoal.runtime.tls import TlsConfigError, require_identity, server_credentials

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

MESSAGE_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def channel_options(keepalive: Keepalive | None = None) -> list[tuple[str, Any]]:
    """Options for a channel to a Shoal service (see shoal.runtime.keepalive)."""
    return [*MESSAGE_OPTIONS, *(keepalive or Keepalive()).client_options()]


def server_options(keepalive: Keepalive | None = None) -> list[tuple[str, Any]]:
    """Options for a Shoal server: it accepts the pings of `channel_options`."""
    return [
        *MESSAGE_OPTIONS,
        *(keepalive or Keepalive()).server_options(),
        ("grpc.so_reuseport", 0),
    ]


#: Options for channels to Shoal services, with the default keepalive.
GRPC_OPTIONS: list[tuple[str, Any]] = channel_options()


@dataclass
class Service:
    """One gRPC service to serve: its full name and its servicer."""

    name: str
    servicer: object


@dataclass
class ServerSpec:
    settings: ServerSettings
    services: Sequence[Service]
    metrics: Metrics
    start: Callable[[], Awaitable[None]] | None = None
    stop: Callable[[], Awaitable[None]] | None = None
    #: Given when a service reports failed parts of itself (see shoal.runtime.health);
    #: otherwise the server builds its own for `services`.
    health: ServerHealth | None = None
    #: More server options, e.g. shoal.runtime.balancing.CONNECTION_AGE_OPTIONS.
    options: Sequence[tuple[str, Any]] = ()
    #: Around every call, e.g. shoal.runtime.auth.ApiKeyInterceptor.
    interceptors: Sequence[grpc.aio.ServerInterceptor] = ()


def _write_port_file(spec: ServerSpec, port: int) -> None:
    """Tell whoever started us (tests, `shoal up`) the port we bound, atomically."""
    path = spec.settings.port_file
    if path is not None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(path)


def _add_port(server: grpc.aio.Server, settings: ServerSettings) -> int:
    """Bind the API's port: TLS with the settings' certificate, else plaintext
    (which is logged as a warning: anyone who reaches the port may call it)."""
    address = f"{settings.host}:{settings.port}"
    tls = settings.tls.server()
    if tls is None:
        why = "--insecure" if settings.tls.insecure else "no --tls-cert and --tls-key"
        log.warning("plaintext on %s (%s): anyone who reaches it can call it", address, why)
        port = server.add_insecure_port(address)
    else:
        try:
            credentials = server_credentials(tls)
        except TlsConfigError as error:
            raise SystemExit(f"TLS: {error}") from None
        port = server.add_secure_port(address, credentials)
        log.info(
            "TLS with %s%s",
            tls.cert,
            f"; client certificates of {tls.client_ca} required" if tls.client_ca else "",
        )
    if port == 0:
        raise SystemExit(f"cannot bind {address}")
    return port


def _peer_check(settings: ServerSettings) -> list[Any]:
    """The identity check for the API's services, where client certificates are required."""
    tls = settings.tls.server()
    if tls is None or tls.client_ca is None or not tls.allowed_clients:
        return []
    log.info("accepting client certificates of: %s", ", ".join(sorted(tls.allowed_clients)))
    return [require_identity(tls.allowed_clients)]


async def _serve_health_port(
    settings: ServerSettings, health: ServerHealth, health_name: str
) -> grpc.aio.Server | None:
    """The health check alone, plaintext, on --health-port (probes without TLS)."""
    if not settings.health_port:
        return None
    server = grpc.aio.server()
    add_servicer(server, health.servicer, health_name, ())
    address = f"{settings.host}:{settings.health_port}"
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"cannot bind the health port {address}")
    await server.start()
    log.info("health checks (only) on %s", address)
    return server


async def serve(spec: ServerSpec) -> None:
    """Run a server until SIGTERM/SIGINT, then shut it down gracefully."""
    settings = spec.settings
    server = grpc.aio.server(
        options=[*server_options(settings.keepalive), *spec.options],
        interceptors=list(spec.interceptors) or None,
    )
    wrappers = (with_request_id, spec.metrics.measure, with_error_mapping)
    names = [service.name for service in spec.services]
    health = spec.health or ServerHealth(names)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    add_servicer(server, health.servicer, health_name, wrappers)
    for service in spec.services:
        add_servicer(server, service.servicer, service.name, [*wrappers, *_peer_check(settings)])
    reflection.enable_server_reflection([*names, health_name, reflection.SERVICE_NAME], server)
    port = _add_port(server, settings)
    health_server = await _serve_health_port(settings, health, health_name)
    spec.metrics.identify(default_replica(settings.host, port))  # a shard names itself later
    await health.set_serving(False)
    await server.start()
    metrics_server = None
    if settings.metrics_port:
        metrics_server = serve_metrics(
            spec.metrics.registry, settings.metrics_port, settings.metrics_host or settings.host
        )
        log.info("metrics at %s", metrics_server.url)
    log.info("listening on %s:%d", settings.host, port)
    _write_port_file(spec, port)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    if spec.start is not None:
        await spec.start()
    await health.set_serving(True)
    log.info("serving")

    await stopping.wait()
    log.info("shutting down: finishing in-flight calls (grace %.0fs)", settings.grace_seconds)
    await health.set_serving(False)
    await server.stop(settings.grace_seconds)
    if spec.stop is not None:
        await spec.stop()
    if metrics_server is not None:
        metrics_server.close()
    if health_server is not None:
        await health_server.stop(0)
    log.info("stopped")
