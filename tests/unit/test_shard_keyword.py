"""The shard's keyword index in-process: BM25 scores, updates, deletes, restart, text filters."""

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import bm25s
import numpy as np
import pytest

from shard.core.collection import Collection
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import Include, WriteOp
from shard.core.filters import AllOf, Condition, Not, Op, TextContains, validated
from shard.core.keyword_index import KeywordIndex, KeywordQuery
from shard.proto_records import metadata_from_payload, text_from_payload, write_from_proto
from shard.storage.layout import DataDir
from shoal.errors import DataLoss, InvalidArgument
from shoal.keyword import KeywordSettings, TermStatistics, query_weights, tokenizer_for
from shoal.runtime.proto_values import metadata_to_proto
from shoal.v1 import shard_pb2

DIM = 4
NONE = Include()
TEXTS = {
    "a": "The quick brown fox jumps over the lazy dog",
    "b": "A command line tool to convert audio files",
    "c": "Library for audio decoding; the command of line parsing",
    "d": "Foxes and dogs: a field guide",
    "e": "Command-line audio player with playlists",
}


def write(doc_id: str, version: int, text: str | None, **metadata: object) -> WriteOp:
    message = shard_pb2.ShardWrite(
        id=doc_id,
        version=version,
        vector_f32=np.ones(DIM, dtype="<f4").tobytes(),
        text=text,
        metadata=metadata_to_proto(metadata),
    )
    return write_from_proto(message)


def delete(doc_id: str, version: int) -> WriteOp:
    return WriteOp(doc_id, version, True, b"", b"")


def open_collections(path: Path) -> Collections:
    registry = Collections(
        DataDir(path), read_metadata=metadata_from_payload, read_text=text_from_payload
    )
    registry.load()
    return registry


@pytest.fixture
def collections(tmp_path: Path) -> Iterator[Collections]:
    registry = open_collections(tmp_path / "data")
    yield registry
    registry.close()


def make(registry: Collections, **keyword: object) -> Collection:
    settings = KeywordSettings(**keyword)  # type: ignore[arg-type]
    registry.create(CollectionConfig("c", DIM, keyword=settings))
    collection = registry.get("c")
    collection.write([write(i, 1, text, n=n) for n, (i, text) in enumerate(TEXTS.items())])
    return collection


def search(collection: Collection, text: str, k: int = 10, **options: object) -> list[str]:
    """Keyword search of one shard with its own statistics (what one group does)."""
    tokenizer = tokenizer_for(collection.config.keyword)
    terms = tokenizer.terms(text)
    unique = list(dict.fromkeys(terms))
    stats = collection.keyword_statistics(unique)
    query = KeywordQuery(unique, query_weights(terms, unique, stats))
    [hits] = collection.keyword_search([query], stats.average_length, k, NONE, **options)  # type: ignore[arg-type]
    return hits.ids


def test_scores_equal_the_reference_bm25(collections: Collections) -> None:
    collection = make(collections)
    tokenizer = tokenizer_for(collection.config.keyword)
    ids = list(TEXTS)
    reference = bm25s.BM25(method="lucene", k1=1.2, b=0.75, dtype="float64")
    reference.index([tokenizer.terms(TEXTS[i]) for i in ids], show_progress=False)
    for text in ["audio command line", "fox dog dog", "playlists"]:
        terms = tokenizer.terms(text)
        unique = list(dict.fromkeys(terms))
        stats = collection.keyword_statistics(unique)
        query = KeywordQuery(unique, query_weights(terms, unique, stats))
        [hits] = collection.keyword_search([query], stats.average_length, 10, NONE)
        expected = reference.get_scores(terms)
        found = dict(zip(hits.ids, hits.scores, strict=True))
        for row, doc_id in enumerate(ids):
            assert found.get(doc_id, 0.0) == pytest.approx(expected[row], abs=1e-6), (text, doc_id)
        assert hits.scores == sorted(hits.scores, reverse=True)


def test_updates_and_deletes_change_results_at_once(collections: Collections) -> None:
    collection = make(collections)
    assert sorted(search(collection, "fox")) == ["a", "d"]
    collection.write([write("a", 2, "A slow green turtle")])
    assert search(collection, "fox") == ["d"]
    assert search(collection, "turtle") == ["a"]
    collection.write([delete("d", 2)])
    assert search(collection, "fox") == []
    # An older write loses to what is stored (last writer wins).
    collection.write([write("a", 1, "fox fox fox")])
    assert search(collection, "fox") == []
    stats = collection.keyword_statistics(["turtl"])
    assert stats == TermStatistics(4, stats.total_length, [1])


