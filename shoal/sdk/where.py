"""Chroma-style `where` dicts <-> the proto `Filter`, for the SDK and the CLI.

A `where` is a dict of clauses, all of which must hold:

    {"category": "AI"}                                   # equality
    {"year": {"$gte": 2020, "$lt": 2024}}                # several operators: all must hold
    {"$and": [{"topic_id": {"$in": [1, 2, 3]}}, {"doc_id": {"$gte": 100}}]}
    {"$or": [{"lang": "en"}, {"lang": {"$exists": False}}]}
    {"$not": {"status": "draft"}}                        # negate a where
    {"status": {"$not": {"$in": ["draft", "spam"]}}}     # negate one key's operators

Operators: $eq $ne $gt $gte $lt $lte (numbers or strings), $in $nin (a
non-empty list), $exists (a bool), plus $and / $or (a non-empty list of
wheres) and $not. Several keys in one dict are an implicit $and (Chroma
wants one key per dict; Shoal takes both). `{}` means no filter.

The document text is matched like Chroma's `where_document`, either in a
separate `where_document` (`{"$contains": "audio"}`, `{"$not_contains":
"beta"}`, `$and` / `$or` of those) or as `$contains` / `$not_contains` clauses
of a `where`. A phrase matches whole words in order, after the collection's
keyword tokenization (case folding, stemming, stop words); it needs the
collection's keyword index.

Semantics (evaluated on the shard): ints and floats compare as numbers; a
list-valued field matches when any element matches, and $ne / $nin match a
list when no element equals / is listed; a document without the key matches
only $ne, $nin, $exists False and negations.

Bad input raises `shoal.errors.InvalidArgument` naming the offending part,
e.g. `where["$and"][1]["price"]["$gt"]: needs a number or string, got a list`.
"""

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.errors import InvalidArgument
from shoal.v1 import common_pb2

#: Levels of $and / $or / $not (implicit $and included) a filter may nest; shards enforce it.
MAX_FILTER_DEPTH = 8

Where = dict[str, Any]

_FIELD_OPS = {
    "$eq": common_pb2.OPERATOR_EQ,
    "$ne": common_pb2.OPERATOR_NE,
    "$gt": common_pb2.OPERATOR_GT,
    "$gte": common_pb2.OPERATOR_GTE,
    "$lt": common_pb2.OPERATOR_LT,
    "$lte": common_pb2.OPERATOR_LTE,
    "$in": common_pb2.OPERATOR_IN,
    "$nin": common_pb2.OPERATOR_NIN,
    "$exists": common_pb2.OPERATOR_EXISTS,
}
_OP_NAMES = {value: key for key, value in _FIELD_OPS.items()}
_RANGE = {"$gt", "$gte", "$lt", "$lte"}
_LOGICAL = ("$and", "$or", "$not")
_TEXT_OPS = ("$contains", "$not_contains")


def _at(path: str, key: object) -> str:
    return f"{path}[{json.dumps(key) if isinstance(key, str) else key}]"


def _kind_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a dict"
    return f"a {type(value).__name__}"


def _nested(depth: int, path: str) -> None:
    if depth >= MAX_FILTER_DEPTH:
        raise InvalidArgument(
            f"{path}: filters nest deeper than {MAX_FILTER_DEPTH} levels of $and / $or / $not"
        )


def _all_of(parts: list[common_pb2.Filter]) -> common_pb2.Filter:
    return common_pb2.Filter(all_of=common_pb2.FilterList(filters=parts))


def _scalar(value: object, path: str, needs: str) -> common_pb2.Value:
    if isinstance(value, bool):
        return common_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return common_pb2.Value(int_value=value)
    if isinstance(value, float):
        if math.isnan(value):
            raise InvalidArgument(f"{path}: NaN compares with nothing")
        return common_pb2.Value(float_value=value)
    if isinstance(value, str):
        return common_pb2.Value(string_value=value)
    raise InvalidArgument(f"{path}: needs {needs}, got {_kind_name(value)}")


