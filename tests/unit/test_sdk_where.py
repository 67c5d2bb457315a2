"""Chroma-style `where` dicts <-> proto Filter (shoal.sdk.where), and the errors for bad ones."""

import re
from typing import Any

import pytest

from shoal.errors import InvalidArgument
from shoal.sdk.where import (
    MAX_FILTER_DEPTH,
    filter_to_where,
    where_from_json,
    where_to_filter,
)
from shoal.v1 import common_pb2


def condition(key: str, op: int, **value: Any) -> common_pb2.Filter:
    return common_pb2.Filter(
        condition=common_pb2.Condition(
            key=key,
            op=op,  # type: ignore[arg-type]
            value=common_pb2.Value(**value),
        )
    )


def all_of(*filters: common_pb2.Filter) -> common_pb2.Filter:
    return common_pb2.Filter(all_of=common_pb2.FilterList(filters=filters))


def any_of(*filters: common_pb2.Filter) -> common_pb2.Filter:
    return common_pb2.Filter(any_of=common_pb2.FilterList(filters=filters))


def test_a_bare_value_is_equality() -> None:
    assert where_to_filter({"category": "AI"}) == condition(
        "category", common_pb2.OPERATOR_EQ, string_value="AI"
    )
    assert where_to_filter({"n": 3}) == condition("n", common_pb2.OPERATOR_EQ, int_value=3)
    assert where_to_filter({"x": 0.5}) == condition("x", common_pb2.OPERATOR_EQ, float_value=0.5)
    assert where_to_filter({"ok": True}) == condition("ok", common_pb2.OPERATOR_EQ, bool_value=True)


def test_the_chroma_tutorial_filter_converts() -> None:
    where = {"$and": [{"topic_id": {"$in": [1, 2, 3]}}, {"doc_id": {"$gte": 100}}]}
    assert where_to_filter(where) == all_of(
        condition(
            "topic_id", common_pb2.OPERATOR_IN, int_list=common_pb2.IntList(values=[1, 2, 3])
        ),
        condition("doc_id", common_pb2.OPERATOR_GTE, int_value=100),
    )


@pytest.mark.parametrize(
    ("op", "code"),
    [
        ("$eq", common_pb2.OPERATOR_EQ),
        ("$ne", common_pb2.OPERATOR_NE),
        ("$gt", common_pb2.OPERATOR_GT),
        ("$gte", common_pb2.OPERATOR_GTE),
        ("$lt", common_pb2.OPERATOR_LT),
        ("$lte", common_pb2.OPERATOR_LTE),
    ],
)
def test_every_comparison_operator_converts(op: str, code: int) -> None:
    assert where_to_filter({"size": {op: 10}}) == condition("size", code, int_value=10)
    assert where_to_filter({"name": {op: "m"}}) == condition("name", code, string_value="m")


def test_lists_keep_their_type_and_numbers_may_mix() -> None:
    assert where_to_filter({"s": {"$nin": ["a", "b"]}}) == condition(
        "s", common_pb2.OPERATOR_NIN, string_list=common_pb2.StringList(values=["a", "b"])
    )
    assert where_to_filter({"x": {"$in": [1, 2.5]}}) == condition(
        "x", common_pb2.OPERATOR_IN, float_list=common_pb2.FloatList(values=[1.0, 2.5])
    )
    assert where_to_filter({"b": {"$in": [True]}}) == condition(
        "b", common_pb2.OPERATOR_IN, bool_list=common_pb2.BoolList(values=[True])
    )


def test_or_not_exists_and_implicit_and() -> None:
    lang_en = condition("lang", common_pb2.OPERATOR_EQ, string_value="en")
    no_lang = condition("lang", common_pb2.OPERATOR_EXISTS, bool_value=False)
    where = {"$or": [{"lang": "en"}, {"lang": {"$exists": False}}]}
    assert where_to_filter(where) == any_of(lang_en, no_lang)
    assert where_to_filter({"$not": {"lang": "en"}}) == common_pb2.Filter(negate=lang_en)
    # Several keys, or several operators on one key: all must hold.
    assert where_to_filter({"lang": "en", "year": {"$gte": 2020, "$lt": 2024}}) == all_of(
        lang_en,
        all_of(
            condition("year", common_pb2.OPERATOR_GTE, int_value=2020),
            condition("year", common_pb2.OPERATOR_LT, int_value=2024),
        ),
    )
    # A key's operators can be negated in place.
    assert where_to_filter({"lang": {"$not": {"$eq": "en"}}}) == common_pb2.Filter(negate=lang_en)


