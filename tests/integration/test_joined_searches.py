"""Single searches made at the same time by threads sharing a `Client` (tasks sharing
an `AsyncClient`) go to the coordinator joined in SearchBatch calls, on real servers:
each caller gets what its own Search gets, alone, and a bad query among them fails
only its own caller."""

import asyncio
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import shoal
from shoal.errors import InvalidArgument
from shoal.runtime.proto_values import Metadata
from shoal.sdk.columnar import SearchResult
from tests.conftest import StartCluster
from tests.integration.shoal_up import free_port_range

DIMENSION = 16
THREADS = 16


def calls_started(metrics_port: int, method: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "grpc_server_started"
        for sample in family.samples
        if sample.labels["grpc_method"] == method
    )


Answer = tuple[list[str], list[float], list[Metadata]]


def answer(result: SearchResult) -> Answer:
    return list(result.ids), result.scores.tolist(), result.metadatas


def assert_same(found: list[Answer], expected: list[Answer]) -> None:
    """The same hits, scores equal to float32 rounding (a query searched in a batch
    and alone takes different float32 paths: the last bit of a score may differ)."""
    assert [(ids, metadatas) for ids, _, metadatas in found] == [
        (ids, metadatas) for ids, _, metadatas in expected
    ]
    np.testing.assert_allclose(
        [s for _, scores, _ in found for s in scores],
        [s for _, scores, _ in expected for s in scores],
        rtol=0, atol=1e-6,
    )  # fmt: skip


def test_concurrent_searches_are_joined_and_each_gets_its_own_answer(
    start_cluster: StartCluster,
) -> None:
    base = free_port_range(4)  # coordinator, embedder, then the two shards
    cluster = start_cluster(groups=2, replicas=1, model="hash-8", metrics_port_base=base)
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((600, DIMENSION)).astype(np.float32)
    queries = rng.standard_normal((320, DIMENSION)).astype(np.float32)
    with shoal.Client(cluster.address, timeout=60) as client:
        client.create_collection("joined", dimension=DIMENSION)
        documents = [
            {"id": f"d{i}", "vector": vector, "metadata": {"row": i, "odd": i % 2}}
            for i, vector in enumerate(vectors)
        ]
        client.upsert("joined", documents, "all")

        def search(row: int) -> SearchResult:
            return client.search("joined", queries[row], k=7, where={"odd": 1})

        alone = [answer(search(row)) for row in range(len(queries))]
        batches_before = calls_started(base, "SearchBatch")
        with ThreadPoolExecutor(THREADS) as pool:
            together = [answer(result) for result in pool.map(search, range(len(queries)))]
        assert_same(together, alone)
        assert calls_started(base, "SearchBatch") > batches_before  # some were joined
        assert all(metadata["odd"] == 1 for ids, _, metadatas in alone for metadata in metadatas)

        async def search_async() -> list[Answer]:
            async with shoal.AsyncClient(cluster.address, timeout=60) as aclient:
                results = await asyncio.gather(
                    *(aclient.search("joined", query, k=7, where={"odd": 1}) for query in queries)
                )
            return [answer(result) for result in results]

        batches_before = calls_started(base, "SearchBatch")
        assert_same(asyncio.run(search_async()), alone)
        assert calls_started(base, "SearchBatch") > batches_before


def test_a_bad_query_among_joined_searches_fails_only_its_caller(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(groups=1, replicas=1, model="hash-8")
    rng = np.random.default_rng(12)
    vectors = rng.standard_normal((200, DIMENSION)).astype(np.float32)
    with shoal.Client(cluster.address, timeout=60) as client:
        client.create_collection("joined", dimension=DIMENSION)
        client.upsert("joined", [{"id": f"d{i}", "vector": v} for i, v in enumerate(vectors)])
        expected = {row: list(client.search("joined", vectors[row], k=3).ids) for row in range(64)}
        failures: list[Exception] = []
        lock = threading.Lock()

        def search(row: int) -> None:
            if row % 8 == 3:  # a vector of the wrong dimension
                with pytest.raises(InvalidArgument) as failure:
                    client.search("joined", vectors[row][:-1], k=3)
                with lock:
                    failures.append(failure.value)
            else:
                assert list(client.search("joined", vectors[row], k=3).ids) == expected[row]

        for _ in range(3):
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(search, range(64)))
        assert len(failures) == 3 * 8
        assert all("dimension" in str(failure) for failure in failures)
