"""The payload index agrees with `matches`, follows writes, and the planner picks by selectivity."""

import random

import numpy as np
import pytest

from shard.core.filters import AllOf, AnyOf, Condition, Filter, Not, Op, matches
from shard.core.payload_index import PayloadIndex
from shard.core.search_plan import Strategy, filtered_ef, plan

WORDS = ["alpha", "beta", "gamma", "delta", "zeta"]


def random_value(rng: random.Random) -> object:
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice(WORDS)
    if kind == 1:
        return rng.randrange(-3, 4)
    if kind == 2:
        return rng.choice([-1.5, 0.0, 0.5, 2.0, 3.0])
    if kind == 3:
        return rng.random() < 0.5
    if kind == 4:
        return rng.sample(WORDS, rng.randrange(0, 3))
    if kind == 5:
        return [rng.randrange(-3, 4) for _ in range(rng.randrange(1, 4))]
    return [rng.random() < 0.5]


def random_metadata(rng: random.Random) -> dict[str, object]:
    # "s" is mostly strings and "n" mostly numbers, so both dense columns fill up.
    metadata: dict[str, object] = {}
    if rng.random() < 0.8:
        metadata["s"] = rng.choice(WORDS) if rng.random() < 0.8 else random_value(rng)
    if rng.random() < 0.8:
        metadata["n"] = rng.randrange(-3, 4) if rng.random() < 0.8 else random_value(rng)
    for key in ("m", "rare"):
        if rng.random() < (0.6 if key == "m" else 0.02):
            metadata[key] = random_value(rng)
    return metadata


def random_scalar(rng: random.Random) -> str | int | float | bool:
    choices: list[str | int | float | bool] = [rng.choice(WORDS), rng.randrange(-3, 4), 0.5, True]
    return rng.choice([*choices, 2.0, False])


def random_condition(rng: random.Random) -> Condition:
    key = rng.choice(["s", "n", "m", "rare", "absent"])
    op = rng.choice(list(Op))
    if op is Op.EXISTS:
        return Condition(key, op, rng.random() < 0.5)
    if op in (Op.IN, Op.NIN):
        return Condition(key, op, tuple(random_scalar(rng) for _ in range(rng.randrange(1, 4))))
    if op in (Op.GT, Op.GTE, Op.LT, Op.LTE):
        bounds: list[str | int | float] = [rng.choice(WORDS), rng.randrange(-3, 4), 0.5]
        return Condition(key, op, rng.choice(bounds))
    return Condition(key, op, random_scalar(rng))


def random_filter(rng: random.Random, depth: int = 0) -> Filter:
    choice = rng.random()
    if depth >= 3 or choice < 0.5:
        return random_condition(rng)
    if choice < 0.65:
        return Not(random_filter(rng, depth + 1))
    parts = tuple(random_filter(rng, depth + 1) for _ in range(rng.randrange(1, 4)))
    return AllOf(parts) if choice < 0.85 else AnyOf(parts)


def expected_labels(documents: dict[int, dict[str, object]], root: Filter) -> set[int]:
    return {label for label, metadata in documents.items() if matches(root, metadata)}


def found_labels(index: PayloadIndex, root: Filter) -> set[int]:
    mask, count = index.mask(root)
    labels = set(np.flatnonzero(mask).tolist())
    assert count == len(labels)
    return labels


