"""Keyword and hybrid searches: cluster-wide BM25 statistics, candidate lists, fusion.

Keyword scores must not depend on how documents are spread over shard groups,
so a keyword search runs in two steps, as Elasticsearch's dfs_query_then_fetch
does: every group reports the statistics of the query's terms (documents with
text, their total length, documents per term), the coordinator sums them into
the cluster's idf per term and mean length, and every group scores with those.
The result equals one BM25 index holding every document.

The query is tokenized here, once, with the collection's tokenizer (shared
with the shards through `shoal.keyword`); shards receive index terms.

A hybrid search runs the vector side (embedding the text when the collection
has a model and no vector was given) at the same time as the statistics step,
so the extra round trip hides behind the embedding; each side returns its top
`candidates` (see `HybridOptions`), and `fusion` merges them. Stored fields of
the fused hits are read afterwards by id, for the k hits only.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from itertools import chain
from typing import Protocol, TypeVar

from coordinator.core.deadline import Deadline
from coordinator.core.fanout import ShardCall
from coordinator.core.fusion import explained, fuse
from coordinator.core.merge import merge_batches
from coordinator.core.model import (
    Coverage,
    FoundDocuments,
    FusedHit,
    MergedHits,
    QueryInput,
    SearchMode,
    SearchOptions,
    SearchResults,
)
from coordinator.core.ports import (
    CollectionConfig,
    Include,
    RankedHits,
    ShardClient,
    Vector,
    WeightedTerms,
)
from shoal.errors import Internal, InvalidArgument
from shoal.keyword import MAX_QUERY_TERMS, TermStatistics, query_weights, tokenizer_for

T = TypeVar("T")


class FanOut(Protocol):
    """The reader's fan-out: one call on every shard group, with failover."""

    def __call__(
        self,
        collection: str,
        operation: str,
        call: ShardCall[T],
        deadline: Deadline,
        allow_partial: bool,
    ) -> Awaitable[tuple[list[T], Coverage]]: ...


Embed = Callable[[CollectionConfig, Sequence[QueryInput], Deadline], Awaitable[Vector]]
Get = Callable[[str, Sequence[str], Include, bool, Deadline], Awaitable[FoundDocuments]]
VectorSearch = Callable[
    [str, Vector, SearchOptions, Deadline], Awaitable[tuple[list[RankedHits], Coverage]]
]


def check_keyword_queries(
    config: CollectionConfig, queries: Sequence[QueryInput], mode: SearchMode
) -> None:
    """What keyword and hybrid queries need: a keyword index, a text, and for hybrid a
    way to the vector side."""
    if not config.keyword.enabled:
        raise InvalidArgument(
            f"collection {config.name!r} has no keyword index (created with keyword.enabled"
            f" false); {mode.value} search needs one: search it in vector mode"
        )
    for position, query in enumerate(queries):
        what = f"query {position}" if len(queries) > 1 else "query"
        if not query.text:
            raise InvalidArgument(f"{what}: {mode.value} search needs a text")
        if mode is SearchMode.KEYWORD and query.vector is not None:
            raise InvalidArgument(
                f"{what}: keyword search takes a text only; use hybrid mode to add a vector"
            )
        if mode is SearchMode.HYBRID and query.vector is None and not config.embedding_model:
            raise InvalidArgument(
                f"{what}: collection {config.name!r} has no embedding model, so a hybrid"
                " query needs a vector besides its text"
            )


def _summed_statistics(statistics: Sequence[TermStatistics], terms: int) -> TermStatistics:
    frequencies = [0] * terms
    for stats in statistics:
        if len(stats.frequencies) != terms:
            raise Internal(f"a shard answered {len(stats.frequencies)} of {terms} term statistics")
        for position, frequency in enumerate(stats.frequencies):
            frequencies[position] += frequency
    return TermStatistics(
        sum(s.documents for s in statistics), sum(s.total_length for s in statistics), frequencies
    )


def _coverage(*parts: Coverage) -> Coverage:
    return Coverage(max(p.asked for p in parts), min(p.answered for p in parts))


