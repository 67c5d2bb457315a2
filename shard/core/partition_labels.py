"""Which partition each label's document belongs to, for reads that leave partitions out.

While a partition moves, a group may hold copies of a partition it does not
own (the target before the switch, the source until its clean-up); the
coordinator then asks for counts and keyword statistics without those
partitions (`skip_partitions`), so the groups' sums count every document once.

The partition of an id never changes and a label never passes to another id
(labels are handed out in increasing order and stored with the record), so the
map only grows: it is built from the label -> id map on first use, then each
document added while it exists is noted (under the index gate held alone), and
a rebuilt index (new labels) drops it. Building costs one hash per live
document, once; a read then costs a numpy `isin` over the label space.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from shard.core.payload_columns import Mask
from shoal.errors import InvalidArgument
from shoal.limits import MAX_PARTITIONS
from shoal.partitioning import partition_of

_UNKNOWN = -1  # a label no live document holds (now or when the map was built)


def check_skip_partitions(skip: Sequence[int]) -> None:
    if len(skip) > MAX_PARTITIONS:
        raise InvalidArgument(
            f"{len(skip)} partitions to skip; there are at most {MAX_PARTITIONS} partitions"
        )


class PartitionLabels:
    """Reads may run concurrently (the index gate shared); `note` and `reset` run with
    the gate held alone."""

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._of: npt.NDArray[np.int32] | None = None

    @property
    def built(self) -> bool:
        """Whether the map exists (else the next read that skips builds it)."""
        return self._of is not None

    def reset(self) -> None:
        """The labels were rebuilt: build the map again on next use."""
        self._of = None

    def note(self, doc_id: str, first: int, chunks: int) -> None:
        """A document added at labels first .. first + chunks - 1."""
        of = self._of
        if of is None or self._partitions < 1:
            return
        end = first + chunks
        if end > len(of):
            grown = np.full(max(2 * len(of), end), _UNKNOWN, dtype=np.int32)
            grown[: len(of)] = of
            self._of = of = grown
        of[first:end] = partition_of(doc_id, self._partitions)

    def skipped(self, skip: Sequence[int], size: int, ids: Mapping[int, str]) -> Mask | None:
        """The labels (of `size`) whose document is in a partition of `skip`; None
        when none can be (nothing to skip, or no partition of this collection)."""
        check_skip_partitions(skip)
        wanted = [p for p in set(skip) if 0 <= p < self._partitions]
        if not wanted:
            return None
        of = self._of
        if of is None:
            of = self._built(ids)
        mask = np.zeros(size, dtype=np.bool_)
        count = min(size, len(of))
        mask[:count] = np.isin(of[:count], np.asarray(wanted, dtype=np.int32))
        return mask

    def _built(self, ids: Mapping[int, str]) -> npt.NDArray[np.int32]:
        """The map of every live label (`ids`: label -> id, chunks included)."""
        of = np.full(max(ids, default=0) + 1, _UNKNOWN, dtype=np.int32)
        partitions = self._partitions
        seen: dict[str, int] = {}
        for label, doc_id in ids.items():
            partition = seen.get(doc_id)
            if partition is None:
                partition = seen[doc_id] = partition_of(doc_id, partitions)
            of[label] = partition
        self._of = of
        return of
