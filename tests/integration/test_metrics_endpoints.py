"""Each real service's /metrics: its own families only, the shared ones, and labels
that tell the replicas apart (local shards all run on one host)."""

import importlib.metadata
import urllib.request

import numpy as np
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from shoal import Client
from shoal.runtime.wait import wait_for
from tests.conftest import StartCluster
from tests.unit.test_metrics import OWN, SHARED

METRICS_BASE = 19_480  # coordinator, embedder, then shards on the ports after it


def scrape(port: int) -> dict[str, Metric]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def build_info(families: dict[str, Metric]) -> dict[str, str]:
    (sample,) = families["shoal_build_info"].samples
    assert sample.value == 1
    return dict(sample.labels)


def test_each_service_exports_its_own_families_with_replica_labels(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(groups=2, replicas=2, model="hash-8", metrics_port_base=METRICS_BASE)
    with Client(cluster.address) as client:
        client.create_collection("metrics", dimension=4)
        client.upsert("metrics", [{"id": f"d{i}", "vector": np.random.rand(4)} for i in range(40)])

    version = importlib.metadata.version("shoal")
    ports = {"coordinator": [METRICS_BASE], "embedder": [METRICS_BASE + 1]}
    ports["shard"] = [METRICS_BASE + 2 + i for i in range(len(cluster.all_shards))]
    for service, service_ports in ports.items():
        others = set().union(*(own for name, own in OWN.items() if name != service))
        for port in service_ports:
            families = scrape(port)
            assert SHARED | OWN[service] <= set(families), (service, SHARED | OWN[service])
            assert not set(families) & others, f"{service} exports {set(families) & others}"
            info = build_info(families)
            assert info["service"] == service and info["version"] == version

    coordinator = build_info(scrape(METRICS_BASE))
    assert coordinator["replica"] == cluster.address

    # Every shard names itself by the address the topology lists it under, with its group.
    expected = {
        shard.address: str(group)
        for group, replicas in enumerate(cluster.shards)
        for shard in replicas
    }

    def shard_identities() -> dict[str, str]:
        infos = [build_info(scrape(port)) for port in ports["shard"]]
        return {info["replica"]: info["group"] for info in infos}

    wait_for(lambda: shard_identities() == expected, 30, "shards to name their replica and group")

    def documents_by_replica() -> dict[tuple[str, str], float]:
        counts = {}
        for port in ports["shard"]:
            for sample in scrape(port)["shoal_documents"].samples:
                if sample.labels["collection"] == "metrics":
                    counts[sample.labels["replica"], sample.labels["group"]] = sample.value
        return counts

    def every_replica_reports() -> bool:
        counts = documents_by_replica()
        return set(counts) == set(expected.items()) and sum(counts.values()) == 2 * 40

    wait_for(every_replica_reports, 30, "each replica to report its documents under its own name")
