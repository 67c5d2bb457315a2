"""One collection's life on disk: lay out, load, checkpoint, purge tombstones, close.

RocksDB is the source of truth; the HNSW index comes back from its newest
checkpoint plus the writes after it (or a rebuild, see `index_loading`), the
payload and keyword indexes from one scan of the store. A checkpoint, a purge
and closing take the write lock, so none of them sees a batch half applied.
"""

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from shard.core.collection.state import CollectionState
from shard.core.config import CollectionConfig
from shard.core.documents import MetadataReader, TextReader, no_metadata, no_text
from shard.core.index_loading import load_index, load_payloads, rebuild
from shard.core.search_plan import Strategy
from shard.storage import checkpoints
from shard.storage.document_store import DocumentStore, StoreMemory
from shard.storage.layout import DB_DIR, INDEX_DIR
from shoal.errors import NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadInfo:
    documents: int
    source: str  # "checkpoint" or "rebuild"
    applied: int  # records replayed on top of the checkpoint, or rebuilt


def initialize(path: Path, config: CollectionConfig) -> None:
    """Lay out a new, empty collection in `path`."""
    DocumentStore.initialize(path / DB_DIR, config.to_json())


def load(
    path: Path,
    sync_writes: bool = False,
    read_metadata: MetadataReader = no_metadata,
    strategy: Strategy = Strategy.AUTO,
    read_text: TextReader = no_text,
    memory: StoreMemory | None = None,
) -> tuple[CollectionState, LoadInfo]:
    """Open the store and bring back the index (checkpoint or rebuild), the payload
    index and the keyword index. See `Collection.open`."""
    store = DocumentStore.open(path / DB_DIR, sync_writes, memory)
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
            index, labels, chunks = rebuild(config, store)
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
            chunks=chunks,
        )
    state = CollectionState(
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
        chunks=loaded.chunks,
    )
    return state, LoadInfo(len(loaded.labels), loaded.source, loaded.applied)


def adopt(state: CollectionState, incarnation: int) -> None:
    """See `Collection.adopt`."""
    with state.life.use(), state.write_lock:
        config = replace(state.config, incarnation=incarnation)
        state.store.set_config(config.to_json())
        state.config = config


def purge_tombstones(state: CollectionState, before_version: int) -> int:
    """Remove tombstones with a version below `before_version`; how many.

    Only tombstones an index checkpoint already covers: a restart replays the
    write log after the checkpoint, and must not miss a delete in it. The
    scan runs without the write lock; what it found is checked again under it.
    """
    with state.life.use():
        candidates = [
            doc_id
            for doc_id, header in state.store.headers()
            if header.deleted and header.version < before_version
        ]
        if not candidates:
            return 0
        with state.write_lock:
            purged = [
                (doc_id, record.seq)
                for doc_id, record in zip(candidates, state.store.get(candidates), strict=True)
                if record is not None
                and record.deleted
                and record.version < before_version
                and record.seq <= state.checkpoint_seq
            ]
            state.store.purge(purged)
    return len(purged)


def checkpoint_due(
    state: CollectionState, now: float, every_writes: int, interval_s: float
) -> bool:
    if not state.pending or state.life.closed:
        return False
    return state.pending >= every_writes or now - state.checkpoint_time >= interval_s


def checkpoint(state: CollectionState) -> bool:
    """Save the index if it has writes no checkpoint holds; True if one was written."""
    with state.life.use(), state.write_lock:
        if not state.pending and state.checkpoint_seq == state.seq:
            return False
        started = time.monotonic()
        path = checkpoints.save(state.index_dir, state.index, state.labels, state.seq, state.chunks)
        checkpoints.prune(state.index_dir, keep=path)
        state.checkpoint_seq = state.seq
        state.checkpoint_time = time.monotonic()
        state.pending = 0
        log.info(
            "collection %r: checkpoint at seq %d (%d documents) in %.2fs",
            state.config.name,
            state.seq,
            len(state.labels),
            state.checkpoint_time - started,
        )
        return True


def close(state: CollectionState, with_checkpoint: bool) -> None:
    """Wait for running calls, optionally checkpoint, and close the store."""
    if with_checkpoint:
        try:
            checkpoint(state)
        except NotFound:
            pass  # closed already
        except Exception:
            log.exception("collection %r: final checkpoint failed", state.config.name)
    state.life.close()
    with state.write_lock:
        if not state.store_closed:
            state.store.close()
            state.store_closed = True
