"""Bringing a collection's index back on start: newest checkpoint plus catch-up, or a rebuild.

RocksDB is the source of truth. A checkpoint at sequence S is caught up by
applying the latest record of every id written after S (the store keeps one
`seq -> id` entry per id, so this reads only what changed). Without a usable
checkpoint the index is rebuilt from every live record.
"""

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from shard.core.config import CollectionConfig
from shard.core.documents import MetadataReader, TextReader, no_text
from shard.core.keyword_index import KeywordIndex
from shard.core.payload_index import PayloadIndex
from shard.storage import checkpoints
from shard.storage.document_store import DocumentStore
from shard.storage.hnsw_index import HnswIndex, Vectors
from shard.storage.records import NO_LABEL, Record
from shoal.errors import DataLoss

log = logging.getLogger(__name__)

#: Records applied to the index per step while loading, to bound memory.
LOAD_CHUNK = 8192


@dataclass
class LoadedIndex:
    index: HnswIndex
    labels: dict[str, int]  # live id -> label
    checkpoint_seq: int  # the checkpoint it started from; 0 when rebuilt
    source: str  # "checkpoint" or "rebuild"
    applied: int  # records applied on top of the checkpoint, or live records rebuilt
    chunks: dict[str, int] = field(default_factory=dict)  # live id -> chunks, when not 1


