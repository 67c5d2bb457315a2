"""One collection's hnswlib index behind a small interface.

Nothing here is thread-safe on its own: the collection's gate decides who may
call what (queries share, mutations and `set_ef` run alone). Distances follow
hnswlib's convention everywhere, including the exact fallback: cosine and ip
give 1 - similarity, l2 gives the squared Euclidean distance.
"""

from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import numpy.typing as npt

from shoal.errors import DataLoss
from shoal.runtime.cpus import available_cpus

Labels = npt.NDArray[np.uint64]
Vectors = npt.NDArray[np.float32]
Distances = npt.NDArray[np.float32]

INITIAL_CAPACITY = 1024
#: Live vectors compared per step by the exact fallback, to bound its memory.
EXACT_CHUNK = 65_536


def raw_distances(space: str, queries: Vectors, vectors: Vectors) -> Distances:
    """Distances in hnswlib's convention; for cosine both sides must be unit length."""
    dots: Distances = queries @ vectors.T
    if space == "l2":
        query_norms = np.square(queries).sum(axis=1)[:, None]
        vector_norms = np.square(vectors).sum(axis=1)[None, :]
        squared: Distances = np.maximum(query_norms + vector_norms - 2 * dots, 0)
        return squared.astype(np.float32)
    return (1 - dots).astype(np.float32)


def exact_distances(space: str, queries: Vectors, vectors: Vectors) -> Distances:
    """Distances in hnswlib's convention from raw (not normalized) queries and vectors."""
    if space == "cosine":
        queries = _unit(queries)
        vectors = _unit(vectors)
    return raw_distances(space, queries, vectors)


