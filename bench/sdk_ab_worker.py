"""One side of `python -m bench.sdk_ab`: concurrent single Search through shoal.Client.

Run by path with PYTHONPATH set to the checkout under test, so that its services,
its SDK and its local-cluster runner are the ones measured. It imports nothing
from bench/ (an older checkout may lack it) and uses only SDK calls that every
checkout since the SDK's first columnar results has: create_collection, upsert,
search. Prints one JSON object: for each way of reading results, the queries
per second and the client's CPU µs per query.
"""

import argparse
import asyncio
import json
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import shoal
from shoal.cli.local_cluster import ClusterSpec, LocalCluster
from shoal.sdk.client import Client

COLLECTION = "ab"
K = 10
Matrix = npt.NDArray[np.float32]


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_hits(result: Any) -> None:
    """What a user reading each hit does: its id and score."""
    for hit in result.hits:
        _ = (hit.id, hit.score)


def read_columns(result: Any) -> None:
    _ = (result.ids, result.scores)


def threaded(
    client: Client, queries: Matrix, args: argparse.Namespace, read: Callable[[Any], None]
) -> dict[str, float]:
    for vector in queries[: args.concurrency]:  # warm-up
        read(client.search(COLLECTION, vector, k=K, ef=args.ef, include=[]))
    done = [0] * args.concurrency
    stop_at = time.perf_counter() + args.seconds

    def work(worker: int) -> None:
        for row in range(worker, len(queries), args.concurrency):
            read(client.search(COLLECTION, queries[row], k=K, ef=args.ef, include=[]))
            done[worker] += 1
            if time.perf_counter() >= stop_at:
                return

    workers = [threading.Thread(target=work, args=(i,)) for i in range(args.concurrency)]
    cpu, began = own_cpu_seconds(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return _figure(sum(done), time.perf_counter() - began, own_cpu_seconds() - cpu)


async def concurrent_async(
    address: str, queries: Matrix, args: argparse.Namespace
) -> dict[str, float]:
    async with shoal.AsyncClient(address) as client:
        for vector in queries[: args.concurrency]:
            read_hits(await client.search(COLLECTION, vector, k=K, ef=args.ef, include=[]))
        done = [0] * args.concurrency
        stop_at = time.perf_counter() + args.seconds

        async def work(worker: int) -> None:
            for row in range(worker, len(queries), args.concurrency):
                read_hits(
                    await client.search(COLLECTION, queries[row], k=K, ef=args.ef, include=[])
                )
                done[worker] += 1
                if time.perf_counter() >= stop_at:
                    return

        cpu, began = own_cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(work(i) for i in range(args.concurrency)))
        return _figure(sum(done), time.perf_counter() - began, own_cpu_seconds() - cpu)


def _figure(queries: int, seconds: float, cpu: float) -> dict[str, float]:
    return {"qps": queries / seconds, "client_cpu_us": 1e6 * cpu / max(queries, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ef", type=int, default=32)
    args = parser.parse_args()
    vectors = np.load(args.data / "corpus_emb.npy")[: args.documents]
    queries = np.load(args.data / "queries_emb.npy")[: args.queries]
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as root:
        cluster = LocalCluster(Path(root), ClusterSpec(groups=1, replicas=1, model="hash-384"))
        cluster.start()
        try:
            with Client(cluster.address) as client:
                client.create_collection(
                    COLLECTION,
                    dimension=vectors.shape[1],
                    hnsw_m=16,
                    hnsw_ef_construction=200,
                    hnsw_ef=args.ef,
                )
                for start in range(0, len(vectors), 500):
                    rows = range(start, min(start + 500, len(vectors)))
                    client.upsert(COLLECTION, [{"id": str(i), "vector": vectors[i]} for i in rows])
                figures["Client, reading each hit"] = threaded(client, queries, args, read_hits)
                if hasattr(shoal, "AsyncClient"):  # columnar results came with it
                    figures["Client, ids and scores as arrays"] = threaded(
                        client, queries, args, read_columns
                    )
            if hasattr(shoal, "AsyncClient"):
                figures["AsyncClient, reading each hit"] = asyncio.run(
                    concurrent_async(cluster.address, queries, args)
                )
        finally:
            cluster.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
