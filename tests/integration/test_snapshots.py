"""Snapshots on real processes: a cut taken under a write load and restored into a
cluster of another shape holds every write acknowledged before the cut and none
sent after it, bit for bit; a damaged snapshot is refused before anything is
created.

Writes carry no version in their reply, so the test decides by the clock the
coordinator and the test share: a write acknowledged at or before the cut's
millisecond was versioned at or before the cut, a write sent after it was
versioned after it, and a write in flight across it (or one that failed) may be
either way.
"""

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.core.clock import MS_SHIFT
from shoal import Client
from shoal.errors import DataLoss, NotFound
from shoal.runtime.wait import wait_for
from shoal.sdk.results import Document
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
WORKERS = 2
IDS_PER_WORKER = 60  # existing documents each worker updates or deletes
NEW_PER_WORKER = 30  # documents each worker creates
MAX_OPS_PER_WORKER = 600
MAX_LOAD_SECONDS = 60.0
OPS_BEFORE_SNAPSHOT = 40
OPS_AFTER_SNAPSHOT = 40
QUERIES = 1000
BASE = "base"  # the state of a dataset document nobody wrote to
ABSENT = "absent"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Op:
    number: int
    doc_id: str
    document: dict[str, Any] | None  # None: a delete
    sent_ms: int
    acked_ms: int | None = None  # None: failed


class Worker(threading.Thread):
    """Upserts, updates and deletes its own ids at QUORUM, one at a time, bounded in
    count and time, recording when each was sent and acknowledged."""

    def __init__(self, address: str, index: int, data: datasets.Dataset) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.index = index
        self.data = data
        self.ops: list[Op] = []
        self.stop_event = threading.Event()

    @property
    def ids(self) -> list[str]:
        start = self.index * IDS_PER_WORKER
        existing = self.data.ids[start : start + IDS_PER_WORKER]
        new = [f"new-{self.index}-{n}" for n in range(NEW_PER_WORKER)]
        return existing + new

    def document(self, number: int, doc_id: str) -> dict[str, Any]:
        row = (number * 7 + self.index) % len(self.data.documents)
        return {
            "id": doc_id,
            "vector": self.data.document_vectors[row],
            "text": f"write {self.index}-{number}: {self.data.documents[row]['text'][:80]}",
            "metadata": {"w": f"{self.index}-{number}", "n": number, "f": number / 7},
        }

    def run(self) -> None:
        ids = self.ids
        rng = np.random.default_rng(self.index)
        deadline = time.monotonic() + MAX_LOAD_SECONDS
        with Client(self.address, timeout=10) as client:
            for number in range(MAX_OPS_PER_WORKER):
                if self.stop_event.is_set() or time.monotonic() > deadline:
                    return
                doc_id = ids[int(rng.integers(len(ids)))]
                delete = rng.random() < 0.25
                op = Op(number, doc_id, None if delete else self.document(number, doc_id), now_ms())
                try:
                    if delete:
                        client.delete(COLLECTION, [doc_id], consistency="quorum")
                    else:
                        client.upsert(COLLECTION, [op.document or {}], consistency="quorum")
                    op.acked_ms = now_ms()
                except Exception:  # refused or failed: unacknowledged, may be either way
                    pass
                self.ops.append(op)


def state_of(doc: Document | None) -> str:
    if doc is None:
        return ABSENT
    return str(doc.metadata.get("w", BASE))


def allowed_states(ops: list[Op], initial: str, cut_ms: int) -> set[str]:
    """The states an id may have at the cut: after the last write surely at or before
    it, or after any later one that may have been (in flight across it, or failed)."""
    state = initial
    maybe: set[str] = set()
    for op in ops:
        after = ABSENT if op.document is None else op.document["metadata"]["w"]
        if op.acked_ms is not None and op.acked_ms <= cut_ms:
            state, maybe = after, set()
        elif op.sent_ms <= cut_ms:
            maybe.add(after)
    return {state} | maybe


