"""Keyword and hybrid reads: round trips to the groups, and exact scores with remembered
statistics (the coordinator's memory of them is checked by every answer)."""

from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import numpy as np
import pytest

from coordinator.core.keyword_reads import MAX_KEYWORD_ATTEMPTS
from coordinator.core.keyword_statistics import StatisticsMemory
from coordinator.core.model import (
    DocumentInput,
    FusedHit,
    QueryInput,
    SearchMode,
    SearchOptions,
    SearchResults,
    WriteConsistency,
)
from coordinator.core.ports import Include
from shoal.errors import Unavailable
from shoal.keyword import TermStatistics
from shoal.v1 import common_pb2
from tests.unit.coordinator_fakes import FakeCluster, FakeShard, deadline

DIM = 8
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a lazy afternoon with a brown dog",
    "foxes and hounds in the forest",
    "quick thinking saves the day",
    "brown bread and butter",
    "the dog barks at the fox",
    "forest fires burn quickly",
    "jumping foxes are quick",
]
RNG = np.random.default_rng(3)
VECTORS = RNG.standard_normal((len(TEXTS), DIM)).astype(np.float32)
QUERY_VECTOR = RNG.standard_normal(DIM).astype(np.float32)


async def loaded(groups: int) -> FakeCluster:
    cluster = FakeCluster(groups=groups, replicas=1)
    await cluster.create("c", DIM, partitions=16)
    docs = [DocumentInput(f"d{i}", VECTORS[i], text=text) for i, text in enumerate(TEXTS)]
    await cluster.core.writer.upsert("c", docs, WriteConsistency.ALL, deadline())
    return cluster


def calls(cluster: FakeCluster, what: str) -> int:
    return sum(shard.calls.count(what) for shard in cluster.all_shards)


def forget_calls(cluster: FakeCluster) -> None:
    for shard in cluster.all_shards:
        shard.calls.clear()


def scored(results: SearchResults) -> list[tuple[str, float]]:
    return [(hit.id, round(hit.score, 6)) for hit in results.results[0].hits]


async def keyword(cluster: FakeCluster, text: str) -> SearchResults:
    options = SearchOptions(5, mode=SearchMode.KEYWORD)
    return await cluster.core.reader.search("c", [QueryInput(text=text)], options, deadline())


async def hybrid(cluster: FakeCluster, text: str, include: Include | None = None) -> SearchResults:
    options = SearchOptions(3, mode=SearchMode.HYBRID, include=include or Include(), explain=True)
    query = QueryInput(vector=QUERY_VECTOR, text=text)
    return await cluster.core.reader.search("c", [query], options, deadline())


async def test_a_repeated_keyword_search_takes_one_round_trip() -> None:
    cluster = await loaded(groups=3)
    forget_calls(cluster)

    first = await keyword(cluster, "quick brown fox")
    assert calls(cluster, "keyword_stats") == 3  # no statistics remembered yet
    assert calls(cluster, "hybrid_search") == 3
    forget_calls(cluster)
    again = await keyword(cluster, "brown fox quick")

    assert calls(cluster, "keyword_stats") == 0
    assert calls(cluster, "hybrid_search") == 3  # one call per group, nothing else
    assert scored(again) == scored(first)


async def test_a_first_search_of_new_words_in_one_group_takes_one_round_trip() -> None:
    one = await loaded(groups=1)
    three = await loaded(groups=3)
    forget_calls(one)

    first = await keyword(one, "quick brown fox")
    fused = await hybrid(one, "lazy afternoon")  # words the coordinator has not seen

    # No statistics call first: the replica weighted with its own, the cluster's.
    assert one.all_shards[0].calls == ["hybrid_search", "hybrid_search"]
    assert scored(first) and scored(first) == scored(await keyword(three, "quick brown fox"))
    assert scored(fused) == scored(await hybrid(three, "lazy afternoon"))
    forget_calls(one)
    assert scored(await keyword(one, "fox brown quick")) == scored(first)  # remembered now
    assert one.all_shards[0].calls == ["hybrid_search"]


