"""`python -m bench.memory_breakdown`: where a shard's memory per document goes.

Loads N x 384 documents into one shard (ShardService.Write; generated vectors
with a small metadata map, or a Debian set with its texts and metadata),
restarts it (SIGTERM: it checkpoints, then loads the checkpoint), and reports
its resident memory per document next to in-process hnswlib holding the same
vectors (built, saved and loaded again, in a process of its own). Then it
opens the same collection in this process through the shard's own loading code
(`Collection.open`, what the shard runs on start) and breaks the memory down:
the hnswlib index (its allocation, computed), RocksDB (its own memory
properties), and the Python heap by component (tracemalloc, by the file that
allocated). Nothing else runs in this process meanwhile, so the breakdown is
the shard's, without its gRPC server.

    python -m bench.memory_breakdown --dataset generated --documents 100000
    python -m bench.memory_breakdown --dataset debian-20k

Figures are only as quiet as the machine: RSS moves with whatever else allocates.
"""

import argparse
import contextlib
import ctypes
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import datasets, messages, services
from bench.procfs import rss_bytes
from shoal.cli.service_process import ServiceProcess
from shoal.v1 import common_pb2, shard_pb2

log = logging.getLogger(__name__)

COLLECTION = services.COLLECTION
M, EF_CONSTRUCTION, EF = 16, 200, 64
WRITE_BATCH = 500
STOP_TIMEOUT_S = 900.0

#: Python heap components: the first pattern found in an allocation's file names it.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("keyword_index.py", "keyword index"),
    ("payload_columns.py", "payload index"),
    ("payload_index.py", "payload index"),
    ("checkpoints.py", "id <-> label maps"),
    ("index_loading.py", "id <-> label maps"),
    ("collection/state.py", "id <-> label maps"),
    ("hnsw_index.py", "hnswlib wrapper (Python side)"),
    ("document_store.py", "RocksDB reads (Python side)"),
    ("rocksdict", "RocksDB reads (Python side)"),
)

ROCKSDB_PROPERTIES = (
    "rocksdb.cur-size-all-mem-tables",
    "rocksdb.block-cache-usage",
    "rocksdb.estimate-table-readers-mem",
    "rocksdb.block-cache-pinned-usage",
)


def _rss() -> int:
    return rss_bytes(os.getpid())


