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

Writes come in batches, and the index takes them a batch at a time, because
per-document Python work is what a write pays for (`analyze`, then `put`):
one regex pass over the batch's texts, one dict lookup per word from word to
term id (stemming only words never seen, in one Snowball call), then numpy
over the batch's tokens for term frequencies and lengths; the only Python loop
left runs over the batch's distinct terms, appending each one's new postings.

It is one module of about 500 lines, above the house's ~400, on purpose: the
postings layout, its compaction, BM25 scoring and phrase matching all read the
same arrays, and splitting them would spread that representation over files.

Layout, for cheap writes and vectorized scoring:

- per term, append-only postings: keys (the label, and in the high 32 bits
  the label's generation when it was indexed) and term frequencies
  (`array.array`s: cheap appends, read by numpy without a Python object per
  entry); per term id, its live document frequency and its entries;
- per label, its generation: removing or replacing a document bumps it, which
  turns its old postings into garbage without searching for them; a term's
  postings are compacted when garbage outnumbers live entries;
- every document's term sequence (term ids, -1 for a stop word) in one int32
  buffer, per label its start (-1: no text) and span, for phrase filters and
  for knowing which terms a removal touches; compacted like the postings;
- per label, its length in indexed tokens; totals for the statistics;
- for terms scored since the last change, with the mean length they were scored
  with, their live labels and BM25 parts per unit of weight (bounded,
  `SCORED_ENTRIES`): a recurring term costs a concatenation, not a pass over
  its postings.
"""

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from shard.core.payload_columns import Mask
from shoal.errors import InvalidArgument
from shoal.keyword import TEXT_BREAK, KeywordSettings, TermStatistics, Tokenizer, tokenizer_for

_GAP = -1  # a stop word's place in a sequence
_BREAK = -2  # the end of a text in a batch
_NEW = -3  # a word the index has not seen yet

_LABEL_BITS = 32
_LABEL_MASK = (1 << _LABEL_BITS) - 1
_NO_TEXT = -1

#: Garbage (entries of removed texts) is compacted away once it outnumbers the live
#: entries and is at least this many: per term's postings, and in the sequence buffer.
POSTINGS_GARBAGE = 16
BUFFER_GARBAGE = 4096
#: Scores are summed per label densely (over every label up to the largest) when
#: the labels are at most this many times the postings entries scored, else by a sort.
DENSE_SCORING = 16
#: Postings entries whose scoring parts are kept for terms that recur (16 bytes each).
SCORED_ENTRIES = 1 << 20

Int64s = npt.NDArray[np.int64]


@dataclass(frozen=True)
class KeywordQuery:
    """One query's distinct terms with their weights (idf x occurrences in the query);
    or, to be weighted with this replica's own statistics (`keyword_search.locally_weighted`),
    with the occurrences alone."""

    terms: Sequence[str]
    weights: Sequence[float]
    occurrences: Sequence[int] = ()


@dataclass(frozen=True)
class Analyzed:
    """A batch of texts as term ids (`KeywordIndex.analyze`), for `KeywordIndex.put`.

    Text i of those present is ids[bounds[i]:bounds[i + 1]], stop words as -1.
    """

    ids: npt.NDArray[np.int32]
    bounds: Int64s
    has_text: npt.NDArray[np.bool_]  # per document of the batch: False where its text is None


def _ranges(starts: Int64s, spans: Int64s) -> Int64s:
    """The positions starts[i] .. starts[i] + spans[i] - 1 of every range, in order."""
    total = int(spans.sum())
    if not total:
        return np.empty(0, dtype=np.int64)
    offsets = np.cumsum(spans) - spans  # where each range begins in the result
    return np.repeat(starts - offsets, spans) + np.arange(total, dtype=np.int64)


class KeywordIndex:
    """Reads may run concurrently with each other and with `analyze`; `put` and
    `remove` must run alone, and one writer at a time calls `analyze` then `put`
    (a collection's write lock and index gate)."""

    def __init__(self, settings: KeywordSettings, label_space: int = 0) -> None:
        settings = settings.with_defaults()
        self._tokenizer: Tokenizer = tokenizer_for(settings)
        self._k1 = settings.k1_value
        self._b = settings.b_value
        self._term_ids: dict[str, int] = {}
        # Per term id, its postings: parallel append-only arrays, keys (label |
        # generation << 32) and term frequencies, some entries garbage. Two lists
        # of arrays rather than an object per term: arrays are not tracked by the
        # garbage collector, which a hundred thousand term objects would keep busy.
        self._keys: list[array[int]] = []
        self._tfs: list[array[float]] = []
        # Per term id: live documents holding it, and its postings' entries (live or not).
        self._df = np.zeros(1024, dtype=np.int64)
        self._entries = np.zeros(1024, dtype=np.int64)
        # Word -> term id (or _GAP): words repeat across documents, stemming is dear.
        # It grows with the vocabulary, as the term ids do.
        self._word_ids: dict[str, int] = {TEXT_BREAK: _BREAK}
        size = max(label_space, 1024)
        self._generations = np.zeros(size, dtype=np.uint32)
        self._lengths = np.zeros(size, dtype=np.float64)
        self._starts = np.full(size, _NO_TEXT, dtype=np.int64)
        self._spans = np.zeros(size, dtype=np.int64)
        self._buffer = np.empty(4096, dtype=np.int32)  # every sequence, some garbage
        self._used = 0  # of the buffer
        self._garbage = 0  # buffer entries of removed sequences
        self._documents = 0
        self._total_length = 0
        # Per (term id, mean length): the term's live labels and each one's BM25 part
        # per unit of weight, tf / (tf + k1 (1 - b + b |d| / avgdl)): recurring terms
        # are scored without reading their postings again. Valid while `_changes`
        # (bumped by every put and remove) stays what it was when they were kept.
        self._changes = 0
        self._scored: dict[tuple[int, float], tuple[Int64s, npt.NDArray[np.float64]]] = {}
        self._scored_at = 0
        self._scored_entries = 0

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    # -- changes -----------------------------------------------------------------------

    def analyze(self, texts: Sequence[str | None]) -> Analyzed:
        """A batch of texts as term ids; None: a document without text.

        Runs outside the gate (it is the costly part of a write): it only adds
        terms, which readers see with no postings until `put`.
        """
        has_text = np.array([text is not None for text in texts], dtype=np.bool_)
        present = [text for text in texts if text is not None]
        words = self._tokenizer.words(present)
        # dict.get mapped in C over the words: no Python-level step per word.
        lookup = self._word_ids.get
        ids = np.fromiter(map(lookup, words, repeat(_NEW)), dtype=np.int32, count=len(words))
        unseen = np.flatnonzero(ids == _NEW)
        if len(unseen):
            positions = unseen.tolist()
            new = list(dict.fromkeys([words[i] for i in positions]))
            terms = self._tokenizer.word_terms(new)
            self._add_terms(terms)
            term_ids = self._term_ids
            self._word_ids.update(
                (word, term_ids[term] if term else _GAP)
                for word, term in zip(new, terms, strict=True)
            )
            ids[unseen] = [self._word_ids[words[i]] for i in positions]
        breaks = np.flatnonzero(ids == _BREAK)
        # Text i's ids run from just after break i - 1 to break i; the breaks go.
        bounds = np.zeros(len(present) + 1, dtype=np.int64)
        bounds[1:] = breaks - np.arange(len(breaks))
        return Analyzed(np.delete(ids, breaks), bounds, has_text)

    def _add_terms(self, terms: Sequence[str]) -> None:
        """Give the terms not known yet their ids (and empty postings)."""
        known = self._term_ids
        fresh = [term for term in dict.fromkeys(terms) if term and term not in known]
        if not fresh:
            return
        first = len(self._keys)
        end = first + len(fresh)
        if end > len(self._df):
            grown = max(end, 2 * len(self._df))
            self._df = np.concatenate([self._df, np.zeros(grown - len(self._df), np.int64)])
            self._entries = np.concatenate(
                [self._entries, np.zeros(grown - len(self._entries), np.int64)]
            )
        # Readers find a term by its id only once what the id indexes exists.
        self._keys.extend([array("q") for _ in fresh])
        self._tfs.extend([array("f") for _ in fresh])
        known.update(zip(fresh, range(first, end), strict=True))

    def put(self, labels: Sequence[int], analyzed: Analyzed) -> None:
        """Index the texts of live documents `labels` (distinct; `analyze` of their
        texts, in the same order), replacing whatever each label held."""
        all_labels = np.asarray(labels, dtype=np.int64)
        if len(all_labels) != len(analyzed.has_text):
            raise ValueError(f"{len(all_labels)} labels for {len(analyzed.has_text)} texts")
        self._changes += 1
        self.remove(labels)
        present = all_labels[analyzed.has_text]
        if not len(present):
            return
        self._grow(int(present.max()))
        ids, bounds = analyzed.ids, analyzed.bounds
        spans = np.diff(bounds)
        # Sequences: appended to the buffer, found by start and span.
        starts = self._append(ids) + bounds[:-1]
        self._starts[present] = starts
        self._spans[present] = spans
        # Term frequencies: one count per (term, document) pair of the batch.
        documents = np.repeat(np.arange(len(present), dtype=np.int64), spans)
        indexed = ids >= 0
        terms, documents = ids[indexed].astype(np.int64), documents[indexed]
        lengths = np.bincount(documents, minlength=len(present))
        self._lengths[present] = lengths
        self._total_length += int(lengths.sum())
        self._documents += len(present)
        if not len(terms):  # only empty texts and stop words: no postings
            return
        pairs, tfs = np.unique(terms * len(present) + documents, return_counts=True)
        pair_terms = pairs // len(present)
        pair_labels = present[pairs % len(present)]
        keys = pair_labels | self._generations[pair_labels].astype(np.int64) << _LABEL_BITS
        # Postings: per distinct term, its run of pairs (sorted by term, then document).
        firsts = np.flatnonzero(np.diff(pair_terms, prepend=-1))
        ends = np.append(firsts[1:], len(pairs))
        distinct = pair_terms[firsts]
        self._df[distinct] += ends - firsts
        self._entries[distinct] += ends - firsts
        key_bytes = memoryview(keys.tobytes())
        tf_bytes = memoryview(tfs.astype(np.float32).tobytes())
        all_keys, all_tfs = self._keys, self._tfs
        for term_id, first, end in zip(
            distinct.tolist(), firsts.tolist(), ends.tolist(), strict=True
        ):
            all_keys[term_id].frombytes(key_bytes[8 * first : 8 * end])
            all_tfs[term_id].frombytes(tf_bytes[4 * first : 4 * end])

    def remove(self, labels: Sequence[int]) -> None:
        """Forget the texts of documents (deleted, or about to be replaced)."""
        self._changes += 1
        all_labels = np.asarray(labels, dtype=np.int64)
        all_labels = all_labels[all_labels < len(self._starts)]
        held = all_labels[self._starts[all_labels] != _NO_TEXT]
        if not len(held):
            return
        starts, spans = self._starts[held], self._spans[held]
        tokens = self._buffer[_ranges(starts, spans)].astype(np.int64)
        documents = np.repeat(np.arange(len(held), dtype=np.int64), spans)
        indexed = tokens >= 0
        pairs = np.unique(tokens[indexed] * len(held) + documents[indexed])
        touched, counts = np.unique(pairs // len(held), return_counts=True)
        self._df[touched] -= counts
        self._generations[held] += 1
        self._total_length -= int(self._lengths[held].sum())
        self._lengths[held] = 0
        self._starts[held] = _NO_TEXT
        self._spans[held] = 0
        self._garbage += int(spans.sum())
        self._documents -= len(held)
        live = self._df[touched]
        garbage = self._entries[touched] - live
        for term_id in touched[garbage > np.maximum(live, POSTINGS_GARBAGE)].tolist():
            self._compact(term_id)
            self._entries[term_id] = self._df[term_id]
        if self._garbage > max(self._used - self._garbage, BUFFER_GARBAGE):
            self._compact_buffer()

    def _append(self, ids: npt.NDArray[np.int32]) -> int:
        """Append to the sequence buffer; where `ids` begins."""
        start = self._used
        needed = start + len(ids)
        if needed > len(self._buffer):
            # A new array: readers may hold the old one, which stays as it was.
            grown = np.empty(max(needed, 2 * len(self._buffer)), dtype=np.int32)
            grown[:start] = self._buffer[:start]
            self._buffer = grown
        self._buffer[start:needed] = ids
        self._used = needed
        return start

    def _compact_buffer(self) -> None:
        held = np.flatnonzero(self._starts != _NO_TEXT)
        spans = self._spans[held]
        live = self._buffer[_ranges(self._starts[held], spans)]
        buffer = np.empty(max(2 * len(live), 4096), dtype=np.int32)
        buffer[: len(live)] = live
        self._starts[held] = np.cumsum(spans) - spans
        self._buffer, self._used, self._garbage = buffer, len(live), 0

    def _grow(self, label: int) -> None:
        size = len(self._generations)
        if label < size:
            return
        grown = max(2 * size, label + 1)

        def extended(values: npt.NDArray[np.generic], fill: int) -> npt.NDArray[np.generic]:
            bigger = np.full(grown, fill, dtype=values.dtype)
            bigger[:size] = values
            return bigger

        self._generations = extended(self._generations, 0)  # type: ignore[assignment]
        self._lengths = extended(self._lengths, 0)  # type: ignore[assignment]
        self._starts = extended(self._starts, _NO_TEXT)  # type: ignore[assignment]
        self._spans = extended(self._spans, 0)  # type: ignore[assignment]

    def _sequence(self, label: int) -> npt.NDArray[np.int32]:
        start = int(self._starts[label])
        return self._buffer[start : start + int(self._spans[label])]

    # -- statistics and scoring ----------------------------------------------------------

    @property
    def documents(self) -> int:
        return self._documents

    def statistics(self, terms: Sequence[str]) -> TermStatistics:
        """This replica's share of the statistics BM25 needs for `terms`."""
        frequencies = []
        df = self._df
        for term in terms:
            term_id = self._term_ids.get(term)
            frequencies.append(0 if term_id is None else int(df[term_id]))
        return TermStatistics(self._documents, self._total_length, frequencies)

    def vocabulary(self, limit: int) -> list[str] | None:
        """Every term some live document holds, or None when there are more than `limit`.
        `analyze` may add terms meanwhile: the map is read as one copy."""
        known = list(self._term_ids.items())  # one C call: no other thread runs inside
        if not known:
            return []
        ids = np.fromiter((term_id for _, term_id in known), dtype=np.int64, count=len(known))
        held = np.flatnonzero(self._df[ids] > 0)  # _df grew before any id was given
        if len(held) > limit:
            return None
        return [known[position][0] for position in held.tolist()]

    def statistics_without(self, terms: Sequence[str], without: Mask) -> TermStatistics:
        """`statistics`, the documents of the labels set in `without` left out (the
        partitions a replica holds copies of during a move without owning them)."""
        stats = self.statistics(terms)
        size = min(len(without), len(self._starts))
        gone = np.flatnonzero(without[:size] & (self._starts[:size] != _NO_TEXT))
        if not len(gone):
            return stats
        frequencies = list(stats.frequencies)
        for position, term in enumerate(terms):
            term_id = self._term_ids.get(term)
            if term_id is None or not frequencies[position]:
                continue
            labels, _ = self._live(term_id)
            labels = labels[labels < size]
            frequencies[position] -= int(np.count_nonzero(without[labels]))
        return TermStatistics(
            stats.documents - len(gone),
            stats.total_length - int(self._lengths[gone].sum()),
            frequencies,
        )

    def postings(self, terms: Sequence[str]) -> int:
        """Postings entries (garbage included) that scoring `terms` reads: its cost."""
        entries, ids = self._entries, self._term_ids
        return sum(int(entries[ids[term]]) for term in terms if term in ids)

    def scores(
        self, query: KeywordQuery, average_length: float, allowed: Mask | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(labels, BM25 scores) of the documents holding any query term (and allowed).

        The terms' postings are scored as one concatenation and summed per label in
        its order (so a score is the same sum whichever way the labels are found):
        by a dense `bincount` over the labels when they are few next to the
        entries, else through a sort."""
        average = average_length if average_length > 0 else 1.0
        term_labels: list[Int64s] = []
        term_parts: list[npt.NDArray[np.float64]] = []
        weights: list[float] = []
        for term, weight in zip(query.terms, query.weights, strict=True):
            term_id = self._term_ids.get(term)
            if term_id is None or weight <= 0:
                continue
            labels, parts = self._term_parts(term_id, average)
            if len(labels):
                term_labels.append(labels)
                term_parts.append(parts)
                weights.append(weight)
        if not term_labels:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        counts = [len(labels) for labels in term_labels]
        labels = np.concatenate(term_labels) if len(term_labels) > 1 else term_labels[0]
        parts = np.concatenate(term_parts) if len(term_parts) > 1 else term_parts[0]
        entry_weights = np.repeat(np.array(weights, dtype=np.float64), counts)
        if allowed is not None:
            inside = labels < len(allowed)
            keep = np.zeros(len(labels), dtype=np.bool_)
            keep[inside] = allowed[labels[inside]]
            labels, parts, entry_weights = labels[keep], parts[keep], entry_weights[keep]
            if not len(labels):
                return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        contributions = entry_weights * parts
        if len(term_labels) == 1:
            return labels.copy(), contributions  # labels may be the kept array
        space = int(labels.max()) + 1
        if space <= DENSE_SCORING * len(labels):
            dense = np.bincount(labels, weights=contributions, minlength=space)
            held = np.bincount(labels, minlength=space).nonzero()[0]
            return held.astype(np.int64), dense[held].astype(np.float64)
        unique, inverse = np.unique(labels, return_inverse=True)
        summed = np.bincount(inverse, weights=contributions).astype(np.float64)
        return unique.astype(np.int64), summed

    def _term_parts(self, term_id: int, average: float) -> tuple[Int64s, npt.NDArray[np.float64]]:
        """A term's live labels and BM25 parts per unit of weight (see `_scored`);
        the arrays are shared between readers: never written to."""
        if self._scored_at != self._changes:
            self._scored, self._scored_at, self._scored_entries = {}, self._changes, 0
        key = (term_id, average)
        found = self._scored.get(key)
        if found is not None:
            return found
        labels, tfs = self._live(term_id)
        tf = tfs.astype(np.float64)
        k1, b = self._k1, self._b
        parts = tf / (tf + k1 * (1.0 - b + b * self._lengths[labels] / average))
        if self._scored_entries + len(labels) > SCORED_ENTRIES:
            self._scored, self._scored_entries = {}, 0
        self._scored[key] = labels, parts
        self._scored_entries += len(labels)
        return labels, parts

    def _live(self, term_id: int) -> tuple[Int64s, npt.NDArray[np.float32]]:
        """(labels, term frequencies) of a term's live postings (copies: the arrays grow)."""
        keys = np.frombuffer(self._keys[term_id], dtype=np.int64).copy()
        tfs = np.frombuffer(self._tfs[term_id], dtype=np.float32).copy()
        labels = keys & _LABEL_MASK
        if len(keys) == self._df[term_id]:
            return labels, tfs
        valid = (keys >> _LABEL_BITS) == self._generations[labels]
        return labels[valid], tfs[valid]

    def _compact(self, term_id: int) -> None:
        """Drop a term's postings of removed and replaced texts."""
        keys = np.frombuffer(self._keys[term_id], dtype=np.int64)
        valid = (keys >> _LABEL_BITS) == self._generations[keys & _LABEL_MASK]
        tfs = np.frombuffer(self._tfs[term_id], dtype=np.float32)
        self._keys[term_id] = array("q", keys[valid].tobytes())
        self._tfs[term_id] = array("f", tfs[valid].tobytes())

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
        words = sorted(set(wanted) - {_GAP}, key=lambda term_id: int(self._df[term_id]))
        candidates, _ = self._live(words[0])
        for term_id in words[1:]:
            labels, _ = self._live(term_id)
            candidates = np.intersect1d(candidates, labels, assume_unique=True)
        if len(wanted) > 1:
            pattern = np.array(wanted, dtype=np.int32)
            candidates = np.array(
                [label for label in candidates.tolist() if holds(self._sequence(label), pattern)],
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
        postings = 8 * sum(map(len, self._keys)) + 4 * sum(map(len, self._tfs))
        per_label = self._generations, self._lengths, self._starts, self._spans
        per_term = self._df.nbytes + self._entries.nbytes
        scored = 16 * self._scored_entries  # labels and parts kept for recurring terms
        return postings + self._buffer.nbytes + per_term + sum(a.nbytes for a in per_label) + scored


def holds(sequence: npt.NDArray[np.int32], pattern: npt.NDArray[np.int32]) -> bool:
    """Whether `pattern` occurs in `sequence` as a contiguous run."""
    width = len(pattern)
    if len(sequence) < width:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(sequence, width)
    return bool((windows == pattern).all(axis=1).any())