async def test_local_statistics_of_a_group_among_several_are_scored_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = await loaded(groups=2)
    # As if the coordinator still saw one group when the topology had grown to two.
    monkeypatch.setattr(cluster.core.reader._keyword, "_groups", lambda: 1)
    forget_calls(cluster)

    results = await keyword(cluster, "quick brown fox")

    assert calls(cluster, "keyword_stats") == 0
    assert calls(cluster, "hybrid_search") == 4  # local weights, then the cluster's
    alone = await loaded(groups=1)
    assert scored(results) and scored(results) == scored(await keyword(alone, "quick brown fox"))


async def test_a_hybrid_search_asks_each_group_once_with_the_stored_fields() -> None:
    cluster = await loaded(groups=2)
    await hybrid(cluster, "lazy dog")
    forget_calls(cluster)

    results = await hybrid(cluster, "lazy dog", Include(text=True))

    assert [shard.calls for shard in cluster.all_shards] == [["hybrid_search"]] * 2
    hits = results.results[0].hits
    texts = [cast(common_pb2.Document, hit.document).text for hit in hits]
    assert hits and texts == [TEXTS[int(hit.id[1:])] for hit in hits]


async def test_scores_stay_exact_when_writes_move_the_remembered_statistics() -> None:
    cluster = await loaded(groups=3)
    await keyword(cluster, "quick brown fox")  # remembers the statistics
    more = [DocumentInput(f"n{i}", VECTORS[i], text="brown brown fox") for i in range(3)]
    await cluster.core.writer.upsert("c", more, WriteConsistency.ALL, deadline())
    forget_calls(cluster)

    moved = await keyword(cluster, "quick brown fox")

    # The first answer's statistics differed from the remembered ones: scored again.
    assert calls(cluster, "hybrid_search") == 6
    fresh = FakeCluster(groups=1, replicas=1)
    await fresh.create("c", DIM, partitions=16)
    everything = [DocumentInput(f"d{i}", VECTORS[i], text=t) for i, t in enumerate(TEXTS)]
    await fresh.core.writer.upsert("c", everything + more, WriteConsistency.ALL, deadline())
    assert scored(moved) == scored(await keyword(fresh, "quick brown fox"))


async def test_only_stop_words_give_no_keyword_call() -> None:
    cluster = await loaded(groups=2)
    forget_calls(cluster)

    results = await keyword(cluster, "the and a")

    assert results.results[0].hits == []
    assert calls(cluster, "hybrid_search") + calls(cluster, "keyword_stats") == 0


def test_the_memory_recalls_only_terms_it_saw_and_stays_bounded() -> None:
    memory = StatisticsMemory(max_terms=4, max_collections=2)
    memory.remember(("c", 1), ["a", "b"], TermStatistics(10, 100, [2, 3]))

    assert memory.recall(("c", 1), ["b", "a"]) == TermStatistics(10, 100, [3, 2])
    assert memory.recall(("c", 1), ["a", "z"]) is None
    assert memory.recall(("c", 2), ["a"]) is None  # a recreated collection
    memory.remember(("c", 1), ["x", "y", "z"], TermStatistics(11, 110, [1, 1, 1]))
    assert memory.recall(("c", 1), ["a"]) is None  # past 4 terms it started over
    assert memory.recall(("c", 1), ["x"]) == TermStatistics(11, 110, [1])
    memory.remember(("d", 1), ["x"], TermStatistics(1, 1, [1]))
    assert memory.terms == 4
    memory.remember(("e", 1), ["x"], TermStatistics(1, 1, [1]))
    assert memory.recall(("c", 1), ["x"]) is None  # the least recently used went
    assert memory.recall(("d", 1), ["x"]) is not None
    memory.remember(("d", 1), ["p", "q", "r"], TermStatistics(1, 1, [1, 1, 1]))
    assert memory.recall(("e", 1), ["x"]) is None  # room made for d's terms
    assert memory.terms == 4