def _debian(name: str, limit: int) -> tuple[np.ndarray, list[tuple[str, dict[str, object]]]]:
    root = datasets.DATA_ROOT / name
    vectors = np.load(root / "corpus_emb.npy").astype(np.float32, copy=False)
    rows = []
    with (root / "corpus.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            rows.append((row["text"], row["metadata"]))
    if limit:
        vectors, rows = vectors[:limit], rows[:limit]
    return vectors, rows


def _value(value: object) -> common_pb2.Value:
    if isinstance(value, bool):
        return common_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return common_pb2.Value(int_value=value)
    if isinstance(value, float):
        return common_pb2.Value(float_value=value)
    return common_pb2.Value(string_value=str(value))


def _write_requests(
    vectors: np.ndarray, payloads: Sequence[tuple[str, dict[str, object]]] | None
) -> list[bytes]:
    if payloads is None:
        return messages.shard_write_requests(COLLECTION, vectors, WRITE_BATCH, 1)
    requests = []
    for start in range(0, len(vectors), WRITE_BATCH):
        request = shard_pb2.ShardWriteRequest(collection=COLLECTION)
        for row in range(start, min(start + WRITE_BATCH, len(vectors))):
            text, metadata = payloads[row]
            write = request.writes.add(
                id=str(row), version=1, vector_f32=vectors[row].astype("<f4").tobytes(), text=text
            )
            for key, value in metadata.items():
                write.metadata[key].CopyFrom(_value(value))
        requests.append(request.SerializeToString())
    return requests


def _create(address: str, dimension: int) -> None:
    config = common_pb2.CollectionConfig(
        name=COLLECTION,
        dimension=dimension,
        metric=common_pb2.METRIC_COSINE,
        hnsw_m=M,
        hnsw_ef_construction=EF_CONSTRUCTION,
        hnsw_ef=EF,
        partitions=1,
    )
    services.call_all(
        address,
        "/shoal.v1.ShardService/CreateCollection",
        [shard_pb2.ShardCreateCollectionRequest(config=config).SerializeToString()],
    )


def shard_rss(
    workdir: Path, vectors: np.ndarray, payloads: Sequence[tuple[str, dict[str, object]]] | None,
    shard_args: Sequence[str], restarts: int = 3,
) -> dict[str, float]:  # fmt: skip
    """The shard's RSS empty, after the writes, and after a restart (bytes; the median
    of `restarts`, each a SIGTERM and a start, with their least and most)."""
    data_dir = workdir / "data"
    shard = ServiceProcess("shard", "shard", ["--data-dir", str(data_dir), *shard_args],
                           workdir / "run")  # fmt: skip
    try:
        shard.start()
        shard.wait_ready(services.READY_TIMEOUT_S)
        empty = rss_bytes(services.pid(shard))
        _create(shard.address, vectors.shape[1])
        started = time.perf_counter()
        services.call_all(shard.address, messages.SHARD_WRITE, _write_requests(vectors, payloads))
        write_s = time.perf_counter() - started
        written = rss_bytes(services.pid(shard))
        restarted = []
        for _ in range(restarts):
            shard.stop(STOP_TIMEOUT_S)
            shard.start()
            shard.wait_ready(services.READY_TIMEOUT_S)
            restarted.append(rss_bytes(services.pid(shard)))
    finally:
        shard.stop(STOP_TIMEOUT_S)
    return {
        "empty": empty,
        "written": written,
        "restarted_first": restarted[0],  # RocksDB replays its log into memtables once
        "restarted": float(np.median(restarted)),
        "restarted_min": min(restarted),
        "restarted_max": max(restarted),
        "write_s": write_s,
    }


def breakdown(collection_dir: Path, count: int, args: Sequence[str]) -> dict[str, float]:
    """Open the collection here as the shard does on start; bytes per component."""
    from shard.core.collection import Collection
    from shard.proto_records import metadata_from_payload, text_from_payload
    from shard.settings import parse_args
    from shard.size_metrics import index_bytes
    from shard.storage.document_store import MIB, StoreMemory

    settings = parse_args(["--data-dir", str(collection_dir), *args])
    memory = StoreMemory(
        settings.rocksdb_block_cache_mib * MIB,
        settings.rocksdb_write_buffer_mib * MIB,
        settings.rocksdb_write_buffers,
    )
    gc.collect()
    tracemalloc.start(1)
    collection, _ = Collection.open(
        collection_dir,
        read_metadata=metadata_from_payload,
        read_text=text_from_payload,
        memory=memory,
    )
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    heap: Counter[str] = Counter()
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        component = next(
            (label for pattern, label in COMPONENTS if pattern in name),
            f"other ({Path(name).name})",
        )
        heap[f"python: {component}"] += stat.size
    state = collection._state
    stats = collection.index_stats()
    result: dict[str, float] = {
        "hnswlib index (vectors, level-0 links, labels of the live elements)": index_bytes(
            collection, stats.live
        ),
    }
    db = state.store._db
    for prop in ROCKSDB_PROPERTIES:
        result[prop] = float(db.property_int_value(prop) or 0)
    result.update(
        (name, size) for name, size in heap.most_common() if size >= count or "other" not in name
    )
    collection.close(checkpoint=False)
    return {key: value / count for key, value in result.items()}


def hnswlib_child(vector_file: Path) -> None:
    """In a fresh process: hnswlib built, saved, and loaded again; prints RSS added (bytes)."""
    import hnswlib

    vectors = np.load(vector_file)
    gc.collect()
    base = _rss()
    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), M=M, ef_construction=EF_CONSTRUCTION)
    index.add_items(vectors, np.arange(len(vectors)))
    built = _rss() - base
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "index.bin")
        index.save_index(path)
        del index
        gc.collect()
        _trim()
        base = _rss()
        loaded = hnswlib.Index(space="cosine", dim=vectors.shape[1])
        loaded.load_index(path)
        print(json.dumps({"built": built, "loaded": _rss() - base}))


