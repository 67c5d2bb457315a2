"""Search speed as users see it: through `shoal.Client` and `shoal.AsyncClient`, next
to the benchmark's raw-bytes client and in-process hnswlib, in one run.

    python -m bench.sdk                                    # debian-20k, 5 runs
    python -m bench.sdk --documents 2000 --seconds 1 --runs 2   # a smoke run

One cluster (1 shard group, replication 1, vectors given) is loaded once; every
run then measures, at one ef, alternating so all see the same machine:

- SearchBatch of `--batch` queries, one call in flight: in-process hnswlib
  (`knn_query` on every core), the raw client (requests serialized before the
  clock, answers parsed after; it asks for the packed reply as the SDK does, so
  both get the same bytes back), `Client.search_batch` as users call it
  (ids and scores, `include=[]`); and `Client.search_batch` over the whole query
  set with `--in-flight-batches` calls in flight (its pipelining);
- single Search with `--concurrency` in flight: hnswlib from that many threads,
  the raw client (grpc.aio), `Client.search` from that many threads sharing one
  client, and `AsyncClient.search` from that many asyncio tasks.

Figures are medians over `--runs`; ratios are taken within each run, then the
median. The SDK's overhead per query is its client process's CPU per query in
the SearchBatch measurement minus the raw client's (building requests from
numpy, serializing, decoding the reply into columns, and whatever the blocking
stub costs beyond the raw calls), and, alone and without the network, the SDK's
own work: the requests built and serialized, the raw client's answers decoded
into `SearchBatchResult`s (process CPU time).
"""

import argparse
import asyncio
import logging
import os
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import datasets, loadgen, messages, services
from bench.datasets import VectorSet
from bench.inprocess import InProcessIndex
from bench.markdown import number, percent, table
from bench.procfs import own_cpu_seconds
from bench.recall import recall_at_k
from shoal.sdk import calls
from shoal.sdk.async_client import AsyncClient
from shoal.sdk.client import Client
from shoal.sdk.columnar import SearchBatchResult, SearchResult
from shoal.sdk.requests import search_fields
from shoal.v1 import shoal_pb2

log = logging.getLogger("bench.sdk")

Matrix = npt.NDArray[np.float32]
K = 10
HNSWLIB = "hnswlib in-process"
RAW = "raw gRPC client"
SDK = "shoal.Client"
SDK_HITS = "shoal.Client, reading .hits (per-hit objects, as the SDK built before)"
ASYNC = "shoal.AsyncClient"
BATCH = "batch"  # SearchBatch, one call in flight
PIPELINED = "pipelined"  # search_batch over the whole set, several calls in flight
CONCURRENT = "concurrent"  # single Search, many in flight


@dataclass
class Figure:
    """One measurement: queries answered, seconds, recall, client CPU per query."""

    qps: float
    recall: float
    client_cpu_us: float | None = None