async def test_statistics_that_never_settle_cost_a_bounded_number_of_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = await loaded(groups=2)
    await keyword(cluster, "quick brown fox")
    answers = iter(range(1, 1000))
    original = FakeShard._statistics

    def moving(
        self: FakeShard, collection: str, terms: Sequence[str], skipped: Sequence[int]
    ) -> TermStatistics:
        stats = original(self, collection, terms, skipped)  # as if a write landed before every call
        return replace(stats, documents=stats.documents + next(answers))

    monkeypatch.setattr(FakeShard, "_statistics", moving)
    forget_calls(cluster)

    results = await keyword(cluster, "quick brown fox")

    assert results.results[0].hits  # the last list stands
    assert calls(cluster, "hybrid_search") == 2 * MAX_KEYWORD_ATTEMPTS


async def test_a_text_only_hybrid_query_embeds_its_text_for_the_vector_list() -> None:
    cluster = FakeCluster(groups=2, replicas=1)
    await cluster.create("c", DIM, model=cluster.embedder.model, partitions=16)
    docs = [DocumentInput(f"d{i}", text=text) for i, text in enumerate(TEXTS)]
    await cluster.core.writer.upsert("c", docs, WriteConsistency.ALL, deadline())
    options = SearchOptions(3, mode=SearchMode.HYBRID, explain=True)
    query = [QueryInput(text=TEXTS[5])]
    await cluster.core.reader.search("c", query, options, deadline())
    forget_calls(cluster)

    results = await cluster.core.reader.search("c", query, options, deadline())

    top = cast(FusedHit, results.results[0].hits[0])
    # The document itself: first in both lists (its own embedding, its own words).
    assert top.id == "d5"
    assert top.explanation is not None
    assert (top.explanation.vector_rank, top.explanation.keyword_rank) == (1, 1)
    assert [shard.calls for shard in cluster.all_shards] == [["hybrid_search"]] * 2


async def test_partial_keyword_results_score_with_the_answering_groups_statistics() -> None:
    cluster = await loaded(groups=2)
    await keyword(cluster, "brown dog")  # remembers the statistics of both groups
    for shard in cluster.shards[1]:
        shard.fail = Unavailable(f"{shard.address} is down")
    options = SearchOptions(5, mode=SearchMode.KEYWORD, allow_partial=True)
    query = [QueryInput(text="brown dog")]

    partial = await cluster.core.reader.search("c", query, options, deadline())

    assert (partial.coverage.asked, partial.coverage.answered) == (2, 1)
    # As one index of the documents group 0 holds: scored again with their statistics.
    held = {doc_id for doc_id in cluster.shards[0][0].documents["c"]}
    alone = FakeCluster(groups=1, replicas=1)
    await alone.create("c", DIM, partitions=16)
    docs = [
        DocumentInput(f"d{i}", VECTORS[i], text=t) for i, t in enumerate(TEXTS) if f"d{i}" in held
    ]
    await alone.core.writer.upsert("c", docs, WriteConsistency.ALL, deadline())
    assert scored(partial) and scored(partial) == scored(await keyword(alone, "brown dog"))
    for shard in cluster.shards[0]:
        shard.fail = Unavailable(f"{shard.address} is down")
    forget_calls(cluster)
    nothing = await cluster.core.reader.search("c", query, options, deadline())
    assert nothing.results[0].hits == [] and nothing.coverage.answered == 0


async def test_once_the_vocabulary_is_known_new_words_take_one_round_trip() -> None:
    cluster = await loaded(groups=3)
    alone = await loaded(groups=1)
    await keyword(cluster, "quick brown fox")  # the statistics call lists the vocabulary
    forget_calls(cluster)

    fused = await hybrid(cluster, "lazy afternoon")  # words no search asked for yet
    found = await keyword(cluster, "forest fires")
    unheld = await keyword(cluster, "zebra")  # a word no document holds

    assert calls(cluster, "keyword_stats") == 0
    assert calls(cluster, "hybrid_search") == 3 * 3  # one call per group and search
    assert scored(fused) == scored(await hybrid(alone, "lazy afternoon"))
    assert scored(found) and scored(found) == scored(await keyword(alone, "forest fires"))
    assert unheld.results[0].hits == []


