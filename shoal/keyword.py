"""Keyword (BM25) search settings, the tokenizer, and the BM25 formula shared by services.

The coordinator tokenizes a query once and scores with cluster-wide statistics;
shards tokenize documents (and text filters) with the same `Tokenizer`, built
from the same `KeywordSettings`, so both sides see the same terms. That is why
this lives in `shoal`, which every service may import.

Tokenization: Unicode case folding, words as runs of Unicode word characters
(`\\w+`), stop words dropped (a stop word leaves a gap, so phrases do not match
across it), Snowball stemming (PyStemmer, the C build of the Snowball
stemmers). The English stop words are Lucene's (Elasticsearch's `_english_`
list, 33 words), the other languages' are NLTK's, both as `bm25s` ships them.

Scoring is Lucene's BM25 (Elasticsearch's since Lucene 8):

    idf(t)     = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score(d,q) = sum over query tokens t of idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))

N counts the live documents that have a text, df(t) those of them containing
t, |d| is the number of indexed (non-stop) tokens of d and avgdl their mean
over the N documents. A query token that occurs twice counts twice.
"""

import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from itertools import groupby

import Stemmer
from bm25s import stopwords as bm25s_stopwords

from shoal.errors import InvalidArgument

DEFAULT_LANGUAGE = "english"
DEFAULT_K1 = 1.2
DEFAULT_B = 0.75
MAX_K1 = 10.0
#: A query may hold at most this many tokens (after stop words): each one is a posting list to read.
MAX_QUERY_TERMS = 256
#: A shard lists a collection's vocabulary of at most this many terms (a few MB).
MAX_VOCABULARY_LISTED = 200_000

#: Stop-word lists by Snowball language name (those bm25s ships).
_STOP_WORDS: dict[str, tuple[str, ...]] = {
    "english": bm25s_stopwords.STOPWORDS_EN,
    "german": bm25s_stopwords.STOPWORDS_GERMAN,
    "dutch": bm25s_stopwords.STOPWORDS_DUTCH,
    "french": bm25s_stopwords.STOPWORDS_FRENCH,
    "spanish": bm25s_stopwords.STOPWORDS_SPANISH,
    "portuguese": bm25s_stopwords.STOPWORDS_PORTUGUESE,
    "italian": bm25s_stopwords.STOPWORDS_ITALIAN,
    "russian": bm25s_stopwords.STOPWORDS_RUSSIAN,
    "swedish": bm25s_stopwords.STOPWORDS_SWEDISH,
    "norwegian": bm25s_stopwords.STOPWORDS_NORWEGIAN,
    "turkish": bm25s_stopwords.STOPWORDS_TURKISH,
    "danish": bm25s_stopwords.STOPWORDS_DANISH,
}

_WORD = re.compile(r"\w+")
#: Ends each text of a batch in `Tokenizer.words`; `\w` never matches it.
TEXT_BREAK = "\x00"
_SPACED_BREAK = f" {TEXT_BREAK} "
#: Every ASCII character `\w` does not match, but TEXT_BREAK, to a space.
_ASCII_NON_WORD = str.maketrans(
    {code: " " for code in range(1, 128) if not _WORD.fullmatch(chr(code))}
)

#: A stop word's place in a token sequence: kept as a gap so phrases stay exact.
GAP: str | None = None


def languages() -> list[str]:
    """The languages a keyword index can stem (Snowball's)."""
    return sorted(Stemmer.algorithms())


def stop_word_languages() -> list[str]:
    return sorted(_STOP_WORDS)


