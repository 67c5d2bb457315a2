"""Ingest: raw hnswlib add_items vs Upsert with vectors through the coordinator.

One shard group, replication 1 and 2, batches of 100 and 1000 documents, one
Upsert in flight (write consistency QUORUM, which at replication 2 waits for
both replicas). The raw reference adds the same vectors in the same batches to
a fresh index with hnswlib's default threads (every core), as the shard does;
it is re-measured right before each service run. A replica acknowledges only
after its RocksDB commit and its index update, so the service figure includes
both; the shard's default checkpoint policy stays on.
"""

import logging
import time
from pathlib import Path

import hnswlib
import numpy as np

from bench import datasets, messages, services
from bench.plans import Plan
from bench.samples import Recorder
from shoal.v1 import shoal_pb2

log = logging.getLogger(__name__)

SUITE = "ingest"
RAW = "hnswlib add_items"


def coordinator(replication: int) -> str:
    return f"Upsert via coordinator, R={replication}"


def raw_add_items(
    documents: datasets.Matrix, batch: int, m: int, ef_construction: int, threads: int
) -> float:
    """Seconds to add every document to a fresh index, `batch` at a time."""
    index = hnswlib.Index(space="cosine", dim=documents.shape[1])
    index.init_index(max_elements=len(documents), M=m, ef_construction=ef_construction)
    started = time.perf_counter()
    for start in range(0, len(documents), batch):
        rows = np.arange(start, min(start + batch, len(documents)))
        index.add_items(documents[rows], rows, num_threads=threads)
    return time.perf_counter() - started


class IngestSuite:
    def __init__(self, plan: Plan, recorder: Recorder, workdir: Path) -> None:
        self.plan = plan
        self.recorder = recorder
        self.workdir = workdir

    def run(self) -> None:
        plan, ingest = self.plan, self.plan.ingest
        documents = datasets.load(ingest.dataset, 1).documents[: ingest.documents]
        count = len(documents)
        for replication in ingest.replications:
            root = self.workdir / f"ingest-r{replication}"
            with services.cluster(root, 1, replication) as running:
                address = running.address
                pids = {
                    "coordinator": [services.pid(running.coordinator)],
                    "shards": services.shard_pids(running),
                }
                for run in range(plan.runs):
                    for batch in ingest.batches:
                        log.info(
                            "ingest R=%d batch %d: run %d of %d",
                            replication,
                            batch,
                            run + 1,
                            plan.runs,
                        )
                        raw = raw_add_items(
                            documents, batch, plan.hnsw_m, plan.hnsw_ef_construction, plan.threads
                        )
                        self.recorder.add(
                            SUITE,
                            ingest.dataset,
                            RAW,
                            "sequential",
                            run,
                            {"docs_per_s": count / raw},
                            batch=batch,
                            replication=replication,
                        )
                        name = f"ingest-{run}-{batch}"
                        services.create_collection(
                            address, name, plan.hnsw_m, plan.hnsw_ef_construction, plan.hnsw_ef
                        )
                        requests = messages.upsert_requests(name, documents, batch)
                        calls = services.call_all(address, messages.UPSERT, requests, pids)
                        acknowledged = shoal_pb2.UpsertResponse.FromString(calls.responses[0])
                        if acknowledged.replicas_acknowledged != replication:
                            raise RuntimeError(f"an upsert was acknowledged by {acknowledged}")
                        services.drop_collection(address, name)
                        values = {
                            "docs_per_s": count / calls.seconds,
                            "ratio": raw / calls.seconds,
                        }
                        values |= {
                            f"cpu_{process}_us": seconds / count * 1e6
                            for process, seconds in calls.cpu.items()
                        }
                        self.recorder.add(
                            SUITE,
                            ingest.dataset,
                            coordinator(replication),
                            "sequential",
                            run,
                            values,
                            batch=batch,
                            replication=replication,
                        )