@pytest.mark.parametrize("size", [60, 3000])  # sparse columns only; dense ones as well
def test_the_index_agrees_with_matches_through_puts_overwrites_and_removals(size: int) -> None:
    rng = random.Random(size)
    index = PayloadIndex()
    documents: dict[int, dict[str, object]] = {}
    for label in range(size):
        documents[label] = random_metadata(rng)
        index.put(label, documents[label])
    if size > 1000:
        for key in ("s", "n", "m"):
            column = index.column(key)
            assert column is not None and column.dense
        assert not index.column("rare").dense  # type: ignore[union-attr]
    filters = [random_filter(rng) for _ in range(150)]
    for root in filters:
        assert found_labels(index, root) == expected_labels(documents, root), root
    # Overwrite a third, remove a quarter, add new labels; the index follows.
    for label in rng.sample(sorted(documents), size // 3):
        documents[label] = random_metadata(rng)
        index.put(label, documents[label])
    for label in rng.sample(sorted(documents), size // 4):
        del documents[label]
        index.remove(label)
    for label in range(size, size + size // 5):
        documents[label] = random_metadata(rng)
        index.put(label, documents[label])
    assert index.live_count == len(documents)
    for root in filters:
        assert found_labels(index, root) == expected_labels(documents, root), root


def test_a_write_changes_the_answer_to_a_cached_filter() -> None:
    index = PayloadIndex()
    index.put(1, {"section": "libs"})
    index.put(2, {"section": "doc"})
    libs = Condition("section", Op.EQ, "libs")
    assert found_labels(index, libs) == {1}
    assert found_labels(index, libs) == {1}  # from the cache
    index.put(2, {"section": "libs", "size": 3})  # overwrite
    assert found_labels(index, libs) == {1, 2}
    index.put(1, {"size": 3})  # the overwrite drops the key
    assert found_labels(index, libs) == {2}
    assert found_labels(index, Condition("section", Op.NE, "libs")) == {1}
    index.remove(2)
    assert found_labels(index, libs) == set()
    assert found_labels(index, Condition("size", Op.EQ, 3)) == {1}
    index.remove(2)  # removing twice is harmless
    assert index.live_count == 1
    assert index.keys() == ["size"]  # empty columns go away


def test_true_and_one_are_different_filters_in_the_cache() -> None:
    index = PayloadIndex()
    index.put(1, {"flag": True})
    index.put(2, {"flag": 1})
    assert found_labels(index, Condition("flag", Op.EQ, True)) == {1}
    assert found_labels(index, Condition("flag", Op.EQ, 1)) == {2}
    assert found_labels(index, Condition("flag", Op.EQ, 1.0)) == {2}


def test_masks_cover_labels_beyond_the_initial_space() -> None:
    index = PayloadIndex(label_space=4)
    index.put(5000, {"a": 1})
    mask, count = index.mask(Condition("a", Op.EQ, 1))
    assert count == 1 and mask[5000] and len(mask) == index.label_space > 5000
    assert not mask.flags.writeable  # shared between readers


# -- the planner -----------------------------------------------------------------------


def test_few_matching_documents_are_searched_exactly_and_many_through_the_graph() -> None:
    live = 1_000_000
    assert plan(5, live, k=10, ef=64).exact  # below the floor
    assert plan(3000, live, k=10, ef=64).exact  # cheaper than the walk
    assert not plan(50_000, live, k=10, ef=64).exact
    assert not plan(900_000, live, k=10, ef=64).exact
    small = 2000
    assert plan(200, small, k=10, ef=64).exact
    assert not plan(1000, small, k=10, ef=64).exact
    # A larger k or ef raises the floor.
    assert plan(1000, small, k=10, ef=256).exact


def test_a_strategy_other_than_auto_forces_the_choice() -> None:
    assert not plan(3, 1000, k=10, ef=64, strategy=Strategy.GRAPH).exact
    assert plan(900, 1000, k=10, ef=64, strategy=Strategy.EXACT).exact


def test_ef_grows_as_selectivity_drops_within_bounds() -> None:
    assert filtered_ef(64, 10, 1.0) == 64
    efs = [filtered_ef(64, 10, s) for s in (0.5, 0.1, 0.01, 0.001, 0.000001)]
    assert efs == sorted(efs) and efs[0] > 64
    assert efs[-1] == 128  # at most twice
    assert all(ef % 8 == 0 for ef in efs)  # rounded, so requests share the index's ef
    assert filtered_ef(4000, 10, 0.001) == 4096  # never above the ef limit
    assert filtered_ef(16, 100, 0.5) >= 100  # never below k
