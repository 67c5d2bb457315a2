"""A replica whose store cannot be loaded says so, and reads go to its peer.

One replica's RocksDB CURRENT file is overwritten while it is stopped. It
starts (it still serves its other collections and writes for them), its health
names the collection it could not load, GetClusterInfo shows it DEGRADED with
the reason, and every read through the coordinator is answered by the peer.
"""

import grpc
import numpy as np
from grpc_health.v1 import health_pb2

from shoal import Client
from shoal.v1 import shoal_pb2
from tests.conftest import StartCluster

COLLECTION = "docs"
SERVICE = "shoal.v1.ShardService"
DIM = 8
COUNT = 200
READS = 30


def health(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        reply: health_pb2.HealthCheckResponse = check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
    return int(reply.status)


def test_reads_go_around_a_replica_whose_store_cannot_be_loaded(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(groups=1, replicas=2, model="hash-8")
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((COUNT, DIM)).astype(np.float32)
    ids = [f"doc-{i:03d}" for i in range(COUNT)]
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=DIM, partitions=8)
        client.upsert(
            COLLECTION,
            [
                {"id": i, "vector": v, "metadata": {"n": n}}
                for n, (i, v) in enumerate(zip(ids, vectors, strict=True))
            ],
            "all",
        )

    victim = cluster.shards[0][1]
    victim.stop()
    current = cluster.root / "data" / victim.name / "collections" / COLLECTION / "db" / "CURRENT"
    assert current.is_file()
    current.write_bytes(b"MANIFEST-999999\n")
    victim.start()
    victim.wait_ready(60)

    failures: list[str] = []
    with Client(cluster.address, timeout=10) as client:
        for attempt in range(READS):
            row = (attempt * 7) % COUNT
            try:
                hits = client.search(COLLECTION, vectors[row], k=3).hits
                assert hits[0].id == ids[row], hits
                found = client.get(COLLECTION, [ids[row], ids[(row + 1) % COUNT]])
                assert [d.id for d in found] == [ids[row], ids[(row + 1) % COUNT]]
                assert client.count(COLLECTION) == COUNT
            except Exception as error:  # every kind of failure is counted, not just one
                failures.append(f"read {attempt}: {error!r}")
        assert failures == [], f"{len(failures)} of {READS} reads failed: {failures[:3]}"
        assert [document.id for document in client.scroll(COLLECTION, page_size=50)] == ids
        info = client.cluster_info()

    replicas = {replica.address: replica for replica in info.groups[0].replicas}
    broken = replicas[victim.address]
    assert broken.health == shoal_pb2.REPLICA_HEALTH_DEGRADED
    assert [f.collection for f in broken.failed_collections] == [COLLECTION]
    assert broken.failed_collections[0].reason
    peer = replicas[cluster.shards[0][0].address]
    assert peer.health == shoal_pb2.REPLICA_HEALTH_SERVING
    assert not peer.failed_collections

    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    assert health(victim.address, "") == serving  # the process is up and serves the rest
    assert health(victim.address, SERVICE) == not_serving
    assert health(victim.address, f"{SERVICE}/{COLLECTION}") == not_serving
