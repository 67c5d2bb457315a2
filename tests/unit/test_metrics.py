"""shoal.runtime.metrics: the families, the RPC interceptor on a real aio server,
/metrics over HTTP."""

import asyncio
import importlib.metadata
import socket
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
import prometheus_client
import pytest

from coordinator.metrics import CoordinatorMetrics
from embedder.metrics import EmbedderMetrics
from shard.metrics import ShardMetrics
from shoal import errors
from shoal.runtime.handlers import wrap_handler
from shoal.runtime.metrics import Metrics, default_replica, serve_metrics, split_method
from shoal.runtime.status import with_error_mapping

SERVICE = "test.v1.Echo"


def _families(metrics: Metrics) -> set[str]:
    return {family.name for family in metrics.registry.collect()}


def test_each_metrics_has_its_own_registry() -> None:
    first, second = CoordinatorMetrics(), CoordinatorMetrics()
    first.record_partial_result("Search")
    assert first.registry.get_sample_value("shoal_partial_results_total", {"method": "Search"}) == 1
    assert (
        second.registry.get_sample_value("shoal_partial_results_total", {"method": "Search"})
        is None
    )
    # Nothing went into prometheus-client's process-wide registry.
    assert prometheus_client.REGISTRY.get_sample_value("shoal_partial_results_total") is None


SHARED = {
    "shoal_build_info",
    "grpc_server_started",
    "grpc_server_handled",
    "grpc_server_handling_seconds",
    "grpc_server_in_flight",
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "python_info",
}
OWN = {
    "coordinator": {
        "shoal_fanout_seconds",
        "shoal_failovers",
        "shoal_partial_results",
        "shoal_hinted_writes",
        "shoal_replica_divergence",
        "shoal_replica_repairs",
    },
    "shard": {
        "shoal_documents",
        "shoal_index_elements",
        "shoal_index_bytes",
        "shoal_catch_up_records",
        "shoal_tombstones_purged",
    },
    "embedder": {
        "shoal_embedder_batch_size",
        "shoal_embedder_queue_wait_seconds",
        "shoal_embedder_encode_seconds",
    },
}
BUILDERS: dict[str, Callable[[], Metrics]] = {
    "coordinator": CoordinatorMetrics,
    "shard": ShardMetrics,
    "embedder": EmbedderMetrics,
}


@pytest.mark.parametrize("service", sorted(BUILDERS))
def test_each_service_exports_its_own_families_and_the_shared_ones(service: str) -> None:
    families = _families(BUILDERS[service]())
    assert families >= SHARED
    assert OWN[service] <= families
    others = set().union(*(own for name, own in OWN.items() if name != service))
    assert not families & others, f"{service} exports {families & others}"


def test_build_info_names_the_service_version_and_replica() -> None:
    metrics = ShardMetrics()
    version = importlib.metadata.version("shoal")
    value = metrics.registry.get_sample_value
    labels = {"service": "shard", "version": version, "replica": "", "group": ""}
    assert value("shoal_build_info", labels) == 1
    metrics.identify("10.0.0.7:50061", "2")
    assert value("shoal_build_info", labels) is None  # one series, relabelled
    assert value("shoal_build_info", {**labels, "replica": "10.0.0.7:50061", "group": "2"}) == 1


def test_default_replica_names_the_host_when_listening_everywhere() -> None:
    assert default_replica("127.0.0.1", 50061) == "127.0.0.1:50061"
    assert default_replica("0.0.0.0", 50051) == f"{socket.gethostname()}:50051"


def test_process_metrics_are_on_the_services_registry() -> None:
    value = EmbedderMetrics().registry.get_sample_value
    assert (value("process_resident_memory_bytes") or 0) > 0
    assert value("process_cpu_seconds_total") is not None


def test_split_method() -> None:
    assert split_method("/shoal.v1.ShoalService/Search") == ("shoal.v1.ShoalService", "Search")
    assert split_method("weird") == ("unknown", "weird")


