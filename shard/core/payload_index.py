"""In-memory metadata indexes of one collection, by hnswlib label.

Built from RocksDB when the collection opens and kept current by every write
and delete (under the index gate held alone, together with the HNSW index), it
answers a filter with the boolean mask of matching live labels: its popcount
is the exact matching count the search planner chooses from, its nonzero
entries are the candidates of an exact search, and its bytes are the allow
list hnswlib's filtered search checks labels against.

Masks are cached per filter until the next write, since callers often repeat
one filter (a tenant, a category) query after query.
"""

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from shard.core.filters import (
    NEGATED,
    AllOf,
    AnyOf,
    Condition,
    Filter,
    Not,
    Op,
    TextContains,
    stored_value,
)
from shard.core.payload_columns import Column, Mask, fit
from shoal.errors import InvalidArgument


class TextMasks(Protocol):
    """Evaluates text conditions (the keyword index)."""

    def contains_mask(self, phrase: str, size: int) -> Mask: ...


#: Filters whose masks are kept until the next write.
MASK_CACHE_SIZE = 16


class PayloadIndex:
    """Reads may run concurrently with each other; mutations must run alone."""

    def __init__(self, label_space: int = 0, text: TextMasks | None = None) -> None:
        self._text = text  # None: the collection has no keyword index
        self._live = np.zeros(max(label_space, 1024), dtype=np.bool_)
        self._live_count = 0
        self._columns: dict[str, Column] = {}
        self._keys: dict[int, tuple[str, ...]] = {}  # label -> its indexed keys
        self._key_sets: dict[tuple[str, ...], tuple[str, ...]] = {}  # shared tuples
        self._generation = 0  # bumped by every change, so cached masks expire
        self._cache: OrderedDict[str, tuple[int, Mask, int]] = OrderedDict()
        self._cache_lock = threading.Lock()
        #: The store's write sequence this index reflects (set by the collection).
        self.seq = 0

    @property
    def live_count(self) -> int:
        return self._live_count

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def label_space(self) -> int:
        """Every indexed label is below this; masks have this many entries."""
        return len(self._live)

    def keys(self) -> list[str]:
        return sorted(self._columns)

    def column(self, key: str) -> Column | None:
        return self._columns.get(key)

    # -- changes -----------------------------------------------------------------------

    def put(self, label: int, metadata: Mapping[str, object]) -> None:
        """Index a live document (replacing what `label` held)."""
        self.remove(label)
        if label >= len(self._live):
            grown = np.zeros(max(2 * len(self._live), label + 1), dtype=np.bool_)
            grown[: len(self._live)] = self._live
            self._live = grown
        self._live[label] = True
        self._live_count += 1
        keys = []
        space = len(self._live)
        for key, raw in metadata.items():
            value = stored_value(raw)
            if value is None:
                continue
            column = self._columns.get(key)
            if column is None:
                column = self._columns[key] = Column()
            column.set(label, value, space)
            keys.append(key)
        if keys:
            key_set = tuple(keys)
            self._keys[label] = self._key_sets.setdefault(key_set, key_set)
        self._generation += 1

    def remove(self, label: int) -> None:
        """Forget a document that was deleted (or is about to be replaced)."""
        if label >= len(self._live) or not self._live[label]:
            return
        self._live[label] = False
        self._live_count -= 1
        for key in self._keys.pop(label, ()):
            column = self._columns[key]
            column.remove(label)
            if not column.count:
                del self._columns[key]
        self._generation += 1

    # -- reads -------------------------------------------------------------------------

    def mask(self, root: Filter) -> tuple[Mask, int]:
        """(read-only mask of the live labels matching `root`, how many match)."""
        # repr, not the dataclass: equal dataclasses may differ in kind (True == 1).
        key = repr(root)
        generation = self._generation
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == generation:
                self._cache.move_to_end(key)
                return cached[1], cached[2]
        mask = self._evaluate(root)
        mask.flags.writeable = False
        count = int(np.count_nonzero(mask))
        with self._cache_lock:
            self._cache[key] = (generation, mask, count)
            self._cache.move_to_end(key)
            while len(self._cache) > MASK_CACHE_SIZE:
                self._cache.popitem(last=False)
        return mask, count

    def _evaluate(self, root: Filter) -> Mask:
        """A new (writable) mask of the live labels matching `root`."""
        size = len(self._live)
        if isinstance(root, Not):
            return self._live & ~self._evaluate(root.inner)
        if isinstance(root, AllOf | AnyOf):
            result = self._evaluate(root.parts[0])
            for part in root.parts[1:]:
                if isinstance(root, AllOf):
                    result &= self._evaluate(part)
                else:
                    result |= self._evaluate(part)
            return result
        if isinstance(root, TextContains):
            if self._text is None:
                raise InvalidArgument(
                    "text filters need the collection's keyword index, and this collection"
                    " was created without one"
                )
            return self._live & self._text.contains_mask(root.phrase, size)
        return self._condition(root, size)

    def _condition(self, condition: Condition, size: int) -> Mask:
        column = self._columns.get(condition.key)
        if condition.op is Op.EXISTS:
            present = column.present(size) if column else np.zeros(size, dtype=np.bool_)
            return present if condition.value else self._live & ~present
        positive = column.positive(condition, size) if column else np.zeros(size, np.bool_)
        if condition.op in NEGATED:
            return self._live & ~positive
        return positive

    def live_mask(self) -> Mask:
        return fit(self._live, len(self._live))
