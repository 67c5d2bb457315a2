"""Restarts of a chunking collection: its index comes back from the checkpoint (chunk
counts included) plus the writes after it, like any other collection's, and a
checkpoint that cannot say how many chunks each document holds is not used."""

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shard.core.collection import Collection
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import Include, WriteOp
from shard.storage import checkpoints
from shard.storage.layout import INDEX_DIR, DataDir
from shoal.chunking import ChunkingSettings

DIM = 8
K = 5

Vectors = npt.NDArray[np.float32]


def new_chunking_collection(root: Path) -> Path:
    registry = Collections(DataDir(root))
    registry.load()
    chunking = ChunkingSettings(enabled=True, chunk_tokens=16, overlap_tokens=2)
    registry.create(CollectionConfig("c", DIM, chunking=chunking))
    registry.close()
    return root / "collections" / "c"


def unit_rows(n: int, seed: int) -> Vectors:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    normed: Vectors = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normed


def chunked(doc_id: str, version: int, rows: Vectors) -> WriteOp:
    return WriteOp(doc_id, version, False, rows.astype("<f4").tobytes(), doc_id.encode())


def tombstone(doc_id: str, version: int) -> WriteOp:
    return WriteOp(doc_id, version, True, b"", b"")


def expected(live: dict[str, Vectors], queries: Vectors) -> list[list[tuple[str, int]]]:
    """Per query, the K nearest documents (cosine, each by its best chunk) and that chunk."""
    answers = []
    for query in queries:
        best = []
        for doc_id, rows in live.items():
            distances = 1.0 - rows @ query
            chunk = int(distances.argmin())
            best.append((float(distances[chunk]), doc_id, chunk))
        best.sort()
        answers.append([(doc_id, chunk) for _, doc_id, chunk in best[:K]])
    return answers


def answers(collection: Collection, queries: Vectors) -> list[list[tuple[str, int]]]:
    found = collection.search(queries, K, 200, Include())
    return [list(zip(hits.ids, hits.chunks or [0] * len(hits), strict=True)) for hits in found]


def write_history(collection: Collection, live: dict[str, Vectors], seed: int) -> None:
    """Documents of 1 to 6 chunks each."""
    rng = np.random.default_rng(seed)
    ops = []
    for i in range(40):
        rows = unit_rows(int(rng.integers(1, 7)), seed * 1000 + i)
        live[f"d{i}"] = rows
        ops.append(chunked(f"d{i}", 1, rows))
    collection.write(ops)


def test_a_chunking_collection_loads_its_checkpoint(tmp_path: Path) -> None:
    path = new_chunking_collection(tmp_path)
    queries = unit_rows(20, 99)
    collection, info = Collection.open(path)
    live: dict[str, Vectors] = {}
    write_history(collection, live, 1)
    before = answers(collection, queries)
    assert before == expected(live, queries)
    chunks = collection.chunk_count()
    collection.close(checkpoint=True)

    collection, info = Collection.open(path)
    try:
        assert (info.source, info.applied, info.documents) == ("checkpoint", 0, len(live))
        assert collection.chunk_count() == chunks == sum(len(rows) for rows in live.values())
        assert answers(collection, queries) == before
    finally:
        collection.close(checkpoint=False)


def test_a_checkpoint_of_chunked_documents_is_caught_up_with_later_writes(
    tmp_path: Path,
) -> None:
    path = new_chunking_collection(tmp_path)
    queries = unit_rows(30, 98)
    collection, _ = Collection.open(path)
    live: dict[str, Vectors] = {}
    write_history(collection, live, 2)
    assert collection.checkpoint()
    # After the checkpoint: chunked documents replaced by shorter, longer and single
    # ones, a single one by a chunked one, deletes, and new documents.
    changes = {
        "d0": unit_rows(1, 500),
        "d1": unit_rows(7, 501),
        "d2": unit_rows(2, 502),
        "d3": unit_rows(3, 503),
        "new0": unit_rows(4, 504),
        "new1": unit_rows(1, 505),
    }
    collection.write([chunked(doc_id, 2, rows) for doc_id, rows in changes.items()])
    collection.write([tombstone("d4", 2), tombstone("d5", 2)])
    live.update(changes)
    del live["d4"], live["d5"]
    want = expected(live, queries)
    assert answers(collection, queries) == want
    collection.close(checkpoint=False)  # as SIGKILL would: the checkpoint is stale

    collection, info = Collection.open(path)
    try:
        assert (info.source, info.applied, info.documents) == ("checkpoint", 8, len(live))
        assert collection.chunk_count() == sum(len(rows) for rows in live.values())
        assert answers(collection, queries) == want
        # Labels are not reused after the restart: a new chunked document and a
        # replacement land on fresh labels, and every answer stays right.
        more = {"d6": unit_rows(5, 600), "late": unit_rows(3, 601)}
        collection.write([chunked(doc_id, 3, rows) for doc_id, rows in more.items()])
        live.update(more)
        assert answers(collection, queries) == expected(live, queries)
    finally:
        collection.close(checkpoint=False)


def test_a_checkpoint_without_chunk_counts_is_rebuilt_from_the_store(tmp_path: Path) -> None:
    """A format-1 checkpoint (written before checkpoints held chunk counts) would map
    every chunk after a document's first to no document: the store wins."""
    path = new_chunking_collection(tmp_path)
    queries = unit_rows(10, 97)
    collection, _ = Collection.open(path)
    live: dict[str, Vectors] = {}
    write_history(collection, live, 3)
    collection.close(checkpoint=True)
    [saved] = (path / INDEX_DIR).iterdir()
    meta = json.loads((saved / checkpoints.META_FILE).read_text())
    meta["format"] = 1
    del meta["files"][checkpoints.CHUNKS_FILE], meta["chunked"]
    (saved / checkpoints.CHUNKS_FILE).unlink()
    (saved / checkpoints.META_FILE).write_text(json.dumps(meta))

    collection, info = Collection.open(path)
    try:
        assert (info.source, info.documents) == ("rebuild", len(live))
        assert answers(collection, queries) == expected(live, queries)
    finally:
        collection.close(checkpoint=False)


def test_a_checkpoint_with_corrupt_chunk_counts_is_skipped(tmp_path: Path) -> None:
    path = new_chunking_collection(tmp_path)
    queries = unit_rows(10, 96)
    collection, _ = Collection.open(path)
    live: dict[str, Vectors] = {}
    write_history(collection, live, 4)
    collection.close(checkpoint=True)
    [saved] = (path / INDEX_DIR).iterdir()
    chunks_file = saved / checkpoints.CHUNKS_FILE
    data = bytearray(chunks_file.read_bytes())
    data[-1] ^= 0xFF
    chunks_file.write_bytes(bytes(data))

    collection, info = Collection.open(path)
    try:
        assert info.source == "rebuild"
        assert answers(collection, queries) == expected(live, queries)
    finally:
        collection.close(checkpoint=False)
