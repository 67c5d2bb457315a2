"""What the parts of one collection share: the store, the indexes, the locks, the counters.

`Collection` (this package's `__init__`) hands one `CollectionState` to the
functions of `writes`, `search`, `scans` and `maintenance`. The rules for
touching it, which every part keeps:

- `write_lock` serializes writes, checkpoints, purges and closing; `seq`,
  `next_label`, `pending` and the checkpoint fields change only under it.
- `gate` (see `shard.core.gate`) guards the HNSW index, the payload index, the
  keyword index and the id <-> label maps: readers share it, a write to any of
  them holds it alone, so a reader sees all of them consistent.
- `life` (see `shard.core.lifecycle`): every call runs inside `life.use()`, so
  closing waits for running calls before the store goes.
"""

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from shard.core.collection.snapshot_pins import SnapshotPins
from shard.core.config import CollectionConfig
from shard.core.documents import (
    Include,
    MetadataReader,
    StoredDocument,
    TextReader,
    no_metadata,
    no_text,
)
from shard.core.filters import Filter, matches
from shard.core.gate import IndexGate
from shard.core.keyword_index import KeywordIndex
from shard.core.lifecycle import Lifecycle
from shard.core.partition_labels import PartitionLabels
from shard.core.payload_columns import Mask
from shard.core.payload_index import PayloadIndex
from shard.core.search_plan import Strategy
from shard.storage.document_store import DocumentStore
from shard.storage.hnsw_index import HnswIndex
from shard.storage.layout import INDEX_DIR
from shard.storage.records import Record
from shoal.errors import DataLoss, InvalidArgument

Metadata = Mapping[str, object]


class CollectionState:
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
        chunks: dict[str, int] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.store_closed = False
        self.index = index
        self.index_dir = path / INDEX_DIR
        self.labels: dict[str, int] = {}  # live id -> label (a chunked one's first)
        self.ids: dict[int, str] = {}  # label -> live id, every chunk's label included
        self.chunks: dict[str, int] = {}  # live id -> its chunks, for documents with more than 1
        self.partition_labels = PartitionLabels(config.partitions)
        self.set_labels(labels, chunks or {})
        self.seq, self.next_label = store.state()
        self.checkpoint_seq = checkpoint_seq
        self.checkpoint_time = time.monotonic()
        self.pending = pending  # writes not yet in a checkpoint
        self.write_lock = threading.Lock()
        self.gate = IndexGate(self.set_index_ef, config.hnsw_ef)
        self.life = Lifecycle(config.name)
        self.payload = payload
        self.keyword = keyword
        self.read_metadata = read_metadata
        self.read_text = read_text
        self.strategy = strategy
        # Snapshot pins (see `snapshots`); changed under `write_lock`.
        self.pins = SnapshotPins()

    def set_labels(self, labels: dict[str, int], chunks: dict[str, int]) -> None:
        """The id <-> label maps of an index (loaded or rebuilt): a document with n
        chunks holds the n consecutive labels from its first."""
        self.labels = labels
        self.partition_labels.reset()
        self.chunks = {doc_id: n for doc_id, n in chunks.items() if n != 1}
        self.ids = {label: doc_id for doc_id, label in labels.items()}
        for doc_id, n in self.chunks.items():
            first = labels[doc_id]
            for i in range(1, n):
                self.ids[first + i] = doc_id

    def chunk_count(self, doc_id: str) -> int:
        """How many labels (chunks) a live document holds in the index."""
        return self.chunks.get(doc_id, 1)

    def remember(self, doc_id: str, first: int, chunks: int) -> None:
        """A document added to the index at labels first .. first + chunks - 1 (gate held)."""
        self.labels[doc_id] = first
        for i in range(chunks):
            self.ids[first + i] = doc_id
        if chunks != 1:
            self.chunks[doc_id] = chunks
        self.partition_labels.note(doc_id, first, chunks)

    def forget(self, doc_id: str, first: int) -> None:
        """A document's labels gone from the index (gate held)."""
        for i in range(self.chunks.pop(doc_id, 1)):
            del self.ids[first + i]
        del self.labels[doc_id]

    def set_index_ef(self, ef: int) -> None:
        """The gate's hook: the index may have been replaced (rebuilt) since it was made."""
        self.index.set_ef(ef)

    def metadata_of(self, payload: bytes) -> Metadata:
        return self.read_metadata(payload) if payload else {}

    def payload_matches(self, root: Filter, payload: bytes) -> bool:
        """Whether one stored payload matches `root` (metadata and text), judged from
        the payload itself: for records newer than what the payload index holds."""
        keyword = self.keyword

        def text_holds(phrase: str) -> bool:
            if keyword is None:
                raise InvalidArgument(
                    "text filters need the collection's keyword index, and this collection"
                    " was created without one"
                )
            return keyword.text_holds(self.read_text(payload) if payload else None, phrase)

        return matches(root, self.metadata_of(payload), text_holds)

    def skipped_labels(self, skip: Sequence[int], size: int) -> Mask | None:
        """The labels (of `size`) of documents in the partitions `skip`; None when none
        can be (see `partition_labels`). Runs inside the read gate."""
        if not skip:
            return None
        return self.partition_labels.skipped(skip, size, self.ids)

    def ids_in_mask(self, mask: Mask) -> list[str]:
        """The ids of the labels set in `mask`; runs inside the read gate."""
        ids = self.ids
        return [ids[label] for label in np.flatnonzero(mask).tolist()]

    def stored_document(self, doc_id: str, record: Record, include: Include) -> StoredDocument:
        """A read's answer for one live record: the fields `include` asks for."""
        vector = b""
        if include.vector:
            vector = self.document_vector(doc_id, record.vector)
        return StoredDocument(
            id=doc_id,
            vector=vector,
            payload=record.payload if include.payload else b"",
        )

    def document_vector(self, doc_id: str, stored: bytes) -> bytes:
        """A document's one vector: the stored one, or for a chunked document the
        mean of its chunk vectors (what more-like-this searches with)."""
        dimension = self.config.dimension
        if not stored or len(stored) % (4 * dimension):
            raise DataLoss(f"record of document {doc_id!r} has a {len(stored)}-byte vector")
        if len(stored) == 4 * dimension:
            return stored
        vectors = np.frombuffer(stored, dtype="<f4").reshape(-1, dimension)
        mean: bytes = vectors.mean(axis=0, dtype=np.float64).astype("<f4").tobytes()
        return mean
