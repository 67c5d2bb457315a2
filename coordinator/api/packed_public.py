"""The public reply's packed form (`PackedHits` in shoal.proto), for a client that asks.

A reply with a `Hit` message per hit costs the coordinator a message to build
per hit (about 7 µs per query of 10 hits) and the client one to read; the
packed form is a few columns, copied from the merged results as they are when
those are columns already (a vector search read in the shard's packed form, a
chunking collection's chunk columns included). Where they are not (keyword and
hybrid searches, explanations, group search), `packed_hits` answers None and the
reply keeps its `Hit`s: packing them here would only move the per-hit work from
the client to the coordinator.
"""

from collections.abc import Sequence
from itertools import chain
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from shoal.v1 import common_pb2, shoal_pb2


class HitColumns(Protocol):
    """One query's hits as columns, best first; `documents` None unless stored fields
    were asked for."""

    ids: Sequence[str]
    scores: npt.NDArray[np.float32]
    distances: npt.NDArray[np.float32]
    documents: Sequence[object] | None


def _chunks_of(columns: object) -> Any:
    """A chunking collection's `ChunkColumns` (coordinator.core.packed) of `columns`;
    None when they have none."""
    return getattr(columns, "chunks", None)


def is_columns(value: object) -> bool:
    """Whether `value` has `HitColumns`' attributes: what `isinstance` with a
    runtime-checkable protocol asks, without typing's protocol machinery, which
    on Python 3.11 costs tens of microseconds a check (every Search asks once)."""
    return (
        hasattr(value, "ids")
        and hasattr(value, "scores")
        and hasattr(value, "distances")
        and hasattr(value, "documents")
    )


def _f32(values: npt.NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def packed_hits(
    request: shoal_pb2.SearchRequest | shoal_pb2.SearchBatchRequest, results: Sequence[object]
) -> shoal_pb2.PackedHits | None:
    """Every query's hits (`results[i]` answering query i) in the packed form; None
    unless the request asked for it without explanations (they are per hit), or
    when some query's hits are not columns."""
    if not request.packed or request.explain:
        return None
    batch = cast(Any, results)
    if is_columns(results) and hasattr(batch, "offsets"):
        # A whole batch as one set of columns, query i's from offsets[i] to offsets[i + 1].
        counts = np.diff(np.asarray(batch.offsets)).tolist()
        message = _message(counts, batch.ids, batch.scores, batch.distances, batch.documents)
        if _chunks_of(batch) is not None:
            _add_chunks(message, [_chunks_of(batch)])
        return message
    if not all(is_columns(result) for result in results):
        return None
    columns = cast(Sequence[HitColumns], results)
    documents = [result.documents for result in columns]
    stored: list[object] | None = None
    if any(part is not None for part in documents):
        if any(part is None for part in documents):
            return None
        stored = [document for part in documents for document in cast(Sequence[object], part)]
    empty = np.empty(0, dtype=np.float32)
    message = _message(
        [len(result.ids) for result in columns],
        list(chain.from_iterable(result.ids for result in columns)),
        np.concatenate([result.scores for result in columns]) if columns else empty,
        np.concatenate([result.distances for result in columns]) if columns else empty,
        stored,
    )
    chunks = [_chunks_of(result) for result in columns]
    if any(part is not None for part in chunks):
        pairs = zip(chunks, columns, strict=True)
        if any(part is None and len(result.ids) for part, result in pairs):
            return None  # some hits with chunk columns, some without: not one set of columns
        _add_chunks(message, [part for part in chunks if part is not None])
    return message


def _add_chunks(message: shoal_pb2.PackedHits, parts: Sequence[Any]) -> None:
    """The chunk columns of `parts` (each a `ChunkColumns`), one after the other."""
    message.chunks_i32 = b"".join(_i32(part.chunks) for part in parts)
    message.chunk_starts_i32 = b"".join(_i32(part.starts) for part in parts)
    message.chunk_ends_i32 = b"".join(_i32(part.ends) for part in parts)
    if any(part.texts is not None for part in parts):
        for part in parts:
            message.chunk_texts.extend(
                part.texts if part.texts is not None else [""] * len(part.chunks)
            )


def _i32(values: npt.NDArray[np.int32]) -> bytes:
    return np.ascontiguousarray(values, dtype="<i4").tobytes()


def _message(
    counts: Sequence[int],
    ids: Sequence[str],
    scores: npt.NDArray[np.float32],
    distances: npt.NDArray[np.float32],
    documents: Sequence[object] | None,
) -> shoal_pb2.PackedHits:
    message = shoal_pb2.PackedHits(
        counts=counts, ids=ids, scores_f32=_f32(scores), distances_f32=_f32(distances)
    )
    if documents:
        message.documents.extend(cast(Sequence[common_pb2.Document], documents))
    return message
