"""The in-memory keyword (BM25) index of one collection's document texts, by hnswlib label.

Like the payload index it is derived state: built from RocksDB when the
collection opens (one scan, next to the payload index) and kept current by
every write, delete and tombstone under the index gate held alone, so replica
catch-up and anti-entropy, which write through the same path, keep it in step.

Why not a library index: tantivy scores with its own per-index statistics and
cannot take the cluster-wide ones a sharded collection needs (see
`shoal.keyword`), and bm25s precomputes scores into an immutable sparse
matrix that must be rebuilt on every change. Here a shard only keeps term
frequencies and lengths; the coordinator sends the idf weights and the mean
length, so every shard scores with the cluster's statistics.

Layout, for cheap writes and vectorized scoring:

- per term, append-only postings: keys (the label, and in the high 32 bits
  the label's generation when it was indexed) and term frequencies
  (`array.array`s: cheap appends, read by numpy without a Python object per
  entry);
- per label, its generation: removing or replacing a document bumps it, which
  turns its old postings into garbage without searching for them; a term's
  postings are compacted when garbage outnumbers live entries;
- per label, its term sequence (term ids, -1 for a stop word) for phrase
  filters and for knowing which terms a removal touches;
- per label, its length in indexed tokens; totals for the statistics.
"""

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shard.core.payload_columns import Mask
from shoal.errors import InvalidArgument
from shoal.keyword import KeywordSettings, TermStatistics, Tokenizer, tokenizer_for

#: A document's terms in order, None where a stop word stood (see `Tokenizer.sequence`).
Analyzed = list[str | None]

_GAP = -1
_NEW = -2  # a term the index does not know yet


_LABEL_BITS = 32
_LABEL_MASK = (1 << _LABEL_BITS) - 1


