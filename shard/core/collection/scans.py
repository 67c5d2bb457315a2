"""Unranked reads of one collection: count, get by id, scroll in id order, and the
version listings replication compares (digests, versions, fetch).

Scroll pages follow the store's key order. A filtered scroll judges records by
the payload index's mask when the index already reflects them (`PayloadIndex.seq`)
and newer ones from their own payload; when few documents match it lists their
ids from the mask instead of scanning the whole store.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from shard.core.collection.state import CollectionState
from shard.core.digests import Entry, digest_entries, versions_in
from shard.core.documents import Include, StoredDocument, WriteOp
from shard.core.filters import Filter, ValidFilter
from shard.core.payload_columns import Mask
from shard.storage import records
from shard.storage.records import Record
from shoal.limits import MAX_BATCH_DOCUMENTS, check_batch_size, check_document_id
from shoal.replication import PartitionDigest, VersionState

#: Scroll page size when the request gives none, and the most one page holds.
DEFAULT_SCROLL_LIMIT = 100
MAX_SCROLL_LIMIT = 1000
#: A filtered scroll lists the matching ids from the payload index (instead of
#: scanning the store for them) when at most 1/SCROLL_INDEX_SHARE of the documents match.
SCROLL_INDEX_SHARE = 16
#: Ids read from the store per step of a listed scroll.
LISTED_READ_CHUNK = 256


@dataclass(frozen=True)
class IndexStats:
    capacity: int  # slots allocated
    slots: int  # slots in use, live or deleted-awaiting-reuse
    live: int
    ef: int  # the index-wide ef now


def count(
    state: CollectionState, valid: ValidFilter | None = None, skip: Sequence[int] = ()
) -> int:
    """Live documents, or those matching the filter (exact); those of the partitions
    `skip` left out."""
    if valid is None and not skip:
        with state.life.use():
            return len(state.labels)
    with state.life.use(), state.gate.read(None):
        payload = state.payload
        if valid is None:
            mask, matching = payload.live_mask(), payload.live_count
        else:
            mask, matching = payload.mask(valid.root)
        skipped = state.skipped_labels(skip, len(mask))
        if skipped is None:
            return matching
        return matching - int(np.count_nonzero(mask & skipped))


def chunk_count(state: CollectionState, skip: Sequence[int] = ()) -> int:
    """See `Collection.chunk_count`."""
    if not skip:
        return len(state.ids)
    with state.life.use(), state.gate.read(None):
        labels = np.fromiter(state.ids, dtype=np.int64, count=len(state.ids))
        size = int(labels.max()) + 1 if len(labels) else 0
        skipped = state.skipped_labels(skip, size)
        if skipped is None:
            return len(labels)
        return len(labels) - int(np.count_nonzero(skipped[labels]))


def index_stats(state: CollectionState) -> IndexStats:
    with state.life.use(), state.gate.read(None):
        return IndexStats(
            state.index.capacity, state.index.element_count, len(state.labels), state.gate.ef
        )


def _check_ids(ids: Sequence[str]) -> list[str]:
    """`ids` checked, each once, in request order."""
    check_batch_size(len(ids), MAX_BATCH_DOCUMENTS, "ids")
    for doc_id in ids:
        check_document_id(doc_id)
    return list(dict.fromkeys(ids))


def get(state: CollectionState, ids: Sequence[str], include: Include) -> list[StoredDocument]:
    """Live documents among `ids`, in request order, each once."""
    unique = _check_ids(ids)
    with state.life.use():
        stored = state.store.get(unique)
    return [
        state.stored_document(doc_id, record, include)
        for doc_id, record in zip(unique, stored, strict=True)
        if record is not None and not record.deleted
    ]


def scroll(
    state: CollectionState,
    valid: ValidFilter | None,
    after_id: str,
    limit: int,
    include: Include,
) -> tuple[list[StoredDocument], bool]:
    """See `Collection.scroll`."""
    if after_id:
        check_document_id(after_id)
    limit = min(limit or DEFAULT_SCROLL_LIMIT, MAX_SCROLL_LIMIT)
    root = None if valid is None else valid.root
    with state.life.use():
        if root is None:
            return _one_page(state, _scan_store(state, None, after_id, None, 0), limit, include)
        payload = state.payload
        with state.gate.read(None):
            mask, matching = payload.mask(root)
            seq = payload.seq
            listed = None
            if matching * SCROLL_INDEX_SHARE <= payload.live_count:
                listed = sorted(i for i in state.ids_in_mask(mask) if i > after_id)
        if listed is not None:
            return _one_page(state, _read_listed(state, root, listed, seq), limit, include)
        return _one_page(state, _scan_store(state, root, after_id, mask, seq), limit, include)


def _one_page(
    state: CollectionState, found: Iterable[tuple[str, Record]], limit: int, include: Include
) -> tuple[list[StoredDocument], bool]:
    """The first `limit` of `found`, and whether more remain."""
    page: list[StoredDocument] = []
    for doc_id, record in found:
        if len(page) == limit:
            return page, True
        page.append(state.stored_document(doc_id, record, include))
    return page, False


def _scan_store(
    state: CollectionState, root: Filter | None, after_id: str, mask: Mask | None, seq: int
) -> Iterable[tuple[str, Record]]:
    """Live records after `after_id` in id order that match, read from the store.

    Records up to `seq` are judged by `mask`, later ones from their own payload.
    """
    for doc_id, data in state.store.records_after(after_id):
        header = records.decode_header(data, doc_id)
        if header.deleted:
            continue
        if root is not None:
            if header.seq <= seq:
                assert mask is not None
                if header.label >= len(mask) or not mask[header.label]:
                    continue
            elif not state.payload_matches(root, records.payload_of(data, doc_id)):
                continue
        yield doc_id, records.decode(data, doc_id)


def _read_listed(
    state: CollectionState, root: Filter, ids: list[str], seq: int
) -> Iterable[tuple[str, Record]]:
    """The live records of the listed ids (sorted) that still match."""
    for start in range(0, len(ids), LISTED_READ_CHUNK):
        chunk = ids[start : start + LISTED_READ_CHUNK]
        for doc_id, record in zip(chunk, state.store.get(chunk), strict=True):
            if (
                record is not None
                and not record.deleted
                and _still_matches(state, root, record, seq)
            ):
                yield doc_id, record


def _still_matches(state: CollectionState, root: Filter, record: Record, seq: int) -> bool:
    """Whether a live record the payload index matched as of `seq` still matches.

    A record written after `seq` is judged from its own payload.
    """
    return record.seq <= seq or state.payload_matches(root, record.payload)


# -- what replication compares (see anti_entropy) ------------------------------------


def _version_entries(state: CollectionState) -> Iterator[Entry]:
    for doc_id, header in state.store.headers():
        yield doc_id, header.version, header.deleted


def digest(state: CollectionState, expired_before: int) -> list[PartitionDigest]:
    """Partition digests of every record, tombstones included (see `digests`)."""
    with state.life.use():
        return digest_entries(_version_entries(state), state.config.partitions or 1, expired_before)


def versions(
    state: CollectionState, partitions: Iterable[int], expired_before: int
) -> dict[str, VersionState]:
    """The version of every record in `partitions`, tombstones included."""
    wanted = frozenset(partitions)
    with state.life.use():
        return versions_in(
            _version_entries(state), state.config.partitions or 1, wanted, expired_before
        )


def fetch(state: CollectionState, ids: Sequence[str]) -> list[WriteOp]:
    """The stored records among `ids`, tombstones included, as the writes that made
    them: another replica applying them gets exactly this replica's state."""
    unique = _check_ids(ids)
    with state.life.use():
        stored = state.store.get(unique)
    return [
        WriteOp(doc_id, record.version, record.deleted, record.vector, record.payload)
        for doc_id, record in zip(unique, stored, strict=True)
        if record is not None
    ]


def matching(state: CollectionState, records: Sequence[WriteOp], root: Filter | None) -> list[str]:
    """The ids of the live `records` that match `root` (None: every live one), each
    judged from its own payload, so the answer holds for exactly that version."""
    return [
        op.id
        for op in records
        if not op.deleted and (root is None or state.payload_matches(root, op.payload))
    ]
