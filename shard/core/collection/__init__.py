"""One collection on one replica: its document store, its indexes, and the rules between them.

`Collection` is the face the rest of the shard sees; the work is split by
concern, as qdrant splits its local shard:

- `writes`: validate a batch, last-writer-wins against the store, commit it,
  then update the payload, keyword and HNSW indexes under the gate.
- `search`: ranked reads, by vector (plain HNSW, filtered HNSW, exact) and by
  keywords (BM25).
- `scans`: unranked reads: count, get, scroll, and the digests, versions and
  records replication compares and copies.
- `maintenance`: laying out, loading, checkpoints, tombstone purges, closing.

They share one `state.CollectionState`, whose docstring has the locking rules.
"""

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shard.core.collection import maintenance, scans, search, search_columns, snapshots, writes
from shard.core.collection.maintenance import LoadInfo
from shard.core.collection.scans import DEFAULT_SCROLL_LIMIT, MAX_SCROLL_LIMIT, IndexStats
from shard.core.collection.search_columns import HitColumns
from shard.core.collection.state import CollectionState
from shard.core.config import CollectionConfig
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
from shard.core.filters import ValidFilter
from shard.core.keyword_index import KeywordQuery
from shard.core.search_plan import Strategy
from shard.storage.document_store import StoreMemory
from shoal.keyword import TermStatistics
from shoal.replication import PartitionDigest, VersionState

__all__ = [
    "DEFAULT_SCROLL_LIMIT",
    "MAX_SCROLL_LIMIT",
    "Collection",
    "IndexStats",
    "LoadInfo",
]


