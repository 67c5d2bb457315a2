"""Merging the per-group top-k lists of a search into one top-k.

Documents live in exactly one group, so the global top-k is the top-k of the
union of the groups' top-k lists. Ties in score are broken by id, so a merge
gives one answer whatever order the groups replied in.
"""

from collections.abc import Sequence
from itertools import chain
from operator import attrgetter
from typing import TypeVar

from coordinator.core.model import MergedHits
from coordinator.core.ports import HitMessage, RankedHits

H = TypeVar("H", bound=HitMessage)

_BY_ID = attrgetter("id")
_BY_SCORE = attrgetter("score")


def merge_top_k(per_group: Sequence[Sequence[H]], k: int) -> list[H]:
    """The k best hits of all groups, best first (higher score, then lower id)."""
    lists = [hits for hits in per_group if hits]
    if not lists:
        return []
    if len(lists) == 1:
        return list(lists[0][:k])
    # Two stable sorts (id, then score descending) beat one sort on a tuple key.
    merged = sorted(chain.from_iterable(lists), key=_BY_ID)
    merged.sort(key=_BY_SCORE, reverse=True)
    del merged[k:]
    return merged


def merge_batches(per_group: Sequence[Sequence[RankedHits]], k: int) -> list[RankedHits]:
    """Merge per query: per_group[g][i] is group g's answer to query i.

    A single group's answers are already the result and are passed through.
    """
    if len(per_group) == 1:
        answers = per_group[0]
        if all(len(answer.hits) <= k for answer in answers):
            return list(answers)
        return [MergedHits(list(answer.hits[:k])) for answer in answers]
    return [
        MergedHits(merge_top_k([answer.hits for answer in answers], k))
        for answers in zip(*per_group, strict=True)
    ]
