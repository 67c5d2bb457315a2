"""Metadata filters: the domain model, its validation, and what "matches" means.

Semantics, shared by the payload index (vectorized) and `matches` (one document):

- Numbers compare as numbers: ints and floats are both taken as 64-bit floats,
  so 3 == 3.0 (and ints beyond 2**53 lose precision). Strings compare with
  strings (GT/LT lexicographically, by code point). Bools match only EQ, NE,
  IN and NIN, and only bools: True is not 1. A value of another kind than the
  condition's never matches a positive operator.
- A list value matches EQ, IN and the range operators when ANY element does.
  NE and NIN are the negations of EQ and IN: a list matches NE when no element
  equals the value, NIN when no element is in the list (as in Chroma and
  Qdrant's must-not).
- A document without the key matches only NE, NIN, EXISTS false and negations.

A `TextContains` condition matches the document text, not its metadata: the
phrase's terms in order, by the collection's keyword tokenization (the keyword
index evaluates it; see `keyword_index`). A document without text contains
nothing.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from shoal.errors import InvalidArgument, ResourceExhausted

#: Levels of all_of / any_of / negate a filter may nest.
MAX_FILTER_DEPTH = 8
#: Conditions in one filter.
MAX_FILTER_CONDITIONS = 256
#: Values in one IN / NIN list.
MAX_FILTER_VALUES = 10_000
#: Characters in one text filter phrase.
MAX_PHRASE_CHARS = 1_000

Scalar = str | int | float | bool
FilterValue = Scalar | tuple[Scalar, ...]


class Op(Enum):
    EQ = "EQ"
    NE = "NE"
    GT = "GT"
    GTE = "GTE"
    LT = "LT"
    LTE = "LTE"
    IN = "IN"
    NIN = "NIN"
    EXISTS = "EXISTS"


RANGE_OPS = frozenset({Op.GT, Op.GTE, Op.LT, Op.LTE})


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    op: Op
    value: FilterValue  # a scalar; a tuple for IN / NIN; a bool for EXISTS


@dataclass(frozen=True, slots=True)
class TextContains:
    phrase: str


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple["Filter", ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple["Filter", ...]


@dataclass(frozen=True, slots=True)
class Not:
    inner: "Filter"


Filter = Condition | TextContains | AllOf | AnyOf | Not


@dataclass(frozen=True, slots=True)
class ValidFilter:
    """A filter that passed `validated`, the one way to make one.

    The collection's reads take filters only in this form, so whoever hands one
    over has checked it, once: the shard's api layer while converting the
    request, an in-process caller (a test) by calling `validated`. Frozen, and
    validity depends on nothing but the filter, so it cannot go stale.
    """

    root: Filter


#: Whether one document's text holds a phrase (see `matches`).
TextMatcher = Callable[[str], bool]


def _no_text(phrase: str) -> bool:
    return False


# -- validation ------------------------------------------------------------------------


def kind_name(value: object) -> str:
    """How a message names the kind of a value."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, tuple | list):
        return "a list"
    return f"a {type(value).__name__}"


def _check_scalar(value: object, where: str, op: Op, allowed: str) -> None:
    if isinstance(value, float) and math.isnan(value):
        raise InvalidArgument(f"{where}: operator {op.value} got NaN, which compares with nothing")
    if isinstance(value, bool) and op in RANGE_OPS:
        raise InvalidArgument(f"{where}: operator {op.value} needs {allowed}, got a bool")
    if not isinstance(value, str | int | float):
        raise InvalidArgument(
            f"{where}: operator {op.value} needs {allowed}, got {kind_name(value)}"
        )


def _check_condition(condition: Condition, where: str) -> None:
    where = f"{where}.condition"
    op, value = condition.op, condition.value
    if not condition.key:
        raise InvalidArgument(f"{where}: empty key; name a metadata key")
    if op is Op.EXISTS:
        if not isinstance(value, bool):
            raise InvalidArgument(
                f"{where}: operator EXISTS needs a bool (whether {condition.key!r} must be"
                f" present), got {kind_name(value)}"
            )
    elif op in (Op.IN, Op.NIN):
        if not isinstance(value, tuple):
            raise InvalidArgument(
                f"{where}: operator {op.value} needs a list of values, got {kind_name(value)}"
            )
        if not value:
            raise InvalidArgument(f"{where}: operator {op.value} needs a non-empty list")
        if len(value) > MAX_FILTER_VALUES:
            raise ResourceExhausted(
                f"{where}: operator {op.value} has {len(value)} values; the limit is"
                f" {MAX_FILTER_VALUES}"
            )
        for item in value:
            _check_scalar(item, where, op, "a list of strings, numbers or bools")
    elif op in RANGE_OPS:
        _check_scalar(value, where, op, "a number or string")
    else:
        what = "a single string, number or bool"
        if isinstance(value, tuple):
            use = "IN" if op is Op.EQ else "NIN"
            raise InvalidArgument(
                f"{where}: operator {op.value} needs {what}, got a list; use {use}"
            )
        _check_scalar(value, where, op, what)