async def test_a_word_written_after_the_vocabulary_was_listed_scores_exactly() -> None:
    cluster = await loaded(groups=2)
    await keyword(cluster, "quick brown fox")  # the vocabulary, without "zebra"
    more = [DocumentInput(f"z{i}", VECTORS[i], text="a zebra and a fox") for i in range(3)]
    await cluster.core.writer.upsert("c", more, WriteConsistency.ALL, deadline())
    forget_calls(cluster)

    found = await keyword(cluster, "zebra fox")

    # Weighted as if no document held "zebra": the answers say otherwise, scored again.
    assert calls(cluster, "keyword_stats") == 0
    assert calls(cluster, "hybrid_search") == 2 * 2
    fresh = FakeCluster(groups=1, replicas=1)
    await fresh.create("c", DIM, partitions=16)
    everything = [DocumentInput(f"d{i}", VECTORS[i], text=t) for i, t in enumerate(TEXTS)]
    await fresh.core.writer.upsert("c", everything + more, WriteConsistency.ALL, deadline())
    assert scored(found) and scored(found) == scored(await keyword(fresh, "zebra fox"))


async def test_a_partial_answer_teaches_no_vocabulary() -> None:
    cluster = await loaded(groups=2)
    for shard in cluster.shards[1]:
        shard.fail = Unavailable(f"{shard.address} is down")
    options = SearchOptions(5, mode=SearchMode.KEYWORD, allow_partial=True)
    await cluster.core.reader.search("c", [QueryInput(text="brown dog")], options, deadline())
    for shard in cluster.shards[1]:
        shard.fail = None
    forget_calls(cluster)

    await keyword(cluster, "lazy afternoon")

    assert calls(cluster, "keyword_stats") == 2  # group 1's words were never listed


def test_a_listed_vocabulary_answers_every_term_until_it_is_forgotten() -> None:
    memory = StatisticsMemory(max_terms=6, max_collections=2, max_vocabulary=4)
    assert memory.vocabulary_limit(("c", 1)) == 4
    listed = TermStatistics(10, 100, [2], vocabulary={"a": 2, "b": 3, "c": 1})
    memory.remember(("c", 1), ["a"], listed, listing_asked=True)

    assert memory.recall(("c", 1), ["b", "z"]) == TermStatistics(10, 100, [3, 0])
    assert memory.vocabulary_limit(("c", 1)) == 0  # known: not asked for again
    too_many = TermStatistics(1, 1, [1], vocabulary={f"t{i}": 1 for i in range(5)})
    memory.remember(("d", 1), ["x"], too_many, listing_asked=True)
    assert memory.recall(("d", 1), ["y"]) is None  # more than 4 terms: not kept whole
    assert memory.vocabulary_limit(("d", 1)) == 0  # nor asked for again
    memory.remember(("e", 1), ["x"], TermStatistics(1, 1, [1]))
    assert memory.recall(("c", 1), ["z"]) is None  # the least recently used went
    assert memory.vocabulary_limit(("c", 1)) == 4
    assert memory.vocabulary_limit(("e", 1)) == 4  # remembered without asking for it


async def test_a_vocabulary_too_large_to_keep_is_asked_for_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = await loaded(groups=2)
    memory = StatisticsMemory(max_vocabulary=3)  # the texts hold more terms
    monkeypatch.setattr(cluster.core.reader._keyword, "_memory", memory)
    limits: list[int] = []
    original = FakeShard.keyword_stats

    async def recorded(
        self: FakeShard,
        collection: str,
        terms: Sequence[str],
        timeout_s: float,
        skip_partitions: Sequence[int] = (),
        vocabulary_limit: int = 0,
    ) -> TermStatistics:
        limits.append(vocabulary_limit)
        return await original(self, collection, terms, timeout_s, skip_partitions, vocabulary_limit)

    monkeypatch.setattr(FakeShard, "keyword_stats", recorded)

    await keyword(cluster, "quick brown fox")
    await keyword(cluster, "lazy afternoon")  # new words: their statistics asked for

    assert limits == [3, 3, 0, 0]