def _list(value: object, path: str) -> common_pb2.Value:
    if not isinstance(value, list | tuple):
        raise InvalidArgument(f"{path}: needs a non-empty list of values, got {_kind_name(value)}")
    if not value:
        raise InvalidArgument(f"{path}: needs a non-empty list of values, got an empty list")
    needs = "strings, numbers or bools"
    items = [_scalar(item, _at(path, i), needs) for i, item in enumerate(value)]
    kinds = {item.WhichOneof("kind") for item in items}
    if kinds == {"bool_value"}:
        return common_pb2.Value(bool_list=common_pb2.BoolList(values=[i.bool_value for i in items]))
    if kinds == {"string_value"}:
        strings = [i.string_value for i in items]
        return common_pb2.Value(string_list=common_pb2.StringList(values=strings))
    if kinds == {"int_value"}:
        return common_pb2.Value(int_list=common_pb2.IntList(values=[i.int_value for i in items]))
    if kinds <= {"int_value", "float_value"}:
        numbers = [float(getattr(i, i.WhichOneof("kind") or "")) for i in items]
        return common_pb2.Value(float_list=common_pb2.FloatList(values=numbers))
    raise InvalidArgument(f"{path}: a list must hold only strings, only numbers or only bools")


def _operand(op: str, value: object, path: str) -> common_pb2.Value:
    if op in ("$in", "$nin"):
        return _list(value, path)
    if op == "$exists":
        if not isinstance(value, bool):
            raise InvalidArgument(f"{path}: needs true or false, got {_kind_name(value)}")
        return common_pb2.Value(bool_value=value)
    if op in _RANGE:
        if isinstance(value, bool):
            raise InvalidArgument(f"{path}: needs a number or string, got a bool")
        return _scalar(value, path, "a number or string")
    return _scalar(value, path, "a string, number or bool")


def _field(key: str, spec: object, path: str, depth: int) -> common_pb2.Filter:
    """The conditions on one metadata key: a value (equality) or a dict of operators."""
    if not key:
        raise InvalidArgument(f"{path}: empty key; name a metadata key")
    if isinstance(spec, list | tuple):
        raise InvalidArgument(
            f'{path}: a list cannot be matched directly; use {{"$in": [...]}}'
            " for any of several values"
        )
    if not isinstance(spec, Mapping):
        value = _scalar(spec, path, "a string, number, bool or a dict of operators")
        return common_pb2.Filter(
            condition=common_pb2.Condition(key=key, op=common_pb2.OPERATOR_EQ, value=value)
        )
    if not spec:
        raise InvalidArgument(f'{path}: empty operator dict; give e.g. {{"$eq": value}}')
    if len(spec) > 1:
        _nested(depth, path)
        depth += 1
    parts = []
    for op, operand in spec.items():
        at = _at(path, op)
        if op == "$not":
            _nested(depth, at)
            if not isinstance(operand, Mapping):
                raise InvalidArgument(f"{at}: needs a dict of operators, got {_kind_name(operand)}")
            parts.append(common_pb2.Filter(negate=_field(key, operand, at, depth + 1)))
            continue
        code = _FIELD_OPS.get(op) if isinstance(op, str) else None
        if code is None:
            raise InvalidArgument(
                f"{at}: unknown operator {op!r}; use {', '.join([*_FIELD_OPS, '$not'])}"
            )
        condition = common_pb2.Condition(key=key, op=code, value=_operand(op, operand, at))
        parts.append(common_pb2.Filter(condition=condition))
    return parts[0] if len(parts) == 1 else _all_of(parts)


def _clause(key: object, value: object, path: str, depth: int) -> common_pb2.Filter:
    at = _at(path, key)
    if not isinstance(key, str):
        raise InvalidArgument(f"{at}: keys must be strings")
    if key in ("$and", "$or"):
        _nested(depth, at)
        if not isinstance(value, list | tuple):
            raise InvalidArgument(f"{at}: needs a list of where dicts, got {_kind_name(value)}")
        if not value:
            raise InvalidArgument(f"{at}: empty; give at least one where dict")
        parts = [_where(item, _at(at, i), depth + 1) for i, item in enumerate(value)]
        filters = common_pb2.FilterList(filters=parts)
        if key == "$and":
            return common_pb2.Filter(all_of=filters)
        return common_pb2.Filter(any_of=filters)
    if key == "$not":
        _nested(depth, at)
        return common_pb2.Filter(negate=_where(value, at, depth + 1))
    if key in _TEXT_OPS:
        return _text_filter(key, value, at)
    if key.startswith("$"):
        raise InvalidArgument(
            f"{at}: unknown operator {key!r}; use $and, $or, $not, $contains, $not_contains"
            " or a metadata key"
        )
    return _field(key, value, at, depth)