def _unit(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = (vectors / np.maximum(norms, np.float32(1e-30))).astype(np.float32)
    return unit


def nearest_k(
    keys: npt.NDArray[Any], distances: Distances, k: int
) -> tuple[npt.NDArray[Any], Distances]:
    """Per row, the k smallest `distances` (in no order) and their `keys` (same shape);
    rows of at most k are returned whole. One step of an exact search done in chunks."""
    if distances.shape[1] <= k:
        return keys, distances
    keep = np.argpartition(distances, k - 1, axis=1)[:, :k]
    return np.take_along_axis(keys, keep, axis=1), np.take_along_axis(distances, keep, axis=1)


class SearchIncomplete(Exception):
    """hnswlib found fewer than k neighbours (too few reachable live elements)."""


class HnswIndex:
    """An hnswlib index whose deleted slots are reused by later additions."""

    def __init__(
        self, index: hnswlib.Index, space: str, deleted: int, threads: int | None = None
    ) -> None:
        self._index = index
        self.space = space
        # Slots marked deleted and not reused yet: additions fill these first.
        self._deleted = deleted
        # Threads per batch of queries: the CPUs this process may use. Left to itself
        # hnswlib takes every CPU of the machine (std::thread::hardware_concurrency),
        # which in a container limited to a few CPUs means threads queueing for their
        # quota, and it searches a batch of at most 4 x that many queries on one
        # thread: a batch of 100 on a 32-CPU node ran single-threaded.
        self.threads = threads if threads is not None else available_cpus()

    @classmethod
    def create(
        cls, space: str, dimension: int, m: int, ef_construction: int, ef: int, capacity: int = 0
    ) -> "HnswIndex":
        index = hnswlib.Index(space=space, dim=dimension)
        index.init_index(
            max_elements=max(capacity, INITIAL_CAPACITY),
            M=m,
            ef_construction=ef_construction,
            allow_replace_deleted=True,
        )
        index.set_ef(ef)
        return cls(index, space, deleted=0)

    @classmethod
    def load(cls, path: Path, space: str, dimension: int, ef: int, live: int) -> "HnswIndex":
        """Load a saved index holding `live` live elements; DataLoss if it does not fit."""
        index = hnswlib.Index(space=space, dim=dimension)
        try:
            index.load_index(str(path), max_elements=0, allow_replace_deleted=True)
        except (RuntimeError, ValueError, MemoryError) as error:
            raise DataLoss(f"cannot load the index {path}: {error}") from error
        count = int(index.element_count)
        if count < live:
            raise DataLoss(f"index {path} holds {count} elements, fewer than {live} live ids")
        index.set_ef(ef)
        return cls(index, space, deleted=count - live)

    @property
    def capacity(self) -> int:
        return int(self._index.max_elements)

    @property
    def element_count(self) -> int:
        """Slots in use, live or marked deleted."""
        return int(self._index.element_count)

    def set_ef(self, ef: int) -> None:
        self._index.set_ef(ef)

    def add(self, labels: Labels, vectors: Vectors) -> None:
        """Add new labels (never in the index before), reusing deleted slots first."""
        if not len(labels):
            return
        reused = min(len(labels), self._deleted)
        needed = self.element_count + len(labels) - reused
        if needed > self.capacity:
            self._index.resize_index(max(needed, 2 * self.capacity))
        self._index.add_items(vectors, labels, replace_deleted=True)
        self._deleted -= reused

    def update(self, labels: Labels, vectors: Vectors) -> None:
        """Replace the vectors of live labels in place."""
        if len(labels):
            self._index.add_items(vectors, labels, replace_deleted=False)

    def delete(self, labels: Labels) -> None:
        for label in labels.tolist():
            self._index.mark_deleted(label)
        self._deleted += len(labels)

    def search(
        self, queries: Vectors, k: int, allowed: bytes | None = None
    ) -> tuple[Labels, Distances]:
        """k nearest live labels per query, nearest first (ef set beforehand).

        `allowed`, if given, has one byte per label (nonzero: may be returned) and
        covers every label in the index; hnswlib checks it during the walk.
        """
        try:
            if allowed is None:
                labels, distances = self._index.knn_query(queries, k=k, num_threads=self.threads)
            else:
                # The check is a Python call per candidate, under the GIL: one thread per
                # request does as well as several and leaves the other cores to other requests.
                labels, distances = self._index.knn_query(
                    queries, k=k, num_threads=1, filter=allowed.__getitem__
                )
        except RuntimeError as error:
            raise SearchIncomplete(str(error)) from error
        return labels, distances

    def vectors(self, labels: Labels) -> Vectors:
        """The stored vectors of live labels (normalized for cosine, as hnswlib keeps them)."""
        vectors: Vectors = np.asarray(
            self._index.get_items(labels, return_type="numpy"), dtype=np.float32
        )
        return vectors

    def exact_search(self, queries: Vectors, live: Labels, k: int) -> tuple[Labels, Distances]:
        """Exact k nearest among `live`, in hnswlib's distance convention."""
        queries = np.asarray(queries, dtype=np.float32)
        if self.space == "cosine":
            norms = np.linalg.norm(queries, axis=1, keepdims=True)
            queries = queries / np.maximum(norms, np.float32(1e-30))
        best_labels = np.empty((len(queries), 0), dtype=np.uint64)
        best_distances = np.empty((len(queries), 0), dtype=np.float32)
        for start in range(0, len(live), EXACT_CHUNK):
            chunk = live[start : start + EXACT_CHUNK]
            distances = self._distances(queries, self.vectors(chunk))
            labels = np.broadcast_to(chunk, distances.shape)
            best_labels, best_distances = nearest_k(
                np.concatenate([best_labels, labels], axis=1),
                np.concatenate([best_distances, distances], axis=1),
                k,
            )
        order = np.argsort(best_distances, axis=1, kind="stable")[:, :k]
        return (
            np.take_along_axis(best_labels, order, axis=1),
            np.take_along_axis(best_distances, order, axis=1),
        )

    def _distances(self, queries: Vectors, vectors: Vectors) -> Distances:
        return raw_distances(self.space, queries, vectors)

    def save(self, path: Path) -> None:
        self._index.save_index(str(path))
