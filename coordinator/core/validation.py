"""Checks on public requests, run in full before anything is written.

A request is either valid as a whole or rejected as a whole: a bad document in
the middle of a batch must not leave the documents before it stored.
"""

from collections.abc import Sequence

import numpy as np

from coordinator.core.model import DocumentInput, QueryInput, SearchMode
from coordinator.core.ports import CollectionConfig, Vector
from shoal import limits
from shoal.errors import InvalidArgument
from shoal.vectors import check_vector


def check_ids(ids: Sequence[str], what: str) -> None:
    """Batch size, each id's shape, and no id twice in one request."""
    limits.check_batch_size(len(ids), limits.MAX_BATCH_DOCUMENTS, what)
    for doc_id in ids:
        limits.check_document_id(doc_id)
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for doc_id in ids:
            if doc_id in seen:
                raise InvalidArgument(
                    f"duplicate document id {doc_id!r}: each id may appear once in a request"
                )
            seen.add(doc_id)


def check_documents(config: CollectionConfig, documents: Sequence[DocumentInput]) -> list[int]:
    """Validate an upsert; the positions of the documents whose text must be embedded."""
    check_ids([document.id for document in documents], "documents")
    to_embed: list[int] = []
    for position, document in enumerate(documents):
        what = f"document {document.id!r}"
        if len(document.metadata) > limits.MAX_METADATA_KEYS:
            raise InvalidArgument(
                f"{what}: {len(document.metadata)} metadata keys; the limit is"
                f" {limits.MAX_METADATA_KEYS}"
            )
        for key in document.metadata:
            if not key:
                raise InvalidArgument(f"{what}: a metadata key is empty")
        if document.text is not None and len(document.text) > limits.MAX_TEXT_CHARS:
            _check_text(document.text, what)
        if document.vector is not None:
            check_vector(document.vector, config.dimension, what)
            continue
        if document.text is None:
            raise InvalidArgument(
                f"{what} has neither a vector nor a text; give a vector"
                + (" or a text" if config.embedding_model else "")
            )
        if not config.embedding_model:
            raise InvalidArgument(
                f"{what} has a text but no vector, and collection {config.name!r} has no"
                " embedding model to embed it; give a vector"
            )
        _check_text(document.text, what)
        to_embed.append(position)
    return to_embed


def check_search(
    config: CollectionConfig,
    queries: Sequence[QueryInput] | Vector,
    k: int,
    ef: int,
    mode: SearchMode = SearchMode.VECTOR,
) -> None:
    """Queries come one by one, or as an (n, d) matrix when they are all vectors.

    Keyword and hybrid queries need a text; what else they need is checked with the
    collection's keyword settings (`keyword_reads.check_keyword_queries`).
    """
    limits.check_batch_size(len(queries), limits.MAX_BATCH_QUERIES, "queries")
    limits.check_k(k)
    limits.check_ef(ef)
    if mode is not SearchMode.VECTOR:
        if isinstance(queries, np.ndarray):
            raise InvalidArgument(f"{mode.value} search needs texts to search with, not vectors")
        for position, query in enumerate(queries):
            what = f"query {position}" if len(queries) > 1 else "query"
            if query.text is None:
                raise InvalidArgument(f"{what}: {mode.value} search needs a text")
            _check_text(query.text, what)
            if query.vector is not None:
                check_vector(query.vector, config.dimension, what)
        return
    if isinstance(queries, np.ndarray):
        if queries.ndim != 2 or queries.shape[1] != config.dimension:
            what = "query" if len(queries) == 1 else "queries"
            raise InvalidArgument(
                f"{what}: dimension {queries.shape[-1]}, collection expects {config.dimension}"
            )
        return
    for position, query in enumerate(queries):
        what = f"query {position}" if len(queries) > 1 else "query"
        if query.vector is not None and query.text is not None:
            raise InvalidArgument(f"{what}: give a vector or a text, not both")
        if query.text is not None:
            if not config.embedding_model:
                raise InvalidArgument(
                    f"{what} is a text, but collection {config.name!r} has no embedding"
                    " model; search it with a vector"
                )
            _check_text(query.text, what)
        elif query.vector is None:
            raise InvalidArgument(f"{what} is empty: give a vector or a text")
        elif query.vector.shape[-1] != config.dimension:
            check_vector(query.vector, config.dimension, what)


def check_query_matrix(matrix: Vector) -> None:
    """NaN or infinity in any query, checked once for the whole batch."""
    if not np.isfinite(matrix).all():
        rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        raise InvalidArgument(f"query {int(rows[0])}: vector contains NaN or infinity")


def _check_text(text: str, what: str) -> None:
    if not text:
        raise InvalidArgument(f"{what}: text is empty")
    if len(text) > limits.MAX_TEXT_CHARS:
        raise InvalidArgument(
            f"{what}: text has {len(text)} characters; the limit is {limits.MAX_TEXT_CHARS}"
        )
