"""Searches survive SIGKILLed replicas; a restarted replica has every acknowledged document."""

import threading
import time

import grpc
import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.runtime.wait import wait_for
from shoal.v1 import shard_pb2, shard_pb2_grpc
from shoal.vectors import vector_to_f32
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
MAX_SEARCHES = 5_000
MAX_SECONDS = 60.0


def shard_ids(shard: ServiceProcess, ids: list[str]) -> set[str]:
    with grpc.insecure_channel(shard.address) as channel:
        reply = shard_pb2_grpc.ShardServiceStub(channel).Get(
            shard_pb2.ShardGetRequest(collection=COLLECTION, ids=ids), timeout=30
        )
    return {document.id for document in reply.documents}


def assert_searchable(shard: ServiceProcess, ids: list[str]) -> None:
    """Each document is its own nearest neighbour on this replica."""
    data = datasets.load()
    rows = [data.ids.index(doc_id) for doc_id in ids]
    request = shard_pb2.ShardSearchRequest(
        collection=COLLECTION, queries_f32=vector_to_f32(data.document_vectors[rows]), k=1
    )
    with grpc.insecure_channel(shard.address) as channel:
        reply = shard_pb2_grpc.ShardServiceStub(channel).Search(request, timeout=30)
    assert [result.hits[0].id for result in reply.results] == ids


class SearchLoop(threading.Thread):
    """Searches until stopped, bounded in count and time, recording every failure."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(daemon=True)
        self.address = cluster.address
        self.stop_event = threading.Event()
        self.done = 0
        self.failures: list[str] = []

    def run(self) -> None:
        vectors = datasets.load().query_vectors
        deadline = time.monotonic() + MAX_SECONDS
        with Client(self.address, timeout=10) as client:
            while not self.stop_event.is_set() and self.done < MAX_SEARCHES:
                if time.monotonic() > deadline:
                    self.failures.append("search loop ran out of time")
                    return
                try:
                    result = client.search(COLLECTION, vectors[self.done % len(vectors)], k=10)
                    if not result.coverage.complete or len(result.hits) != 10:
                        self.failures.append(f"search {self.done}: {result.coverage}")
                except Exception as error:
                    self.failures.append(f"search {self.done}: {error!r}")
                self.done += 1


def test_searches_survive_killed_replicas_and_restarts_recover(
    start_cluster: StartCluster,
) -> None:
    data = datasets.load()
    cluster = start_cluster(groups=3, replicas=2, model="hash-8")
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384)
        for start in range(0, len(data.documents), 500):
            client.upsert(COLLECTION, datasets.with_vectors(data, start, start + 500), "all")

    victims = [group[0] for group in cluster.shards]
    held = {victim.name: shard_ids(victim, data.ids) for victim in victims}
    assert sum(len(ids) for ids in held.values()) == len(data.ids)

    loop = SearchLoop(cluster)
    loop.start()
    wait_for(lambda: loop.done >= 50, 30, "searches to run")
    for victim in victims:
        victim.kill()
    killed_at = loop.done
    wait_for(lambda: loop.done >= killed_at + 200, 30, "searches with replicas down")
    for victim in victims:
        victim.start()
    for victim in victims:
        victim.wait_ready()
    loop.stop_event.set()
    loop.join()

    assert loop.failures == []
    for victim in victims:
        assert shard_ids(victim, data.ids) == held[victim.name]
        assert_searchable(victim, sorted(held[victim.name])[:50])
    with Client(cluster.address) as client:
        assert client.count(COLLECTION) == len(data.ids)
