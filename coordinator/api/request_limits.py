"""Bounded work per request, checked on the request as it came, before the core
looks anything up: metadata and text sizes, the work and reply size of a
search, and match-all deletes (shoal.limits.RequestLimits holds the numbers).
"""

from collections.abc import Sequence

from coordinator.core.scroll_cursor import check_page_size
from shoal.errors import InvalidArgument
from shoal.limits import RequestLimits, check_documents_reply
from shoal.v1 import common_pb2, shoal_pb2


def check_documents(limits: RequestLimits, documents: Sequence[common_pb2.Document]) -> None:
    # A document's metadata, any one value and its text are each no larger than the
    # whole document: one size per document settles the usual, small ones.
    bound = min(limits.max_metadata_value_bytes, limits.max_metadata_bytes, limits.max_text_bytes)
    for document in documents:
        if document.ByteSize() <= bound:
            continue
        what = f"document {document.id[:64]!r}"
        if document.metadata:
            limits.check_metadata(
                what, ((key, value.ByteSize()) for key, value in document.metadata.items())
            )
        if document.HasField("text"):
            limits.check_text(what, document.text)


def check_queries(limits: RequestLimits, queries: Sequence[shoal_pb2.Query]) -> None:
    for position, query in enumerate(queries):
        if query.text:
            limits.check_text(f"query {position}", query.text)


def check_search(
    limits: RequestLimits,
    request: shoal_pb2.SearchRequest | shoal_pb2.SearchBatchRequest,
    queries: int,
    dimension: int,
) -> None:
    """`dimension`: the collection's, when the request includes vectors (else 0).
    A group search answers up to group_size hits per group, searched at least that
    deep: it counts as k x group_size."""
    include = request.include
    k = request.k * max(request.group_size, 1) if request.group_by else request.k
    limits.check_search(
        queries,
        k,
        request.ef,
        candidates=request.hybrid.candidates,
        dimension=dimension if include.vector else 0,
        text=include.text,
        metadata=include.metadata,
    )


def check_get(limits: RequestLimits, request: shoal_pb2.GetRequest, dimension: int) -> None:
    """`dimension`: the collection's, when the request includes vectors (else 0)."""
    include = request.include
    check_documents_reply(
        limits, "a Get", len(request.ids), dimension, include.text, include.metadata
    )


def check_scroll(limits: RequestLimits, request: shoal_pb2.ScrollRequest, dimension: int) -> None:
    """The page asked for (page_size, or its default) as if every place were filled."""
    include = request.include
    check_documents_reply(
        limits,
        "a Scroll page",
        check_page_size(request.page_size),
        dimension,
        include.text,
        include.metadata,
    )


def check_delete(request: shoal_pb2.DeleteRequest) -> common_pb2.Filter | None:
    """The filter to delete by (None: by ids)."""
    return _filter_of_write(request, "delete", request.delete_all, "delete_all")


def check_update(request: shoal_pb2.UpdateRequest) -> common_pb2.Filter | None:
    """The filter to update by (None: by ids)."""
    return _filter_of_write(request, "update", request.update_all, "update_all")


def _filter_of_write(
    request: shoal_pb2.DeleteRequest | shoal_pb2.UpdateRequest, verb: str, every: bool, flag: str
) -> common_pb2.Filter | None:
    """A write by ids or by filter that would reach every document, by an empty filter
    or by neither ids nor filter, needs its `flag`: one mistyped request must not
    rewrite or erase a whole collection."""
    matches_all = not request.ids and (
        not request.HasField("filter") or request.filter.WhichOneof("kind") is None
    )
    if every:
        if request.ids:
            raise InvalidArgument(f"{flag} {verb}s every document: give it without ids")
        return request.filter
    if matches_all:
        raise InvalidArgument(
            f"this {verb.capitalize()} would {verb} every document of the collection (no ids,"
            f" and no filter or an empty one); set {flag} (SDK {flag}=True, CLI --all) if"
            " that is what you mean"
        )
    return request.filter if request.HasField("filter") else None
