"""Search: in-process hnswlib vs one shard over gRPC vs the coordinator over 1, 2, 3 groups.

For each shard-group count a cluster (replication 1) is started and loaded
through the coordinator, then every run measures, at every ef: in-process
hnswlib (re-measured in each cluster phase, so every service figure has a
reference taken minutes, not a quarter of an hour, apart on a shared machine),
and each service one query at a time, with many single-query calls in flight,
and with SearchBatch. Recall@10 is always against exact search.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench import floor_server, loadgen, messages, services
from bench.datasets import VectorSet
from bench.inprocess import InProcessIndex, Measured
from bench.plans import Plan
from bench.recall import recall_at_k
from bench.samples import Recorder, Sample
from bench.stats import CurvePoint, Latency, best_at_recall, ratio
from shoal.cli.service_process import ServiceProcess

log = logging.getLogger(__name__)

SUITE = "search"
HNSWLIB = "hnswlib in-process"
SHARD = "shard"
FLOOR = "floor: shard Health/Check"
FLOOR_INLINE = "floor: empty grpc.aio handler"
FLOOR_EXECUTOR = "floor: grpc.aio + 1 thread hop"
FLOORS = (FLOOR, FLOOR_INLINE, FLOOR_EXECUTOR)
SEQUENTIAL = "sequential"  # one Search at a time
CONCURRENT = "concurrent"  # many single-query Search calls in flight
BATCH = "batch"  # SearchBatch (in-process: knn_query over a batch)
THREADS = "threads"  # in-process only: one knn_query per query from `threads` threads
REFERENCE_MODE = BATCH  # in-process hnswlib on every core: the limit the services are held to


def coordinator(groups: int) -> str:
    return f"coordinator x{groups}"


def system_order(system: str) -> tuple[int, str]:
    """Tables and plots list in-process hnswlib, the shard, the coordinators, then the floors."""
    if system == HNSWLIB:
        return 0, system
    if system == SHARD:
        return 1, system
    return (2 if system.startswith("coordinator") else 3), system


@dataclass(frozen=True)
class Endpoint:
    """One service to measure: where, which methods, how to read the answers."""

    system: str
    address: str
    single_method: str
    batch_method: str
    single_requests: Callable[[npt.NDArray[np.float32], int], list[bytes]]
    batch_requests: Callable[[npt.NDArray[np.float32], int], list[bytes]]
    single_rows: Callable[[Sequence[bytes]], list[list[int]]]
    batch_rows: Callable[[Sequence[bytes]], list[list[int]]]
    pids: dict[str, list[int]]


def _coordinator_endpoint(
    groups: int, address: str, pids: dict[str, list[int]], plan: Plan
) -> Endpoint:
    k, batch, name = plan.search.k, plan.search.batch, services.COLLECTION
    return Endpoint(
        coordinator(groups),
        address,
        messages.SEARCH,
        messages.SEARCH_BATCH,
        lambda queries, ef: messages.search_requests(name, queries, k, ef),
        lambda queries, ef: messages.search_batch_requests(name, queries, k, ef, batch),
        messages.search_rows,
        messages.search_batch_rows,
        pids,
    )


def _shard_endpoint(address: str, pid: int, plan: Plan) -> Endpoint:
    k, batch, name = plan.search.k, plan.search.batch, services.COLLECTION
    return Endpoint(
        SHARD,
        address,
        messages.SHARD_SEARCH,
        messages.SHARD_SEARCH,
        lambda queries, ef: messages.shard_search_requests(name, queries, k, ef, 1),
        lambda queries, ef: messages.shard_search_requests(name, queries, k, ef, batch),
        messages.shard_search_rows,
        messages.shard_search_rows,
        {"shards": [pid]},
    )


def _figures(
    calls: loadgen.Calls, queries: int, recall: float | None, latency: bool = True
) -> dict[str, float]:
    values = {"qps": queries / calls.seconds, "queries": float(queries)}
    if recall is not None:
        values["recall"] = recall
    if latency and calls.latencies:
        summary = Latency.of(calls.latencies)
        values |= {"p50_ms": summary.p50, "p90_ms": summary.p90, "p99_ms": summary.p99}
    for process, seconds in calls.cpu.items():
        values[f"cpu_{process}_us"] = seconds / queries * 1e6
    if calls.cpu:
        values["cpu_total_us"] = sum(calls.cpu.values()) / queries * 1e6
    return values


def _inprocess_figures(
    measured: Measured, truth: npt.NDArray[np.int64], k: int
) -> dict[str, float]:
    values = {
        "qps": measured.qps,
        "recall": measured.recall(truth, k),
        "queries": float(measured.queries),
        "cpu_engine_us": measured.cpu_seconds / measured.queries * 1e6,
    }
    if measured.latencies:
        summary = Latency.of(measured.latencies)
        values |= {"p50_ms": summary.p50, "p90_ms": summary.p90, "p99_ms": summary.p99}
    return values


def _value(samples: Sequence[Sample], system: str, mode: str, ef: int, name: str) -> float | None:
    for sample in samples:
        if sample.system == system and sample.mode == mode and sample.params.get("ef") == ef:
            return sample.values.get(name)
    return None


class SearchSuite:
    def __init__(self, plan: Plan, recorder: Recorder, workdir: Path) -> None:
        self.plan = plan
        self.recorder = recorder
        self.workdir = workdir

    def run(self, data: VectorSet) -> None:
        plan = self.plan
        log.info("search %s: building the in-process reference index", data.name)
        reference = InProcessIndex(
            data.documents, plan.hnsw_m, plan.hnsw_ef_construction, plan.threads
        )
        self.recorder.notes[f"build {data.name}"] = (
            f"in-process build of {data.size:,} vectors: {reference.build_seconds:.1f} s"
            f" ({data.size / reference.build_seconds:,.0f} vectors/s, {plan.threads} threads)"
        )
        for groups in plan.search.groups:
            self._phase(data, reference, groups)

    def _phase(self, data: VectorSet, reference: InProcessIndex, groups: int) -> None:
        plan = self.plan
        root = self.workdir / f"search-{data.name}-{groups}"
        floor = None
        if groups == 1:
            floor = ServiceProcess("floor", "bench.floor_server", [], root / "floor")
        with (
            services.cluster(root, groups, 1, services.NO_CHECKPOINTS) as running,
            services.running(floor),
        ):
            address = running.address
            services.create_collection(
                address,
                services.COLLECTION,
                plan.hnsw_m,
                plan.hnsw_ef_construction,
                plan.hnsw_ef,
            )
            load = services.call_all(
                address,
                messages.UPSERT,
                messages.upsert_requests(
                    services.COLLECTION, data.documents, plan.search.upsert_batch
                ),
            )
            self.recorder.notes[f"load {data.name} x{groups}"] = (
                f"loading {data.size:,} vectors through the coordinator into {groups} group(s):"
                f" {load.seconds:.1f} s ({data.size / load.seconds:,.0f} vectors/s)"
            )
            pids = {
                "coordinator": [services.pid(running.coordinator)],
                "shards": services.shard_pids(running),
            }
            endpoints = [_coordinator_endpoint(groups, address, pids, plan)]
            if groups == 1:
                shard = running.shards[0][0]
                endpoints.insert(0, _shard_endpoint(shard.address, services.pid(shard), plan))
            self._check_answers(endpoints[-1], data)
            for run in range(plan.runs):
                log.info("search %s x%d: run %d of %d", data.name, groups, run + 1, plan.runs)
                phase: list[Sample] = []
                for ef in plan.search.efs:
                    phase += self._inprocess(data, reference, ef, run)
                    for endpoint in endpoints:
                        phase += self._service(data, endpoint, ef, run)
                if floor is not None:
                    phase += self._floor(data, endpoints[0], floor, run)
                self._ratios(data, phase, run)

    def _check_answers(self, endpoint: Endpoint, data: VectorSet) -> None:
        requests = endpoint.single_requests(data.queries[:1], self.plan.hnsw_ef)
        calls = loadgen.sequential(endpoint.address, endpoint.single_method, requests, 10, 0)
        hits = len(endpoint.single_rows(calls.responses)[0])
        if hits != self.plan.search.k:
            raise RuntimeError(f"{endpoint.system} answered {hits} hits, not {self.plan.search.k}")

    def _inprocess(self, data: VectorSet, index: InProcessIndex, ef: int, run: int) -> list[Sample]:
        search, k = self.plan.search, self.plan.search.k
        sequential = data.queries[: search.sequential_queries]
        add = self.recorder.add
        return [
            add(
                SUITE,
                data.name,
                HNSWLIB,
                BATCH,
                run,
                _inprocess_figures(index.batches(data.queries, k, ef, search.batch), data.truth, k),
                ef=ef,
            ),
            add(
                SUITE,
                data.name,
                HNSWLIB,
                SEQUENTIAL,
                run,
                _inprocess_figures(index.one_at_a_time(sequential, k, ef), data.truth, k),
                ef=ef,
            ),
            add(
                SUITE,
                data.name,
                HNSWLIB,
                THREADS,
                run,
                _inprocess_figures(index.threads_one_at_a_time(data.queries, k, ef), data.truth, k),
                ef=ef,
            ),
        ]

    def _service(self, data: VectorSet, endpoint: Endpoint, ef: int, run: int) -> list[Sample]:
        search, k = self.plan.search, self.plan.search.k
        truth = data.truth
        single = endpoint.single_requests(data.queries, ef)
        batches = endpoint.batch_requests(data.queries, ef)
        samples = []

        sequential = loadgen.sequential(
            endpoint.address,
            endpoint.single_method,
            single[: search.sequential_queries],
            search.max_seconds,
            pids=endpoint.pids,
        )
        rows = endpoint.single_rows(sequential.responses)
        samples.append(
            self.recorder.add(
                SUITE,
                data.name,
                endpoint.system,
                SEQUENTIAL,
                run,
                _figures(sequential, len(rows), recall_at_k(rows, truth[: len(rows)], k)),
                ef=ef,
            )
        )

        concurrent = loadgen.concurrent(
            endpoint.address,
            endpoint.single_method,
            single,
            search.in_flight,
            search.max_seconds,
            pids=endpoint.pids,
        )
        rows = endpoint.single_rows(concurrent.responses)
        samples.append(
            self.recorder.add(
                SUITE,
                data.name,
                endpoint.system,
                CONCURRENT,
                run,
                _figures(concurrent, len(rows), recall_at_k(rows, truth[: len(rows)], k)),
                ef=ef,
            )
        )

        batched = loadgen.concurrent(
            endpoint.address,
            endpoint.batch_method,
            batches,
            search.batch_in_flight,
            search.max_seconds,
            warmup=search.batch_in_flight,
            pids=endpoint.pids,
        )
        rows = endpoint.batch_rows(batched.responses)
        samples.append(
            self.recorder.add(
                SUITE,
                data.name,
                endpoint.system,
                BATCH,
                run,
                _figures(batched, len(rows), recall_at_k(rows, truth[: len(rows)], k)),
                ef=ef,
            )
        )
        return samples

    def _floor(
        self, data: VectorSet, shard: Endpoint, floor: ServiceProcess, run: int
    ) -> list[Sample]:
        """What a Python gRPC server costs per request before it does any work.

        The shard's health check goes through Shoal's server stack (interceptors
        included) without touching an index; the floor server's two methods are
        bare grpc.aio, answered on the event loop or after one thread-pool hop.
        """
        search = self.plan.search
        requests = [b"\0" * 4 * data.queries.shape[1]] * len(data.queries)
        floor_pids = {"server": [services.pid(floor)]}
        targets = [
            (FLOOR, shard.address, messages.HEALTH_CHECK, [b""] * len(requests), shard.pids),
            (FLOOR_INLINE, floor.address, floor_server.INLINE, requests, floor_pids),
            (FLOOR_EXECUTOR, floor.address, floor_server.EXECUTOR, requests, floor_pids),
        ]
        samples = []
        for system, address, method, calls, pids in targets:
            sequential = loadgen.sequential(
                address, method, calls[: search.sequential_queries], search.max_seconds, pids=pids
            )
            concurrent = loadgen.concurrent(
                address, method, calls, search.in_flight, search.max_seconds, pids=pids
            )
            samples.append(
                self.recorder.add(
                    SUITE,
                    data.name,
                    system,
                    SEQUENTIAL,
                    run,
                    _figures(sequential, sequential.count, None),
                    ef=0,
                )
            )
            samples.append(
                self.recorder.add(
                    SUITE,
                    data.name,
                    system,
                    CONCURRENT,
                    run,
                    _figures(concurrent, concurrent.count, None),
                    ef=0,
                )
            )
        return samples

    def _ratios(self, data: VectorSet, phase: Sequence[Sample], run: int) -> None:
        """Per service and mode: best QPS at the target recall over in-process hnswlib's.

        Both sides come from the same run of the same cluster phase.
        """
        target = self.plan.search.target_recall

        def curve(system: str, mode: str) -> list[CurvePoint]:
            return [
                CurvePoint(s.params["ef"], s.values["recall"], s.values["qps"])
                for s in phase
                if s.system == system and s.mode == mode
            ]

        reference = best_at_recall(curve(HNSWLIB, REFERENCE_MODE), target)
        single_thread = best_at_recall(curve(HNSWLIB, SEQUENTIAL), target)
        systems = list(dict.fromkeys(s.system for s in phase))
        for system in systems:
            if system == HNSWLIB or system in FLOORS:
                continue
            for mode in (SEQUENTIAL, CONCURRENT, BATCH):
                best = best_at_recall(curve(system, mode), target)
                if best is None or reference is None:
                    continue
                values = {
                    "qps": best.qps,
                    "ef": float(best.ef),
                    "recall": best.recall,
                    "reference_qps": reference.qps,
                    "reference_ef": float(reference.ef),
                    "ratio": best.qps / reference.qps,
                }
                single = ratio(best.qps, single_thread.qps if single_thread else None)
                if single is not None:
                    values["ratio_single_thread"] = single
                share = ratio(
                    _value(phase, HNSWLIB, SEQUENTIAL, best.ef, "cpu_engine_us"),
                    _value(phase, system, mode, best.ef, "cpu_total_us"),
                )
                if share is not None:
                    values["engine_cpu_share"] = share
                self.recorder.add("search-ratio", data.name, system, mode, run, values)