def validated(root: Filter, where: str = "filter") -> ValidFilter:
    """`root` as a ValidFilter; InvalidArgument naming the offending part otherwise
    (e.g. `filter.all_of[1].condition`)."""
    conditions = 0
    # An explicit stack, so a deep filter fails on its depth, not on Python's recursion limit.
    stack: list[tuple[Filter, str, int]] = [(root, where, 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, TextContains):
            conditions += 1
            if not node.phrase.strip():
                raise InvalidArgument(f"{path}: empty text phrase; give a word or phrase")
            if len(node.phrase) > MAX_PHRASE_CHARS:
                raise InvalidArgument(
                    f"{path}: text phrase has {len(node.phrase)} characters; the limit is"
                    f" {MAX_PHRASE_CHARS}"
                )
            continue
        if isinstance(node, Condition):
            conditions += 1
            if conditions > MAX_FILTER_CONDITIONS:
                raise ResourceExhausted(
                    f"{where}: more than {MAX_FILTER_CONDITIONS} conditions in one filter"
                )
            _check_condition(node, path)
            continue
        if depth >= MAX_FILTER_DEPTH:
            raise InvalidArgument(
                f"{path}: filters nest deeper than {MAX_FILTER_DEPTH} levels of"
                " all_of / any_of / negate"
            )
        if isinstance(node, Not):
            stack.append((node.inner, f"{path}.negate", depth + 1))
            continue
        name = "all_of" if isinstance(node, AllOf) else "any_of"
        if not node.parts:
            raise InvalidArgument(f"{path}.{name}: empty; give at least one filter")
        for position, part in reversed(list(enumerate(node.parts))):
            stack.append((part, f"{path}.{name}[{position}]", depth + 1))
    return ValidFilter(root)


# -- semantics on one document -----------------------------------------------------------

#: A stored metadata value as the filters see it: bools stay bools, numbers are floats.
Stored = str | float | bool | tuple["str | float | bool", ...]


def stored_value(value: object) -> Stored | None:
    """A metadata value in the form the filters compare; None for a kind they ignore."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        items = [stored_value(item) for item in value]
        return tuple(item for item in items if item is not None and not isinstance(item, tuple))
    return None


def _scalar(value: Scalar) -> str | float | bool:
    return value if isinstance(value, bool | str) else float(value)


def _equal(stored: str | float | bool, wanted: str | float | bool) -> bool:
    # bool is an int in Python: keep bools apart from numbers both ways.
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored is wanted
    return type(stored) is type(wanted) and stored == wanted


def _in_range(stored: str | float | bool, op: Op, bound: str | float) -> bool:
    if isinstance(stored, bool) or type(stored) is not type(bound):
        return False
    if op is Op.GT:
        return stored > bound  # type: ignore[operator]
    if op is Op.GTE:
        return stored >= bound  # type: ignore[operator]
    if op is Op.LT:
        return stored < bound  # type: ignore[operator]
    return stored <= bound  # type: ignore[operator]


def positive_match(condition: Condition, value: Stored) -> bool:
    """Whether a present value satisfies EQ / IN / a range / EXISTS (NE, NIN: use EQ, IN)."""
    items = value if isinstance(value, tuple) else (value,)
    op = condition.op
    if op is Op.EXISTS:
        return True
    if op in (Op.EQ, Op.NE):
        wanted = _scalar(condition.value)  # type: ignore[arg-type]
        return any(_equal(item, wanted) for item in items)
    if op in (Op.IN, Op.NIN):
        choices = [_scalar(choice) for choice in condition.value]  # type: ignore[union-attr]
        return any(_equal(item, choice) for item in items for choice in choices)
    bound = _scalar(condition.value)  # type: ignore[arg-type]
    assert not isinstance(bound, bool)
    return any(_in_range(item, op, bound) for item in items)


NEGATED = {Op.NE: Op.EQ, Op.NIN: Op.IN}


def matches(
    root: Filter, metadata: Mapping[str, object], text_holds: TextMatcher = _no_text
) -> bool:
    """Whether one document's metadata (and text, through `text_holds`) satisfies the filter."""
    if isinstance(root, AllOf):
        return all(matches(part, metadata, text_holds) for part in root.parts)
    if isinstance(root, AnyOf):
        return any(matches(part, metadata, text_holds) for part in root.parts)
    if isinstance(root, Not):
        return not matches(root.inner, metadata, text_holds)
    if isinstance(root, TextContains):
        return text_holds(root.phrase)
    raw = metadata.get(root.key)
    value = None if raw is None else stored_value(raw)
    if root.op is Op.EXISTS:
        return (value is not None) is root.value
    present = value is not None and positive_match(root, value)
    return not present if root.op in NEGATED else present
