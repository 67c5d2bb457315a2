"""Prometheus metrics for the Shoal services.

Each service builds one `Metrics` in its composition root, passes it to the
parts that record something, hands it to shoal.server (which wraps every
handler with `metrics.measure`)
and serves `metrics.registry` with `serve_metrics`. Every `Metrics` has its own
CollectorRegistry, so tests (and several servers in one process) never share
counters, and nothing registers into prometheus-client's global registry.

Families, by who records them:
- every server: grpc_server_started_total, grpc_server_handled_total and
  grpc_server_handling_seconds by gRPC service, method and status code (the
  names operators know from go-grpc-prometheus), grpc_server_in_flight
- shard: shoal_documents, shoal_index_elements, shoal_index_bytes per
  collection and shard
- embedder: shoal_embedder_batch_size, shoal_embedder_queue_wait_seconds,
  shoal_embedder_encode_seconds
- coordinator: shoal_fanout_seconds per method and shard group,
  shoal_failovers_total, shoal_partial_results_total; replication:
  shoal_hinted_writes_total per replica and outcome, shoal_replica_divergence_total
  per shard group, shoal_replica_repairs_total per shard group and source
- shard: shoal_catch_up_records_total per collection (records copied from peers),
  shoal_tombstones_purged_total per collection
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

#: Seconds: from a sub-millisecond shard lookup to a slow batched upsert.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
#: Texts per encoded batch (the embedder's --max-batch is at most a few hundred).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: Seconds a text waits for a batch to fill (at most --max-wait-ms) or for the model.
QUEUE_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)

if TYPE_CHECKING:
    from shoal.handlers import Handler


class Metrics:
    """The metric families of one Shoal server, in a registry of its own.

    The families are attributes (for `.labels(...)` where a caller needs more);
    the methods are the calls services make.
    """

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        self.info = Gauge(
            "shoal_build_info", "Always 1: which service this is.", ["service"], registry=r
        )
        self.info.labels(service).set(1)

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

        per_shard = ["collection", "shard"]
        self.documents = Gauge("shoal_documents", "Live documents stored.", per_shard, registry=r)
        self.index_elements = Gauge(
            "shoal_index_elements",
            "Elements in the HNSW index, deleted ones included until compaction.",
            per_shard,
            registry=r,
        )
        self.index_bytes = Gauge(
            "shoal_index_bytes", "Memory the HNSW index takes.", per_shard, registry=r
        )

        self.embed_batch_size = Histogram(
            "shoal_embedder_batch_size",
            "Texts the model encoded at once.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.embed_queue_wait = Histogram(
            "shoal_embedder_queue_wait_seconds",
            "Time a text waited before its batch went to the model.",
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.embed_encode_seconds = Histogram(
            "shoal_embedder_encode_seconds",
            "Time the model took to encode one batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        self.fanout_seconds = Histogram(
            "shoal_fanout_seconds",
            "Time one shard group took to answer the coordinator's part of a read.",
            ["method", "group"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.failovers = Counter(
            "shoal_failovers",
            "Reads retried on another replica of a shard group.",
            ["group", "reason"],
            registry=r,
        )
        self.partial_results = Counter(
            "shoal_partial_results",
            "Reads answered without every shard group (allow_partial).",
            ["method"],
            registry=r,
        )

        self.hinted_writes = Counter(
            "shoal_hinted_writes",
            "Writes kept for replicas that missed them, by what became of them"
            " (queued, replayed, dropped).",
            ["replica", "outcome"],
            registry=r,
        )
        self.divergence = Counter(
            "shoal_replica_divergence",
            "Documents found differing between the replicas of a shard group (VerifyReplicas).",
            ["group"],
            registry=r,
        )
        self.repairs = Counter(
            "shoal_replica_repairs",
            "Documents copied to replicas that were behind, by source (verify, read_repair).",
            ["group", "source"],
            registry=r,
        )
        self.catch_up_records = Counter(
            "shoal_catch_up_records",
            "Records a shard copied from its peers (anti-entropy), tombstones included.",
            ["collection"],
            registry=r,
        )
        self.tombstones_purged = Counter(
            "shoal_tombstones_purged",
            "Tombstones a shard removed after the grace period.",
            ["collection"],
            registry=r,
        )

    # --- shard -------------------------------------------------------------

    def record_catch_up(self, collection: str, records: int) -> None:
        self.catch_up_records.labels(collection).inc(records)

    def record_purge(self, collection: str, tombstones: int) -> None:
        self.tombstones_purged.labels(collection).inc(tombstones)

    def set_collection_size(
        self,
        collection: str,
        shard: str,
        *,
        documents: int,
        index_elements: int,
        index_bytes: int,
    ) -> None:
        """Record what one shard holds for one collection (after writes, or periodically)."""
        self.documents.labels(collection, shard).set(documents)
        self.index_elements.labels(collection, shard).set(index_elements)
        self.index_bytes.labels(collection, shard).set(index_bytes)

    def forget_collection(self, collection: str, shard: str) -> None:
        """Drop a deleted collection's series, so dashboards do not show it forever."""
        for gauge in (self.documents, self.index_elements, self.index_bytes):
            with contextlib.suppress(KeyError):
                gauge.remove(collection, shard)

    # --- embedder ----------------------------------------------------------

    def observe_embed_batch(self, size: int, encode_seconds: float) -> None:
        self.embed_batch_size.observe(size)
        self.embed_encode_seconds.observe(encode_seconds)

    def observe_queue_wait(self, seconds: float) -> None:
        self.embed_queue_wait.observe(seconds)

    # --- coordinator -------------------------------------------------------

    def observe_fanout(self, method: str, group: int, seconds: float) -> None:
        self.fanout_seconds.labels(method, str(group)).observe(seconds)

    def record_failover(self, group: int, reason: str) -> None:
        """`reason`: the status that made the coordinator try another replica."""
        self.failovers.labels(str(group), reason).inc()

    def record_partial_result(self, method: str) -> None:
        self.partial_results.labels(method).inc()

    def record_hints(self, replica: str, outcome: str, writes: int) -> None:
        self.hinted_writes.labels(replica, outcome).inc(writes)

    def record_divergence(self, group: int, documents: int) -> None:
        self.divergence.labels(str(group)).inc(documents)

    def record_repairs(self, group: int, source: str, documents: int) -> None:
        self.repairs.labels(str(group), source).inc(documents)

    # --- RPCs --------------------------------------------------------------

    def measure(self, full_method: str, handler: Handler) -> Handler:
        """The handler wrapper (shoal.handlers): run it outside error mapping,
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