@dataclass(frozen=True)
class KeywordSettings:
    """A collection's keyword index settings, fixed at creation.

    None fields take the defaults in `with_defaults`: enabled, English,
    stemming on, stop words on where the language has a list, k1 1.2, b 0.75.
    """

    enabled: bool | None = None
    language: str = ""
    stemming: bool | None = None
    stop_words: bool | None = None
    k1: float | None = None
    b: float | None = None

    def with_defaults(self) -> "KeywordSettings":
        language = self.language or DEFAULT_LANGUAGE
        return replace(
            self,
            enabled=True if self.enabled is None else self.enabled,
            language=language,
            stemming=True if self.stemming is None else self.stemming,
            stop_words=(language in _STOP_WORDS) if self.stop_words is None else self.stop_words,
            k1=DEFAULT_K1 if self.k1 is None else self.k1,
            b=DEFAULT_B if self.b is None else self.b,
        )

    def validate(self) -> None:
        """Ranges of settings with their defaults filled in."""
        where = "keyword"
        if self.language not in Stemmer.algorithms():
            raise InvalidArgument(
                f"{where}.language is {self.language!r}; use one of {', '.join(languages())}"
            )
        if self.stop_words and self.language not in _STOP_WORDS:
            raise InvalidArgument(
                f"{where}.stop_words: there is no stop-word list for {self.language!r}; lists"
                f" exist for {', '.join(stop_word_languages())} (or turn stop words off)"
            )
        k1, b = self.k1, self.b
        if k1 is None or not math.isfinite(k1) or not 0 <= k1 <= MAX_K1:
            raise InvalidArgument(f"{where}.k1 is {k1}; it must be between 0 and {MAX_K1:g}")
        if b is None or not math.isfinite(b) or not 0 <= b <= 1:
            raise InvalidArgument(f"{where}.b is {b}; it must be between 0 and 1")

    def to_dict(self) -> dict[str, object]:
        """The settings as stored collection settings (JSON, the catalog) hold them."""
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: object) -> "KeywordSettings":
        """Settings stored by `to_dict`, defaults filled in. Missing (settings stored
        before keyword indexes existed): the defaults. TypeError or ValueError when
        the stored value is not what `to_dict` writes."""
        if fields is None:
            return cls().with_defaults()
        if not isinstance(fields, Mapping):
            raise TypeError(f"keyword settings are {type(fields).__name__}, not an object")
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown keyword settings {sorted(unknown)}")

        def flag(name: str) -> bool | None:
            value = fields.get(name)
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"keyword.{name} is {value!r}, not a bool")
            return value

        def number(name: str) -> float | None:
            value = fields.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"keyword.{name} is {value!r}, not a number")
            return float(value)

        return cls(
            enabled=flag("enabled"),
            language=str(fields.get("language") or ""),
            stemming=flag("stemming"),
            stop_words=flag("stop_words"),
            k1=number("k1"),
            b=number("b"),
        ).with_defaults()

    @property
    def k1_value(self) -> float:
        return DEFAULT_K1 if self.k1 is None else self.k1

    @property
    def b_value(self) -> float:
        return DEFAULT_B if self.b is None else self.b


#: Words whose terms a tokenizer remembers; past this the memory starts over.
TERM_CACHE_SIZE = 200_000


