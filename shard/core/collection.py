"""One collection on one replica: its document store, its index, and the rules between them.

Writes to a collection are serialized by `_write_lock`: decide last-writer-wins
against the stored records, commit one RocksDB batch (the acknowledgement point),
then apply the change to the index while holding the gate alone. Searches share
the gate (see `gate`). The id <-> label maps change only under the gate held
alone, so a search sees them consistent with the index.
"""

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shard.core.config import CollectionConfig, Metric
from shard.core.documents import Hit, Include, StoredDocument, WriteOp, WriteResult
from shard.core.gate import IndexGate
from shard.core.index_loading import load_index, rebuild
from shard.core.lifecycle import Lifecycle
from shard.core.lww import newest_per_id, supersedes
from shard.storage import checkpoints
from shard.storage.document_store import DocumentStore
from shard.storage.hnsw_index import HnswIndex, Labels, SearchIncomplete
from shard.storage.layout import DB_DIR, INDEX_DIR
from shard.storage.records import NO_LABEL, Record
from shoal.errors import DataLoss, InvalidArgument, NotFound
from shoal.limits import (
    MAX_BATCH_DOCUMENTS,
    MAX_BATCH_QUERIES,
    check_batch_size,
    check_document_id,
    check_ef,
    check_k,
)

log = logging.getLogger(__name__)


@dataclass
class _IndexChange:
    """What one committed batch does to the index."""

    deleted: list[tuple[str, int]] = field(default_factory=list)
    added: list[tuple[str, int, bytes]] = field(default_factory=list)
    updated: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class IndexStats:
    capacity: int  # slots allocated
    slots: int  # slots in use, live or deleted-awaiting-reuse
    live: int
    ef: int  # the index-wide ef now


@dataclass(frozen=True)
class LoadInfo:
    documents: int
    source: str  # "checkpoint" or "rebuild"
    applied: int  # records replayed on top of the checkpoint, or rebuilt


def _labels(values: Sequence[int]) -> Labels:
    return np.array(values, dtype=np.uint64)


