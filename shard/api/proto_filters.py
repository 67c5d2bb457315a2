"""Proto `Filter` -> the core's filter model, validated: a `ValidFilter`
(`shard.core.filters.validated`), the only form the collection takes, so the
core does not check it again.

Conversion itself rejects only what it cannot convert (an empty message, an
unknown operator) and stops at the depth limit before recursing further.

Messages name the offending part by its path in the request, e.g.
`filter.all_of[1].condition: unknown operator 42`.
"""

from shard.core.filters import (
    MAX_FILTER_DEPTH,
    AllOf,
    AnyOf,
    Condition,
    Filter,
    FilterValue,
    Not,
    Op,
    TextContains,
    ValidFilter,
    validated,
)
from shoal.errors import InvalidArgument
from shoal.v1 import common_pb2

_OPS = {
    common_pb2.OPERATOR_EQ: Op.EQ,
    common_pb2.OPERATOR_NE: Op.NE,
    common_pb2.OPERATOR_GT: Op.GT,
    common_pb2.OPERATOR_GTE: Op.GTE,
    common_pb2.OPERATOR_LT: Op.LT,
    common_pb2.OPERATOR_LTE: Op.LTE,
    common_pb2.OPERATOR_IN: Op.IN,
    common_pb2.OPERATOR_NIN: Op.NIN,
    common_pb2.OPERATOR_EXISTS: Op.EXISTS,
}
_OP_NAMES = ", ".join(op.value for op in Op)


def _filter_value(value: common_pb2.Value) -> FilterValue | None:
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    field = getattr(value, kind)
    if kind.endswith("_list"):
        return tuple(field.values)
    return field  # type: ignore[no-any-return]


def _condition(condition: common_pb2.Condition, where: str) -> Condition:
    op = _OPS.get(condition.op)
    if op is None:
        name = (
            "OPERATOR_UNSPECIFIED"
            if condition.op == common_pb2.OPERATOR_UNSPECIFIED
            else str(condition.op)
        )
        raise InvalidArgument(f"{where}.condition: unknown operator {name}; use one of {_OP_NAMES}")
    value = _filter_value(condition.value) if condition.HasField("value") else None
    # None reaches the core's validation, which names the missing value per operator.
    return Condition(condition.key, op, value)  # type: ignore[arg-type]


def _convert(message: common_pb2.Filter, where: str, depth: int) -> Filter:
    kind = message.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument(
            f"{where}: empty filter; set condition, all_of, any_of, negate, text_contains"
            " or text_not_contains"
        )
    if kind == "condition":
        return _condition(message.condition, where)
    if kind == "text_contains":
        return TextContains(message.text_contains)
    if kind == "text_not_contains":
        return Not(TextContains(message.text_not_contains))
    if depth >= MAX_FILTER_DEPTH:
        raise InvalidArgument(
            f"{where}: filters nest deeper than {MAX_FILTER_DEPTH} levels of"
            " all_of / any_of / negate"
        )
    if kind == "negate":
        return Not(_convert(message.negate, f"{where}.negate", depth + 1))
    parts = getattr(message, kind).filters  # none: `validated` says the list is empty
    converted = tuple(
        _convert(part, f"{where}.{kind}[{position}]", depth + 1)
        for position, part in enumerate(parts)
    )
    return AllOf(converted) if kind == "all_of" else AnyOf(converted)


def filter_from_proto(message: common_pb2.Filter, where: str = "filter") -> ValidFilter | None:
    """The validated filter, or None when the message is unset or empty (no filter)."""
    if message.WhichOneof("kind") is None:
        return None
    return validated(_convert(message, where, 0), where)
