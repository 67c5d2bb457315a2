"""Keyword search on one replica: statistics for the coordinator, then top-k by BM25.

Both steps run inside the collection's read gate, where the keyword index, the
payload index (filters) and the label -> id map agree with each other.
The scores use the weights and mean length the coordinator sends (summed over
every shard group), so a document scores the same whichever group holds it.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from shard.core.documents import QueryHits
from shard.core.keyword_index import KeywordIndex, KeywordQuery
from shard.core.payload_columns import Mask
from shoal.errors import DataLoss, InvalidArgument
from shoal.keyword import MAX_QUERY_TERMS, TermStatistics, occurrence_weights
from shoal.limits import MAX_BATCH_QUERIES, check_batch_size


def _check_terms(count: int) -> None:
    if count > MAX_QUERY_TERMS:
        raise InvalidArgument(f"a keyword query has {count} terms; the limit is {MAX_QUERY_TERMS}")


def keyword_stats(
    index: KeywordIndex, terms: Sequence[str], without: Mask | None = None
) -> TermStatistics:
    """The statistics of `terms`, the labels set in `without` left out."""
    # A statistics request carries the distinct terms of a whole batch of queries.
    check_batch_size(len(terms), MAX_QUERY_TERMS * MAX_BATCH_QUERIES, "terms")
    if without is None:
        return index.statistics(terms)
    return index.statistics_without(terms, without)


def locally_weighted(
    index: KeywordIndex, queries: Sequence[KeywordQuery]
) -> tuple[list[KeywordQuery], float]:
    """The queries weighted with this replica's statistics, and its mean length.

    The weights are those a coordinator computes from the same statistics
    (`shoal.keyword.occurrence_weights`, which `query_weights` uses), rounded to
    float32 as its request carries them, so a query scores the same bits
    whichever side weighted it."""
    weighted = []
    average_length = 0.0
    for position, query in enumerate(queries):
        if len(query.occurrences) != len(query.terms):
            raise InvalidArgument(
                f"keyword query {position}: {len(query.terms)} terms but"
                f" {len(query.occurrences)} occurrences; give one count per term"
            )
        _check_terms(len(query.terms))
        stats = index.statistics(query.terms)
        average_length = stats.average_length
        weights = np.array(occurrence_weights(query.occurrences, stats), dtype=np.float32)
        weighted.append(KeywordQuery(query.terms, weights.tolist()))
    if not queries:
        average_length = index.statistics(()).average_length
    return weighted, average_length


def ranked_keyword_hits(
    index: KeywordIndex,
    ids: Mapping[int, str],
    queries: Sequence[KeywordQuery],
    average_length: float,
    k: int,
    allowed: Mask | None,
    score_threshold: float | None,
) -> list[QueryHits]:
    """Each query's top k (documents holding at least one query term), best first, ties by id."""
    results = []
    for position, query in enumerate(queries):
        if len(query.terms) != len(query.weights):
            raise InvalidArgument(
                f"keyword query {position}: {len(query.terms)} terms but"
                f" {len(query.weights)} weights; give one weight per term"
            )
        _check_terms(len(query.terms))
        labels, scores = index.scores(query, average_length, allowed)
        if score_threshold is not None:
            keep = scores >= score_threshold
            labels, scores = labels[keep], scores[keep]
        if len(scores) > k:
            # Everything tied with the k-th best stays in, so ties break by id below.
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= kth
            labels, scores = labels[keep], scores[keep]
        try:
            named = [
                (ids[label], score)
                for label, score in zip(labels.tolist(), scores.tolist(), strict=True)
            ]
        except KeyError as error:
            raise DataLoss(
                f"the keyword index holds label {error} that maps to no document"
            ) from None
        named.sort(key=lambda pair: (-pair[1], pair[0]))
        del named[k:]
        results.append(
            QueryHits(
                [doc_id for doc_id, _ in named],
                [score for _, score in named],
                [-score for _, score in named],
            )
        )
    return results