def test_restart_rebuilds_the_same_index(tmp_path: Path) -> None:
    registry = open_collections(tmp_path / "data")
    collection = make(registry)
    collection.write([write("a", 2, "turtle soup"), delete("b", 2)])
    before = {text: search(collection, text) for text in ["audio command", "turtle", "fox"]}
    registry.close()
    registry = open_collections(tmp_path / "data")
    try:
        collection = registry.get("c")
        assert {text: search(collection, text) for text in before} == before
    finally:
        registry.close()


def test_text_filters_match_whole_words_and_phrases(collections: Collections) -> None:
    collection = make(collections)
    assert collection.count(validated(TextContains("audio"))) == 3
    assert collection.count(validated(TextContains("command line"))) == 2  # b and e, not c
    assert collection.count(validated(TextContains("command of line"))) == 1
    assert collection.count(validated(TextContains("FOXES"))) == 2  # stemmed: fox
    assert collection.count(validated(TextContains("aud"))) == 0  # whole words only
    assert collection.count(validated(Not(TextContains("audio")))) == 2
    both = AllOf((TextContains("audio"), Condition("n", Op.GTE, 2)))
    assert collection.count(validated(both)) == 2
    page, _ = collection.scroll(validated(TextContains("command line")), "", 10, NONE)
    assert [document.id for document in page] == ["b", "e"]
    assert search(collection, "audio", root=validated(Not(TextContains("player")))) == ["b", "c"]
    with pytest.raises(InvalidArgument, match="no words"):
        collection.count(validated(TextContains("the of")))


def test_documents_without_text_have_no_keyword_score(collections: Collections) -> None:
    collection = make(collections)
    collection.write([write("f", 1, None)])
    assert collection.keyword_statistics([]).documents == len(TEXTS)
    assert "f" not in search(collection, "audio fox command")
    assert collection.count(validated(Not(TextContains("audio")))) == 3


def test_a_collection_without_keyword_index_refuses_keyword_reads(
    collections: Collections,
) -> None:
    collection = make(collections, enabled=False)
    with pytest.raises(InvalidArgument, match="no keyword index"):
        collection.keyword_statistics(["fox"])
    with pytest.raises(InvalidArgument, match="keyword index"):
        collection.count(validated(TextContains("fox")))


def test_unknown_language_is_refused(collections: Collections) -> None:
    with pytest.raises(InvalidArgument, match="language"):
        collections.create(CollectionConfig("x", DIM, keyword=KeywordSettings(language="klingon")))


def test_postings_are_compacted_after_many_replacements() -> None:
    index = KeywordIndex(KeywordSettings())
    for round_ in range(50):
        for label in range(10):
            index.put([label], index.analyze([f"shared word{label} round{round_}"]))
    stats = index.statistics(["share"])
    assert stats.documents == 10 and list(stats.frequencies) == [10]
    labels, scores = index.scores(KeywordQuery(["share"], [1.0]), 3.0, None)
    assert sorted(labels.tolist()) == list(range(10))
    assert np.all(scores > 0)


def test_a_new_incarnation_starts_with_an_empty_keyword_index(
    collections: Collections,
) -> None:
    """A replica told of a newer incarnation (it missed the drop) replaces the old
    collection, keyword index included; a drop then a create does the same."""
    config = CollectionConfig("c", DIM, incarnation=1)
    collections.create(config)
    collections.get("c", 1).write([write(i, 1, text) for i, text in TEXTS.items()])
    assert sorted(search(collections.get("c"), "fox")) == ["a", "d"]
    collections.create(dataclasses.replace(config, incarnation=2))
    replaced = collections.get("c", 2)
    assert replaced.keyword_statistics(["fox"]) == TermStatistics(0, 0, [0])
    assert search(replaced, "fox") == []
    replaced.write([write("z", 1, "a fox again")])
    assert search(replaced, "fox") == ["z"]
    assert collections.delete("c", 2)
    collections.create(dataclasses.replace(config, incarnation=3))
    assert collections.get("c", 3).keyword_statistics(["fox"]) == TermStatistics(0, 0, [0])


def test_keyword_settings_survive_the_catalog() -> None:
    """The catalog holds settings as JSON; a shard following it must read back the
    keyword settings the collection was created with."""
    keyword = KeywordSettings(True, "german", False, True, 1.5, 0.5)
    config = CollectionConfig("c", DIM, keyword=keyword, incarnation=4).with_defaults()
    stored = json.loads(json.dumps(config.to_settings()))
    assert CollectionConfig.from_catalog("c", stored, 4) == config
    del stored["keyword"]  # written before keyword indexes existed: the defaults
    assert (
        CollectionConfig.from_catalog("c", stored, 4).keyword == KeywordSettings().with_defaults()
    )
    with pytest.raises(DataLoss, match="unreadable"):
        CollectionConfig.from_catalog("c", {**stored, "keyword": {"k1": "high"}}, 4)
