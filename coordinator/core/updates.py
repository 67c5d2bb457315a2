"""Partial updates: set or remove metadata keys of stored documents, by ids or filter.

An update is a read-modify-write made here: the coordinator reads the newest
record of each document from the replicas of its group (`quorum_reads`),
applies the change and writes the whole record, with a fresh version above the
one it read, to every replica as an ordinary write. So every replica ends with
the same record under the same version, whatever it held before, and last-
writer-wins, hints, catch-up, anti-entropy and verify see nothing new.

Patching on each replica instead (what the shards' `patch` writes still do, for
hints an older coordinator left) makes records of one version whose contents
differ when the replicas' bases differ, which no digest can see. A patch
carrying its base version, refused where the base differs, would need the read
as well, and a repair before it could apply. Under last-writer-wins an update
made concurrently with another write of the same document may be lost, as one
of two concurrent whole writes is; the replicas still agree.

A document no replica holds live is skipped. A new text replaces the stored one
and, for a collection with an embedding model, is embedded here so that the
vector follows it; a metadata-only update sends the stored vector back, which
the shard recognises and leaves the HNSW index untouched.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from coordinator.core.catalog import CollectionCatalog
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.deadline import Deadline
from coordinator.core.embedding import Embedding
from coordinator.core.model import WriteConsistency, WriteResult
from coordinator.core.ports import OpaqueFilter, WriteOp
from coordinator.core.quorum_reads import newest_records
from coordinator.core.replicas import ReplicaGroup
from coordinator.core.routing import Routing
from coordinator.core.validation import check_ids
from coordinator.core.writes import Writer
from shoal import limits
from shoal.errors import InvalidArgument

#: Documents read and written per call. Each travels whole (text up to 64 KiB,
#: a chunked document's vectors), so far fewer than a write of tombstones takes,
#: keeping a reply and a write well inside the 64 MiB a message may hold.
UPDATE_BATCH = 64


@dataclass(frozen=True, slots=True)
class MetadataChange:
    """What an update does to each document. `set_metadata` is the caller's map as
    the api layer received it, passed to the shards unchanged."""

    set_metadata: Mapping[str, object] = field(default_factory=dict)
    remove_metadata: Sequence[str] = ()
    text: str | None = None


def check_change(change: MetadataChange) -> None:
    """Reject an update that would change nothing or names a key twice."""
    if not change.set_metadata and not change.remove_metadata and change.text is None:
        raise InvalidArgument(
            "an update must set or remove a metadata key or give a text; it changes nothing"
        )
    if len(change.set_metadata) > limits.MAX_METADATA_KEYS:
        raise InvalidArgument(
            f"{len(change.set_metadata)} metadata keys to set; the limit is"
            f" {limits.MAX_METADATA_KEYS}"
        )
    for key in (*change.set_metadata, *change.remove_metadata):
        if not key:
            raise InvalidArgument("a metadata key to set or remove is empty")
    both = set(change.set_metadata) & set(change.remove_metadata)
    if both:
        raise InvalidArgument(
            f"metadata key {sorted(both)[0]!r} is both set and removed; give it once"
        )
    if change.text is not None and len(change.text) > limits.MAX_TEXT_CHARS:
        raise InvalidArgument(
            f"text has {len(change.text)} characters; the limit is {limits.MAX_TEXT_CHARS}"
        )


def patched(
    base: WriteOp,
    version: int,
    change: MetadataChange,
    vector_f32: bytes,
    chunks: Sequence[tuple[int, int]],
) -> WriteOp:
    """The whole record `base` becomes: metadata keys removed then set, the text
    replaced if given, the vector (and a chunked document's spans) replaced if a
    new one was embedded. Metadata values stay the caller's and the replica's
    messages; they are only moved between maps."""
    metadata = {
        key: value for key, value in base.metadata.items() if key not in change.remove_metadata
    }
    metadata.update(change.set_metadata)
    return WriteOp(
        id=base.id,
        version=version,
        vector_f32=vector_f32 or base.vector_f32,
        text=base.text if change.text is None else change.text,
        metadata=metadata,
        chunks=chunks if vector_f32 else base.chunks,
    )


class Updater:
    def __init__(
        self,
        writer: Writer,
        catalog: CollectionCatalog,
        embedding: Embedding,
        clock: HybridLogicalClock,
        routing: Routing,
    ) -> None:
        self._writer = writer
        self._catalog = catalog
        self._embedding = embedding
        self._clock = clock
        self._routing = routing

    async def update(
        self,
        collection: str,
        ids: Sequence[str],
        filter: OpaqueFilter | None,
        change: MetadataChange,
        consistency: WriteConsistency,
        deadline: Deadline,
    ) -> WriteResult:
        """Update `ids`, or every document matching `filter` (one of the two);
        `applied` counts the documents that existed and changed."""
        limits.check_collection_name(collection)
        check_change(change)
        if filter is not None and ids:
            raise InvalidArgument("give ids or a filter to update by, not both")
        if filter is None and not ids:
            raise InvalidArgument("give the ids of the documents to update, or a filter")
        if filter is not None and change.text is not None:
            raise InvalidArgument("a new text can be given with ids only, not with a filter")
        config = await self._catalog.config(collection, deadline)
        vector = b""
        spans: list[tuple[int, int]] = []
        if change.text is not None and config.chunking.enabled:
            [chunked] = await self._embedding.embed_chunks([change.text], config, deadline)
            vector = np.ascontiguousarray(chunked.vectors, "<f4").tobytes()
            spans = chunked.spans
        elif change.text is not None and config.embedding_model:
            embedded = await self._embedding.embed(
                [change.text], config.embedding_model, config.dimension, deadline
            )
            vector = np.asarray(embedded[0], "<f4").tobytes()

        async def updated(group: ReplicaGroup, page: Sequence[str]) -> list[WriteOp]:
            """The updated records of the live documents among `page`, all in `group`."""
            needed = consistency.required(len(group))
            bases = await newest_records(group, collection, page, needed, deadline, filter)
            live = [bases[doc_id] for doc_id in page if doc_id in bases]
            live = [base for base in live if not base.deleted]
            for base in live:
                self._clock.observe(base.version)
            versions = self._clock.next_many(len(live))
            return [
                patched(base, version, change, vector, spans)
                for base, version in zip(live, versions, strict=True)
            ]

        if filter is not None:
            return await self._writer.write_matching(
                collection, filter, updated, consistency, deadline, page_size=UPDATE_BATCH
            )
        check_ids(ids, "ids")
        results: list[WriteResult] = []
        for start in range(0, len(ids), UPDATE_BATCH):
            batch = ids[start : start + UPDATE_BATCH]
            table = self._routing.table
            by_group = table.topology.split_by_group(batch, config.partitions)
            pages = await asyncio.gather(
                *(
                    updated(table.groups[group], [batch[position] for position in positions])
                    for group, positions in sorted(by_group.items())
                )
            )
            ops = [op for page in pages for op in page]
            results.append(
                await self._writer.write_ops(collection, config, ops, consistency, deadline)
            )
        return _summed(results)


def _summed(results: Sequence[WriteResult]) -> WriteResult:
    """One result for the batches of one update."""
    written = [result for result in results if result.written]
    if not written:
        return results[0]
    return WriteResult(
        written=sum(result.written for result in written),
        acknowledged=min(result.acknowledged for result in written),
        replicas=max(result.replicas for result in written),
        deleted=sum(result.deleted for result in written),
        applied=sum(result.applied for result in written),
    )
