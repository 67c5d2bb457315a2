"""The reference: hnswlib in this process, built and searched like the shard does.

Same space, M, ef_construction and ef as the collection. Batches get `threads`
threads, hnswlib's default (every core), which is what knn_query gets inside
the shard too; one-at-a-time queries get one thread, as a caller looping in
Python would.
"""

import threading
import time
from dataclasses import dataclass

import hnswlib
import numpy as np
import numpy.typing as npt

from bench.recall import recall_at_k

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Measured:
    queries: int
    seconds: float
    rows: list[list[int]]
    latencies: list[float]
    cpu_seconds: float  # this process, every thread: the engine's own CPU

    @property
    def qps(self) -> float:
        return self.queries / self.seconds

    def recall(self, truth: npt.NDArray[np.int64], k: int) -> float:
        return recall_at_k(self.rows, truth[: len(self.rows)], k)


class InProcessIndex:
    def __init__(self, documents: Matrix, m: int, ef_construction: int, threads: int) -> None:
        self.threads = threads
        self.index = hnswlib.Index(space="cosine", dim=documents.shape[1])
        self.index.init_index(max_elements=len(documents), M=m, ef_construction=ef_construction)
        started = time.perf_counter()
        self.index.add_items(documents, np.arange(len(documents)), num_threads=threads)
        self.build_seconds = time.perf_counter() - started

    def batches(self, queries: Matrix, k: int, ef: int, batch: int) -> Measured:
        """knn_query over `batch` queries at a time, on `threads` threads."""
        self.index.set_ef(ef)
        rows: list[list[int]] = []
        latencies = []
        cpu = time.process_time()
        started = time.perf_counter()
        for start in range(0, len(queries), batch):
            sent = time.perf_counter()
            labels, _ = self.index.knn_query(
                queries[start : start + batch], k=k, num_threads=self.threads
            )
            latencies.append(time.perf_counter() - sent)
            rows.extend(labels.tolist())
        seconds = time.perf_counter() - started
        return Measured(len(queries), seconds, rows, latencies, time.process_time() - cpu)

    def one_at_a_time(self, queries: Matrix, k: int, ef: int) -> Measured:
        """One knn_query call per query, on one thread."""
        self.index.set_ef(ef)
        rows: list[list[int]] = []
        latencies = []
        clock = time.perf_counter
        cpu = time.process_time()
        started = clock()
        for row in range(len(queries)):
            sent = clock()
            labels, _ = self.index.knn_query(queries[row : row + 1], k=k, num_threads=1)
            latencies.append(clock() - sent)
            rows.append(labels[0].tolist())
        seconds = clock() - started
        return Measured(len(queries), seconds, rows, latencies, time.process_time() - cpu)

    def threads_one_at_a_time(
        self, queries: Matrix, k: int, ef: int, threads: int | None = None
    ) -> Measured:
        """`threads` (default: the index's) Python threads, each making one knn_query
        call per query."""
        self.index.set_ef(ef)
        rows: list[list[int]] = [[] for _ in range(len(queries))]
        count = threads or self.threads

        def work(first: int) -> None:
            for row in range(first, len(queries), count):
                labels, _ = self.index.knn_query(queries[row : row + 1], k=k, num_threads=1)
                rows[row] = labels[0].tolist()

        workers = [threading.Thread(target=work, args=(i,)) for i in range(count)]
        cpu = time.process_time()
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - started
        return Measured(len(queries), seconds, rows, [], time.process_time() - cpu)