class _Postings:
    """One term's postings: parallel append-only arrays, some entries garbage."""

    __slots__ = ("keys", "live", "tfs")

    def __init__(self) -> None:
        self.keys = array("q")  # label | generation << 32
        self.tfs = array("f")
        self.live = 0  # entries whose generation is their label's current one

    def arrays(
        self, current: npt.NDArray[np.uint32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(labels, term frequencies) of the live entries (copies: the arrays may grow)."""
        keys = np.frombuffer(self.keys, dtype=np.int64).copy()
        tfs = np.frombuffer(self.tfs, dtype=np.float32).copy()
        labels = keys & _LABEL_MASK
        if len(keys) == self.live:
            return labels, tfs
        valid = (keys >> _LABEL_BITS) == current[labels]
        return labels[valid], tfs[valid]

    def compact(self, current: npt.NDArray[np.uint32]) -> None:
        keys = np.frombuffer(self.keys, dtype=np.int64).copy()
        tfs = np.frombuffer(self.tfs, dtype=np.float32).copy()
        valid = (keys >> _LABEL_BITS) == current[keys & _LABEL_MASK]
        self.keys = array("q", keys[valid].tobytes())
        self.tfs = array("f", tfs[valid].tobytes())

    @property
    def garbage(self) -> int:
        return len(self.keys) - self.live

    def nbytes(self) -> int:
        return self.keys.itemsize * len(self.keys) + self.tfs.itemsize * len(self.tfs)


@dataclass(frozen=True)
class KeywordQuery:
    """One query's distinct terms with their weights (idf x occurrences in the query)."""

    terms: Sequence[str]
    weights: Sequence[float]


class KeywordIndex:
    """Reads may run concurrently with each other; mutations must run alone."""

    def __init__(self, settings: KeywordSettings, label_space: int = 0) -> None:
        settings = settings.with_defaults()
        self._tokenizer: Tokenizer = tokenizer_for(settings)
        self._k1 = settings.k1_value
        self._b = settings.b_value
        self._term_ids: dict[str, int] = {}
        self._postings: list[_Postings] = []
        self._sequences: dict[int, array[int]] = {}  # label -> term ids, -1 gaps
        size = max(label_space, 1024)
        self._generations = np.zeros(size, dtype=np.uint32)
        self._lengths = np.zeros(size, dtype=np.float64)
        self._total_length = 0

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def analyze(self, text: str) -> Analyzed:
        """A text's term sequence; runs outside the gate (it is the costly part of a write)."""
        return self._tokenizer.sequence(text)

    # -- changes -----------------------------------------------------------------------

    def put(self, label: int, analyzed: Analyzed | None) -> None:
        """Index a live document's text (replacing what `label` held); None: it has none."""
        self.remove(label)
        if analyzed is None:
            return
        self._grow(label)
        get = self._term_ids.get
        ids = [_GAP if term is None else get(term, _NEW) for term in analyzed]
        if _NEW in ids:  # register the new terms, then map again
            for term in {t for t, i in zip(analyzed, ids, strict=True) if i == _NEW}:
                self._term_id(str(term))
            ids = [_GAP if term is None else get(term, _NEW) for term in analyzed]
        key = label | int(self._generations[label]) << _LABEL_BITS
        postings = self._postings
        counts = Counter(ids)
        counts.pop(_GAP, None)
        for term_id, tf in counts.items():
            entry = postings[term_id]
            entry.keys.append(key)
            entry.tfs.append(tf)
            entry.live += 1
        length = len(ids) - analyzed.count(None)
        self._sequences[label] = array("i", ids)
        self._lengths[label] = length
        self._total_length += length

    def _term_id(self, term: str) -> int:
        term_id = self._term_ids.get(term)
        if term_id is None:
            term_id = self._term_ids[term] = len(self._postings)
            self._postings.append(_Postings())
        return term_id

    def remove(self, label: int) -> None:
        """Forget a document's text (deleted, or about to be replaced)."""
        sequence = self._sequences.pop(label, None)
        if sequence is None:
            return
        self._generations[label] += 1
        self._total_length -= int(self._lengths[label])
        self._lengths[label] = 0
        for term_id in set(sequence) - {_GAP}:
            postings = self._postings[term_id]
            postings.live -= 1
            if postings.garbage > max(postings.live, 16):
                postings.compact(self._generations)

    def _grow(self, label: int) -> None:
        size = len(self._generations)
        if label < size:
            return
        grown = max(2 * size, label + 1)
        generations = np.zeros(grown, dtype=np.uint32)
        generations[:size] = self._generations
        lengths = np.zeros(grown, dtype=np.float64)
        lengths[:size] = self._lengths
        self._generations, self._lengths = generations, lengths

    # -- statistics and scoring ----------------------------------------------------------

    @property
    def documents(self) -> int:
        return len(self._sequences)

    def statistics(self, terms: Sequence[str]) -> TermStatistics:
        """This replica's share of the statistics BM25 needs for `terms`."""
        frequencies = []
        for term in terms:
            term_id = self._term_ids.get(term)
            frequencies.append(0 if term_id is None else self._postings[term_id].live)
        return TermStatistics(len(self._sequences), self._total_length, frequencies)

    def scores(
        self, query: KeywordQuery, average_length: float, allowed: Mask | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(labels, BM25 scores) of the documents holding any query term (and allowed)."""
        found_labels: list[npt.NDArray[np.int64]] = []
        found_scores: list[npt.NDArray[np.float64]] = []
        k1, b = self._k1, self._b
        average = average_length if average_length > 0 else 1.0
        for term, weight in zip(query.terms, query.weights, strict=True):
            term_id = self._term_ids.get(term)
            if term_id is None or weight <= 0:
                continue
            labels, tfs = self._postings[term_id].arrays(self._generations)
            if allowed is not None:
                inside = labels < len(allowed)
                keep = np.zeros(len(labels), dtype=np.bool_)
                keep[inside] = allowed[labels[inside]]
                labels, tfs = labels[keep], tfs[keep]
            if not len(labels):
                continue
            tf = tfs.astype(np.float64)
            norm = k1 * (1.0 - b + b * self._lengths[labels] / average)
            found_labels.append(labels)
            found_scores.append(weight * tf / (tf + norm))
        if not found_labels:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        if len(found_labels) == 1:
            return found_labels[0], found_scores[0]
        labels = np.concatenate(found_labels)
        unique, inverse = np.unique(labels, return_inverse=True)
        summed = np.bincount(inverse, weights=np.concatenate(found_scores)).astype(np.float64)
        return unique.astype(np.int64), summed

    # -- phrase filters ------------------------------------------------------------------

    def contains_mask(self, phrase: str, size: int) -> Mask:
        """The labels (of `size`) whose text holds `phrase`'s terms in order, as whole words."""
        terms = self._tokenizer.phrase(phrase)
        if not terms:
            raise InvalidArgument(
                f"text filter {phrase!r} has no words to match after tokenization"
                " (stop words alone do not count); give a word or phrase"
            )
        mask = np.zeros(size, dtype=np.bool_)
        wanted: list[int] = []
        for term in terms:
            if term is None:
                wanted.append(_GAP)
                continue
            term_id = self._term_ids.get(term)
            if term_id is None:
                return mask
            wanted.append(term_id)
        words = sorted(set(wanted) - {_GAP}, key=lambda term_id: self._postings[term_id].live)
        candidates, _ = self._postings[words[0]].arrays(self._generations)
        for term_id in words[1:]:
            labels, _ = self._postings[term_id].arrays(self._generations)
            candidates = np.intersect1d(candidates, labels, assume_unique=True)
        if len(wanted) > 1:
            pattern = np.array(wanted, dtype=np.int32)
            candidates = np.array(
                [
                    label
                    for label in candidates.tolist()
                    if holds(np.frombuffer(self._sequences[label], dtype=np.int32), pattern)
                ],
                dtype=np.int64,
            )
        candidates = candidates[candidates < size]
        mask[candidates] = True
        return mask

    def text_holds(self, text: str | None, phrase: str) -> bool:
        """Whether one text holds `phrase` (for a record newer than the index)."""
        if text is None:
            return False
        terms = self._tokenizer.phrase(phrase)
        if not terms:
            raise InvalidArgument(
                f"text filter {phrase!r} has no words to match after tokenization"
                " (stop words alone do not count); give a word or phrase"
            )
        sequence = self._tokenizer.sequence(text)
        width = len(terms)
        return any(sequence[start : start + width] == terms for start in range(len(sequence)))

    # -- size ------------------------------------------------------------------------------

    def nbytes(self) -> int:
        """Bytes held by the arrays (postings, sequences, per-label arrays); Python object
        overhead of the term dictionary comes on top."""
        postings = sum(p.nbytes() for p in self._postings)
        sequences = sum(s.itemsize * len(s) for s in self._sequences.values())
        return postings + sequences + self._generations.nbytes + self._lengths.nbytes


def holds(sequence: npt.NDArray[np.int32], pattern: npt.NDArray[np.int32]) -> bool:
    """Whether `pattern` occurs in `sequence` as a contiguous run."""
    width = len(pattern)
    if len(sequence) < width:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(sequence, width)
    return bool((windows == pattern).all(axis=1).any())
