"""One metadata key's values by index label, answering a condition with a boolean mask.

A key held by few documents stays sparse (a dict, evaluated in Python); once
it is common it becomes dense numpy columns (numbers as float64, strings as
int32 codes, bools as int8) that a condition scans vectorized. List values
keep their own dict plus, per element, a posting set, so EQ / IN on lists
cost what they match and ranges on lists cost one Python check per list.

Conditions are answered positively here (EQ for NE, IN for NIN); the payload
index turns them into their negations over the live documents.
"""

import numpy as np
import numpy.typing as npt

from shard.core.filters import RANGE_OPS, Condition, Op, Stored, positive_match

Mask = npt.NDArray[np.bool_]

#: A key stays sparse up to this many documents, or 1/32 of the label space if more.
SPARSE_LIMIT = 512
_NO_CODE = -1
_NO_BOOL = -1

Token = tuple[str, str | float | bool]


def _token(value: str | float | bool) -> Token:
    # Separate kinds: in Python True == 1.0, but a bool never equals a number here.
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, str):
        return ("s", value)
    return ("n", value)


def fit(array: npt.NDArray[np.bool_], size: int) -> Mask:
    """A new mask of `size` entries: `array` cut or padded with False."""
    out = np.zeros(size, dtype=np.bool_)
    count = min(size, len(array))
    out[:count] = array[:count]
    return out


def _grown(length: int, label: int) -> int:
    return max(2 * length, label + 1, 1024)


def _compare(values: npt.NDArray[np.float64], op: Op, bound: float) -> Mask:
    # NaN (no number here) compares False with everything.
    if op is Op.GT:
        return values > bound
    if op is Op.GTE:
        return values >= bound
    if op is Op.LT:
        return values < bound
    return values <= bound


class Column:
    """Not thread-safe: the collection mutates it only while holding its index gate alone."""

    def __init__(self) -> None:
        self.count = 0
        self._sparse: dict[int, Stored] | None = {}
        # Dense form (allocated on the switch from sparse).
        self._present = np.zeros(0, dtype=np.bool_)
        self._numbers = np.zeros(0, dtype=np.float64)
        self._codes = np.zeros(0, dtype=np.int32)
        self._bools = np.zeros(0, dtype=np.int8)
        self._code_of: dict[str, int] = {}
        self._strings: list[str] = []
        self._lists: dict[int, tuple[str | float | bool, ...]] = {}
        self._postings: dict[Token, set[int]] = {}

    @property
    def dense(self) -> bool:
        return self._sparse is None

    def set(self, label: int, value: Stored, label_space: int) -> None:
        """Give `label` (which has no value here) its value."""
        self.count += 1
        if self._sparse is not None:
            self._sparse[label] = value
            if len(self._sparse) > max(SPARSE_LIMIT, label_space // 32):
                self._densify(label_space)
            return
        self._set_dense(label, value)

    def remove(self, label: int) -> None:
        self.count -= 1
        if self._sparse is not None:
            del self._sparse[label]
            return
        self._present[label] = False
        self._numbers[label] = np.nan
        self._codes[label] = _NO_CODE
        self._bools[label] = _NO_BOOL
        items = self._lists.pop(label, None)
        for item in set(items or ()):
            posting = self._postings[_token(item)]
            posting.discard(label)
            if not posting:
                del self._postings[_token(item)]

    def _densify(self, label_space: int) -> None:
        assert self._sparse is not None
        entries, self._sparse = self._sparse, None
        self._grow(max(label_space, max(entries) + 1))
        for label, value in entries.items():
            self._set_dense(label, value)

    def _grow(self, size: int) -> None:
        old = len(self._present)
        if size <= old:
            return
        self._present = np.concatenate([self._present, np.zeros(size - old, np.bool_)])
        self._numbers = np.concatenate([self._numbers, np.full(size - old, np.nan)])
        self._codes = np.concatenate([self._codes, np.full(size - old, _NO_CODE, np.int32)])
        self._bools = np.concatenate([self._bools, np.full(size - old, _NO_BOOL, np.int8)])

    def _set_dense(self, label: int, value: Stored) -> None:
        if label >= len(self._present):
            self._grow(_grown(len(self._present), label))
        self._present[label] = True
        if isinstance(value, tuple):
            self._lists[label] = value
            for item in set(value):
                self._postings.setdefault(_token(item), set()).add(label)
        elif isinstance(value, bool):
            self._bools[label] = int(value)
        elif isinstance(value, str):
            code = self._code_of.get(value)
            if code is None:
                code = self._code_of[value] = len(self._strings)
                self._strings.append(value)
            self._codes[label] = code
        else:
            self._numbers[label] = value

    # -- reads -----------------------------------------------------------------------

    def present(self, size: int) -> Mask:
        if self._sparse is not None:
            return self._labels_mask(list(self._sparse), size)
        return fit(self._present, size)

    def positive(self, condition: Condition, size: int) -> Mask:
        """Labels whose value satisfies EQ (for EQ/NE), IN (for IN/NIN), a range or EXISTS."""
        if condition.op is Op.EXISTS:
            return self.present(size)
        if self._sparse is not None:
            hits = [
                label for label, value in self._sparse.items() if positive_match(condition, value)
            ]
            return self._labels_mask(hits, size)
        if condition.op in RANGE_OPS:
            return self._range(condition, size)
        choices = condition.value if isinstance(condition.value, tuple) else (condition.value,)
        return self._any_equal(choices, size)

    @staticmethod
    def _labels_mask(labels: list[int], size: int) -> Mask:
        out = np.zeros(size, dtype=np.bool_)
        if labels:
            out[np.array(labels, dtype=np.int64)] = True
        return out

    def _any_equal(self, choices: tuple[str | int | float | bool, ...], size: int) -> Mask:
        numbers = {float(c) for c in choices if not isinstance(c, bool | str)}
        codes = {self._code_of[c] for c in choices if isinstance(c, str) and c in self._code_of}
        bools = {int(c) for c in choices if isinstance(c, bool)}
        hits = np.zeros(len(self._present), dtype=np.bool_)
        for values, wanted in (
            (self._numbers, numbers),
            (self._codes, codes),
            (self._bools, bools),
        ):
            if len(wanted) == 1:
                hits |= values == next(iter(wanted))
            elif wanted:
                hits |= np.isin(values, np.array(sorted(wanted)))
        out = fit(hits, size)
        for choice in choices:
            value = choice if isinstance(choice, bool | str) else float(choice)
            posting = self._postings.get(_token(value))
            if posting:
                out[np.fromiter(posting, dtype=np.int64, count=len(posting))] = True
        return out

    def _range(self, condition: Condition, size: int) -> Mask:
        bound = condition.value
        if isinstance(bound, str):
            codes = [
                code for code, text in enumerate(self._strings) if positive_match(condition, text)
            ]
            hits = np.isin(self._codes, np.array(codes, dtype=np.int32))
        else:
            assert isinstance(bound, int | float) and not isinstance(bound, bool)
            hits = _compare(self._numbers, condition.op, float(bound))
        out = fit(hits, size)
        listed = [label for label, items in self._lists.items() if positive_match(condition, items)]
        if listed:
            out[np.array(listed, dtype=np.int64)] = True
        return out
