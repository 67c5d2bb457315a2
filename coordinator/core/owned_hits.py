"""Reads while partitions move: each group answers only for what it owns.

During a move a partition's records are in two groups (the target fills up
before the switch, the source keeps them until its clean-up), so a search that
merged every group's top-k as it came would see those documents twice. Each
group's answer is cut to the ids whose partition it owns in the topology the
read was routed with: every document is counted once, by the one group that
answers for it, and the owner holds all of it (the target becomes owner only
once the copy is complete).

Counts and keyword statistics are sums, not lists to cut: the coordinator
names the partitions a group holds copies of without owning them
(`Ownership.skipped`) and the shard leaves those out of its sums, so the
cluster's total counts each document once, and BM25 scores during a move are
the ones the cluster scores without one.

To keep the cut from leaving a group short of its true top-k, groups are asked
for `over_fetch(k)` hits while moves are in flight (the merge keeps k).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from coordinator.core.fanout import ShardCall
from coordinator.core.model import MergedHits
from coordinator.core.packed import PackedBatch
from coordinator.core.ports import DocumentMessage, HybridAnswer, RankedHits, ScrollPage
from coordinator.core.replicas import ReplicaGroup
from shoal.limits import MAX_K
from shoal.partitioning import stable_hash
from shoal.topology import Topology


def over_fetch(k: int, topology: Topology) -> int:
    """How many hits to ask each group for, for a top-k."""
    return min(MAX_K, 2 * k) if topology.moves_in_flight else k


@dataclass(frozen=True)
class Ownership:
    """What one group answers for in the topology a read was routed with."""

    group: int
    topology: Topology
    #: The collection's partitions.
    partitions: int

    @property
    def skipped(self) -> tuple[int, ...]:
        """The partitions this group may hold copies of without owning them: a move's
        target before the switch, its source between the switch and the clean-up."""
        topology = self.topology
        held = {p for p, target in topology.moving.items() if target == self.group}
        held.update(p for p, source in topology.leaving.items() if source == self.group)
        return tuple(
            sorted(
                p
                for p in held
                if p < self.partitions and topology.group_of_partition(p) != self.group
            )
        )

    def owns(self, doc_id: str) -> bool:
        partition = stable_hash(doc_id) % self.partitions
        return self.topology.group_of_partition(partition) == self.group

    def _owned(self) -> Callable[[str], bool]:
        """`owns`, remembering each partition's answer (for the many hits of a read)."""
        owners: dict[int, bool] = {}

        def owned(doc_id: str) -> bool:
            partition = stable_hash(doc_id) % self.partitions
            mine = owners.get(partition)
            if mine is None:
                mine = owners[partition] = self.topology.group_of_partition(partition) == self.group
            return mine

        return owned

    def hits(self, answers: Sequence[RankedHits]) -> Sequence[RankedHits]:
        """`answers` (this group's, per query) without hits of partitions it does not own;
        columns stay columns."""
        if isinstance(answers, PackedBatch):
            return self.columns(answers)
        owned = self._owned()
        return [MergedHits([hit for hit in answer.hits if owned(hit.id)]) for answer in answers]

    def columns(self, batch: PackedBatch) -> PackedBatch:
        """`hits` of an answer as columns."""
        owned = self._owned()
        return batch.kept(np.fromiter(map(owned, batch.ids), bool, len(batch.ids)))

    def hybrid(self, answer: HybridAnswer) -> HybridAnswer:
        """A keyword or hybrid answer with both candidate lists cut as `hits` does (the
        statistics come cut by the shard, see `skipped`)."""
        return HybridAnswer(
            self.columns(answer.vector), self.columns(answer.keyword), answer.statistics
        )

    def page(self, page: ScrollPage) -> ScrollPage:
        """A scroll page without the documents this group does not own; it remembers
        where the group's listing stopped, which the merge must not read past."""
        documents: list[DocumentMessage] = [d for d in page.documents if self.owns(d.id)]
        last = page.documents[-1].id if page.documents else ""
        return replace(page, documents=documents, last_listed=last)


T = TypeVar("T")

#: A shard call made for one group: for what it owns while partitions move (see
#: `Ownership`), or for everything it holds (None) while none do.
OwnedCall = Callable[[Ownership | None], ShardCall[T]]


def owned_targets(
    groups: Sequence[ReplicaGroup], topology: Topology, partitions: int, call: OwnedCall[T]
) -> list[tuple[ReplicaGroup, ShardCall[T]]]:
    """Each group with `call(None)` while no partition moves, else with `call` of what
    it owns in `topology` (`partitions`: the collection's), as `fan_out` takes them."""
    if not topology.moves_in_flight:
        return [(group, call(None)) for group in groups]
    return [(group, call(Ownership(group.group, topology, partitions))) for group in groups]