class KeywordReads:
    def __init__(
        self,
        fan_out: FanOut,
        embed: Embed,
        get: Get,
        vector_search: VectorSearch,
        fan_out_ranked: FanOut | None = None,
    ) -> None:
        self._fan_out = fan_out
        #: For ranked hits: while partitions move, each group's cut to what it owns.
        self._fan_out_ranked = fan_out_ranked or fan_out
        self._embed = embed
        self._get = get
        self._vector_search = vector_search

    async def search(
        self,
        config: CollectionConfig,
        queries: Sequence[QueryInput],
        options: SearchOptions,
        deadline: Deadline,
    ) -> SearchResults:
        check_keyword_queries(config, queries, options.mode)
        k, hybrid = options.k, options.mode is SearchMode.HYBRID
        depth = options.hybrid.depth(k) if hybrid else k
        if depth < k:
            raise InvalidArgument(f"candidates is {depth}; it must be at least k ({k})")
        tokenizer = tokenizer_for(config.keyword)
        terms = [tokenizer.terms(query.text or "") for query in queries]
        for position, query_terms in enumerate(terms):
            if len(query_terms) > MAX_QUERY_TERMS:
                raise InvalidArgument(
                    f"query {position}: {len(query_terms)} words to search; the limit is"
                    f" {MAX_QUERY_TERMS}"
                )
        vector_task = None
        if hybrid:
            vector_task = asyncio.create_task(
                self._vector_side(config, queries, options, depth, deadline)
            )
        try:
            keyword, keyword_coverage = await self._keyword_side(
                config.name, terms, options, depth, hybrid, deadline
            )
            if vector_task is None:
                if options.explain:
                    keyword = [MergedHits(list(explained(r.hits, True))) for r in keyword]
                return SearchResults(keyword, keyword_coverage)
            vector, vector_coverage = await vector_task
        finally:
            if vector_task is not None and not vector_task.done():
                vector_task.cancel()
        fused = [
            fuse(v.hits, w.hits, k, options.hybrid, options.score_threshold)
            for v, w in zip(vector, keyword, strict=True)
        ]
        if not options.explain:
            fused = [[replace(hit, explanation=None) for hit in hits] for hits in fused]
        include = options.include
        if include.metadata or include.text or include.vector:
            fused = await self._with_documents(config.name, fused, options, deadline)
        results: list[RankedHits] = [MergedHits(list(hits)) for hits in fused]
        return SearchResults(results, _coverage(keyword_coverage, vector_coverage))

    async def _vector_side(
        self,
        config: CollectionConfig,
        queries: Sequence[QueryInput],
        options: SearchOptions,
        depth: int,
        deadline: Deadline,
    ) -> tuple[list[RankedHits], Coverage]:
        vector_queries = [
            QueryInput(vector=q.vector) if q.vector is not None else QueryInput(text=q.text)
            for q in queries
        ]
        matrix = await self._embed(config, vector_queries, deadline)
        candidates = replace(
            options, k=depth, include=Include(), score_threshold=None, explain=False
        )
        return await self._vector_search(config.name, matrix, candidates, deadline)

    async def _keyword_side(
        self,
        collection: str,
        terms: list[list[str]],
        options: SearchOptions,
        depth: int,
        hybrid: bool,
        deadline: Deadline,
    ) -> tuple[list[RankedHits], Coverage]:
        unique = [list(dict.fromkeys(query_terms)) for query_terms in terms]
        every_term = list(dict.fromkeys(chain.from_iterable(unique)))
        if not every_term:  # only stop words (or nothing searchable): no keyword hits
            return [MergedHits([]) for _ in terms], Coverage(0, 0)

        async def stats(client: ShardClient, timeout_s: float) -> TermStatistics:
            return await client.keyword_stats(collection, every_term, timeout_s)

        answers, stats_coverage = await self._fan_out(
            collection, "keyword_stats", stats, deadline, options.allow_partial
        )
        total = _summed_statistics(answers, len(every_term))
        position = {term: index for index, term in enumerate(every_term)}
        weighted = []
        for query_terms, query_unique in zip(terms, unique, strict=True):
            frequencies = [total.frequencies[position[term]] for term in query_unique]
            stats_of_query = TermStatistics(total.documents, total.total_length, frequencies)
            weights = query_weights(query_terms, query_unique, stats_of_query)
            weighted.append(WeightedTerms(query_unique, weights))
        include = Include() if hybrid else options.include
        threshold = None if hybrid else options.score_threshold

        async def search(client: ShardClient, timeout_s: float) -> Sequence[RankedHits]:
            results = await client.keyword_search(
                collection,
                weighted,
                total.average_length,
                depth,
                include,
                timeout_s,
                options.filter,
                threshold,
            )
            if len(results) != len(weighted):
                raise Internal(
                    f"shard {client.address} answered {len(results)} of {len(weighted)} queries"
                )
            return results

        per_group, search_coverage = await self._fan_out_ranked(
            collection, "keyword_search", search, deadline, options.allow_partial
        )
        if not per_group:
            return [MergedHits([]) for _ in terms], search_coverage
        return merge_batches(per_group, depth), _coverage(stats_coverage, search_coverage)

    async def _with_documents(
        self,
        collection: str,
        fused: list[list[FusedHit]],
        options: SearchOptions,
        deadline: Deadline,
    ) -> list[list[FusedHit]]:
        """The fused hits with their stored fields; a hit deleted meanwhile is dropped."""
        ids = list(dict.fromkeys(hit.id for hits in fused for hit in hits))
        if not ids:
            return fused
        found = await self._get(collection, ids, options.include, options.allow_partial, deadline)
        documents = {document.id: document for document in found.documents}
        return [
            [replace(hit, document=documents[hit.id]) for hit in hits if hit.id in documents]
            for hits in fused
        ]