def assert_same_document(restored: Document, expected: dict[str, Any]) -> None:
    vector = np.asarray(restored.vector, dtype=np.float32)
    assert vector.tobytes() == np.asarray(expected["vector"], dtype=np.float32).tobytes()
    assert restored.text == expected["text"]
    assert dict(restored.metadata) == dict(expected["metadata"])


def get_all(client: Client, collection: str, ids: list[str]) -> dict[str, Document]:
    found: dict[str, Document] = {}
    for start in range(0, len(ids), 200):
        for doc in client.get(collection, ids[start : start + 200], consistency="all"):
            found[doc.id] = doc
    return found


Ranking = list[tuple[str, float]]
SCORE_TOLERANCE = 1e-5  # float32 sums in another order
MIN_RECALL = 0.99  # of the exact top-10; the source and the restore each reach about 1.0


def top10(client: Client, collection: str, queries: np.ndarray) -> list[Ranking]:
    results = client.search_batch(collection, queries, k=10, ef=500, include=[])
    return [[(hit.id, hit.score) for hit in result.hits] for result in results]


def assert_same_documents(before: dict[str, Document], after: dict[str, Document]) -> None:
    assert sorted(before) == sorted(after)
    for doc_id, doc in before.items():
        assert_same_document(
            after[doc_id], {"vector": doc.vector, "text": doc.text, "metadata": doc.metadata}
        )


def recall_of_exact(
    rankings: list[Ranking], documents: dict[str, Document], queries: np.ndarray
) -> float:
    """The share of the exact top-10 the rankings find, where every hit must score what
    exact search gives its stored vector. A restore into another shape builds other
    HNSW graphs, and HNSW is approximate, so rankings are held to exact search (as
    recall is everywhere) rather than to each other. A hit tied with the exact tenth
    counts, so vectors the load writes twice may swap."""
    ids = sorted(documents)
    column = {doc_id: n for n, doc_id in enumerate(ids)}
    vectors = np.stack([np.asarray(documents[i].vector, dtype=np.float32) for i in ids])
    exact = queries @ vectors.T  # cosine: both sides are unit length
    found = 0
    for query, ranking in enumerate(rankings):
        scores = exact[query]
        tenth = np.partition(scores, -10)[-10]
        for doc_id, score in ranking:
            assert abs(score - scores[column[doc_id]]) <= SCORE_TOLERANCE, (query, doc_id)
            found += score >= tenth - SCORE_TOLERANCE
    return found / (10 * len(rankings))


def assert_each_finds_itself(client: Client, collection: str, documents: list[Document]) -> None:
    """Every document is in the index: its own vector finds it among the top-10."""
    vectors = np.stack([np.asarray(doc.vector, dtype=np.float32) for doc in documents])
    results = client.search_batch(collection, vectors, k=10, ef=500, include=[])
    for doc, result in zip(documents, results, strict=True):
        assert doc.id in {hit.id for hit in result.hits}, doc.id


