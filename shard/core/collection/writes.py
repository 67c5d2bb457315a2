"""Writes to one collection: validate, last-writer-wins, commit, then update the indexes.

A batch is checked before any lock is taken. Under the write lock it is decided
against the stored records (`lww`), its texts are analyzed for the keyword index
(readers go on meanwhile) and it is committed as one RocksDB batch: the
acknowledgement point. Only then, with the gate held alone, does the change
reach the payload index, the keyword index, the HNSW index and the id <-> label
maps, so a search sees all of them agree. If the HNSW update fails the batch
stays durable and the index is rebuilt from the store.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from shard.core.collection.state import CollectionState, Metadata
from shard.core.documents import WriteOp, WriteResult
from shard.core.index_loading import rebuild
from shard.core.keyword_index import Analyzed
from shard.core.lww import newest_per_id, supersedes
from shard.storage.hnsw_index import Labels
from shard.storage.records import NO_LABEL, Record
from shoal.chunking import MAX_CHUNKS
from shoal.errors import InvalidArgument
from shoal.limits import MAX_BATCH_DOCUMENTS, check_batch_size, check_document_id

log = logging.getLogger(__name__)


@dataclass
class _IndexChange:
    """What one committed batch does to the indexes."""

    # Deleted: (id, first label, chunks); added: (id, first label, vectors), a
    # chunked document's chunks taking consecutive labels from its first.
    deleted: list[tuple[str, int, int]] = field(default_factory=list)
    added: list[tuple[str, int, bytes]] = field(default_factory=list)
    updated: list[tuple[int, bytes]] = field(default_factory=list)
    metadata: list[tuple[int, Metadata]] = field(default_factory=list)  # added and updated
    # Added and updated: their labels and texts (None: none), then the texts analyzed.
    text_labels: list[int] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    analyzed: Analyzed | None = None
    seq: int = 0  # the batch's last write sequence


def _label_array(values: Sequence[int]) -> Labels:
    return np.array(values, dtype=np.uint64)


def write(state: CollectionState, ops: Sequence[WriteOp]) -> WriteResult:
    """Apply the writes that are newer than what is stored; durable on return."""
    valid = _validated_writes(state, ops)
    with state.life.use(), state.write_lock:
        return _commit_and_index(state, newest_per_id(valid))


def _validated_writes(state: CollectionState, ops: Sequence[WriteOp]) -> list[WriteOp]:
    """The batch with ids, versions and vectors checked; tombstones lose any vector
    or payload they were sent with."""
    check_batch_size(len(ops), MAX_BATCH_DOCUMENTS, "writes")
    dimension = state.config.dimension
    valid: list[WriteOp] = []
    live: list[WriteOp] = []
    for op in ops:
        check_document_id(op.id)
        if op.version == 0:
            raise InvalidArgument(f"document {op.id!r}: version 0; versions start at 1")
        if op.deleted:
            op = replace(op, vector=b"", payload=b"") if op.vector or op.payload else op
        elif op.patch is not None and not op.vector:
            pass  # a partial update keeping the stored vector
        else:
            if len(op.vector) % (4 * dimension) or not op.vector:
                raise InvalidArgument(
                    f"document {op.id!r}: dimension {len(op.vector) / 4:g},"
                    f" collection expects {dimension}"
                    + (" (or a multiple: one vector per chunk)" if len(op.vector) else "")
                )
            if len(op.vector) > 4 * dimension * MAX_CHUNKS:
                raise InvalidArgument(
                    f"document {op.id!r}: {len(op.vector) // (4 * dimension)} chunk vectors;"
                    f" the limit is {MAX_CHUNKS}"
                )
            live.append(op)
        valid.append(op)
    if live:
        for op in live:
            if not np.isfinite(np.frombuffer(op.vector, dtype="<f4")).all():
                raise InvalidArgument(f"document {op.id!r}: vector contains NaN or infinity")
    return valid


def _text_for_keywords(state: CollectionState, payload: bytes) -> str | None:
    if state.keyword is None or not payload:
        return None
    return state.read_text(payload)


def _commit_and_index(state: CollectionState, ops: list[WriteOp]) -> WriteResult:
    """Decide, commit and index one batch (one op per id); runs under the write lock."""
    stored = state.store.get([op.id for op in ops])
    pins = state.pins
    if pins.active():
        pins.check_writes(ops, stored)
    seq, next_label = state.seq, state.next_label
    written: list[tuple[str, Record]] = []
    superseded: list[int] = []
    change = _IndexChange()
    removed = 0  # live documents tombstoned
    for op, old in zip(ops, stored, strict=True):
        keeps_vector = False
        if op.patch is not None:
            if old is None or old.deleted:
                continue  # nothing to update here; anti-entropy brings the result
            keeps_vector = not op.vector
            op = replace(
                op, vector=op.vector or old.vector, payload=op.patch(old.payload), patch=None
            )
        elif old is not None and not old.deleted and op.vector == old.vector:
            # A whole write with the stored vector (the coordinator's partial update of
            # metadata or of a text the vector does not follow) leaves the HNSW index alone.
            keeps_vector = True
        if not supersedes(op, old):
            continue
        seq += 1
        if pins.active() or pins.max_version is not None:
            pins.note_replaced(op.id, old, op.version)
        if old is not None:
            superseded.append(old.seq)
        live_label = state.labels.get(op.id)
        chunks = len(op.vector) // (4 * state.config.dimension)
        if op.deleted:
            record = Record(op.version, True, seq, NO_LABEL, b"", b"")
            if live_label is not None:
                change.deleted.append((op.id, live_label, state.chunk_count(op.id)))
                removed += 1
            written.append((op.id, record))
            continue
        if (
            live_label is not None
            and not keeps_vector
            and (chunks != 1 or state.chunk_count(op.id) != 1)
        ):
            # A chunked document's vectors are replaced whole: its old labels go and
            # the new chunks take fresh consecutive ones, in the same committed batch.
            change.deleted.append((op.id, live_label, state.chunk_count(op.id)))
            live_label = None
        if live_label is None:
            record = Record(op.version, False, seq, next_label, op.vector, op.payload)
            change.added.append((op.id, next_label, op.vector))
            change.metadata.append((next_label, state.metadata_of(op.payload)))
            change.text_labels.append(next_label)
            change.texts.append(_text_for_keywords(state, op.payload))
            next_label += chunks
        else:
            record = Record(op.version, False, seq, live_label, op.vector, op.payload)
            if not keeps_vector:
                # A partial update of the metadata leaves the HNSW index alone.
                change.updated.append((live_label, op.vector))
            change.metadata.append((live_label, state.metadata_of(op.payload)))
            change.text_labels.append(live_label)
            change.texts.append(_text_for_keywords(state, op.payload))
        written.append((op.id, record))
    if not written:
        return WriteResult(applied=0, deleted=0)
    if state.keyword is not None and change.text_labels:
        # Outside the gate: readers go on meanwhile.
        change.analyzed = state.keyword.analyze(change.texts)
    change.seq = seq
    state.store.commit(written, superseded, seq, next_label)
    state.seq, state.next_label = seq, next_label
    state.pending += len(written)
    try:
        with state.gate.write():
            _apply_to_indexes(state, change)
    except Exception:
        # The batch is durable; only the derived index is off. Rebuild it from the store.
        log.exception("collection %r: index update failed; rebuilding", state.config.name)
        _rebuild_index(state)
    return WriteResult(applied=len(written), deleted=removed)


def _apply_to_indexes(state: CollectionState, change: _IndexChange) -> None:
    """One committed batch into every index and the id <-> label maps; gate held alone."""
    # The payload index first: it cannot fail halfway, and if the HNSW update
    # does, the rebuild from the store leaves the two in agreement again.
    payload = state.payload
    for _, label, _ in change.deleted:
        payload.remove(label)
    for label, metadata in change.metadata:
        payload.put(label, metadata)
    payload.seq = change.seq
    if state.keyword is not None:
        state.keyword.remove([label for _, label, _ in change.deleted])
        if change.analyzed is not None:
            state.keyword.put(change.text_labels, change.analyzed)
    dimension = state.config.dimension
    if change.deleted:
        gone = [first + i for _, first, chunks in change.deleted for i in range(chunks)]
        state.index.delete(_label_array(gone))
        for doc_id, label, _ in change.deleted:
            state.forget(doc_id, label)
    if change.added:
        vectors = np.frombuffer(b"".join(v for _, _, v in change.added), dtype="<f4")
        chunk_counts = [len(v) // (4 * dimension) for _, _, v in change.added]
        labels = [
            first + i
            for (_, first, _), chunks in zip(change.added, chunk_counts, strict=True)
            for i in range(chunks)
        ]
        state.index.add(_label_array(labels), vectors.reshape(-1, dimension))
        for (doc_id, label, _), chunks in zip(change.added, chunk_counts, strict=True):
            state.remember(doc_id, label, chunks)
    if change.updated:
        vectors = np.frombuffer(b"".join(v for _, v in change.updated), dtype="<f4")
        state.index.update(
            _label_array([label for label, _ in change.updated]), vectors.reshape(-1, dimension)
        )


def _rebuild_index(state: CollectionState) -> None:
    """Replace the index by one rebuilt from the store (write lock held)."""
    index, labels, chunks = rebuild(state.config, state.store)
    with state.gate.write():
        index.set_ef(state.gate.ef)
        state.index = index
        state.set_labels(labels, chunks)
