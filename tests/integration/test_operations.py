"""What operators rely on: request ids across services in JSON logs, and live metrics."""

import json
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from shoal import Client
from shoal.cli.service_process import ServiceProcess
from shoal.runtime.wait import wait_for
from shoal.v1 import shoal_pb2, shoal_pb2_grpc
from shoal.vectors import vector_to_f32
from tests.conftest import StartCluster

TRACE = "trace-4711"
METRICS_BASE = 19_460  # coordinator, embedder, then shards on the ports after it


def json_log_lines(service: ServiceProcess) -> list[dict[str, object]]:
    lines = service.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def searches_handled(samples: dict[str, float]) -> float:
    return sum(
        value
        for name, value in samples.items()
        if name.startswith("grpc_server_handled_total{")
        and 'grpc_method="Search"' in name
        and 'grpc_code="OK"' in name
    )


def test_request_id_travels_to_shards_and_metrics_move(
    start_cluster: StartCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHOAL_LOG_FORMAT", "json")
    monkeypatch.setenv("SHOAL_LOG_LEVEL", "DEBUG")
    cluster = start_cluster(groups=2, replicas=1, model="hash-8", metrics_port_base=METRICS_BASE)
    with Client(cluster.address) as client:
        client.create_collection("ops", dimension=4)
        client.upsert("ops", [{"id": f"d{i}", "vector": np.random.rand(4)} for i in range(20)])

    before = searches_handled(scrape(METRICS_BASE))
    request = shoal_pb2.SearchRequest(
        collection="ops", query=shoal_pb2.Query(vector_f32=vector_to_f32(np.ones(4))), k=3
    )
    with grpc.insecure_channel(cluster.address) as channel:
        stub = shoal_pb2_grpc.ShoalServiceStub(channel)
        for _ in range(5):
            stub.Search(request, metadata=(("x-request-id", TRACE),), timeout=10)
    after = searches_handled(scrape(METRICS_BASE))
    assert after - before == 5

    for service in [cluster.coordinator, *cluster.all_shards]:
        traced = [line for line in json_log_lines(service) if line.get("request_id") == TRACE]
        assert traced, f"{service.name} logged nothing for the request"
        assert all(line["service"] in ("coordinator", "shard") for line in traced)

    shard_ports = [METRICS_BASE + 2 + i for i in range(len(cluster.all_shards))]
    assert searches_handled(scrape(shard_ports[0])) >= 5

    def documents_reported() -> float:
        return sum(
            value
            for port in shard_ports
            for name, value in scrape(port).items()
            if name.startswith('shoal_documents{collection="ops"')
        )

    wait_for(lambda: documents_reported() == 20, 30, "shards to report their document counts")
