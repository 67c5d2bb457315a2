"""The keyword index fed in batches agrees with a plain model of the texts it holds.

The index analyzes a whole batch of texts in one pass and builds postings per
batch; these tests replay random batches of puts (new labels and replaced
ones), removals and texts without words against a dict of the live texts, and
compare every statistic, BM25 score and phrase mask with what the texts say.
"""

import math
import random
import re

import numpy as np
import pytest

from shard.core import keyword_index
from shard.core.keyword_index import KeywordIndex, KeywordQuery
from shoal.keyword import KeywordSettings, Tokenizer

WORDS = [
    "audio", "audios", "editor", "editing", "command", "line", "the", "a", "of", "and",
    "Straße", "STRASSE", "école", "ÉCOLE", "naïve", "x11", "gtk", "qt", "server", "servers",
    "python3", "library", "libraries", "tool", "tools", "fast", "faster", "dog", "dogs", "fox",
]  # fmt: skip


def _text(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.08:
        return rng.choice(["", "the a of", "!!! ---"])  # a text with no indexed words
    words = rng.choices(WORDS, k=rng.randint(1, 25))
    separators = [" ", " ", ", ", "-", "\n", "\x00" if rng.random() < 0.05 else " "]
    return "".join(word + rng.choice(separators) for word in words)


def _check(index: KeywordIndex, texts: dict[int, str | None], tokenizer: Tokenizer) -> None:
    terms = {label: tokenizer.terms(text) for label, text in texts.items() if text is not None}
    vocabulary = sorted({term for doc in terms.values() for term in doc} | {"absent"})
    stats = index.statistics(vocabulary)
    assert stats.documents == len(terms)
    assert stats.total_length == sum(len(doc) for doc in terms.values())
    expected_df = [sum(term in doc for doc in terms.values()) for term in vocabulary]
    assert list(stats.frequencies) == expected_df
    average = stats.average_length or 1.0
    for query in (vocabulary[:3], vocabulary[-4:], ["audio", "editor", "absent"]):
        weights = [1.0 + n for n in range(len(query))]
        labels, scores = index.scores(KeywordQuery(query, weights), average, None)
        found = dict(zip(labels.tolist(), scores.tolist(), strict=True))
        expected = {}
        for label, doc in terms.items():
            score = 0.0
            for term, weight in zip(query, weights, strict=True):
                tf = doc.count(term)
                if tf:
                    norm = 1.2 * (1 - 0.75 + 0.75 * len(doc) / average)
                    score += weight * tf / (tf + norm)
            if score:
                expected[label] = score
        assert found.keys() == expected.keys()
        for label, score in expected.items():
            assert math.isclose(found[label], score, rel_tol=1e-9)
    size = max(texts, default=0) + 1
    for phrase in ("audio editor", "command line", "the dogs", "strasse", "école naïve"):
        mask = index.contains_mask(phrase, size)
        holding = {label for label in range(size) if mask[label]}
        assert holding == {
            label for label, text in texts.items() if index.text_holds(text, phrase)
        }, phrase


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("compact_early", [False, True])
def test_random_batches_agree_with_the_texts(
    seed: int, compact_early: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if compact_early:  # compactions of postings and sequences all along
        monkeypatch.setattr(keyword_index, "POSTINGS_GARBAGE", 1)
        monkeypatch.setattr(keyword_index, "BUFFER_GARBAGE", 8)
    rng = random.Random(seed)
    index = KeywordIndex(KeywordSettings())
    texts: dict[int, str | None] = {}
    next_label = 0
    for _ in range(60):
        if texts and rng.random() < 0.25:
            removed = rng.sample(sorted(texts), rng.randint(1, min(5, len(texts))))
            index.remove(removed)
            for label in removed:
                del texts[label]
        else:
            replaced = rng.sample(sorted(texts), rng.randint(0, min(4, len(texts))))
            added = list(range(next_label, next_label + rng.randint(0, 12)))
            next_label += len(added)
            labels = replaced + added
            rng.shuffle(labels)
            batch = [_text(rng) for _ in labels]
            index.put(labels, index.analyze(batch))
            texts.update(zip(labels, batch, strict=True))
        _check(index, texts, index.tokenizer)


def test_a_batch_with_text_breaks_inside_texts_keeps_them_apart() -> None:
    index = KeywordIndex(KeywordSettings())
    index.put([0, 1, 2], index.analyze(["audio\x00editor", None, "editor\x00"]))
    assert index.statistics(["audio", "editor"]).frequencies == [1, 2]
    assert index.documents == 2
    assert index.contains_mask("audio editor", 3).tolist() == [True, False, False]


def test_batch_words_are_the_words_of_each_text() -> None:
    tokenizer = KeywordIndex(KeywordSettings()).tokenizer
    texts = ["Straße und ÉCOLE", "", "x11-server, x11", "tab\there"]
    words = tokenizer.words(texts)
    expected: list[str] = []
    for text in texts:
        expected += [*(word.casefold() for word in text.replace("-", " ").split()), "\x00"]
    assert [w.strip(",") for w in words] == [w.strip(",") for w in expected]
    assert tokenizer.word_terms(["servers", "the", "libraries"]) == ["server", "", "librari"]


def test_replacing_the_same_documents_keeps_memory_bounded() -> None:
    """Replaced texts leave garbage in the postings and the sequence buffer; both
    are compacted, so memory follows the live texts, not the writes."""
    index = KeywordIndex(KeywordSettings())
    labels = list(range(50))
    sizes = []
    for round_ in range(200):
        batch = [f"shared words label{label} round{round_} " * 3 for label in labels]
        index.put(labels, index.analyze(batch))
        sizes.append(index.nbytes())
    assert index.statistics(["share"]).frequencies == [50]
    assert index.statistics([f"round{199}"]).frequencies == [50]
    assert index.statistics([f"round{198}"]).frequencies == [0]
    # Every round adds terms (round<n>), whose empty postings stay; the rest is bounded.
    assert sizes[-1] < 3 * sizes[20] + 200 * 24
    labels_found, scores = index.scores(KeywordQuery(["share"], [1.0]), 12.0, None)
    assert sorted(labels_found.tolist()) == labels and np.all(scores > 0)
    _check(index, dict(zip(labels, batch, strict=True)), index.tokenizer)


def test_batch_words_equal_the_regex_on_every_character_mix() -> None:
    """The ASCII fast path (translate and split) must give what `\\w+` gives."""
    rng = random.Random(7)
    others = "éßÉ\u2019\u2014…“”ñ中文\u00a0\u2003\u0661\u0662"
    alphabet = [chr(code) for code in range(128)] + list(others)
    tokenizer = KeywordIndex(KeywordSettings()).tokenizer
    for _ in range(200):
        texts = [
            "".join(rng.choices(alphabet[1:128] if rng.random() < 0.7 else alphabet[1:], k=40))
            for _ in range(rng.randint(1, 8))
        ]
        expected: list[str] = []
        for text in texts:
            expected += [*re.findall(r"\w+", text.casefold()), "\x00"]
        assert tokenizer.words(texts) == expected


def test_a_batch_without_any_indexed_word() -> None:
    """Texts that are empty or only stop words still count as documents with a text."""
    index = KeywordIndex(KeywordSettings())
    index.put([0, 1, 2], index.analyze(["", "the of a", None]))
    stats = index.statistics(["the"])
    assert (stats.documents, stats.total_length, list(stats.frequencies)) == (2, 0, [0])
    index.put([1], index.analyze(["audio"]))
    assert index.statistics(["audio"]).frequencies == [1] and index.documents == 2


def _bm25(texts: dict[int, str], query: KeywordQuery, average: float) -> dict[int, float]:
    """Lucene's BM25 of each text holding a query term (k1 1.2, b 0.75), term by term."""
    tokenizer = Tokenizer(KeywordSettings())
    scores = {}
    for label, text in texts.items():
        doc = tokenizer.terms(text)
        score = 0.0
        for term, weight in zip(query.terms, query.weights, strict=True):
            tf = doc.count(term)
            if tf:
                score += weight * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * len(doc) / average))
        if score:
            scores[label] = score
    return scores


