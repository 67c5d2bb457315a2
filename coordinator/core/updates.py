"""Partial updates: set or remove metadata keys of stored documents, by ids or filter.

The coordinator never reads the documents it updates. It sends every replica a
`patch` write with a fresh version, and each replica applies it to the record
it holds under its own write lock (read-modify-write, keeping the vector), then
stores the result as an ordinary record of that version. So hints, catch-up and
anti-entropy see nothing new: a newer record, compared and copied like any
other. A replica that holds no live record for an id skips the patch; anti-
entropy later brings it the patched record from a replica that applied it.

A new text replaces the stored one and, for a collection with an embedding
model, is embedded here so that the vector follows it; metadata-only updates
leave the HNSW index untouched.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from coordinator.core.catalog import CollectionCatalog
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.deadline import Deadline
from coordinator.core.embedding import Embedding
from coordinator.core.model import WriteConsistency, WriteResult
from coordinator.core.ports import OpaqueFilter, WriteOp
from coordinator.core.validation import check_ids
from coordinator.core.writes import Writer
from shoal import limits
from shoal.errors import InvalidArgument


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


class Updater:
    def __init__(
        self,
        writer: Writer,
        catalog: CollectionCatalog,
        embedding: Embedding,
        clock: HybridLogicalClock,
    ) -> None:
        self._writer = writer
        self._catalog = catalog
        self._embedding = embedding
        self._clock = clock

    async def update(
        self,
        collection: str,
        ids: Sequence[str],
        filter: OpaqueFilter | None,
        change: MetadataChange,
        consistency: WriteConsistency,
        deadline: Deadline,
    ) -> WriteResult:
        """Patch `ids`, or every document matching `filter` (one of the two);
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

        def patches(page: Sequence[str], versions: Sequence[int]) -> list[WriteOp]:
            return [
                WriteOp(
                    id=doc_id,
                    version=version,
                    vector_f32=vector,
                    text=change.text,
                    metadata=change.set_metadata,
                    patch=True,
                    remove_metadata=change.remove_metadata,
                    chunks=spans,
                )
                for doc_id, version in zip(page, versions, strict=True)
            ]

        if filter is not None:
            return await self._writer.write_matching(
                collection, filter, patches, consistency, deadline
            )
        check_ids(ids, "ids")
        ops = patches(ids, self._clock.next_many(len(ids)))
        return await self._writer.write_ops(collection, config, ops, consistency, deadline)
