"""Keyword and hybrid searches: cluster-wide BM25 statistics, candidate lists, fusion.

Keyword scores must not depend on how documents are spread over shard groups,
so shards score with the statistics of every group together, as
Elasticsearch's dfs_query_then_fetch does: the documents with text, their total
length and each query term's document frequency, summed over the groups,
give the cluster's idf per term and mean length. The result equals one BM25
index holding every document.

The sums come from the coordinator's memory of them (`keyword_statistics`)
when it holds every term of the queries (or the collection's whole vocabulary,
which the first statistics call lists when it is small enough to keep), else
from a statistics call to every group first (at the same time as the embedding
of a hybrid query's text). With
one shard group there is nothing to sum: on a miss the one call asks the
replica to weight the queries with its own statistics (`local_statistics`), and
its answer shows whether they were all the cluster's (they are unless the
topology grew meanwhile; else it is scored again as below), so a first search
of new words costs one round trip there too.
Then one `HybridSearch` call per group returns, for the same queries, the
vector list (hybrid), the keyword list scored with those sums, the stored
fields asked for on every hit, and the statistics the keyword list was scored
under. When the summed statistics differ from the ones used (a write came in
meanwhile, or the memory was stale), only the keyword list is asked for again,
with the fresh sums, at most `MAX_KEYWORD_ATTEMPTS` times in all. So a search
costs one round trip to the groups when the memory is right, two otherwise.

The query is tokenized here, once, with the collection's tokenizer (shared
with the shards through `shoal.keyword`); shards receive index terms. Each
list is `candidates` deep (see `HybridOptions`) and `fusion` merges them.
Stored fields travel with the candidates, except vectors: those are large, so
with `include.vector` the fused hits' fields are read afterwards by id.
"""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from itertools import chain
from typing import Protocol, TypeVar

from coordinator.core.deadline import Deadline
from coordinator.core.fanout import ShardCall
from coordinator.core.fusion import explained, fuse
from coordinator.core.keyword_statistics import StatisticsMemory
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
from coordinator.core.owned_hits import OwnedCall, Ownership
from coordinator.core.packed import PackedBatch
from coordinator.core.packed_merge import merge_packed
from coordinator.core.ports import (
    CollectionConfig,
    HybridAnswer,
    HybridCall,
    Include,
    RankedHits,
    ShardClient,
    Vector,
    WeightedTerms,
)
from shoal.errors import Internal, InvalidArgument
from shoal.keyword import MAX_QUERY_TERMS, TermStatistics, query_weights, tokenizer_for

T = TypeVar("T")


class OwnedFanOut(Protocol):
    """The reader's fan-out: one call on every shard group, with failover, made for
    each group (while partitions move, for what it owns: see `owned_hits`), so the
    statistics and the lists count each document once."""

    def __call__(
        self,
        collection: str,
        operation: str,
        call: OwnedCall[T],
        deadline: Deadline,
        allow_partial: bool,
    ) -> Awaitable[tuple[list[T], Coverage]]: ...


Embed = Callable[[CollectionConfig, Sequence[QueryInput], Deadline], Awaitable[Vector]]
#: How many shard groups a search asks now.
GroupCount = Callable[[], int]
Get = Callable[[str, Sequence[str], Include, bool, Deadline], Awaitable[FoundDocuments]]

#: Keyword lists asked for per search at most: the first, and re-scorings after the
#: statistics moved. Past that (writes keep moving them) the last one stands: scored
#: with the statistics of one call earlier, as a statistics step followed by a search
#: step would score a search racing writes.
MAX_KEYWORD_ATTEMPTS = 3


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
        sum(s.documents for s in statistics),
        sum(s.total_length for s in statistics),
        frequencies,
        _summed_vocabulary(statistics),
    )


def _summed_vocabulary(statistics: Sequence[TermStatistics]) -> dict[str, int] | None:
    """The cluster's vocabulary, if every answer listed its own."""
    summed: Counter[str] = Counter()
    for stats in statistics:
        if stats.vocabulary is None:
            return None
        summed.update(stats.vocabulary)
    return dict(summed)


def _same(one: TermStatistics, other: TermStatistics) -> bool:
    return (
        one.documents == other.documents
        and one.total_length == other.total_length
        and list(one.frequencies) == list(other.frequencies)
    )


def _coverage(*parts: Coverage) -> Coverage:
    return Coverage(max(p.asked for p in parts), min(p.answered for p in parts))