@dataclass
class Runs:
    """Every run's figure per (system, mode), and the within-run ratios."""

    figures: dict[tuple[str, str], list[Figure]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    sdk_work_us: list[float] = field(default_factory=list)

    def add(self, system: str, mode: str, figure: Figure) -> Figure:
        self.figures.setdefault((system, mode), []).append(figure)
        return figure

    def ratio(self, name: str, numerator: Figure, denominator: Figure) -> None:
        self.ratios.setdefault(name, []).append(numerator.qps / denominator.qps)

    def median(
        self, system: str, mode: str, value: Callable[[Figure], float | None]
    ) -> float | None:
        values = [v for f in self.figures.get((system, mode), []) if (v := value(f)) is not None]
        return statistics.median(values) if values else None


def _packed_requests(requests: Sequence[bytes], kind: Any) -> list[bytes]:
    """The raw client's requests asking for the packed reply, as the SDK's do: both
    sides then get the same bytes back and differ only by the client."""
    flag = kind(packed=True).SerializeToString()
    return [request + flag for request in requests]  # a field appended: merged on parse


def _reply_rows(reply: shoal_pb2.SearchResponse | shoal_pb2.SearchBatchResponse) -> list[list[int]]:
    """Every query's hit rows, from either reply form (after the clock stopped)."""
    if reply.HasField("packed"):
        ids, rows, start = list(reply.packed.ids), [], 0
        for count in reply.packed.counts:
            rows.append([int(i) for i in ids[start : start + count]])
            start += count
        return rows
    if isinstance(reply, shoal_pb2.SearchResponse):
        return [[int(hit.id) for hit in reply.hits]]
    return [[int(hit.id) for hit in result.hits] for result in reply.results]


def _queries_answered(response: bytes) -> int:
    """Queries a SearchBatch reply answers, whether per hit or packed (columns only)."""
    reply = shoal_pb2.SearchBatchResponse.FromString(response)
    return len(reply.packed.counts) if reply.HasField("packed") else len(reply.results)


def _rows(ids: Sequence[Sequence[object]]) -> list[list[int]]:
    return [[int(str(i)) for i in row if i != ""] for row in ids]


class SdkBench:
    def __init__(self, args: argparse.Namespace, data: VectorSet, address: str, pids: list[int]):
        self.args = args
        self.data = data
        self.address = address
        self.pids = {"services": pids}
        self.queries = data.queries
        self.truth = data.truth

    def _recall(self, rows: list[list[int]]) -> float:
        return recall_at_k(rows, self.truth[: len(rows)], K)

    # SearchBatch, one call in flight

    def raw_batch(self) -> tuple[Figure, list[bytes]]:
        a = self.args
        requests = _packed_requests(
            messages.search_batch_requests(services.COLLECTION, self.queries, K, a.ef, a.batch),
            shoal_pb2.SearchBatchRequest,
        )
        calls = loadgen.sequential(
            self.address, messages.SEARCH_BATCH, requests, a.seconds, warmup=2, pids=self.pids
        )
        rows = [
            row
            for data in calls.responses
            for row in _reply_rows(shoal_pb2.SearchBatchResponse.FromString(data))
        ]
        cpu = calls.cpu["client"] / len(rows) * 1e6
        return Figure(len(rows) / calls.seconds, self._recall(rows), cpu), calls.responses

    def sdk_batch(self, client: Client, per_hit: bool = False) -> Figure:
        a = self.args
        starts = range(0, len(self.queries), a.batch)
        for start in starts[:2]:  # warm-up
            chunk = self.queries[start : start + a.batch]
            client.search_batch(services.COLLECTION, chunk, k=K, ef=a.ef, include=[])
        results: list[SearchBatchResult] = []
        cpu = own_cpu_seconds()
        began = time.perf_counter()
        stop_at = began + a.seconds
        for start in starts:
            chunk = self.queries[start : start + a.batch]
            result = client.search_batch(services.COLLECTION, chunk, k=K, ef=a.ef, include=[])
            if per_hit:
                _ = [row.hits for row in result]  # builds them
            results.append(result)
            if time.perf_counter() >= stop_at:
                break
        seconds = time.perf_counter() - began
        cpu = own_cpu_seconds() - cpu
        rows = [row for result in results for row in _rows(result.ids.tolist())]
        return Figure(len(rows) / seconds, self._recall(rows), cpu / len(rows) * 1e6)

    def sdk_pipelined(self, client: Client) -> Figure:
        a = self.args
        began = time.perf_counter()
        result = client.search_batch(
            services.COLLECTION,
            self.queries,
            k=K,
            ef=a.ef,
            include=[],
            batch_size=a.batch,
            in_flight=a.in_flight_batches,
        )
        seconds = time.perf_counter() - began
        return Figure(len(result) / seconds, self._recall(_rows(result.ids.tolist())))

    def sdk_work_us(self, responses: Sequence[bytes]) -> float:
        """CPU µs per query of the SDK's own work, no network: the requests built from
        the query matrix and serialized, the raw client's answers parsed and decoded
        into `SearchBatchResult`s."""
        fields = search_fields(
            K, self.args.ef, (), None, None, None, False, "vector", "rrf", None, 0, 0, False
        )
        queries = sum(_queries_answered(r) for r in responses)
        cpu = time.process_time()
        for call in calls.search_batches(
            services.COLLECTION, self.queries[:queries], None, "vector", fields, self.args.batch, 1
        ):
            call.request.SerializeToString()
        for response in responses:
            SearchBatchResult([shoal_pb2.SearchBatchResponse.FromString(response)])
        return (time.process_time() - cpu) / queries * 1e6

    # Single Search, many in flight

    def raw_concurrent(self) -> Figure:
        a = self.args
        requests = _packed_requests(
            messages.search_requests(services.COLLECTION, self.queries, K, a.ef),
            shoal_pb2.SearchRequest,
        )
        calls = loadgen.concurrent(
            self.address, messages.SEARCH, requests, a.concurrency, a.seconds, pids=self.pids
        )
        rows = [
            row
            for data in calls.responses
            for row in _reply_rows(shoal_pb2.SearchResponse.FromString(data))
        ]
        cpu = calls.cpu["client"] / len(rows) * 1e6
        return Figure(len(rows) / calls.seconds, self._recall(rows), cpu)

    def sdk_threads(self, client: Client, per_hit: bool = False) -> Figure:
        a = self.args
        results: list[SearchResult | None] = [None] * len(self.queries)
        for vector in self.queries[: a.concurrency]:  # warm-up
            client.search(services.COLLECTION, vector, k=K, ef=a.ef, include=[])
        stop_at = time.perf_counter() + a.seconds

        def work(first: int) -> None:
            for row in range(first, len(self.queries), a.concurrency):
                result = client.search(
                    services.COLLECTION, self.queries[row], k=K, ef=a.ef, include=[]
                )
                if per_hit:
                    _ = result.hits  # builds them
                results[row] = result
                if time.perf_counter() >= stop_at:
                    return

        workers = [threading.Thread(target=work, args=(i,)) for i in range(a.concurrency)]
        cpu = own_cpu_seconds()
        began = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - began
        return self._partial(results, seconds, own_cpu_seconds() - cpu)

    def _partial(
        self, results: list[SearchResult | None], seconds: float, cpu_seconds: float
    ) -> Figure:
        """The figure of the queries answered before the time ran out."""
        done = [
            (row, _rows([found.ids.tolist()])[0])
            for row, found in enumerate(results)
            if found is not None
        ]
        recall = recall_at_k([found for _, found in done], self.truth[[row for row, _ in done]], K)
        return Figure(len(done) / seconds, recall, cpu_seconds / len(done) * 1e6)

    def async_concurrent(self) -> Figure:
        return asyncio.run(self._async_concurrent())

    async def _async_concurrent(self) -> Figure:
        a = self.args
        results: list[SearchResult | None] = [None] * len(self.queries)
        async with AsyncClient(self.address, timeout=loadgen.CALL_TIMEOUT_S) as client:
            await asyncio.gather(
                *(
                    client.search(services.COLLECTION, vector, k=K, ef=a.ef, include=[])
                    for vector in self.queries[: a.concurrency]
                )
            )
            next_row = 0
            stop_at = time.perf_counter() + a.seconds

            async def work() -> None:
                nonlocal next_row
                while next_row < len(self.queries) and time.perf_counter() < stop_at:
                    row, next_row = next_row, next_row + 1
                    result = await client.search(
                        services.COLLECTION, self.queries[row], k=K, ef=a.ef, include=[]
                    )
                    results[row] = result

            cpu = own_cpu_seconds()
            began = time.perf_counter()
            await asyncio.gather(*(work() for _ in range(a.concurrency)))
            seconds = time.perf_counter() - began
            cpu = own_cpu_seconds() - cpu
        return self._partial(results, seconds, cpu)


def _load(args: argparse.Namespace) -> VectorSet:
    full = datasets.load(args.dataset, args.queries)
    if args.documents >= full.size:
        return full
    documents = full.documents[: args.documents]
    truth = datasets.exact_top_k(documents, full.queries)
    return VectorSet(
        full.name, documents, full.queries, truth, f"the first {args.documents:,} of {full.source}"
    )


def measure(args: argparse.Namespace, workdir: Path) -> tuple[VectorSet, Runs]:
    data = _load(args)
    log.info("building the in-process index (%d documents)", data.size)
    reference = InProcessIndex(data.documents, args.m, args.ef_construction, args.threads)
    runs = Runs()
    with services.cluster(workdir / "sdk", 1, 1, services.NO_CHECKPOINTS) as running:
        address = running.address
        services.create_collection(
            address, services.COLLECTION, args.m, args.ef_construction, args.ef
        )
        services.call_all(
            address,
            messages.UPSERT,
            messages.upsert_requests(services.COLLECTION, data.documents, 1000),
        )
        pids = [services.pid(running.coordinator), *services.shard_pids(running)]
        bench = SdkBench(args, data, address, pids)
        with Client(address, timeout=loadgen.CALL_TIMEOUT_S) as client:
            for run in range(args.runs):
                log.info("run %d of %d", run + 1, args.runs)
                inprocess = reference.batches(data.queries, K, args.ef, args.batch)
                hnsw = runs.add(
                    HNSWLIB, BATCH, Figure(inprocess.qps, inprocess.recall(data.truth, K))
                )
                raw, responses = bench.raw_batch()
                runs.add(RAW, BATCH, raw)
                sdk = runs.add(SDK, BATCH, bench.sdk_batch(client))
                sdk_hits = runs.add(SDK_HITS, BATCH, bench.sdk_batch(client, per_hit=True))
                runs.add(SDK, PIPELINED, bench.sdk_pipelined(client))
                runs.sdk_work_us.append(bench.sdk_work_us(responses))
                runs.ratio("SearchBatch: shoal.Client / hnswlib", sdk, hnsw)
                runs.ratio("SearchBatch: shoal.Client / raw client", sdk, raw)
                runs.ratio("SearchBatch: shoal.Client / reading .hits", sdk, sdk_hits)

                threaded = reference.threads_one_at_a_time(
                    data.queries, K, args.ef, args.concurrency
                )
                hnsw_threads = runs.add(
                    HNSWLIB, CONCURRENT, Figure(threaded.qps, threaded.recall(data.truth, K))
                )
                raw_single = runs.add(RAW, CONCURRENT, bench.raw_concurrent())
                sdk_single = runs.add(SDK, CONCURRENT, bench.sdk_threads(client))
                hits_single = runs.add(
                    SDK_HITS, CONCURRENT, bench.sdk_threads(client, per_hit=True)
                )
                async_single = runs.add(ASYNC, CONCURRENT, bench.async_concurrent())
                runs.ratio("single Search: shoal.Client / raw client", sdk_single, raw_single)
                runs.ratio(
                    "single Search: shoal.AsyncClient / raw client", async_single, raw_single
                )
                runs.ratio("single Search: shoal.Client / hnswlib", sdk_single, hnsw_threads)
                runs.ratio("single Search: shoal.Client / reading .hits", sdk_single, hits_single)
    return data, runs


def report(args: argparse.Namespace, argv: Sequence[str], data: VectorSet, runs: Runs) -> str:
    def qps(system: str, mode: str) -> str:
        return number(runs.median(system, mode, lambda f: f.qps))

    def recall(system: str, mode: str) -> str:
        value = runs.median(system, mode, lambda f: f.recall)
        return "-" if value is None else f"{value:.3f}"

    c = args.concurrency
    rows = [
        [
            system,
            qps(system, BATCH),
            recall(system, BATCH),
            qps(system, PIPELINED),
            qps(system, CONCURRENT),
            recall(system, CONCURRENT),
            number(runs.median(system, BATCH, lambda f: f.client_cpu_us), 1),
            number(runs.median(system, CONCURRENT, lambda f: f.client_cpu_us), 1),
        ]
        for system in (HNSWLIB, RAW, SDK, SDK_HITS, ASYNC)
    ]
    main = table(
        [
            "",
            f"SearchBatch QPS ({args.batch}/call, 1 in flight)",
            "recall@10",
            f"search_batch QPS ({args.batch}/call, {args.in_flight_batches} in flight)",
            f"single Search QPS ({c} concurrent)",
            "recall@10",
            "client CPU µs/query (SearchBatch)",
            "client CPU µs/query (single Search)",
        ],
        rows,
    )
    sdk_cpu = runs.median(SDK, BATCH, lambda f: f.client_cpu_us)
    raw_cpu = runs.median(RAW, BATCH, lambda f: f.client_cpu_us)
    overhead = None if sdk_cpu is None or raw_cpu is None else sdk_cpu - raw_cpu
    ratio_rows = [
        [name, percent(statistics.median(values))] for name, values in runs.ratios.items()
    ]
    ratio_rows += [
        [
            "SDK overhead per query (client CPU, SDK minus raw, ids + scores)",
            f"{number(overhead, 1)} µs",
        ],
        [
            "SDK work alone (requests from numpy + parse + columnar decode, CPU per query)",
            f"{number(statistics.median(runs.sdk_work_us), 1)} µs",
        ],
    ]
    lines = [
        f"Reproduce: `python -m bench.sdk {shlex.join(argv)}`",
        "",
        f"{data.size:,} documents ({data.source}), {len(data.queries):,} queries, k={K},"
        f" M {args.m}, ef_construction {args.ef_construction}, ef {args.ef}; 1 shard group,"
        f" replication 1; medians of {args.runs} run(s); hnswlib batches on {args.threads}"
        f" threads, single queries from {c} threads.",
        "",
        main,
        "",
        table(["within each run (median)", ""], ratio_rows),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    parser = argparse.ArgumentParser(prog="python -m bench.sdk", description=__doc__)
    parser.add_argument("--dataset", default="debian-20k", choices=datasets.REAL)
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement, at most")
    parser.add_argument("--ef", type=int, default=32, help="search ef (0.95 recall@10 at 32)")
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--in-flight-batches", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bench-sdk-") as tmp:
        data, runs = measure(args, Path(tmp))
    print(report(args, given, data, runs))


if __name__ == "__main__":
    main()
