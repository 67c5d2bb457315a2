"""What a quick, a full and a 1M run measure: sizes, ef values, repetitions.

The quick plan keeps to about five minutes on a shared 2-core machine; the
full plan adds the generated 100k set and more ef values and repetitions; the
1M plan is a separate, longer run of search and memory on the 1M set.
"""

import os
from dataclasses import dataclass, replace

SUITES = ("search", "ingest", "embed", "memory")


@dataclass(frozen=True)
class SearchPlan:
    datasets: tuple[str, ...]
    queries: int  # per data set: the recall, concurrent and batch measurements use these
    sequential_queries: int  # one-at-a-time calls (latency) use the first ones
    efs: tuple[int, ...]
    groups: tuple[int, ...] = (1, 2, 3)
    in_flight: int = 16  # concurrent single-query Search calls
    batch: int = 100  # queries per SearchBatch call (and per in-process knn_query)
    batch_in_flight: int = 2
    max_seconds: float = 4.0  # per measurement, whatever the query count
    target_recall: float = 0.95
    k: int = 10
    upsert_batch: int = 1000  # loading the clusters


@dataclass(frozen=True)
class IngestPlan:
    dataset: str
    documents: int
    batches: tuple[int, ...] = (100, 1000)
    replications: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class EmbedPlan:
    dataset: str
    texts: int
    concurrency: int = 64
    batch: int = 64  # raw encode batch size and the embedder's --max-batch
    max_wait_ms: float = 10.0  # the embedder's default


@dataclass(frozen=True)
class MemoryPlan:
    dataset: str
    documents: int  # 0: the whole set
    write_batch: int = 1000
    tail: float = 0.01  # share written after the last checkpoint before a SIGKILL


@dataclass(frozen=True)
class Plan:
    name: str
    runs: int
    search: SearchPlan
    ingest: IngestPlan
    embed: EmbedPlan
    memory: MemoryPlan
    suites: tuple[str, ...] = SUITES
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef: int = 64  # the collection default, used where one ef is reported
    #: Threads in-process hnswlib gets: hnswlib's default (num_threads=-1) is every
    #: core, which is also what it uses inside the shard.
    threads: int = len(os.sched_getaffinity(0))


QUICK = Plan(
    name="quick",
    runs=3,
    search=SearchPlan(
        datasets=("debian-20k",), queries=1000, sequential_queries=300, efs=(16, 24, 32, 64, 128)
    ),
    ingest=IngestPlan(dataset="debian-20k", documents=5000),
    embed=EmbedPlan(dataset="debian-dev", texts=256),
    memory=MemoryPlan(dataset="debian-20k", documents=0),
)

FULL = Plan(
    name="full",
    runs=5,
    search=SearchPlan(
        datasets=("debian-20k", "gen-100k"),
        queries=2000,
        sequential_queries=1000,
        efs=(10, 16, 24, 32, 48, 64, 96, 128, 256),
        max_seconds=6.0,
    ),
    ingest=IngestPlan(dataset="debian-20k", documents=20_000),
    embed=EmbedPlan(dataset="debian-dev", texts=965),
    memory=MemoryPlan(dataset="gen-100k", documents=0),
)

FULL_1M = Plan(
    name="full-1m",
    runs=3,
    search=SearchPlan(
        datasets=("gen-1m",),
        queries=1000,
        sequential_queries=500,
        efs=(16, 32, 64, 128, 256),
        groups=(1, 3),
        max_seconds=6.0,
        upsert_batch=2000,
    ),
    ingest=IngestPlan(dataset="debian-20k", documents=20_000),
    embed=EmbedPlan(dataset="debian-dev", texts=965),
    memory=MemoryPlan(dataset="gen-1m", documents=0),
    suites=("search", "memory"),
)

PLANS = {plan.name: plan for plan in (QUICK, FULL, FULL_1M)}


def customized(
    plan: Plan,
    runs: int | None = None,
    suites: tuple[str, ...] | None = None,
    datasets: tuple[str, ...] | None = None,
) -> Plan:
    if runs is not None:
        plan = replace(plan, runs=runs)
    if suites is not None:
        plan = replace(plan, suites=suites)
    if datasets is not None:
        plan = replace(plan, search=replace(plan.search, datasets=datasets))
    return plan