def _where(where: object, path: str, depth: int) -> common_pb2.Filter:
    if not isinstance(where, Mapping):
        raise InvalidArgument(f"{path}: needs a where dict, got {_kind_name(where)}")
    if not where:
        raise InvalidArgument(f"{path}: empty where dict")
    if len(where) == 1:
        [(key, value)] = where.items()
        return _clause(key, value, path, depth)
    _nested(depth, path)
    return _all_of([_clause(key, value, path, depth + 1) for key, value in where.items()])


def where_to_filter(where: Mapping[str, Any] | None, path: str = "where") -> common_pb2.Filter:
    """The proto Filter for a Chroma-style `where` (None or {}: an empty Filter, no filtering)."""
    if where is None:
        return common_pb2.Filter()
    if isinstance(where, Mapping) and not where:
        return common_pb2.Filter()
    return _where(where, path, 0)


def _text_filter(op: str, phrase: object, path: str) -> common_pb2.Filter:
    if not isinstance(phrase, str) or not phrase.strip():
        raise InvalidArgument(f"{path}: needs a non-empty word or phrase, got {_kind_name(phrase)}")
    if op == "$contains":
        return common_pb2.Filter(text_contains=phrase)
    return common_pb2.Filter(text_not_contains=phrase)


def where_document_to_filter(
    where_document: Mapping[str, Any], path: str = "where_document"
) -> common_pb2.Filter:
    """The proto Filter for a Chroma-style `where_document`: $contains, $not_contains,
    and $and / $or of where_documents."""
    if not isinstance(where_document, Mapping) or len(where_document) != 1:
        raise InvalidArgument(
            f'{path}: needs one clause, e.g. {{"$contains": "phrase"}},'
            f" got {_kind_name(where_document)}"
            + (" with several keys" if isinstance(where_document, Mapping) else "")
        )
    [(key, value)] = where_document.items()
    at = _at(path, key)
    if key in _TEXT_OPS:
        return _text_filter(key, value, at)
    if key in ("$and", "$or"):
        if not isinstance(value, list | tuple) or not value:
            raise InvalidArgument(f"{at}: needs a non-empty list of where_document dicts")
        filters = common_pb2.FilterList(
            filters=[where_document_to_filter(item, _at(at, i)) for i, item in enumerate(value)]
        )
        if key == "$and":
            return common_pb2.Filter(all_of=filters)
        return common_pb2.Filter(any_of=filters)
    raise InvalidArgument(
        f"{at}: unknown operator {key!r}; use $contains, $not_contains, $and, $or"
    )


def combined_filter(
    where: Mapping[str, Any] | None, where_document: Mapping[str, Any] | None
) -> common_pb2.Filter | None:
    """One Filter for a `where` and a `where_document` (both must hold); None for neither."""
    parts = []
    if where:
        parts.append(where_to_filter(where))
    if where_document:
        parts.append(where_document_to_filter(where_document))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else _all_of(parts)


def where_from_json(text: str) -> common_pb2.Filter:
    """The proto Filter for a `where` given as JSON text (the CLI's --where)."""
    try:
        where = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"where is not valid JSON: {error}") from None
    return where_to_filter(where)


def _python_value(value: common_pb2.Value, path: str) -> object:
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument(f"{path}: condition has no value")
    field = getattr(value, kind)
    return list(field.values) if kind.endswith("_list") else field


def _to_where(message: common_pb2.Filter, path: str) -> Where:
    kind = message.WhichOneof("kind")
    if kind == "condition":
        condition = message.condition
        op = _OP_NAMES.get(condition.op)
        if op is None:
            raise InvalidArgument(f"{path}.condition: unknown operator {condition.op}")
        return {condition.key: {op: _python_value(condition.value, f"{path}.condition")}}
    if kind == "negate":
        return {"$not": _to_where(message.negate, f"{path}.negate")}
    if kind == "text_contains":
        return {"$contains": message.text_contains}
    if kind == "text_not_contains":
        return {"$not_contains": message.text_not_contains}
    if kind in ("all_of", "any_of"):
        name = "$and" if kind == "all_of" else "$or"
        parts: Sequence[common_pb2.Filter] = getattr(message, kind).filters
        return {name: [_to_where(part, f"{path}.{kind}[{i}]") for i, part in enumerate(parts)]}
    raise InvalidArgument(f"{path}: empty filter")


def filter_to_where(message: common_pb2.Filter) -> Where:
    """The `where` dict of a proto Filter ({} for an empty one), with explicit operators."""
    if message.WhichOneof("kind") is None:
        return {}
    return _to_where(message, "filter")