def _chunks(items: Iterable[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _vectors(vectors: list[bytes], dimension: int) -> Vectors:
    return np.frombuffer(b"".join(vectors), dtype="<f4").reshape(-1, dimension)


def _check_live(doc_id: str, record: Record, dimension: int, chunked: bool = False) -> None:
    if record.label == NO_LABEL:
        raise DataLoss(f"live record of document {doc_id!r} has no index label")
    whole = len(record.vector) % (4 * dimension) == 0 and len(record.vector) > 0
    if len(record.vector) != 4 * dimension and not (chunked and whole):
        raise DataLoss(
            f"record of document {doc_id!r} has a {len(record.vector)}-byte vector;"
            f" the collection's dimension is {dimension}"
        )


def catch_up(
    index: HnswIndex,
    labels: dict[str, int],
    store: DocumentStore,
    after_seq: int,
    dimension: int,
    chunks: dict[str, int] | None = None,
) -> int:
    """Apply every id written after `after_seq` to `index`, `labels` and `chunks` (the
    chunk counts of documents with more than one); return how many ids.

    A record keeps its labels while its vectors keep their number (an update in
    place, or a partial update); a chunked document written again takes fresh
    consecutive labels, so its old ones go and the new ones are added."""
    chunks = {} if chunks is None else chunks
    applied = 0
    for chunk in _chunks(store.ids_written_after(after_seq), LOAD_CHUNK):
        ids = [doc_id for _, doc_id in chunk]
        deleted: list[int] = []
        added: list[int] = []
        added_vectors: list[bytes] = []
        updated: list[int] = []
        updated_vectors: list[bytes] = []
        for doc_id, record in zip(ids, store.get(ids), strict=True):
            if record is None:
                raise DataLoss(f"write log names document {doc_id!r}, which has no record")
            current = labels.get(doc_id)
            held = chunks.get(doc_id, 1)
            if record.deleted:
                if current is not None:
                    deleted.extend(range(current, current + held))
                    del labels[doc_id]
                    chunks.pop(doc_id, None)
                continue
            _check_live(doc_id, record, dimension, chunked=True)
            count = len(record.vector) // (4 * dimension)
            if current == record.label and count == held:
                updated.extend(range(current, current + count))
                updated_vectors.append(record.vector)
                continue
            if current is not None:
                deleted.extend(range(current, current + held))
            added.extend(range(record.label, record.label + count))
            added_vectors.append(record.vector)
            labels[doc_id] = record.label
            if count != 1:
                chunks[doc_id] = count
            else:
                chunks.pop(doc_id, None)
        index.delete(np.array(deleted, dtype=np.uint64))
        index.add(np.array(added, dtype=np.uint64), _vectors(added_vectors, dimension))
        index.update(np.array(updated, dtype=np.uint64), _vectors(updated_vectors, dimension))
        applied += len(chunk)
    return applied


def rebuild(
    config: CollectionConfig, store: DocumentStore
) -> tuple[HnswIndex, dict[str, int], dict[str, int]]:
    """A fresh index of every live record, with the labels the records carry, and
    the chunk counts of chunked documents (whose chunks hold consecutive labels)."""
    index = HnswIndex.create(
        config.metric.value,
        config.dimension,
        config.hnsw_m,
        config.hnsw_ef_construction,
        config.hnsw_ef,
    )
    labels: dict[str, int] = {}
    chunks: dict[str, int] = {}
    batch: list[int] = []
    vectors: list[bytes] = []
    for doc_id, record in store.scan():
        if record.deleted:
            continue
        _check_live(doc_id, record, config.dimension, chunked=True)
        labels[doc_id] = record.label
        count = len(record.vector) // (4 * config.dimension)
        if count != 1:
            chunks[doc_id] = count
        batch.extend(range(record.label, record.label + count))
        vectors.append(record.vector)
        if len(batch) >= LOAD_CHUNK:
            index.add(np.array(batch, dtype=np.uint64), _vectors(vectors, config.dimension))
            batch, vectors = [], []
    index.add(np.array(batch, dtype=np.uint64), _vectors(vectors, config.dimension))
    return index, labels, chunks


def load_index(config: CollectionConfig, store: DocumentStore, directory: Path) -> LoadedIndex:
    last_seq, _ = store.state()
    checkpoint = checkpoints.load_newest(
        directory,
        config.metric.value,
        config.dimension,
        config.hnsw_ef,
        max_seq=last_seq,
        chunked=config.chunking.enabled,
    )
    if checkpoint is not None:
        try:
            applied = catch_up(
                checkpoint.index,
                checkpoint.labels,
                store,
                checkpoint.seq,
                config.dimension,
                checkpoint.chunks,
            )
            return LoadedIndex(
                checkpoint.index,
                checkpoint.labels,
                checkpoint.seq,
                "checkpoint",
                applied,
                checkpoint.chunks,
            )
        except (RuntimeError, ValueError) as error:  # hnswlib refused the checkpoint's state
            log.warning("collection %r: checkpoint unusable, rebuilding: %s", config.name, error)
    index, labels, chunks = rebuild(config, store)
    return LoadedIndex(index, labels, 0, "rebuild", len(labels), chunks)


#: Texts the keyword index takes at a time while a collection opens.
TEXT_BATCH = 1024


def load_payloads(
    store: DocumentStore,
    read_metadata: MetadataReader,
    config: CollectionConfig | None = None,
    read_text: TextReader = no_text,
) -> tuple[PayloadIndex, KeywordIndex | None]:
    """The payload index and the keyword index (when the collection has one) of every
    live record. Neither is checkpointed: one scan of the store builds both."""
    last_seq, next_label = store.state()
    keyword = None
    if config is not None and config.keyword.enabled:
        keyword = KeywordIndex(config.keyword, label_space=next_label)
    payload = PayloadIndex(label_space=next_label, text=keyword)
    labels: list[int] = []
    texts: list[str | None] = []
    for doc_id, label, data in store.scan_payloads():
        if label == NO_LABEL or label >= next_label:
            raise DataLoss(f"live record of document {doc_id!r} has label {label}")
        payload.put(label, read_metadata(data) if data else {})
        if keyword is not None and data:
            labels.append(label)
            texts.append(read_text(data))
            if len(labels) == TEXT_BATCH:
                keyword.put(labels, keyword.analyze(texts))
                labels, texts = [], []
    if keyword is not None and labels:
        keyword.put(labels, keyword.analyze(texts))
    payload.seq = last_seq
    return payload, keyword
