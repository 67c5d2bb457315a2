"""Searches while partitions move: each group's hits count only for what it owns.

During a move a partition's records are in two groups (the target fills up
before the switch, the source keeps them until its clean-up), so a search that
merged every group's top-k as it came would see those documents twice. Each
group's answer is cut to the ids whose partition it owns in the topology the
search was routed with: every document is counted once, by the one group that
answers for it, and the owner holds all of it (the target becomes owner only
once the copy is complete).

To keep the cut from leaving a group short of its true top-k, groups are asked
for `over_fetch(k)` hits while moves are in flight (the merge keeps k).
"""

from collections.abc import Sequence

from coordinator.core.model import MergedHits
from coordinator.core.ports import HybridAnswer, RankedHits
from shoal.limits import MAX_K
from shoal.partitioning import stable_hash
from shoal.topology import Topology


def over_fetch(k: int, topology: Topology) -> int:
    """How many hits to ask each group for, for a top-k."""
    return min(MAX_K, 2 * k) if topology.moves_in_flight else k


def owned_only(
    answers: Sequence[RankedHits], group: int, topology: Topology, partitions: int
) -> list[RankedHits]:
    """`answers` (one group's, per query) without hits of partitions it does not own."""
    owners: dict[int, int] = {}

    def owns(doc_id: str) -> bool:
        partition = stable_hash(doc_id) % partitions
        owner = owners.get(partition)
        if owner is None:
            owner = owners[partition] = topology.group_of_partition(partition)
        return owner == group

    return [MergedHits([hit for hit in answer.hits if owns(hit.id)]) for answer in answers]


def owned_hybrid(
    answer: HybridAnswer, group: int, topology: Topology, partitions: int
) -> HybridAnswer:
    """A keyword or hybrid answer with both candidate lists cut as `owned_only` does."""
    return HybridAnswer(
        owned_only(answer.vector, group, topology, partitions),
        owned_only(answer.keyword, group, topology, partitions),
        answer.statistics,
    )
