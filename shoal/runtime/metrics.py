"""Prometheus metrics every Shoal server shares, and the /metrics endpoint.

Each service declares its own families in a subclass of `Metrics`
(coordinator/metrics.py, shard/metrics.py, embedder/metrics.py), builds one in
its composition root, passes it to the parts that record something, hands it to
shoal.runtime.server (which wraps every handler with `metrics.measure`) and serves
`metrics.registry` with `serve_metrics`. A service's endpoint so shows only the
families it records: a shard carries no embedder histograms. Every `Metrics`
has its own CollectorRegistry, so tests (and several servers in one process)
never share counters, and nothing registers into prometheus-client's global
registry.

What every server exports:
- grpc_server_started_total, grpc_server_handled_total and
  grpc_server_handling_seconds by gRPC service, method and status code (the
  names operators know from go-grpc-prometheus), grpc_server_in_flight
- shoal_build_info{service, version, replica, group}: always 1. `version` is the
  installed package's; `replica` tells the replicas of one service apart where
  Prometheus's `instance` does not (several local shards on one host): a
  shard's advertised address, else the host name and gRPC port. `group` is a
  shard's group in the topology ("" elsewhere, or while it is not known)
- process_* (CPU, memory, file descriptors, start time), python_info and
  python_gc_*: prometheus-client's standard collectors, here registered on the
  server's own registry
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

log = logging.getLogger(__name__)

#: Seconds: from a sub-millisecond shard lookup to a slow batched upsert.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

#: The distribution the version comes from (pyproject's [project] name).
DISTRIBUTION = "shoal"

if TYPE_CHECKING:
    from shoal.runtime.handlers import Handler


def package_version() -> str:
    """The installed shoal's version, or "unknown" when run from a tree never installed."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def default_replica(host: str, port: int) -> str:
    """HOST:PORT naming this server: the bound host, or the host name (the pod
    name in Kubernetes) where it listens on every interface."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    return f"{host}:{port}"


class Metrics:
    """The metric families every Shoal server has, in a registry of its own.

    Subclasses add their service's families. The families are attributes (for
    `.labels(...)` where a caller needs more); the methods are the calls
    services make.
    """

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.version = package_version()
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)  # registers nothing where gc.get_stats is missing (PyPy)

        self.info = Gauge(
            "shoal_build_info",
            "Always 1: which service, version and replica this is.",
            ["service", "version", "replica", "group"],
            registry=r,
        )
        self._identity: tuple[str, str] = ("", "")
        self.info.labels(service, self.version, "", "").set(1)

        rpc = ["grpc_service", "grpc_method"]
        self.rpc_started = Counter(
            "grpc_server_started", "RPCs the server started.", rpc, registry=r
        )
        self.rpc_handled = Counter(
            "grpc_server_handled",
            "RPCs the server finished, by status code.",
            [*rpc, "grpc_code"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from receiving an RPC to its status, by status code.",
            [*rpc, "grpc_code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rpc_in_flight = Gauge(
            "grpc_server_in_flight", "RPCs being handled now.", rpc, registry=r
        )

    @property
    def identity(self) -> tuple[str, str]:
        """(replica, group) as shoal_build_info shows them now."""
        return self._identity

    def identify(self, replica: str, group: str = "") -> None:
        """Name this replica (and its shard group) in shoal_build_info, replacing
        what it said before: a shard learns its group only once the topology lists it."""
        if (replica, group) == self._identity:
            return
        with contextlib.suppress(KeyError):
            self.info.remove(self.service, self.version, *self._identity)
        self._identity = (replica, group)
        self.info.labels(self.service, self.version, replica, group).set(1)

    # --- RPCs --------------------------------------------------------------

    def measure(self, full_method: str, handler: Handler) -> Handler:
        """The handler wrapper (shoal.runtime.handlers): run it outside error mapping,
        so it sees the status a domain error was turned into."""
        return _measured(self, full_method, handler)


def split_method(full_method: str) -> tuple[str, str]:
    """('shoal.v1.ShoalService', 'Search') from '/shoal.v1.ShoalService/Search'."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


def _final_code(
    context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None
) -> grpc.StatusCode:
    """The status the client will see, as far as the server can tell."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # grpc.aio keeps the raw number once aborted
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def _measured(metrics: Metrics, full_method: str, handler: Handler) -> Handler:
    """Counts and times one unary RPC by method and final status code.

    The label children are looked up once per method (and status code), not per call.
    """
    service, method = split_method(full_method)
    started = metrics.rpc_started.labels(service, method)
    in_flight = metrics.rpc_in_flight.labels(service, method)
    handled: dict[grpc.StatusCode, tuple[Counter, Histogram]] = {}

    def done(code: grpc.StatusCode, seconds: float) -> None:
        children = handled.get(code)
        if children is None:
            children = handled[code] = (
                metrics.rpc_handled.labels(service, method, code.name),
                metrics.rpc_seconds.labels(service, method, code.name),
            )
        children[0].inc()
        children[1].observe(seconds)

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started.inc()
        in_flight.inc()
        start = time.perf_counter()
        error: BaseException | None = None
        try:
            return await handler(request, context)
        except BaseException as caught:
            error = caught
            raise
        finally:
            in_flight.dec()
            done(_final_code(context, error), time.perf_counter() - start)

    return call


@dataclass
class MetricsServer:
    """The HTTP endpoint serving /metrics from a daemon thread."""

    server: WSGIServer
    host: str

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> MetricsServer:
    """Serve the registry's metrics in the Prometheus text format on host:port.

    Binds exactly `port` (0 lets the OS pick; read `.port`). A service whose
    --metrics-port is 0 treats that as "off" and does not call this.
    """
    server, _thread = start_http_server(port, addr=host, registry=registry)
    metrics_server = MetricsServer(server, host)
    log.info("metrics on %s", metrics_server.url)
    return metrics_server
