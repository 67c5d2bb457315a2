"""The cluster-wide keyword statistics a coordinator last saw, per collection.

BM25 weights need, over every shard group, the documents with text, their
total length and each query term's document frequency. Asking the groups for
them before every keyword search costs a round trip; remembering them costs
nothing, and is safe because they are never trusted: every shard answers a
search with the statistics its keyword list was scored under (read under the
same index lock), and when their sums differ from the ones the weights came
from, the keyword list is scored again with the fresh sums (see
`keyword_reads`). So a read-mostly workload pays one round trip, and a
workload whose writes move the statistics pays two, as it did without memory.

The first statistics call for a collection also asks for its whole vocabulary
(every term some document holds, with its frequency; asked once, as a listing
costs a few MB) and keeps it when it is small enough: the memory of that
collection is then complete, so a query of words
it has never seen is weighted without asking (a word no document held has
frequency 0), and a search of new words costs one round trip too. A word
written since is caught by the check above, like any other change.

Bounded: at most `max_terms` terms over all collections (about 100 bytes each)
and `max_collections` collections; past either, the collections used least
recently are forgotten first (and a collection that alone holds too many
terms starts over).
Keyed by collection name and incarnation, so a recreated collection starts
empty. One per coordinator, used from its event loop only (no locking).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from shoal.keyword import TermStatistics

#: Terms remembered, over all collections.
MAX_TERMS = 200_000
#: Collections remembered.
MAX_COLLECTIONS = 256
#: A collection's vocabulary is asked for, and kept, up to this many terms (each
#: group lists at most `shoal.keyword.MAX_VOCABULARY_LISTED`).
MAX_VOCABULARY = 100_000

CollectionKey = tuple[str, int]  # name, incarnation


@dataclass
class _Remembered:
    documents: int
    total_length: int
    frequencies: dict[str, int] = field(default_factory=dict)
    #: `frequencies` held every term of the collection once: any other term had none.
    complete: bool = False
    #: The groups were asked to list the vocabulary: whether they did or it was too
    #: large, it is not asked for again.
    listing_asked: bool = False


class StatisticsMemory:
    def __init__(
        self,
        max_terms: int = MAX_TERMS,
        max_collections: int = MAX_COLLECTIONS,
        max_vocabulary: int = MAX_VOCABULARY,
    ) -> None:
        self._max_terms = max_terms
        self._max_collections = max_collections
        self._max_vocabulary = min(max_vocabulary, max_terms)
        self._collections: dict[CollectionKey, _Remembered] = {}
        self._terms = 0  # remembered, over all collections

    def recall(self, key: CollectionKey, terms: Sequence[str]) -> TermStatistics | None:
        """The last seen statistics of `terms`; None unless every term was seen (or
        the collection's whole vocabulary was)."""
        remembered = self._collections.get(key)
        if remembered is None:
            return None
        known = remembered.frequencies
        if remembered.complete:
            frequencies = [known.get(term, 0) for term in terms]
        else:
            try:
                frequencies = [known[term] for term in terms]
            except KeyError:
                return None
        return TermStatistics(remembered.documents, remembered.total_length, frequencies)

    def vocabulary_limit(self, key: CollectionKey) -> int:
        """How many terms of the collection's vocabulary a statistics call should list:
        0 once every group was asked (each listing costs a few MB)."""
        remembered = self._collections.get(key)
        return 0 if remembered is not None and remembered.listing_asked else self._max_vocabulary

    def remember(
        self,
        key: CollectionKey,
        terms: Sequence[str],
        stats: TermStatistics,
        listing_asked: bool = False,
    ) -> None:
        """Statistics of `terms` just summed over the groups that answered, with the
        collection's whole vocabulary if they listed it (`stats.vocabulary`);
        `listing_asked`: every group was asked to list it (see `vocabulary_limit`)."""
        remembered = self._collections.pop(key, None)
        if remembered is None:
            remembered = _Remembered(stats.documents, stats.total_length)
        remembered.listing_asked |= listing_asked
        vocabulary = stats.vocabulary
        if vocabulary is not None and len(vocabulary) <= self._max_vocabulary:
            remembered.frequencies, remembered.complete = dict(vocabulary), True
        self._terms -= len(remembered.frequencies)
        # Least recently used first: make room for this collection and its new terms.
        while self._collections and (
            len(self._collections) >= self._max_collections
            or self._terms + len(remembered.frequencies) + len(terms) > self._max_terms
        ):
            oldest = self._collections.pop(next(iter(self._collections)))
            self._terms -= len(oldest.frequencies)
        if len(remembered.frequencies) + len(terms) > self._max_terms:
            remembered.frequencies.clear()
            remembered.complete = False
        remembered.documents = stats.documents
        remembered.total_length = stats.total_length
        remembered.frequencies.update(zip(terms, stats.frequencies, strict=True))
        self._terms += len(remembered.frequencies)
        self._collections[key] = remembered  # the most recently used goes last

    @property
    def terms(self) -> int:
        """Terms remembered, over all collections."""
        return self._terms
