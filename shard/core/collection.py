"""One collection on one replica: its document store, its index, and the rules between them.

Writes to a collection are serialized by `_write_lock`: decide last-writer-wins
against the stored records, commit one RocksDB batch (the acknowledgement point),
then apply the change to the index and the payload (metadata) index while
holding the gate alone. Searches share the gate (see `gate`). The id <-> label
maps change only under the gate held alone, so a search sees them consistent
with both indexes.

Filtered reads evaluate the filter on the payload index under the gate (see
`payload_index` and `search_plan`). Records the store holds that are newer
than the payload index (`PayloadIndex.seq`: committed, not applied yet) are
checked against the filter from their own metadata and text.

The keyword index (`keyword_index`, `keyword_search`) changes together with the
payload index, under the gate held alone; a batch's texts are analyzed before,
under the write lock only.
"""

import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from shard.core.config import CollectionConfig
from shard.core.digests import Entry, digest_entries, versions_in
from shard.core.documents import (
    Include,
    MetadataReader,
    QueryHits,
    StoredDocument,
    TextReader,
    WriteOp,
    WriteResult,
    no_metadata,
    no_text,
)
from shard.core.filters import Filter, matches, validate
from shard.core.gate import IndexGate, WouldBlock
from shard.core.index_loading import load_index, load_payloads, rebuild
from shard.core.keyword_index import Analyzed, KeywordIndex, KeywordQuery
from shard.core.keyword_search import keyword_stats, ranked_keyword_hits
from shard.core.lifecycle import Lifecycle
from shard.core.lww import newest_per_id, supersedes
from shard.core.payload_columns import Mask
from shard.core.payload_index import PayloadIndex
from shard.core.search_plan import SearchPlan, Strategy, plan
from shard.storage import checkpoints, records
from shard.storage.document_store import DocumentStore
from shard.storage.hnsw_index import (
    HnswIndex,
    Labels,
    SearchIncomplete,
    exact_distances,
    nearest_k,
)
from shard.storage.layout import DB_DIR, INDEX_DIR
from shard.storage.records import NO_LABEL, Record
from shoal.distance_metric import Metric
from shoal.errors import DataLoss, InvalidArgument, NotFound
from shoal.keyword import TermStatistics
from shoal.limits import (
    MAX_BATCH_DOCUMENTS,
    MAX_BATCH_QUERIES,
    check_batch_size,
    check_document_id,
    check_ef,
    check_k,
)
from shoal.replication import PartitionDigest, VersionState

log = logging.getLogger(__name__)


#: Scroll page size when the request gives none, and the most one page holds.
DEFAULT_SCROLL_LIMIT = 100
MAX_SCROLL_LIMIT = 1000
#: A filtered scroll lists the matching ids from the payload index (instead of
#: scanning the store for them) when at most 1/SCROLL_INDEX_SHARE of the documents match.
SCROLL_INDEX_SHARE = 16
#: Candidates read from the store per step of an exact search.
EXACT_READ_CHUNK = 4096

Metadata = Mapping[str, object]


@dataclass(frozen=True)
class _Neighbours:
    """Each query's nearest documents, in no particular order: ids, hnswlib distances."""

    names: list[list[str]]
    distances: npt.NDArray[np.float32]  # n x width, in hnswlib's convention

    @staticmethod
    def none(queries: int) -> "_Neighbours":
        return _Neighbours([[] for _ in range(queries)], np.empty((queries, 0), np.float32))


@dataclass
class _IndexChange:
    """What one committed batch does to the indexes."""

    deleted: list[tuple[str, int]] = field(default_factory=list)
    added: list[tuple[str, int, bytes]] = field(default_factory=list)
    updated: list[tuple[int, bytes]] = field(default_factory=list)
    metadata: list[tuple[int, Metadata]] = field(default_factory=list)  # added and updated
    # Added and updated: their labels and texts (None: none), then the texts analyzed.
    text_labels: list[int] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    analyzed: Analyzed | None = None
    seq: int = 0  # the batch's last write sequence