class Collection:
    def __init__(
        self,
        config: CollectionConfig,
        path: Path,
        store: DocumentStore,
        index: HnswIndex,
        labels: dict[str, int],
        checkpoint_seq: int,
        pending: int,
    ) -> None:
        self.config = config
        self._store = store
        self._index = index
        self._index_dir = path / INDEX_DIR
        self._labels = labels  # live id -> label
        self._ids = {label: doc_id for doc_id, label in labels.items()}
        self._seq, self._next_label = store.state()
        self._checkpoint_seq = checkpoint_seq
        self._checkpoint_time = time.monotonic()
        self._pending = pending  # writes not yet in a checkpoint
        self._write_lock = threading.Lock()
        self._gate = IndexGate(self._set_ef, config.hnsw_ef)
        self._life = Lifecycle(config.name)
        self._store_closed = False

    @staticmethod
    def initialize(path: Path, config: CollectionConfig) -> None:
        """Lay out a new, empty collection in `path`."""
        DocumentStore.initialize(path / DB_DIR, config.to_json())

    @classmethod
    def open(cls, path: Path, sync_writes: bool = False) -> tuple["Collection", LoadInfo]:
        store = DocumentStore.open(path / DB_DIR, sync_writes)
        try:
            config = CollectionConfig.from_json(store.config())
            loaded = load_index(config, store, path / INDEX_DIR)
        except BaseException:
            store.close()
            raise
        collection = cls(
            config,
            path,
            store,
            loaded.index,
            loaded.labels,
            loaded.checkpoint_seq,
            pending=loaded.applied,
        )
        return collection, LoadInfo(len(loaded.labels), loaded.source, loaded.applied)

    def _set_ef(self, ef: int) -> None:
        self._index.set_ef(ef)

    # -- writes ----------------------------------------------------------------

    def write(self, ops: Sequence[WriteOp]) -> WriteResult:
        """Apply the writes that are newer than what is stored; durable on return."""
        checked = self._checked(ops)
        with self._life.use(), self._write_lock:
            return self._write_locked(newest_per_id(checked))

    def _checked(self, ops: Sequence[WriteOp]) -> list[WriteOp]:
        check_batch_size(len(ops), MAX_BATCH_DOCUMENTS, "writes")
        dimension = self.config.dimension
        checked: list[WriteOp] = []
        live: list[WriteOp] = []
        for op in ops:
            check_document_id(op.id)
            if op.version == 0:
                raise InvalidArgument(f"document {op.id!r}: version 0; versions start at 1")
            if op.deleted:
                op = replace(op, vector=b"", payload=b"") if op.vector or op.payload else op
            else:
                if len(op.vector) != 4 * dimension:
                    raise InvalidArgument(
                        f"document {op.id!r}: dimension {len(op.vector) / 4:g},"
                        f" collection expects {dimension}"
                    )
                live.append(op)
            checked.append(op)
        if live:
            vectors = np.frombuffer(b"".join(op.vector for op in live), dtype="<f4")
            finite = np.isfinite(vectors.reshape(len(live), dimension)).all(axis=1)
            if not finite.all():
                bad = live[int(np.argmin(finite))]
                raise InvalidArgument(f"document {bad.id!r}: vector contains NaN or infinity")
        return checked

    def _write_locked(self, ops: list[WriteOp]) -> WriteResult:
        stored = self._store.get([op.id for op in ops])
        seq, next_label = self._seq, self._next_label
        written: list[tuple[str, Record]] = []
        superseded: list[int] = []
        change = _IndexChange()
        for op, old in zip(ops, stored, strict=True):
            if not supersedes(op, old):
                continue
            seq += 1
            if old is not None:
                superseded.append(old.seq)
            live_label = self._labels.get(op.id)
            if op.deleted:
                record = Record(op.version, True, seq, NO_LABEL, b"", b"")
                if live_label is not None:
                    change.deleted.append((op.id, live_label))
            elif live_label is None:
                record = Record(op.version, False, seq, next_label, op.vector, op.payload)
                change.added.append((op.id, next_label, op.vector))
                next_label += 1
            else:
                record = Record(op.version, False, seq, live_label, op.vector, op.payload)
                change.updated.append((live_label, op.vector))
            written.append((op.id, record))
        if not written:
            return WriteResult(applied=0, deleted=0)
        self._store.commit(written, superseded, seq, next_label)
        self._seq, self._next_label = seq, next_label
        self._pending += len(written)
        try:
            with self._gate.write():
                self._apply(change)
        except Exception:
            # The batch is durable; only the derived index is off. Rebuild it from the store.
            log.exception("collection %r: index update failed; rebuilding", self.config.name)
            self._rebuild_index()
        return WriteResult(applied=len(written), deleted=len(change.deleted))

    def _apply(self, change: _IndexChange) -> None:
        dimension = self.config.dimension
        if change.deleted:
            self._index.delete(_labels([label for _, label in change.deleted]))
            for doc_id, label in change.deleted:
                del self._labels[doc_id]
                del self._ids[label]
        if change.added:
            vectors = np.frombuffer(b"".join(v for _, _, v in change.added), dtype="<f4")
            self._index.add(
                _labels([label for _, label, _ in change.added]), vectors.reshape(-1, dimension)
            )
            for doc_id, label, _ in change.added:
                self._labels[doc_id] = label
                self._ids[label] = doc_id
        if change.updated:
            vectors = np.frombuffer(b"".join(v for _, v in change.updated), dtype="<f4")
            self._index.update(
                _labels([label for label, _ in change.updated]), vectors.reshape(-1, dimension)
            )

    def _rebuild_index(self) -> None:
        """Replace the index by one rebuilt from the store (write lock held)."""
        index, labels = rebuild(self.config, self._store)
        with self._gate.write():
            index.set_ef(self._gate.ef)
            self._index = index
            self._labels = labels
            self._ids = {label: doc_id for doc_id, label in labels.items()}

    # -- reads -----------------------------------------------------------------

    def count(self) -> int:
        with self._life.use():
            return len(self._labels)

    def index_stats(self) -> IndexStats:
        with self._life.use(), self._gate.read(None):
            return IndexStats(
                self._index.capacity, self._index.element_count, len(self._labels), self._gate.ef
            )

    def get(self, ids: Sequence[str], include: Include) -> list[StoredDocument]:
        """Live documents among `ids`, in request order, each once."""
        check_batch_size(len(ids), MAX_BATCH_DOCUMENTS, "ids")
        for doc_id in ids:
            check_document_id(doc_id)
        unique = list(dict.fromkeys(ids))
        with self._life.use():
            records = self._store.get(unique)
        return [
            self._document(doc_id, record, include)
            for doc_id, record in zip(unique, records, strict=True)
            if record is not None and not record.deleted
        ]

    def _document(self, doc_id: str, record: Record, include: Include) -> StoredDocument:
        if include.vector and len(record.vector) != 4 * self.config.dimension:
            raise DataLoss(f"record of document {doc_id!r} has a {len(record.vector)}-byte vector")
        return StoredDocument(
            id=doc_id,
            vector=record.vector if include.vector else b"",
            payload=record.payload if include.payload else b"",
        )

    def search(
        self, queries: npt.NDArray[np.float32], k: int, ef: int, include: Include
    ) -> list[list[Hit]]:
        """The k nearest live documents per query, best first, ties by id.

        `queries` holds n x dimension floats; ef 0 means the collection's default.
        """
        dimension = self.config.dimension
        check_k(k)
        check_ef(ef)
        if queries.size == 0 or queries.size % dimension:
            raise InvalidArgument(
                f"queries hold {queries.size} floats, not a whole number of"
                f" {dimension}-dimensional vectors"
            )
        matrix = queries.reshape(-1, dimension)
        check_batch_size(len(matrix), MAX_BATCH_QUERIES, "queries")
        if not np.isfinite(matrix).all():
            raise InvalidArgument("a query vector contains NaN or infinity")
        with self._life.use():
            # hnswlib searches with max(ef, k) itself, so requests that differ only in k
            # share the gate.
            with self._gate.read(ef or self.config.hnsw_ef):
                neighbours = self._nearest(matrix, k)
            hits = [self._ranked(row) for row in neighbours]
            if include.any:
                hits = self._with_documents(hits, include)
        return hits

    def _nearest(self, queries: npt.NDArray[np.float32], k: int) -> list[list[tuple[str, float]]]:
        """(id, hnswlib distance) per query; runs inside the read gate."""
        live = len(self._labels)
        if live == 0:
            return [[] for _ in range(len(queries))]
        k = min(k, live)
        try:
            labels, distances = self._index.search(queries, k)
        except SearchIncomplete as error:
            # Too few reachable live elements (e.g. after many deletions): answer exactly.
            log.info("collection %r: exact search fallback (%s)", self.config.name, error)
            live_labels = np.fromiter(self._ids, dtype=np.uint64, count=len(self._ids))
            labels, distances = self._index.exact_search(queries, live_labels, k)
        ids = self._ids
        try:
            return [
                [(ids[label], distance) for label, distance in zip(row, dist_row, strict=True)]
                for row, dist_row in zip(labels.tolist(), distances.tolist(), strict=True)
            ]
        except KeyError as error:
            raise DataLoss(f"the index returned label {error} that maps to no document") from None

    def _ranked(self, row: list[tuple[str, float]]) -> list[Hit]:
        metric = self.config.metric
        hits = []
        for doc_id, raw in row:
            if metric is Metric.L2:
                distance = math.sqrt(max(raw, 0.0))  # hnswlib gives the squared distance
                score = -distance
            else:
                distance = raw  # 1 - cosine similarity, or 1 - dot product
                score = 1.0 - raw
            hits.append(Hit(id=doc_id, score=score, distance=distance, document=None))
        hits.sort(key=lambda hit: (hit.distance, hit.id))
        return hits

    def _with_documents(self, hits: list[list[Hit]], include: Include) -> list[list[Hit]]:
        """Hits with their stored fields; a hit deleted since the index answered is dropped."""
        unique = list(dict.fromkeys(hit.id for row in hits for hit in row))
        records = dict(zip(unique, self._store.get(unique), strict=True))
        result = []
        for row in hits:
            filled = []
            for hit in row:
                record = records[hit.id]
                if record is None or record.deleted:
                    continue
                filled.append(replace(hit, document=self._document(hit.id, record, include)))
            result.append(filled)
        return result

    # -- checkpoints and shutdown ----------------------------------------------

    def checkpoint_due(self, now: float, every_writes: int, interval_s: float) -> bool:
        if not self._pending or self._life.closed:
            return False
        return self._pending >= every_writes or now - self._checkpoint_time >= interval_s

    def checkpoint(self) -> bool:
        """Save the index if it has writes no checkpoint holds; True if one was written."""
        with self._life.use(), self._write_lock:
            if not self._pending and self._checkpoint_seq == self._seq:
                return False
            started = time.monotonic()
            path = checkpoints.save(self._index_dir, self._index, self._labels, self._seq)
            checkpoints.prune(self._index_dir, keep=path)
            self._checkpoint_seq = self._seq
            self._checkpoint_time = time.monotonic()
            self._pending = 0
            log.info(
                "collection %r: checkpoint at seq %d (%d documents) in %.2fs",
                self.config.name,
                self._seq,
                len(self._labels),
                self._checkpoint_time - started,
            )
            return True

    def close(self, checkpoint: bool) -> None:
        """Wait for running calls, optionally checkpoint, and close the store."""
        if checkpoint:
            try:
                self.checkpoint()
            except NotFound:
                pass  # closed already
            except Exception:
                log.exception("collection %r: final checkpoint failed", self.config.name)
        self._life.close()
        with self._write_lock:
            if not self._store_closed:
                self._store.close()
                self._store_closed = True