def test_collection_sizes_carry_the_replica_and_are_forgotten() -> None:
    metrics = ShardMetrics()
    metrics.identify("shard-g0-1.shard-g0.shoal.svc.cluster.local:50061", "0")
    metrics.set_collection_size("docs", documents=10, index_elements=12, index_bytes=4096)
    labels = {
        "collection": "docs",
        "group": "0",
        "replica": "shard-g0-1.shard-g0.shoal.svc.cluster.local:50061",
    }
    assert metrics.registry.get_sample_value("shoal_documents", labels) == 10
    assert metrics.registry.get_sample_value("shoal_index_elements", labels) == 12
    assert metrics.registry.get_sample_value("shoal_index_bytes", labels) == 4096
    metrics.forget_collection("docs")
    metrics.forget_collection("docs")  # twice is fine
    assert metrics.registry.get_sample_value("shoal_documents", labels) is None


def test_a_new_identity_drops_the_size_series_of_the_old_one() -> None:
    metrics = ShardMetrics()
    metrics.identify("127.0.0.1:41000")
    metrics.set_collection_size("docs", documents=3, index_elements=3, index_bytes=64)
    metrics.identify("127.0.0.1:41000", "1")  # the topology now lists it in group 1
    old = {"collection": "docs", "group": "", "replica": "127.0.0.1:41000"}
    assert metrics.registry.get_sample_value("shoal_documents", old) is None


def test_embedder_and_coordinator_families() -> None:
    embedder = EmbedderMetrics()
    embedder.observe_embed_batch(16, encode_seconds=0.02)
    embedder.observe_queue_wait(0.001)
    value = embedder.registry.get_sample_value
    assert value("shoal_embedder_batch_size_sum") == 16
    assert value("shoal_embedder_batch_size_bucket", {"le": "16.0"}) == 1
    assert value("shoal_embedder_batch_size_bucket", {"le": "8.0"}) == 0
    assert value("shoal_embedder_queue_wait_seconds_count") == 1
    assert value("shoal_embedder_encode_seconds_count") == 1
    coordinator = CoordinatorMetrics()
    coordinator.observe_fanout("Search", group=2, seconds=0.004)
    coordinator.record_failover(group=2, reason="UNAVAILABLE")
    value = coordinator.registry.get_sample_value
    assert value("shoal_fanout_seconds_count", {"method": "Search", "group": "2"}) == 1
    assert value("shoal_failovers_total", {"group": "2", "reason": "UNAVAILABLE"}) == 1


Behavior = Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Any]


async def _ok(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request


async def _not_found(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    raise errors.NotFound("no collection 'x'")


async def _crash(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    raise RuntimeError("bug")


async def _hang(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    await asyncio.Event().wait()  # until the client's deadline cancels the call
    return b""


BEHAVIORS: dict[str, Behavior] = {"Ok": _ok, "Missing": _not_found, "Crash": _crash, "Hang": _hang}


async def _call(channel: grpc.aio.Channel, method: str, deadline: float = 10) -> grpc.StatusCode:
    try:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            f"/{SERVICE}/{method}"
        )
        await call(b"hello", timeout=deadline)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("Ok", grpc.StatusCode.OK),
        ("Missing", grpc.StatusCode.NOT_FOUND),
        ("Crash", grpc.StatusCode.INTERNAL),
        ("Hang", grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
async def test_rpcs_are_counted_and_timed_by_method_and_status(
    method: str, code: grpc.StatusCode
) -> None:
    metrics = Metrics("test")
    server = grpc.aio.server()
    wrappers = [metrics.measure, with_error_mapping]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        name: grpc.unary_unary_rpc_method_handler(
            wrap_handler(f"/{SERVICE}/{name}", behavior, wrappers)
        )
        for name, behavior in BEHAVIORS.items()
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            timeout = 0.3 if method == "Hang" else 10
            assert await _call(channel, method, timeout) == code
    finally:
        await server.stop(None)
    value = metrics.registry.get_sample_value
    labels = {"grpc_service": SERVICE, "grpc_method": method}
    assert value("grpc_server_started_total", labels) == 1
    assert value("grpc_server_handled_total", {**labels, "grpc_code": code.name}) == 1
    assert value("grpc_server_handling_seconds_count", {**labels, "grpc_code": code.name}) == 1
    assert value("grpc_server_in_flight", labels) == 0


def test_metrics_are_served_over_http() -> None:
    metrics = EmbedderMetrics()
    metrics.observe_embed_batch(4, encode_seconds=0.01)
    server = serve_metrics(metrics.registry, port=0, host="127.0.0.1")
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain")
    finally:
        server.close()
    assert server.port > 0
    assert 'shoal_build_info{group="",replica="",service="embedder",version=' in body
    assert "shoal_embedder_batch_size_count 1.0" in body