def _occurrences(terms: list[list[str]], unique: list[list[str]]) -> list[WeightedTerms]:
    """Each query's distinct terms with their counts in it, for replicas to weight."""
    counted = []
    for query_terms, query_unique in zip(terms, unique, strict=True):
        counts = Counter(query_terms)
        counted.append(WeightedTerms(query_unique, [], [counts[term] for term in query_unique]))
    return counted


def _weighted(
    terms: list[list[str]], unique: list[list[str]], every_term: list[str], total: TermStatistics
) -> list[WeightedTerms]:
    """Each query's distinct terms with their weights under the summed statistics."""
    position = {term: index for index, term in enumerate(every_term)}
    weighted = []
    for query_terms, query_unique in zip(terms, unique, strict=True):
        frequencies = [total.frequencies[position[term]] for term in query_unique]
        stats_of_query = TermStatistics(total.documents, total.total_length, frequencies)
        weights = query_weights(query_terms, query_unique, stats_of_query)
        weighted.append(WeightedTerms(query_unique, weights))
    return weighted


class KeywordReads:
    def __init__(
        self,
        fan_out: OwnedFanOut,
        embed: Embed,
        get: Get,
        memory: StatisticsMemory | None = None,
        groups: GroupCount | None = None,
    ) -> None:
        self._fan_out = fan_out
        self._embed = embed
        self._get = get
        self._memory = memory if memory is not None else StatisticsMemory()
        #: None: unknown, so statistics a coordinator lacks are always asked for first.
        self._groups = groups

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
        if not hybrid and not any(terms):  # only stop words: no keyword hits, no call
            return SearchResults([MergedHits([]) for _ in terms], Coverage(0, 0))
        embedding: asyncio.Future[Vector] | None = None
        if hybrid and all(query.vector is not None for query in queries):
            # Nothing to embed: the matrix now, without a task and a turn of the loop.
            embedding = asyncio.get_running_loop().create_future()
            embedding.set_result(await self._vectors(config, queries, deadline))
        elif hybrid:
            embedding = asyncio.create_task(self._vectors(config, queries, deadline))
        try:
            vector, keyword, coverage = await self._candidates(
                config, terms, embedding, options, depth, deadline
            )
        finally:
            if embedding is not None and not embedding.done():
                embedding.cancel()
        if vector is None:
            if options.explain:
                explained_hits = [MergedHits(list(explained(r.hits, True))) for r in keyword]
                return SearchResults(explained_hits, coverage)
            return SearchResults(keyword, coverage)
        include = options.include
        carried = include.metadata or include.text
        chunked = config.chunking.enabled
        fused = [
            fuse(
                v,
                w,
                k,
                options.hybrid,
                options.score_threshold,
                options.explain,
                documents=carried,
                chunks=chunked,
            )
            for v, w in zip(vector, keyword, strict=True)
        ]
        if include.vector:
            fused = await self._with_documents(config.name, fused, options, deadline)
        results: list[RankedHits] = [MergedHits(list(hits)) for hits in fused]
        return SearchResults(results, coverage)

    async def _vectors(
        self, config: CollectionConfig, queries: Sequence[QueryInput], deadline: Deadline
    ) -> Vector:
        vector_queries = [
            QueryInput(vector=q.vector) if q.vector is not None else QueryInput(text=q.text)
            for q in queries
        ]
        return await self._embed(config, vector_queries, deadline)

    async def _candidates(
        self,
        config: CollectionConfig,
        terms: list[list[str]],
        embedding: "asyncio.Future[Vector] | None",
        options: SearchOptions,
        depth: int,
        deadline: Deadline,
    ) -> tuple[PackedBatch | None, PackedBatch, Coverage]:
        """The vector lists (None for a keyword search) and the keyword lists, merged
        over the groups, each `depth` deep; see the module's docstring."""
        collection, key = config.name, (config.name, config.incarnation)
        hybrid = embedding is not None
        unique = [list(dict.fromkeys(query_terms)) for query_terms in terms]
        every_term = list(dict.fromkeys(chain.from_iterable(unique)))
        coverages: list[Coverage] = []
        total: TermStatistics | None = TermStatistics(0, 0, [])
        if every_term:
            total = self._memory.recall(key, every_term)
        one_group = self._groups is not None and self._groups() == 1
        if total is None and not one_group:
            listing = self._memory.vocabulary_limit(key)
            total, stats_coverage = await self._statistics(
                collection, every_term, listing, options, deadline
            )
            coverages.append(stats_coverage)
            whole = stats_coverage.answered == stats_coverage.asked
            if not whole:
                total = replace(total, vocabulary=None)  # some group's terms are missing
            self._memory.remember(key, every_term, total, listing_asked=bool(listing) and whole)
        matrix = None if embedding is None else await embedding
        include = options.include
        if hybrid and include.vector:
            # Read by id after fusing (see the module's docstring); the other fields
            # still travel, with a chunking collection's best chunks.
            include = replace(include, vector=False)
        threshold = None if hybrid else options.score_threshold
        vector: PackedBatch | None = None
        keyword = PackedBatch.empty(len(terms))
        for _ in range(MAX_KEYWORD_ATTEMPTS):
            if total is None:  # local: each replica weights with its own statistics
                weighted, average_length = _occurrences(terms, unique), 0.0
            else:
                weighted = _weighted(terms, unique, every_term, total) if every_term else []
                average_length = total.average_length
            call = HybridCall(
                vectors=matrix if vector is None else None,
                keyword=weighted,
                average_length=average_length,
                statistics_terms=every_term,
                k=depth,
                ef=options.ef,
                include=include,
                filter=options.filter,
                score_threshold=threshold,
                bare_hits=hybrid,  # fused hits are the coordinator's own
                local_statistics=total is None,
            )
            answers, call_coverage = await self._hybrid_call(collection, call, options, deadline)
            coverages.append(call_coverage)
            if call.vectors is not None:
                vector = _merged([a.vector for a in answers], len(terms), depth)
            if not every_term or not answers:  # nothing to score, or no group answered
                break
            keyword = _merged([a.keyword for a in answers], len(terms), depth)
            seen = _summed_statistics([a.statistics for a in answers], len(every_term))
            if total is None:
                # Each replica scored with its own: exact when each one's are the
                # sums, as when one group answered.
                if all(_same(a.statistics, seen) for a in answers):
                    self._memory.remember(key, every_term, seen)
                    break
            elif _same(seen, total):
                break
            # The weights were not the cluster's of the moment: score again with these.
            self._memory.remember(key, every_term, seen)
            total = seen
        return vector, keyword, _coverage(*coverages)

    async def _statistics(
        self,
        collection: str,
        terms: list[str],
        vocabulary_limit: int,
        options: SearchOptions,
        deadline: Deadline,
    ) -> tuple[TermStatistics, Coverage]:
        def stats(owned: Ownership | None) -> ShardCall[TermStatistics]:
            skipped = () if owned is None else owned.skipped

            async def stats(client: ShardClient, timeout_s: float) -> TermStatistics:
                return await client.keyword_stats(
                    collection, terms, timeout_s, skipped, vocabulary_limit
                )

            return stats

        answers, coverage = await self._fan_out(
            collection, "keyword_stats", stats, deadline, options.allow_partial
        )
        return _summed_statistics(answers, len(terms)), coverage

    async def _hybrid_call(
        self, collection: str, call: HybridCall, options: SearchOptions, deadline: Deadline
    ) -> tuple[list[HybridAnswer], Coverage]:
        vectors = 0 if call.vectors is None else len(call.vectors)

        def search(owned: Ownership | None) -> ShardCall[HybridAnswer]:
            group_call = call if owned is None else replace(call, skip_partitions=owned.skipped)

            async def search(client: ShardClient, timeout_s: float) -> HybridAnswer:
                answer = await client.hybrid_search(collection, group_call, timeout_s)
                if len(answer.vector) != vectors or len(answer.keyword) != len(call.keyword):
                    raise Internal(
                        f"shard {client.address} answered {len(answer.vector)} of {vectors}"
                        f" vector and {len(answer.keyword)} of {len(call.keyword)} keyword queries"
                    )
                return answer if owned is None else owned.hybrid(answer)

            return search

        operation = "hybrid_search" if call.vectors is not None else "keyword_search"
        return await self._fan_out(collection, operation, search, deadline, options.allow_partial)

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


def _merged(per_group: list[PackedBatch], queries: int, depth: int) -> PackedBatch:
    """The groups' lists merged per query, ties to the lower id, `depth` deep."""
    return merge_packed(per_group, depth) if per_group else PackedBatch.empty(queries)