def test_no_where_is_no_filter() -> None:
    assert where_to_filter(None) == common_pb2.Filter()
    assert where_to_filter({}) == common_pb2.Filter()
    assert filter_to_where(common_pb2.Filter()) == {}


@pytest.mark.parametrize(
    "where",
    [
        {"a": {"$eq": 1}},
        {"$and": [{"a": {"$in": ["x", "y"]}}, {"$not": {"b": {"$exists": True}}}]},
        {"$or": [{"a": {"$lt": 0.5}}, {"$and": [{"b": {"$ne": False}}, {"c": {"$nin": [1, 2]}}]}]},
    ],
)
def test_filter_to_where_round_trips(where: dict[str, Any]) -> None:
    assert filter_to_where(where_to_filter(where)) == where
    assert where_to_filter(filter_to_where(where_to_filter(where))) == where_to_filter(where)


def nested(depth: int) -> dict[str, Any]:
    where: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        where = {"$not": where}
    return where


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"a": {"$gt": [1]}}, 'where["a"]["$gt"]: needs a number or string, got a list'),
        ({"a": {"$lte": True}}, 'where["a"]["$lte"]: needs a number or string, got a bool'),
        ({"a": {"$in": 3}}, 'where["a"]["$in"]: needs a non-empty list of values, got a number'),
        ({"a": {"$nin": []}}, 'where["a"]["$nin"]: needs a non-empty list of values, got an empty'),
        ({"a": {"$in": [1, "x"]}}, 'where["a"]["$in"]: a list must hold only strings'),
        ({"a": {"$in": [None]}}, 'where["a"]["$in"][0]: needs strings, numbers or bools, got null'),
        ({"a": {"$exists": "yes"}}, 'where["a"]["$exists"]: needs true or false, got a string'),
        ({"a": {"$eq": float("nan")}}, 'where["a"]["$eq"]: NaN compares with nothing'),
        ({"a": {"$like": "x"}}, 'where["a"]["$like"]: unknown operator \'$like\''),
        ({"$nor": [{"a": 1}]}, "where[\"$nor\"]: unknown operator '$nor'"),
        ({"$and": []}, 'where["$and"]: empty'),
        ({"$or": {"a": 1}}, 'where["$or"]: needs a list of where dicts, got a dict'),
        ({"$and": [{"a": 1}, {}]}, 'where["$and"][1]: empty where dict'),
        ({"$and": [{"a": 1}, {"b": {"$gt": None}}]}, 'where["$and"][1]["b"]["$gt"]: needs a num'),
        ({"a": [1, 2]}, 'where["a"]: a list cannot be matched directly; use {"$in": [...]}'),
        ({"a": {}}, 'where["a"]: empty operator dict'),
        ({"a": None}, 'where["a"]: needs a string, number, bool or a dict of operators, got null'),
        ({"": 1}, 'where[""]: empty key'),
        ({"$not": {"a": {"$not": 3}}}, 'where["$not"]["a"]["$not"]: needs a dict of operators'),
        ([{"a": 1}], "where: needs a where dict, got a list"),
        (nested(MAX_FILTER_DEPTH + 1), "filters nest deeper than 8 levels"),
    ],
)
def test_a_bad_where_names_the_offending_part(where: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        where_to_filter(where)


def test_nesting_to_the_limit_is_fine_and_implicit_ands_count() -> None:
    where_to_filter(nested(MAX_FILTER_DEPTH))
    # Two keys at the innermost level add one more level of and.
    deep: dict[str, Any] = {"a": 1, "b": 2}
    for _ in range(MAX_FILTER_DEPTH - 1):
        deep = {"$not": deep}
    where_to_filter(deep)
    with pytest.raises(InvalidArgument, match="nest deeper"):
        where_to_filter({"$not": deep})


def test_where_from_json_is_the_cli_form() -> None:
    assert where_from_json('{"section": {"$in": ["libs"]}}') == condition(
        "section", common_pb2.OPERATOR_IN, string_list=common_pb2.StringList(values=["libs"])
    )
    with pytest.raises(InvalidArgument, match="where is not valid JSON"):
        where_from_json("{section: libs}")


def test_filter_to_where_rejects_an_unknown_operator() -> None:
    bad = all_of(
        condition("a", common_pb2.OPERATOR_EQ, int_value=1), condition("b", 99, int_value=1)
    )
    with pytest.raises(InvalidArgument, match=re.escape("filter.all_of[1].condition: unknown")):
        filter_to_where(bad)