class Collection:
    def __init__(self, state: CollectionState) -> None:
        self._state = state

    @staticmethod
    def initialize(path: Path, config: CollectionConfig) -> None:
        """Lay out a new, empty collection in `path`."""
        maintenance.initialize(path, config)

    @classmethod
    def open(
        cls,
        path: Path,
        sync_writes: bool = False,
        read_metadata: MetadataReader = no_metadata,
        strategy: Strategy = Strategy.AUTO,
        read_text: TextReader = no_text,
        memory: StoreMemory | None = None,
    ) -> tuple["Collection", LoadInfo]:
        """Open the store and bring back the index (checkpoint or rebuild), the payload
        index and the keyword index.

        `read_metadata` and `read_text` decode a stored payload (the api layer's format);
        `memory` is the shard's RocksDB budget (see `StoreMemory`).
        """
        state, info = maintenance.load(
            path, sync_writes, read_metadata, strategy, read_text, memory
        )
        return cls(state), info

    @property
    def config(self) -> CollectionConfig:
        return self._state.config

    @property
    def name(self) -> str:
        return self._state.config.name

    def adopt(self, incarnation: int) -> None:
        """Take the catalog's incarnation for a collection made before the catalog
        existed (incarnation 0); the data stays."""
        maintenance.adopt(self._state, incarnation)

    # -- writes ----------------------------------------------------------------

    def write(self, ops: Sequence[WriteOp]) -> WriteResult:
        """Apply the writes that are newer than what is stored; durable on return."""
        return writes.write(self._state, ops)

    # -- snapshots (see `snapshots`) -------------------------------------------

    def pin_snapshot(self, cut: int, ttl_s: float) -> int:
        """Keep the records as of `cut` from now on; the newest version held."""
        return snapshots.pin(self._state, cut, ttl_s)

    def seal_snapshot(self, cut: int, ttl_s: float) -> None:
        """Refuse writes at or before `cut` from now on: its state is final."""
        snapshots.seal(self._state, cut, ttl_s)

    def snapshot_page(
        self, cut: int, position: snapshots.ScanPosition, limit: int, ttl_s: float
    ) -> list[WriteOp]:
        """The next records as of `cut` (tombstones included); `position` moves on."""
        return snapshots.scan_page(self._state, cut, position, limit, ttl_s)

    def release_snapshot(self, cut: int) -> bool:
        return snapshots.release(self._state, cut)

    # -- ranked reads ----------------------------------------------------------

    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        ef: int,
        include: Include,
        root: ValidFilter | None = None,
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
        return search.search(self._state, queries, k, ef, include, root, score_threshold, wait=wait)

    def search_columns(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        ef: int,
        root: ValidFilter | None = None,
        score_threshold: float | None = None,
        *,
        wait: bool = True,
    ) -> HitColumns:
        """`search` asking for no stored fields, its hits as columns (every query's
        after the other), for a collection that does not chunk its documents."""
        return search_columns.search_columns(
            self._state, queries, k, ef, root, score_threshold, wait=wait
        )

    def keyword_statistics(self, terms: Sequence[str], skip: Sequence[int] = ()) -> TermStatistics:
        """This replica's document count, total length and per-term document frequencies,
        documents of the partitions `skip` left out."""
        return search.keyword_statistics(self._state, terms, skip)

    def keyword_vocabulary(
        self, limit: int, skip: Sequence[int] = ()
    ) -> tuple[list[str], TermStatistics] | None:
        """Every term some live document holds and its statistics (one reading of the
        index), documents of the partitions `skip` left out; None when the index holds
        more than `limit` terms."""
        return search.keyword_vocabulary(self._state, limit, skip)

    def keyword_search(
        self,
        queries: Sequence[KeywordQuery],
        average_length: float,
        k: int,
        include: Include,
        root: ValidFilter | None = None,
        score_threshold: float | None = None,
    ) -> list[QueryHits]:
        """Per query, the k best live documents by BM25 with the given (cluster-wide)
        weights and mean length, matching `root`; best first, ties by id."""
        hits, _ = search.keyword_search(
            self._state, queries, average_length, k, include, root, score_threshold
        )
        return hits

    def keyword_search_with_statistics(
        self,
        queries: Sequence[KeywordQuery],
        average_length: float,
        k: int,
        include: Include,
        root: ValidFilter | None,
        score_threshold: float | None,
        statistics_terms: Sequence[str],
        *,
        wait: bool = True,
        skip: Sequence[int] = (),
        local_statistics: bool = False,
    ) -> tuple[list[QueryHits], TermStatistics]:
        """`keyword_search`, and this replica's statistics of `statistics_terms` as the
        scoring saw them (one reading of the index): a caller that weighted the
        queries with statistics it remembered checks them against these. The
        statistics leave out the documents of the partitions `skip` (the hits do
        not). With `local_statistics`, the queries carry occurrences, not weights,
        and are weighted with this replica's statistics (`average_length` unused): a
        caller that knew none checks whether they were the cluster's. With
        `wait=False`, raises WouldBlock rather than wait for a write to the index."""
        return search.keyword_search(
            self._state,
            queries,
            average_length,
            k,
            include,
            root,
            score_threshold,
            statistics_terms,
            wait=wait,
            skip=skip,
            local_statistics=local_statistics,
        )

    # -- unranked reads --------------------------------------------------------

    def count(self, root: ValidFilter | None = None, skip: Sequence[int] = ()) -> int:
        """Live documents, or those matching `root` (exact); those of the partitions
        `skip` left out."""
        return scans.count(self._state, root, skip)

    def chunk_count(self, skip: Sequence[int] = ()) -> int:
        """Live labels in the index: one per chunk, one per unchunked document; those of
        documents in the partitions `skip` left out."""
        return scans.chunk_count(self._state, skip)

    def index_stats(self) -> IndexStats:
        return scans.index_stats(self._state)

    def get(self, ids: Sequence[str], include: Include) -> list[StoredDocument]:
        """Live documents among `ids`, in request order, each once."""
        return scans.get(self._state, ids, include)

    def scroll(
        self, root: ValidFilter | None, after_id: str, limit: int, include: Include
    ) -> tuple[list[StoredDocument], bool]:
        """Live documents with id > `after_id` (matching `root`), in id order, one page.

        Returns the page (at most `limit`, 0 meaning the default, capped at
        MAX_SCROLL_LIMIT) and whether more remain. Pages follow the store's
        key order, so a document that exists and matches throughout is listed
        exactly once however writes interleave with the pages.
        """
        return scans.scroll(self._state, root, after_id, limit, include)

    # -- replication -----------------------------------------------------------

    def digest(self, expired_before: int) -> list[PartitionDigest]:
        """Partition digests of every record, tombstones included (see `digests`)."""
        return scans.digest(self._state, expired_before)

    def versions(self, partitions: Iterable[int], expired_before: int) -> dict[str, VersionState]:
        """The version of every record in `partitions`, tombstones included."""
        return scans.versions(self._state, partitions, expired_before)

    def fetch(self, ids: Sequence[str]) -> list[WriteOp]:
        """The stored records among `ids`, tombstones included, as the writes that made
        them: another replica applying them gets exactly this replica's state."""
        return scans.fetch(self._state, ids)

    def matching(self, records: Sequence[WriteOp], valid: ValidFilter | None) -> list[str]:
        """The ids of the live `records` (as `fetch` returned them) that match the filter."""
        return scans.matching(self._state, records, None if valid is None else valid.root)

    # -- maintenance -----------------------------------------------------------

    def purge_tombstones(self, before_version: int) -> int:
        """Remove tombstones with a version below `before_version` that a checkpoint
        covers; how many."""
        return maintenance.purge_tombstones(self._state, before_version)

    def checkpoint_due(self, now: float, every_writes: int, interval_s: float) -> bool:
        return maintenance.checkpoint_due(self._state, now, every_writes, interval_s)

    def checkpoint(self) -> bool:
        """Save the index if it has writes no checkpoint holds; True if one was written."""
        return maintenance.checkpoint(self._state)

    def close(self, checkpoint: bool) -> None:
        """Wait for running calls, optionally checkpoint, and close the store."""
        maintenance.close(self._state, checkpoint)
