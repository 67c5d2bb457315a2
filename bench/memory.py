"""Memory per document per replica, and how long a shard takes to come back.

One shard process (one replica) is measured alone: its resident memory empty,
then holding the data set, loaded from its own checkpoint after a restart (the
state a long-running replica settles in). Start-up time runs from spawning the
process to its health check saying SERVING, and the shard's own load time is
read from its `shard_loaded` log line. Three restarts:
  - SIGTERM: the shard checkpoints on the way down and loads that checkpoint;
  - SIGKILL after writing `tail` of the documents again: the newest checkpoint
    plus a catch-up of the writes it lacks, read from RocksDB;
  - no checkpoint at all (index directory removed): a rebuild from RocksDB.
Documents are written straight to the shard (ShardService.Write), since the
coordinator plays no part in a replica's memory.
"""

import json
import logging
import shutil
import time
from pathlib import Path

from bench import datasets, messages, services
from bench.plans import Plan
from bench.procfs import directory_bytes, rss_bytes
from bench.samples import Recorder
from shoal.cli.service_process import ServiceProcess
from shoal.v1 import common_pb2, shard_pb2

log = logging.getLogger(__name__)

SUITE = "memory"
STOP_TIMEOUT_S = 900.0  # a graceful stop writes the checkpoint of a large index
RESTARTS = ("SIGTERM", "SIGKILL + catch-up", "no checkpoint (rebuild)")


def load_seconds(log_text: str) -> float | None:
    """The load time the shard reported in its last `shard_loaded` line."""
    found = None
    for line in log_text.splitlines():
        start = line.find('{"event": "shard_loaded"')
        if start >= 0:
            found = float(json.loads(line[start:])["load_seconds"])
    return found


class MemorySuite:
    def __init__(self, plan: Plan, recorder: Recorder, workdir: Path) -> None:
        self.plan = plan
        self.recorder = recorder
        self.workdir = workdir

    def _start(self, shard: ServiceProcess) -> float:
        started = time.perf_counter()
        shard.start()
        shard.wait_ready(services.READY_TIMEOUT_S)
        return time.perf_counter() - started

    def run(self) -> None:
        plan, memory = self.plan, self.plan.memory
        documents = datasets.load(memory.dataset, 1).documents
        if memory.documents:
            documents = documents[: memory.documents]
        count = len(documents)
        root = self.workdir / "memory"
        data_dir = root / "data"
        shard = ServiceProcess("shard", "shard", ["--data-dir", str(data_dir)], root / "run")
        try:
            self._start(shard)
            empty = rss_bytes(services.pid(shard))
            self._load(shard.address, documents)
            ingested = rss_bytes(services.pid(shard))
            values_ingest = {
                "rss_mib": ingested / 2**20,
                "bytes_per_doc": (ingested - empty) / count,
            }
            self.recorder.add(
                SUITE, memory.dataset, "shard", "after writes", 0, values_ingest, documents=count
            )
            self.recorder.notes["memory empty"] = (
                f"empty shard process RSS: {empty / 2**20:.0f} MiB"
            )
            collection = data_dir / "collections" / services.COLLECTION
            for run in range(plan.runs):
                log.info("memory: run %d of %d", run + 1, plan.runs)
                shard.stop(STOP_TIMEOUT_S)
                self._restarted(shard, "SIGTERM", run, count, empty, memory.dataset)
                tail = documents[: max(1, int(count * memory.tail))]
                self._write(shard.address, tail, version=run + 2)
                shard.kill()
                self._restarted(shard, "SIGKILL + catch-up", run, count, empty, memory.dataset)
            shard.stop(STOP_TIMEOUT_S)
            self.recorder.notes["memory disk"] = (
                f"on disk for {count:,} documents: index checkpoint"
                f" {directory_bytes(collection / 'index') / count:,.0f} bytes/document,"
                f" RocksDB {directory_bytes(collection / 'db') / count:,.0f} bytes/document"
            )
            shutil.rmtree(collection / "index")
            self._restarted(shard, "no checkpoint (rebuild)", 0, count, empty, memory.dataset)
        finally:
            shard.stop(STOP_TIMEOUT_S)

    def _restarted(
        self, shard: ServiceProcess, how: str, run: int, count: int, empty: int, dataset: str
    ) -> None:
        seconds = self._start(shard)
        loaded = rss_bytes(services.pid(shard))
        values = {
            "start_s": seconds,
            "rss_mib": loaded / 2**20,
            "bytes_per_doc": (loaded - empty) / count,
        }
        reported = load_seconds(shard.log_path.read_text())
        if reported is not None:
            values["load_s"] = reported
        self.recorder.add(SUITE, dataset, "shard", how, run, values, documents=count)

    def _load(self, address: str, documents: datasets.Matrix) -> None:
        config = common_pb2.CollectionConfig(
            name=services.COLLECTION,
            dimension=documents.shape[1],
            metric=common_pb2.METRIC_COSINE,
            hnsw_m=self.plan.hnsw_m,
            hnsw_ef_construction=self.plan.hnsw_ef_construction,
            hnsw_ef=self.plan.hnsw_ef,
            partitions=1,
        )
        services.call_all(
            address,
            "/shoal.v1.ShardService/CreateCollection",
            [shard_pb2.ShardCreateCollectionRequest(config=config).SerializeToString()],
        )
        started = time.perf_counter()
        self._write(address, documents, version=1)
        seconds = time.perf_counter() - started
        self.recorder.notes["memory load"] = (
            f"writing {len(documents):,} documents straight to one shard:"
            f" {seconds:.1f} s ({len(documents) / seconds:,.0f} documents/s)"
        )

    def _write(self, address: str, documents: datasets.Matrix, version: int) -> None:
        batch = self.plan.memory.write_batch
        requests = messages.shard_write_requests(services.COLLECTION, documents, batch, version)
        services.call_all(address, messages.SHARD_WRITE, requests)
