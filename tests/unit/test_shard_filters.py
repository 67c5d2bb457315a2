"""The shard's filter model: proto parsing, validation messages, and what matches means."""

import re

import pytest

from shard.api.proto_filters import filter_from_proto
from shard.core.filters import (
    MAX_FILTER_DEPTH,
    AllOf,
    AnyOf,
    Condition,
    Filter,
    Not,
    Op,
    ValidFilter,
    matches,
    validated,
)
from shoal.errors import InvalidArgument, ResourceExhausted
from shoal.v1 import common_pb2

# -- semantics -------------------------------------------------------------------------

DOC = {
    "section": "libs",
    "size": 3,
    "ratio": 0.5,
    "free": True,
    "tags": ["a", "b"],
    "scores": [1, 7],
    "empty": [],
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (Condition("section", Op.EQ, "libs"), True),
        (Condition("section", Op.EQ, "lib"), False),
        (Condition("section", Op.NE, "lib"), True),
        (Condition("section", Op.GT, "doc"), True),  # strings: lexicographic
        (Condition("section", Op.LT, "doc"), False),
        (Condition("section", Op.GTE, "libs"), True),
        (Condition("section", Op.GT, 1), False),  # a string is no number
        (Condition("section", Op.IN, ("doc", "libs")), True),
        (Condition("section", Op.NIN, ("doc", "libs")), False),
        # ints and floats compare as numbers
        (Condition("size", Op.EQ, 3.0), True),
        (Condition("size", Op.GT, 2.5), True),
        (Condition("size", Op.LTE, 3), True),
        (Condition("size", Op.LT, 3), False),
        (Condition("ratio", Op.IN, (0.5, 2)), True),
        (Condition("ratio", Op.GTE, 1), False),
        (Condition("size", Op.EQ, "3"), False),
        (Condition("size", Op.NE, "3"), True),
        # bools are not numbers, both ways
        (Condition("free", Op.EQ, True), True),
        (Condition("free", Op.EQ, 1), False),
        (Condition("size", Op.EQ, True), False),
        (Condition("free", Op.IN, (False, True)), True),
        (Condition("free", Op.NE, False), True),
        # lists: any element matches; NE / NIN: no element does
        (Condition("tags", Op.EQ, "b"), True),
        (Condition("tags", Op.NE, "b"), False),
        (Condition("tags", Op.NE, "c"), True),
        (Condition("tags", Op.IN, ("c", "a")), True),
        (Condition("tags", Op.NIN, ("c", "a")), False),
        (Condition("tags", Op.NIN, ("c", "d")), True),
        (Condition("scores", Op.GT, 5), True),
        (Condition("scores", Op.LT, 1), False),
        (Condition("empty", Op.EQ, "a"), False),
        (Condition("empty", Op.NE, "a"), True),
        (Condition("empty", Op.EXISTS, True), True),
        # a missing key: only NE, NIN, EXISTS false (and negations) match
        (Condition("missing", Op.EQ, 1), False),
        (Condition("missing", Op.GT, 1), False),
        (Condition("missing", Op.LT, "z"), False),
        (Condition("missing", Op.IN, (1, 2)), False),
        (Condition("missing", Op.NE, 1), True),
        (Condition("missing", Op.NIN, (1, 2)), True),
        (Condition("missing", Op.EXISTS, False), True),
        (Condition("missing", Op.EXISTS, True), False),
        (Condition("size", Op.EXISTS, False), False),
    ],
)
def test_a_condition_matches_by_the_documented_semantics(
    condition: Condition, expected: bool
) -> None:
    validated(condition)
    assert matches(condition, DOC) is expected


def test_and_or_not_combine_conditions() -> None:
    libs = Condition("section", Op.EQ, "libs")
    big = Condition("size", Op.GT, 10)
    assert not matches(AllOf((libs, big)), DOC)
    assert matches(AnyOf((libs, big)), DOC)
    assert matches(Not(big), DOC)
    assert matches(Not(Condition("missing", Op.GT, 1)), DOC)  # negation matches a missing key
    assert matches(AllOf((libs, Not(AnyOf((big, Condition("free", Op.EQ, False)))))), DOC)


# -- validation ------------------------------------------------------------------------


def _nested(depth: int) -> Filter:
    node: Filter = Condition("a", Op.EQ, 1)
    for _ in range(depth):
        node = Not(node)
    return node


