"""Group search in the coordinator core: the k groups whose best hits rank highest,
each with at most size hits, and whether they are complete."""

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import pytest

from coordinator.core.grouping import check_group_by, first_depth, group
from coordinator.core.model import GroupBy
from coordinator.core.ports import HitMessage
from shoal.errors import InvalidArgument


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    tags: tuple[str, ...]
    document: None = None


def tags(hit: HitMessage, key: str) -> Sequence[tuple[Hashable, object]]:
    assert key == "tag"
    return [(tag, tag) for tag in hit.tags]  # type: ignore[attr-defined]


HITS = [
    Hit("a", 0.9, ("x",)),
    Hit("b", 0.8, ("y",)),
    Hit("c", 0.7, ("x", "z")),
    Hit("d", 0.6, ()),
    Hit("e", 0.5, ("x",)),
    Hit("f", 0.4, ("y",)),
]


def test_groups_in_the_order_of_their_best_hit_each_cut_to_size() -> None:
    grouped, complete = group(HITS, GroupBy("tag", 2, tags), k=2)
    assert [hit.id for hit in grouped.hits] == ["a", "c", "b", "f"]
    assert grouped.groups == ["x", "x", "y", "y"]
    assert complete
    grouped, complete = group(HITS, GroupBy("tag", 2, tags), k=3)
    assert grouped.groups == ["x", "x", "y", "y", "z"]  # c joins both x and z
    assert not complete  # z holds one hit of 2
    grouped, complete = group(HITS[:2], GroupBy("tag", 1, tags), k=5)
    assert [hit.id for hit in grouped.hits] == ["a", "b"] and not complete


def test_sizes_are_checked_and_the_search_starts_deep_enough() -> None:
    with pytest.raises(InvalidArgument, match="group_size"):
        check_group_by(GroupBy("tag", 0, tags), 3)
    with pytest.raises(InvalidArgument, match="empty key"):
        check_group_by(GroupBy("", 1, tags), 3)
    assert first_depth(5, 3) == 30
    assert first_depth(1000, 10) == 1024
