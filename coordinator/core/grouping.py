"""Group search: the best hits grouped by a metadata key (Qdrant's search groups).

The search runs deeper than asked (`depth`), its hits (with their metadata)
are grouped by the value of the key, and the k groups whose best hit ranks
highest are kept, each with its `size` best hits. When the candidates hold
fewer than k groups, or one of the k is not full, and more candidates exist,
the caller searches deeper (doubling, up to the largest k a search takes). The
k groups never change on a deeper search (a group ranks by its best hit, which
comes first), only fill up.
"""

from collections.abc import Hashable, Sequence

from coordinator.core.model import GroupBy, GroupedHits
from coordinator.core.ports import HitMessage
from shoal import limits
from shoal.errors import InvalidArgument

#: Groups and group size at most: k groups x size hits must fit one search.
MAX_GROUP_SIZE = 100


def check_group_by(group_by: GroupBy, k: int) -> None:
    if not group_by.key:
        raise InvalidArgument("group_by is an empty key; name a metadata key")
    if not 1 <= group_by.size <= MAX_GROUP_SIZE:
        raise InvalidArgument(
            f"group_size is {group_by.size}; it must be between 1 and {MAX_GROUP_SIZE}"
        )
    limits.check_k(k)


def first_depth(k: int, size: int) -> int:
    """Candidates to start with: room for k full groups twice over."""
    return min(limits.MAX_K, max(2 * k * size, k + 16))


def group(hits: Sequence[HitMessage], group_by: GroupBy, k: int) -> tuple[GroupedHits, bool]:
    """The k best groups of `hits` (best first), and whether they are complete: k
    groups, each of `size` hits."""
    order: list[Hashable] = []
    members: dict[Hashable, list[HitMessage]] = {}
    shown: dict[Hashable, object] = {}
    for hit in hits:
        for key, value in group_by.values(hit, group_by.key):
            found = members.get(key)
            if found is None:
                order.append(key)
                members[key] = found = []
                shown[key] = value
            if len(found) < group_by.size:
                found.append(hit)
    kept = order[:k]
    flat: list[HitMessage] = []
    values: list[object] = []
    for key in kept:
        flat.extend(members[key])
        values.extend([shown[key]] * len(members[key]))
    complete = len(kept) == k and all(len(members[key]) == group_by.size for key in kept)
    return GroupedHits(flat, values), complete