class Tokenizer:
    """Text -> index terms, as the settings say.

    Stemming is the costly step of a write, and words repeat across documents, so
    each word's term is remembered (a dict; stop words map to ""). Thread-safe:
    the dict is shared (single operations on it are atomic) and each thread has
    its own Snowball stemmer, since PyStemmer does not document its own as safe.
    """

    def __init__(self, settings: KeywordSettings) -> None:
        settings = settings.with_defaults()
        stop = _STOP_WORDS.get(settings.language, ()) if settings.stop_words else ()
        self._stop = frozenset(stop)
        self._language = settings.language if settings.stemming else ""
        self._local = threading.local()
        self._terms: dict[str, str] = dict.fromkeys(self._stop, "")

    def _stemmer(self) -> "Stemmer.Stemmer":
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            # Without PyStemmer's own cache (maxCacheSize 0): this class remembers
            # terms itself, and PyStemmer's cache costs more than it saves (it makes
            # stemming a new word several times slower once it fills up).
            stemmer = self._local.stemmer = Stemmer.Stemmer(self._language, 0)
        return stemmer

    def _learn(self, words: Sequence[str]) -> None:
        """Remember the terms of words not seen before."""
        known = self._terms
        new = [word for word in dict.fromkeys(words) if word not in known]
        if len(known) + len(new) > TERM_CACHE_SIZE:
            known.clear()
            known.update(dict.fromkeys(self._stop, ""))
        stems = self._stemmer().stemWords(new) if self._language else new
        known.update(zip(new, stems, strict=True))

    def words(self, texts: Sequence[str]) -> list[str]:
        """The case-folded words of every text, each text's followed by TEXT_BREAK.

        What `_WORD.findall(text.casefold())` gives each text, at a fraction of
        the cost for a batch: consecutive ASCII texts (most, in practice) are
        joined and split at once, by `str.translate` and `str.split` (in ASCII
        `\\w` is letters, digits and `_`, and case folding is `lower`); other
        texts go through the regex one by one. A batch where some text holds
        TEXT_BREAK itself goes one text at a time."""
        words: list[str] = []
        if any(TEXT_BREAK in text for text in texts):
            for text in texts:
                words += _WORD.findall(text.casefold())
                words.append(TEXT_BREAK)
            return words
        for ascii_run, run in groupby(texts, key=str.isascii):
            if ascii_run:
                joined = _SPACED_BREAK.join(run) + _SPACED_BREAK
                words += joined.lower().translate(_ASCII_NON_WORD).split()
            else:
                for text in run:
                    words += _WORD.findall(text.casefold())
                    words.append(TEXT_BREAK)
        return words

    def word_terms(self, words: Sequence[str]) -> list[str]:
        """Each case-folded word's term, "" for a stop word, stemmed in one Snowball
        call and not remembered here: for a caller that keeps its own memory of
        words (a keyword index), which makes this tokenizer's a second copy."""
        stop = self._stop
        stems = self._stemmer().stemWords(words) if self._language else words
        return ["" if word in stop else stem for word, stem in zip(words, stems, strict=True)]

    def _mapped(self, text: str) -> list[str]:
        """Each word's term, "" for a stop word."""
        words = _WORD.findall(text.casefold())
        get = self._terms.get
        terms = [get(word) for word in words]
        if None in terms:
            self._learn(words)
            get = self._terms.get
            terms = [get(word) for word in words]
            if None in terms:  # another thread cleared the memory meanwhile
                return self.word_terms(words)
        return terms  # type: ignore[return-value]

    def sequence(self, text: str) -> list[str | None]:
        """Every word's term in order, with GAP (None) where a stop word stood."""
        return [term or GAP for term in self._mapped(text)]

    def terms(self, text: str) -> list[str]:
        """The index terms of a text, in order, repeats kept (stop words dropped)."""
        return [term for term in self._mapped(text) if term]

    def phrase(self, text: str) -> list[str | None]:
        """A phrase for a text filter: its sequence without leading or trailing gaps."""
        sequence = self.sequence(text)
        start, end = 0, len(sequence)
        while start < end and sequence[start] is GAP:
            start += 1
        while end > start and sequence[end - 1] is GAP:
            end -= 1
        return sequence[start:end]


@cache
def tokenizer_for(settings: KeywordSettings) -> Tokenizer:
    """One tokenizer per distinct settings (it holds a Snowball stemmer and a stop-word set)."""
    return Tokenizer(settings)


def idf(document_frequency: int, documents: int) -> float:
    """Lucene's BM25 idf: always positive, so every matching term adds to a score."""
    df = min(document_frequency, documents)
    return math.log(1.0 + (documents - df + 0.5) / (df + 0.5))


@dataclass(frozen=True)
class TermStatistics:
    """Statistics of a query's terms over some documents: summed over shards they are
    the cluster's."""

    documents: int  # live documents with a text
    total_length: int  # their indexed tokens
    frequencies: Sequence[int]  # per term: documents containing it
    #: Every term the documents hold, with how many hold it, where it was asked for
    #: and listed (see `ShardKeywordStatsRequest.vocabulary_limit`); else None.
    vocabulary: Mapping[str, int] | None = None

    @property
    def average_length(self) -> float:
        return self.total_length / self.documents if self.documents else 0.0


def query_weights(
    terms: Sequence[str], unique: Sequence[str], stats: TermStatistics
) -> list[float]:
    """Per unique term: idf times how often the query holds it (Lucene sums repeats)."""
    counts: dict[str, int] = {}
    for term in terms:
        counts[term] = counts.get(term, 0) + 1
    return occurrence_weights([counts[term] for term in unique], stats)


def occurrence_weights(occurrences: Sequence[int], stats: TermStatistics) -> list[float]:
    """Per term: idf under `stats` times the term's occurrences in the query."""
    return [
        count * idf(df, stats.documents)
        for count, df in zip(occurrences, stats.frequencies, strict=True)
    ]