def test_snapshot_under_load_restores_into_another_shape(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    data = datasets.load()
    location = tmp_path / "snapshots"
    args = ("--snapshot-location", str(location))
    source = start_cluster(groups=2, replicas=2, model="hash-8", coordinator_args=args)
    with Client(source.address, timeout=120) as client:
        client.create_collection(COLLECTION, dimension=384, partitions=16)
        for start in range(0, len(data.documents), 500):
            client.upsert(COLLECTION, datasets.with_vectors(data, start, start + 500), "all")

        workers = [Worker(source.address, i, data) for i in range(WORKERS)]
        for worker in workers:
            worker.start()
        try:
            wait_for(
                lambda: all(len(w.ops) >= OPS_BEFORE_SNAPSHOT for w in workers),
                60,
                "writes before the snapshot",
            )
            phases: list[str] = []
            loaded = client.create_snapshot(
                "loaded", [COLLECTION], progress=lambda p: phases.append(p.phase)
            )
            done_at = [len(w.ops) for w in workers]
            wait_for(
                lambda: all(
                    len(w.ops) >= d + OPS_AFTER_SNAPSHOT or not w.is_alive()
                    for w, d in zip(workers, done_at, strict=True)
                ),
                60,
                "writes after the snapshot",
            )
        finally:
            for worker in workers:
                worker.stop_event.set()
            for worker in workers:
                worker.join(30)
        assert "copying" in phases and phases[-1] == "done"
        cut_ms = loaded.cut >> MS_SHIFT
        ops = [op for w in workers for op in w.ops]
        assert any(op.sent_ms > cut_ms and op.acked_ms for op in ops), "no write after the cut"
        assert any(op.acked_ms and op.acked_ms <= cut_ms for op in ops), "none before the cut"

        # Quiet now: a second snapshot, and what the source answers, to compare with.
        quiet = client.create_snapshot("quiet", [COLLECTION])
        source_count = client.count(COLLECTION)
        queries = data.query_vectors[:QUERIES]
        source_top10 = top10(client, COLLECTION, queries)
        every_id = sorted(set(data.ids) | {i for w in workers for i in w.ids})
        source_documents = get_all(client, COLLECTION, every_id)
    assert quiet.collections[0].documents == source_count
    source.stop()  # every replica of every group is gone

    target = start_cluster(groups=3, replicas=2, model="hash-8", coordinator_args=args)
    with Client(target.address, timeout=120) as client:
        names = {s.name for s in client.list_snapshots()}
        assert {"loaded", "quiet"} <= names
        client.restore_snapshot("loaded", [COLLECTION], new_name="loaded")
        client.restore_snapshot("quiet", [COLLECTION], new_name="quiet")

        # Under load: every write surely before the cut, none surely after it.
        by_id: dict[str, list[Op]] = {}
        initial: dict[str, str] = {}
        documents: dict[tuple[str, str], dict[str, Any]] = {}
        for worker in workers:
            for doc_id in worker.ids:
                initial[doc_id] = ABSENT if doc_id.startswith("new-") else BASE
            for op in worker.ops:
                by_id.setdefault(op.doc_id, []).append(op)
                if op.document is not None:
                    documents[(op.doc_id, op.document["metadata"]["w"])] = op.document
        base = {doc["id"]: doc for doc in datasets.with_vectors(data)}
        for doc_id, doc in base.items():
            documents[(doc_id, BASE)] = doc
        restored = get_all(client, "loaded", every_id)
        for doc_id in every_id:
            allowed = allowed_states(by_id.get(doc_id, []), initial.get(doc_id, BASE), cut_ms)
            state = state_of(restored.get(doc_id))
            assert state in allowed, f"{doc_id}: restored {state}, allowed {sorted(allowed)}"
            if state != ABSENT:
                assert_same_document(restored[doc_id], documents[(doc_id, state)])
        assert client.count("loaded") == len(restored) == loaded.collections[0].documents
        report = client.verify_replicas("loaded")
        assert report.differing == 0 and not any(g.unreachable for g in report.groups)

        # Quiet: the same documents bit for bit, replicas in agreement, each document
        # in the index and top-10s as near exact search as the source's.
        quiet_documents = get_all(client, "quiet", every_id)
        assert_same_documents(source_documents, quiet_documents)
        assert client.count("quiet") == source_count == len(quiet_documents)
        report = client.verify_replicas("quiet")
        assert report.differing == 0 and not any(g.unreachable for g in report.groups)
        assert_each_finds_itself(client, "quiet", list(quiet_documents.values()))
        recalls = [
            recall_of_exact(rankings, source_documents, queries)
            for rankings in (source_top10, top10(client, "quiet", queries))
        ]
        print(f"recall@10 of exact search: source {recalls[0]:.4f}, restored {recalls[1]:.4f}")
        assert min(recalls) >= MIN_RECALL, recalls

        # One damaged file: refused before anything is created.
        data_files = sorted((location / "loaded" / "data").rglob("*.rec"))
        damaged = data_files[len(data_files) // 2]
        raw = bytearray(damaged.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        damaged.write_bytes(bytes(raw))
        with pytest.raises(DataLoss, match=re.escape(damaged.name)):
            client.restore_snapshot("loaded", [COLLECTION], new_name="broken")
        with pytest.raises(NotFound):
            client.get_collection("broken")

        assert client.delete_snapshot("loaded")
        assert "loaded" not in {s.name for s in client.list_snapshots()}
