"""More-like-this: search with a stored document's vector, leaving that document out.

The coordinator reads the document's vector from its shard group (a shard
answers a chunked document's Get with the mean of its chunk vectors), searches
one hit deeper than asked and drops the document itself from the hits, so the
answer holds `k` others whenever they exist.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import cast

import numpy as np

from coordinator.core.deadline import Deadline
from coordinator.core.model import FoundDocuments, MergedHits, QueryInput
from coordinator.core.ports import Include, RankedHits, VectorMessage
from shoal import limits
from shoal.errors import InvalidArgument, NotFound

#: Reads documents by id: (ids, include, allow_partial, deadline) -> what was found.
GetDocuments = Callable[[Sequence[str], Include, bool, Deadline], Awaitable[FoundDocuments]]


def liked_ids(queries: Sequence[QueryInput]) -> list[str | None]:
    """Per query, the id it asks for documents like (None: an ordinary query)."""
    return [query.like_id for query in queries]


def check_like(query: QueryInput, what: str) -> None:
    if query.vector is not None or query.text is not None:
        raise InvalidArgument(f"{what}: a more-like-this query takes an id only, no vector or text")
    limits.check_document_id(cast(str, query.like_id))


async def resolve(
    collection: str,
    queries: Sequence[QueryInput],
    get: GetDocuments,
    allow_partial: bool,
    deadline: Deadline,
) -> list[QueryInput]:
    """The queries with every liked document's stored vector as their vector."""
    wanted = sorted({query.like_id for query in queries if query.like_id is not None})
    found = await get(wanted, Include(vector=True), allow_partial, deadline)
    vectors = {
        document.id: np.frombuffer(cast(VectorMessage, document).vector_f32, dtype="<f4")
        for document in found.documents
    }
    missing = [doc_id for doc_id in wanted if doc_id not in vectors]
    if missing:
        raise NotFound(f"more-like-this: no document {missing[0]!r} in collection {collection!r}")
    return [
        query
        if query.like_id is None
        else replace(query, vector=vectors[query.like_id], like_id=None)
        for query in queries
    ]


def deeper(k: int) -> int:
    """The depth to search so that k hits remain once the liked document is dropped."""
    return min(k + 1, limits.MAX_K)


def exclude(results: Sequence[RankedHits], liked: Sequence[str | None], k: int) -> list[RankedHits]:
    """Each result without its liked document, cut to k."""
    return [
        result
        if doc_id is None and len(result.hits) <= k
        else MergedHits([hit for hit in result.hits if hit.id != doc_id][:k])
        for result, doc_id in zip(results, liked, strict=True)
    ]
