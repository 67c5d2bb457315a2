"""Server bootstrap shared by the coordinator, shard and embedder services.

Every server runs on grpc.aio with the error interceptor, serves grpc.health.v1
and server reflection, reports SERVING only once `start` has finished (a shard
loads its indexes there), and on SIGTERM or SIGINT goes NOT_SERVING, lets
in-flight calls finish within the grace period and then runs `stop`.
"""

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from shoal.status import ErrorInterceptor

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

#: Options for servers and for channels between Shoal services.
GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.so_reuseport", 0),
]


@dataclass
class Service:
    """One gRPC service to register: its full name, servicer and add function."""

    name: str
    servicer: object
    register: Callable[[Any, grpc.aio.Server], None]


@dataclass
class ServerSpec:
    host: str
    port: int
    services: Sequence[Service]
    port_file: Path | None = None
    grace_seconds: float = 10.0
    start: Callable[[], Awaitable[None]] | None = None
    stop: Callable[[], Awaitable[None]] | None = None
    options: list[tuple[str, Any]] = field(default_factory=lambda: list(GRPC_OPTIONS))


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("SHOAL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _write_port_file(path: Path, port: int) -> None:
    """Tell whoever started us (tests, `shoal up`) the port we bound, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


async def _set_all(health: HealthServicer, names: Sequence[str], status: int) -> None:
    for name in ("", *names):
        await health.set(name, status)


async def serve(spec: ServerSpec) -> None:
    """Run a server until SIGTERM/SIGINT, then shut it down gracefully."""
    server = grpc.aio.server(interceptors=[ErrorInterceptor()], options=spec.options)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [service.name for service in spec.services]
    for service in spec.services:
        service.register(service.servicer, server)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(f"{spec.host}:{spec.port}")
    if port == 0:
        raise SystemExit(f"cannot bind {spec.host}:{spec.port}")
    await _set_all(health, names, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    log.info("listening on %s:%d", spec.host, port)
    if spec.port_file is not None:
        _write_port_file(spec.port_file, port)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    if spec.start is not None:
        await spec.start()
    await _set_all(health, names, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving")

    await stopping.wait()
    log.info("shutting down: finishing in-flight calls (grace %.0fs)", spec.grace_seconds)
    await _set_all(health, names, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.stop(spec.grace_seconds)
    if spec.stop is not None:
        await spec.stop()
    log.info("stopped")