@dataclass(frozen=True)
class _FilterView:
    """A filter evaluated under the gate: the mask is valid while the generation holds."""

    plan: SearchPlan
    mask: Mask
    generation: int
    seq: int  # the store sequence the payload index reflected


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
        payload: PayloadIndex,
        read_metadata: MetadataReader = no_metadata,
        strategy: Strategy = Strategy.AUTO,
        keyword: KeywordIndex | None = None,
        read_text: TextReader = no_text,
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
        self._payload = payload
        self._read_metadata = read_metadata
        self._strategy = strategy
        self._keyword = keyword
        self._read_text = read_text

    def adopt(self, incarnation: int) -> None:
        """Take the catalog's incarnation for a collection made before the catalog
        existed (incarnation 0); the data stays."""
        with self._life.use(), self._write_lock:
            config = replace(self.config, incarnation=incarnation)
            self._store.set_config(config.to_json())
            self.config = config

    @staticmethod
    def initialize(path: Path, config: CollectionConfig) -> None:
        """Lay out a new, empty collection in `path`."""
        DocumentStore.initialize(path / DB_DIR, config.to_json())

    @classmethod
    def open(
        cls,
        path: Path,
        sync_writes: bool = False,
        read_metadata: MetadataReader = no_metadata,
        strategy: Strategy = Strategy.AUTO,
        read_text: TextReader = no_text,
    ) -> tuple["Collection", LoadInfo]:
        """Open the store and bring back the index (checkpoint or rebuild), the payload
        index and the keyword index.

        `read_metadata` and `read_text` decode a stored payload (the api layer's format).
        """
        store = DocumentStore.open(path / DB_DIR, sync_writes)
        try:
            config = CollectionConfig.from_json(store.config())
            loaded = load_index(config, store, path / INDEX_DIR)
            payload, keyword = load_payloads(store, read_metadata, config, read_text)
        except BaseException:
            store.close()
            raise
        if payload.live_count != len(loaded.labels):
            # The index came from a checkpoint that disagrees with the store: trust the store.
            log.warning(
                "collection %r: %d documents in the index, %d live records; rebuilding the index",
                config.name,
                len(loaded.labels),
                payload.live_count,
            )
            try:
                index, labels = rebuild(config, store)
            except BaseException:
                store.close()
                raise
            loaded = replace(
                loaded,
                index=index,
                labels=labels,
                checkpoint_seq=0,
                source="rebuild",
                applied=len(labels),
            )
        collection = cls(
            config,
            path,
            store,
            loaded.index,
            loaded.labels,
            loaded.checkpoint_seq,
            pending=loaded.applied,
            payload=payload,
            read_metadata=read_metadata,
            strategy=strategy,
            keyword=keyword,
            read_text=read_text,
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
                change.metadata.append((next_label, self._metadata(op.payload)))
                change.text_labels.append(next_label)
                change.texts.append(self._text(op.payload))
                next_label += 1
            else:
                record = Record(op.version, False, seq, live_label, op.vector, op.payload)
                change.updated.append((live_label, op.vector))
                change.metadata.append((live_label, self._metadata(op.payload)))
                change.text_labels.append(live_label)
                change.texts.append(self._text(op.payload))
            written.append((op.id, record))
        if not written:
            return WriteResult(applied=0, deleted=0)
        if self._keyword is not None and change.text_labels:
            # Outside the gate: readers go on meanwhile.
            change.analyzed = self._keyword.analyze(change.texts)
        change.seq = seq
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

    def _metadata(self, payload: bytes) -> Metadata:
        return self._read_metadata(payload) if payload else {}

    def _text(self, payload: bytes) -> str | None:
        if self._keyword is None or not payload:
            return None
        return self._read_text(payload)

    def _matches(self, root: Filter, payload: bytes) -> bool:
        """Whether one stored payload matches `root` (metadata and text)."""
        keyword = self._keyword

        def text_holds(phrase: str) -> bool:
            if keyword is None:
                raise InvalidArgument(
                    "text filters need the collection's keyword index, and this collection"
                    " was created without one"
                )
            return keyword.text_holds(self._read_text(payload) if payload else None, phrase)

        return matches(root, self._metadata(payload), text_holds)

    def _apply(self, change: _IndexChange) -> None:
        # The payload index first: it cannot fail halfway, and if the HNSW update
        # does, the rebuild from the store leaves the two in agreement again.
        for _, label in change.deleted:
            self._payload.remove(label)
        for label, metadata in change.metadata:
            self._payload.put(label, metadata)
        self._payload.seq = change.seq
        if self._keyword is not None:
            self._keyword.remove([label for _, label in change.deleted])
            if change.analyzed is not None:
                self._keyword.put(change.text_labels, change.analyzed)
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

    def count(self, root: Filter | None = None) -> int:
        """Live documents, or those matching `root` (exact)."""
        if root is None:
            with self._life.use():
                return len(self._labels)
        validate(root)
        with self._life.use(), self._gate.read(None):
            return self._payload.mask(root)[1]

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
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        ef: int,
        include: Include,
        root: Filter | None = None,
        score_threshold: float | None = None,
        *,
        wait: bool = True,
    ) -> list[QueryHits]:
        """The k nearest live documents per query (matching `root`), best first, ties by id.

        `queries` holds n x dimension floats; ef 0 means the collection's default.
        Hits scoring below `score_threshold` are left out. With a filter, every
        query gets min(k, matching documents) hits (unless writes remove some meanwhile).
        With `wait=False` an unfiltered search raises WouldBlock instead of waiting
        for a write to the index to finish or falling back to an exact scan.
        """
        dimension = self.config.dimension
        check_k(k)
        check_ef(ef)
        if score_threshold is not None and not math.isfinite(score_threshold):
            raise InvalidArgument(f"score_threshold is {score_threshold}; it must be finite")
        if root is not None:
            validate(root)
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
            if root is None:
                # hnswlib searches with max(ef, k) itself, so requests that differ only in k
                # share the gate.
                with self._gate.read(ef or self.config.hnsw_ef, wait):
                    neighbours = self._nearest(matrix, k, wait)
            else:
                neighbours = self._nearest_filtered(matrix, k, ef or self.config.hnsw_ef, root)
            hits = self._ranked(neighbours, score_threshold)
            if include.any:
                hits = self._with_documents(hits, include)
        return hits

    def _nearest(self, queries: npt.NDArray[np.float32], k: int, wait: bool) -> _Neighbours:
        """The k nearest per query; runs inside the read gate."""
        live = len(self._labels)
        if live == 0:
            return _Neighbours.none(len(queries))
        k = min(k, live)
        try:
            labels, distances = self._index.search(queries, k)
        except SearchIncomplete as error:
            # Too few reachable live elements (e.g. after many deletions): answer exactly.
            if not wait:
                raise WouldBlock from error
            log.info("collection %r: exact search fallback (%s)", self.config.name, error)
            live_labels = np.fromiter(self._ids, dtype=np.uint64, count=len(self._ids))
            labels, distances = self._index.exact_search(queries, live_labels, k)
        return self._named(labels, distances)

    def _named(self, labels: Labels, distances: npt.NDArray[np.float32]) -> _Neighbours:
        """hnswlib's answer with ids for labels; runs inside the read gate."""
        ids = self._ids
        try:
            names = [[ids[label] for label in row] for row in labels.tolist()]
        except KeyError as error:
            raise DataLoss(f"the index returned label {error} that maps to no document") from None
        return _Neighbours(names, distances)

    # -- keyword reads (see keyword_search) --------------------------------------------

    def keyword_statistics(self, terms: Sequence[str]) -> TermStatistics:
        """This replica's document count, total length and per-term document frequencies."""
        with self._life.use(), self._gate.read(None):
            return keyword_stats(self._keyword_index(), terms)

    def keyword_search(
        self,
        queries: Sequence[KeywordQuery],
        average_length: float,
        k: int,
        include: Include,
        root: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[QueryHits]:
        """Per query, the k best live documents by BM25 with the given (cluster-wide)
        weights and mean length, matching `root`; best first, ties by id."""
        check_k(k)
        check_batch_size(len(queries), MAX_BATCH_QUERIES, "queries")
        if score_threshold is not None and not math.isfinite(score_threshold):
            raise InvalidArgument(f"score_threshold is {score_threshold}; it must be finite")
        if root is not None:
            validate(root)
        index = self._keyword_index()
        with self._life.use():
            with self._gate.read(None):
                allowed = None if root is None else self._payload.mask(root)[0]
                hits = ranked_keyword_hits(
                    index, self._ids, queries, average_length, k, allowed, score_threshold
                )
            if include.any:
                hits = self._with_documents(hits, include)
        return hits

    def _keyword_index(self) -> KeywordIndex:
        if self._keyword is None:
            raise InvalidArgument(
                f"collection {self.config.name!r} has no keyword index (it was created with"
                " keyword.enabled false); search it with a vector"
            )
        return self._keyword

    # -- filtered reads ----------------------------------------------------------------

    def _view(self, root: Filter, k: int, ef: int) -> _FilterView:
        """Evaluate `root` and plan the search; runs inside the read gate."""
        mask, matching = self._payload.mask(root)
        chosen = plan(matching, self._payload.live_count, k, ef, self._strategy)
        return _FilterView(chosen, mask, self._payload.generation, self._payload.seq)

    def _candidates(self, mask: Mask) -> list[str]:
        """The ids of the labels in `mask`; runs inside the read gate."""
        ids = self._ids
        return [ids[label] for label in np.flatnonzero(mask).tolist()]

    def _nearest_filtered(
        self, queries: npt.NDArray[np.float32], k: int, ef: int, root: Filter
    ) -> _Neighbours:
        """The k nearest per query among the documents matching `root`."""
        with self._gate.read(None):
            view = self._view(root, k, ef)
            candidates = self._candidates(view.mask) if view.plan.exact else None
        if candidates is None and view.plan.matching:
            with self._gate.read(view.plan.ef):
                if self._payload.generation != view.generation:  # a write came in between
                    view = self._view(root, k, ef)
                if view.plan.exact:
                    candidates = self._candidates(view.mask)
                elif view.plan.matching:
                    allowed = view.mask.view(np.uint8).tobytes()
                    try:
                        labels, distances = self._index.search(
                            queries, min(k, view.plan.matching), allowed
                        )
                        return self._named(labels, distances)
                    except SearchIncomplete as error:
                        log.info(
                            "collection %r: filtered walk came up short (%s); exact instead",
                            self.config.name,
                            error,
                        )
                        candidates = self._candidates(view.mask)
        if not candidates:
            return _Neighbours.none(len(queries))
        return self._exact(queries, k, candidates, root, view.seq)

    def _fresh_match(self, root: Filter, record: Record, seq: int) -> bool:
        """Whether a live record still matches, judged by the payload index as of `seq`.

        A record written after `seq` is judged from its own metadata.
        """
        return record.seq <= seq or self._matches(root, record.payload)

    def _exact(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        candidates: list[str],
        root: Filter,
        seq: int,
    ) -> _Neighbours:
        """Exact k nearest among `candidates`, unsorted, with vectors read from the store."""
        space = self.config.metric.value
        best_ids: list[str] = []
        best = np.empty((len(queries), 0), dtype=np.float32)
        best_rows = np.empty((len(queries), 0), dtype=np.int64)
        for start in range(0, len(candidates), EXACT_READ_CHUNK):
            chunk = candidates[start : start + EXACT_READ_CHUNK]
            found: list[tuple[str, bytes]] = []
            # Only headers and vectors are decoded: payloads can be large.
            for doc_id, data in zip(chunk, self._store.get_encoded(chunk), strict=True):
                if data is None:
                    continue
                header = records.decode_header(data, doc_id)
                if header.deleted:
                    continue
                if header.vector_bytes != 4 * self.config.dimension:
                    raise DataLoss(f"record of document {doc_id!r} has a wrong-sized vector")
                # A record newer than the payload index is judged by itself.
                if header.seq > seq and not self._matches(root, records.payload_of(data, doc_id)):
                    continue
                found.append((doc_id, records.vector_of(data, header)))
            if not found:
                continue
            vectors = np.frombuffer(b"".join(vector for _, vector in found), dtype="<f4")
            distances = exact_distances(space, queries, vectors.reshape(len(found), -1))
            rows = np.broadcast_to(np.arange(len(found)) + len(best_ids), distances.shape)
            best_ids.extend(doc_id for doc_id, _ in found)
            best_rows, best = nearest_k(
                np.concatenate([best_rows, rows], axis=1),
                np.concatenate([best, distances], axis=1),
                k,
            )
        return _Neighbours([[best_ids[row] for row in rows] for rows in best_rows.tolist()], best)

    def scroll(
        self, root: Filter | None, after_id: str, limit: int, include: Include
    ) -> tuple[list[StoredDocument], bool]:
        """Live documents with id > `after_id` (matching `root`), in id order, one page.

        Returns the page (at most `limit`, 0 meaning the default, capped at
        MAX_SCROLL_LIMIT) and whether more remain. Pages follow the store's
        key order, so a document that exists and matches throughout is listed
        exactly once however writes interleave with the pages.
        """
        if after_id:
            check_document_id(after_id)
        limit = min(limit or DEFAULT_SCROLL_LIMIT, MAX_SCROLL_LIMIT)
        if root is not None:
            validate(root)
        with self._life.use():
            if root is None:
                return self._page(self._scan(None, after_id, None, 0), limit, include)
            with self._gate.read(None):
                mask, matching = self._payload.mask(root)
                seq = self._payload.seq
                listed = None
                if matching * SCROLL_INDEX_SHARE <= self._payload.live_count:
                    listed = sorted(i for i in self._candidates(mask) if i > after_id)
            if listed is not None:
                return self._page(self._listed(root, listed, seq), limit, include)
            return self._page(self._scan(root, after_id, mask, seq), limit, include)

    def _page(
        self, found: Iterable[tuple[str, Record]], limit: int, include: Include
    ) -> tuple[list[StoredDocument], bool]:
        page: list[StoredDocument] = []
        for doc_id, record in found:
            if len(page) == limit:
                return page, True
            page.append(self._document(doc_id, record, include))
        return page, False

    def _scan(
        self, root: Filter | None, after_id: str, mask: Mask | None, seq: int
    ) -> Iterable[tuple[str, Record]]:
        """Live records after `after_id` in id order that match, read from the store."""
        for doc_id, data in self._store.records_after(after_id):
            header = records.decode_header(data, doc_id)
            if header.deleted:
                continue
            if root is not None:
                if header.seq <= seq:
                    assert mask is not None
                    if header.label >= len(mask) or not mask[header.label]:
                        continue
                elif not self._matches(root, records.payload_of(data, doc_id)):
                    continue
            yield doc_id, records.decode(data, doc_id)

    def _listed(self, root: Filter, ids: list[str], seq: int) -> Iterable[tuple[str, Record]]:
        """The live records of the listed ids (sorted) that still match."""
        step = 256
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            for doc_id, record in zip(chunk, self._store.get(chunk), strict=True):
                if (
                    record is not None
                    and not record.deleted
                    and self._fresh_match(root, record, seq)
                ):
                    yield doc_id, record

    def _ranked(self, neighbours: _Neighbours, score_threshold: float | None) -> list[QueryHits]:
        """Each query's hits, best first (ties by id), scoring at least `score_threshold`."""
        raw = neighbours.distances.astype(np.float64)
        if self.config.metric is Metric.L2:
            distances = np.sqrt(np.maximum(raw, 0.0))  # hnswlib gives the squared distance
            scores = -distances
        else:
            distances = raw  # 1 - cosine similarity, or 1 - dot product
            scores = 1.0 - raw
        # hnswlib's rows come sorted; only ties (and the exact search's rows) need a sort.
        unsorted = cast(list[bool], (np.diff(distances, axis=1) <= 0).any(axis=1).tolist())
        kept: list[int] = [distances.shape[1]] * len(distances)
        if score_threshold is not None:  # scores fall along a sorted row: keep a prefix
            kept = (scores >= score_threshold).sum(axis=1).tolist()
        ranked = []
        for ids, row_scores, row_distances, sort, keep in zip(
            neighbours.names, scores.tolist(), distances.tolist(), unsorted, kept, strict=True
        ):
            if sort:
                order = sorted(range(len(ids)), key=lambda i: (row_distances[i], ids[i]))
                ids = [ids[i] for i in order]
                row_scores = [row_scores[i] for i in order]
                row_distances = [row_distances[i] for i in order]
            ranked.append(QueryHits(ids[:keep], row_scores[:keep], row_distances[:keep]))
        return ranked

    def _with_documents(self, hits: list[QueryHits], include: Include) -> list[QueryHits]:
        """Hits with their stored fields; a hit deleted since the index answered is dropped."""
        unique = list(dict.fromkeys(doc_id for row in hits for doc_id in row.ids))
        records = dict(zip(unique, self._store.get(unique), strict=True))
        result = []
        for row in hits:
            kept = [
                (position, record)
                for position, record in enumerate(records[doc_id] for doc_id in row.ids)
                if record is not None and not record.deleted
            ]
            result.append(
                QueryHits(
                    [row.ids[i] for i, _ in kept],
                    [row.scores[i] for i, _ in kept],
                    [row.distances[i] for i, _ in kept],
                    [self._document(row.ids[i], record, include) for i, record in kept],
                )
            )
        return result

    # -- replication -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    def _entries(self) -> Iterator[Entry]:
        for doc_id, header in self._store.headers():
            yield doc_id, header.version, header.deleted

    def digest(self, expired_before: int) -> list[PartitionDigest]:
        """Partition digests of every record, tombstones included (see `digests`)."""
        with self._life.use():
            return digest_entries(self._entries(), self.config.partitions or 1, expired_before)

    def versions(self, partitions: Iterable[int], expired_before: int) -> dict[str, VersionState]:
        """The version of every record in `partitions`, tombstones included."""
        wanted = frozenset(partitions)
        with self._life.use():
            return versions_in(self._entries(), self.config.partitions or 1, wanted, expired_before)

    def fetch(self, ids: Sequence[str]) -> list[WriteOp]:
        """The stored records among `ids`, tombstones included, as the writes that made
        them: another replica applying them gets exactly this replica's state."""
        check_batch_size(len(ids), MAX_BATCH_DOCUMENTS, "ids")
        for doc_id in ids:
            check_document_id(doc_id)
        unique = list(dict.fromkeys(ids))
        with self._life.use():
            stored = self._store.get(unique)
        return [
            WriteOp(doc_id, record.version, record.deleted, record.vector, record.payload)
            for doc_id, record in zip(unique, stored, strict=True)
            if record is not None
        ]

    def purge_tombstones(self, before_version: int) -> int:
        """Remove tombstones with a version below `before_version`; how many.

        Only tombstones an index checkpoint already covers: a restart replays the
        write log after the checkpoint, and must not miss a delete in it. The
        scan runs without the write lock; what it found is checked again under it.
        """
        with self._life.use():
            candidates = [
                doc_id
                for doc_id, header in self._store.headers()
                if header.deleted and header.version < before_version
            ]
            if not candidates:
                return 0
            with self._write_lock:
                purged = [
                    (doc_id, record.seq)
                    for doc_id, record in zip(candidates, self._store.get(candidates), strict=True)
                    if record is not None
                    and record.deleted
                    and record.version < before_version
                    and record.seq <= self._checkpoint_seq
                ]
                self._store.purge(purged)
        return len(purged)

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
