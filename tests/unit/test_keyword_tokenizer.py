"""shoal.keyword: tokenization, settings defaults and validation, Lucene's idf."""

import math

import pytest

from shoal import keyword
from shoal.errors import InvalidArgument
from shoal.keyword import KeywordSettings, Tokenizer, idf


def test_defaults_are_english_with_stemming_and_stop_words() -> None:
    settings = KeywordSettings().with_defaults()
    assert settings == KeywordSettings(True, "english", True, True, 1.2, 0.75)
    # No stop-word list for Finnish: off unless asked for (and then refused).
    assert KeywordSettings(language="finnish").with_defaults().stop_words is False
    with pytest.raises(InvalidArgument, match="no stop-word list"):
        KeywordSettings(language="finnish", stop_words=True).with_defaults().validate()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (KeywordSettings(language="klingon"), "language"),
        (KeywordSettings(k1=-1.0), "k1"),
        (KeywordSettings(b=1.5), "b is"),
        (KeywordSettings(b=math.nan), "b is"),
    ],
)
def test_bad_settings_are_refused(settings: KeywordSettings, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        settings.with_defaults().validate()


def test_terms_fold_case_split_unicode_words_drop_stop_words_and_stem() -> None:
    tokenizer = Tokenizer(KeywordSettings())
    assert tokenizer.terms("The Running FOXES, über-cool Straße!") == [
        "run",
        "fox",
        "über",
        "cool",
        "strass",
    ]
    assert tokenizer.sequence("command of the line") == ["command", None, None, "line"]
    assert tokenizer.phrase("the command line of") == ["command", "line"]
    plain = Tokenizer(KeywordSettings(stemming=False, stop_words=False))
    assert plain.terms("The Running foxes") == ["the", "running", "foxes"]


def test_a_full_term_memory_starts_over_without_changing_terms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keyword, "TERM_CACHE_SIZE", 40)
    tokenizer = Tokenizer(KeywordSettings())
    text = " ".join(f"word{i} running" for i in range(30))
    first = tokenizer.terms(text)
    assert first == tokenizer.terms(text) and first[1] == "run"


def test_idf_is_lucenes_and_always_positive() -> None:
    assert idf(1, 10) == pytest.approx(math.log(1 + 9.5 / 1.5))
    assert idf(10, 10) > 0