C = "filter.condition: operator"
NUMBER_OR_STRING = "needs a number or string"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Condition("a", Op.GT, ("x",)), f"{C} GT {NUMBER_OR_STRING}, got a list"),
        (Condition("a", Op.LTE, True), f"{C} LTE {NUMBER_OR_STRING}, got a bool"),
        (Condition("a", Op.IN, "x"), f"{C} IN needs a list of values, got a string"),
        (Condition("a", Op.NIN, ()), f"{C} NIN needs a non-empty list"),
        (Condition("a", Op.EXISTS, 1), f"{C} EXISTS needs a bool"),
        (
            Condition("a", Op.EQ, ("x", "y")),
            f"{C} EQ needs a single string, number or bool, got a list; use IN",
        ),
        (Condition("a", Op.EQ, float("nan")), f"{C} EQ got NaN"),
        (Condition("", Op.EQ, 1), "filter.condition: empty key"),
        (AllOf(()), "filter.all_of: empty"),
        (AllOf((Condition("a", Op.EQ, 1), AnyOf(()))), "filter.all_of[1].any_of: empty"),
        (
            AnyOf((Condition("a", Op.EQ, 1), AllOf((Condition("b", Op.GT, [1]),)))),  # type: ignore[arg-type]
            f"filter.any_of[1].all_of[0].condition: operator GT {NUMBER_OR_STRING}, got a list",
        ),
        (_nested(MAX_FILTER_DEPTH + 1), "filters nest deeper than 8 levels"),
    ],
)
def test_a_bad_filter_is_rejected_naming_the_part(bad: Filter, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        validated(bad)


def test_nesting_up_to_the_limit_is_fine() -> None:
    validated(_nested(MAX_FILTER_DEPTH))


def test_too_many_values_or_conditions_are_too_large() -> None:
    with pytest.raises(ResourceExhausted, match="limit is 10000"):
        validated(Condition("a", Op.IN, tuple(range(10_001))))
    with pytest.raises(ResourceExhausted, match="more than 256 conditions"):
        validated(AnyOf(tuple(Condition("a", Op.EQ, i) for i in range(257))))


# -- proto parsing ---------------------------------------------------------------------


def _cond(key: str, op: int, **value: object) -> common_pb2.Filter:
    return common_pb2.Filter(
        condition=common_pb2.Condition(key=key, op=op, value=common_pb2.Value(**value))  # type: ignore[arg-type]
    )


def _strings(*values: str) -> common_pb2.StringList:
    return common_pb2.StringList(values=values)


def _list(*filters: common_pb2.Filter) -> common_pb2.FilterList:
    return common_pb2.FilterList(filters=filters)


def test_a_proto_filter_becomes_the_domain_filter() -> None:
    message = common_pb2.Filter(
        all_of=_list(
            _cond("section", common_pb2.OPERATOR_IN, string_list=_strings("libs", "doc")),
            common_pb2.Filter(negate=_cond("size", common_pb2.OPERATOR_GTE, int_value=100)),
            common_pb2.Filter(
                any_of=_list(
                    _cond("free", common_pb2.OPERATOR_EQ, bool_value=True),
                    _cond("ratio", common_pb2.OPERATOR_LT, float_value=0.25),
                    _cond("arch", common_pb2.OPERATOR_EXISTS, bool_value=False),
                )
            ),
        )
    )
    assert filter_from_proto(message) == ValidFilter(
        AllOf(
            (
                Condition("section", Op.IN, ("libs", "doc")),
                Not(Condition("size", Op.GTE, 100)),
                AnyOf(
                    (
                        Condition("free", Op.EQ, True),
                        Condition("ratio", Op.LT, 0.25),
                        Condition("arch", Op.EXISTS, False),
                    )
                ),
            )
        )
    )


def test_an_unset_or_empty_filter_means_no_filter() -> None:
    assert filter_from_proto(common_pb2.Filter()) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            _cond("a", common_pb2.OPERATOR_UNSPECIFIED, int_value=1),
            "filter.condition: unknown operator OPERATOR_UNSPECIFIED",
        ),
        (_cond("a", 42, int_value=1), "filter.condition: unknown operator 42"),
        (
            common_pb2.Filter(
                all_of=_list(
                    _cond("a", common_pb2.OPERATOR_EQ, int_value=1),
                    _cond("b", common_pb2.OPERATOR_GT, int_list=common_pb2.IntList(values=[1])),
                )
            ),
            f"filter.all_of[1].condition: operator GT {NUMBER_OR_STRING}, got a list",
        ),
        (common_pb2.Filter(any_of=_list()), "filter.any_of: empty"),
        (common_pb2.Filter(negate=common_pb2.Filter()), "filter.negate: empty filter"),
        (
            common_pb2.Filter(
                condition=common_pb2.Condition(key="a", op=common_pb2.OPERATOR_EXISTS)
            ),
            f"{C} EXISTS needs a bool (whether 'a' must be present), got nothing",
        ),
        (
            _cond("a", common_pb2.OPERATOR_IN, int_value=3),
            f"{C} IN needs a list of values, got a number",
        ),
    ],
)
def test_a_bad_proto_filter_is_rejected_naming_the_part(
    message: common_pb2.Filter, expected: str
) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(expected)):
        filter_from_proto(message)


def test_a_too_deep_proto_filter_is_rejected_before_it_is_walked() -> None:
    message = _cond("a", common_pb2.OPERATOR_EQ, int_value=1)
    for _ in range(50):
        message = common_pb2.Filter(negate=message)
    with pytest.raises(InvalidArgument, match=r"filter(\.negate){8}: filters nest deeper than 8"):
        filter_from_proto(message)