@pytest.mark.parametrize("dense", [True, False])
def test_scores_follow_every_change_at_the_same_mean_length(
    dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scored terms are kept per mean length: a change must not leave old ones in use.
    monkeypatch.setattr(keyword_index, "DENSE_SCORING", 10**6 if dense else 0)
    index = KeywordIndex(KeywordSettings())
    texts = {0: "audio editor", 1: "audio player audio", 2: "video editor", 3: "editor"}
    index.put(list(texts), index.analyze(list(texts.values())))
    query = KeywordQuery(["audio", "editor"], [1.5, 2.0])
    mask = np.array([True, True, False, True, True])

    def check() -> None:
        for allowed in (None, mask):
            labels, scores = index.scores(query, 2.5, allowed)
            found = dict(zip(labels.tolist(), scores.tolist(), strict=True))
            held = {k: v for k, v in texts.items() if allowed is None or allowed[k]}
            expected = _bm25(held, query, 2.5)
            assert found.keys() == expected.keys()
            for label, score in expected.items():
                assert math.isclose(found[label], score, rel_tol=1e-12)

    check()
    check()  # the same again, from what the first scoring kept
    index.remove([1])
    del texts[1]
    check()
    index.put([4, 0], index.analyze(["editor audio audio", "video"]))
    texts.update({4: "editor audio audio", 0: "video"})
    check()