def _trim() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def inprocess_hnswlib(vectors: np.ndarray, workdir: Path) -> dict[str, float]:
    path = workdir / "vectors.npy"
    np.save(path, vectors)
    output = subprocess.run(
        [sys.executable, "-m", "bench.memory_breakdown", "--hnswlib-child", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return {key: float(value) for key, value in json.loads(output.splitlines()[-1]).items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory_breakdown",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", default="generated",
                        help="generated, debian-dev or debian-20k")  # fmt: skip
    parser.add_argument("--documents", type=int, default=10_000,
                        help="generated: how many; Debian: the first ones (0: all)")  # fmt: skip
    parser.add_argument("--shard-args", default="",
                        help="extra shard flags, e.g. '--rocksdb-block-cache-mib 64'")  # fmt: skip
    parser.add_argument("--restarts", type=int, default=3,
                        help="restarts measured (the median is reported)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--hnswlib-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hnswlib_child is not None:
        hnswlib_child(args.hnswlib_child)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    shard_args = args.shard_args.split()
    if args.dataset == "generated":
        vectors, _ = datasets.generate(args.documents, 1)
        payloads = None
    else:
        vectors, payloads = _debian(args.dataset, args.documents)
    count = len(vectors)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        shard = shard_rss(workdir, vectors, payloads, shard_args, args.restarts)
        hnsw = inprocess_hnswlib(vectors, workdir)
        parts = breakdown(workdir / "data" / "collections" / COLLECTION, count, shard_args)
    per_doc_shard = (shard["restarted"] - shard["empty"]) / count
    per_doc_hnsw = hnsw["loaded"] / count
    per_doc_written = (shard["written"] - shard["empty"]) / count
    command = " ".join(["python -m bench.memory_breakdown", *(argv or sys.argv[1:])])
    lines = [
        f"# Shard memory per document: {args.dataset}, {count:,} x {vectors.shape[1]},"
        f" M {M}, ef_construction {EF_CONSTRUCTION}",
        "",
        f"command: `{command}`",
        "",
        "| | bytes/document |",
        "|---|---:|",
        f"| shard RSS added after the writes | {per_doc_written:,.0f} |",
        f"| shard RSS added after the first restart (SIGTERM, checkpoint loaded) |"
        f" {(shard['restarted_first'] - shard['empty']) / count:,.0f} |",
        f"| shard RSS added after a restart (SIGTERM, checkpoint loaded; median of"
        f" {args.restarts}: {(shard['restarted_min'] - shard['empty']) / count:,.0f} to"
        f" {(shard['restarted_max'] - shard['empty']) / count:,.0f}) | {per_doc_shard:,.0f} |",
        f"| in-process hnswlib, built | {hnsw['built'] / count:,.0f} |",
        f"| in-process hnswlib, saved and loaded | {per_doc_hnsw:,.0f} |",
        f"| shard / in-process hnswlib (loaded) | {per_doc_shard / per_doc_hnsw:.2f}x |",
        "",
        f"empty shard {shard['empty'] / 2**20:,.0f} MiB; writes took {shard['write_s']:.1f} s",
        "",
        "Breakdown (the collection opened in this process as the shard opens it; the Python"
        " heap by tracemalloc, by the file that allocated; pinned usage is part of the"
        " cache's usage):",
        "",
        "| component | bytes/document |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {value:,.0f} |" for name, value in parts.items()]
    counted = sum(
        value for name, value in parts.items() if name != "rocksdb.block-cache-pinned-usage"
    )
    lines += [
        f"| **sum of the above** | {counted:,.0f} |",
        f"| the rest of the shard's RSS (allocator slack, upper graph levels, hnswlib's"
        f" label map, gRPC) | {per_doc_shard - counted:,.0f} |",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
