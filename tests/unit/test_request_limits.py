"""Limit arithmetic (shoal.limits.RequestLimits), the match-all delete and update rule, and the
version horizon (shoal.version_horizon), without a server."""

from typing import Any

import pytest

from coordinator.api.request_limits import check_delete, check_documents, check_search, check_update
from shoal.errors import InvalidArgument, ResourceExhausted
from shoal.limits import (
    DEFAULT_HNSW_EF,
    MAX_BATCH_QUERIES,
    MAX_EF,
    MAX_K,
    RequestLimits,
    reply_bytes,
    search_work,
)
from shoal.replication import VERSION_MS_SHIFT, VersionState
from shoal.v1 import common_pb2, shoal_pb2
from shoal.version_horizon import VersionHorizon

LIMITS = RequestLimits()


def test_search_work_is_queries_times_the_search_depth() -> None:
    assert search_work(10, 5, 100) == 10 * 100
    assert search_work(1, 10, 0) == DEFAULT_HNSW_EF  # ef 0: the default
    assert search_work(1, 500, 100) == 500  # ef counts as at least k
    assert search_work(2, 10, 50, candidates=80) == 2 * 80  # hybrid candidates


def test_one_search_at_todays_maximums_passes_and_the_issues_batch_does_not() -> None:
    LIMITS.check_search(1, MAX_K, MAX_EF)
    LIMITS.check_search(MAX_BATCH_QUERIES, 10, DEFAULT_HNSW_EF, dimension=384, metadata=True)
    LIMITS.check_search(MAX_BATCH_QUERIES, 10, 2000)  # a batch searched near-exactly
    with pytest.raises(ResourceExhausted, match=r"1000 queries x ef 4096 .*limit is"):
        LIMITS.check_search(MAX_BATCH_QUERIES, MAX_K, MAX_EF, dimension=384, text=True)


def test_the_reply_estimate_counts_vectors_by_dimension() -> None:
    assert reply_bytes(10) == 10 * 64
    assert reply_bytes(10, dimension=8, text=True, metadata=True) == 10 * (64 + 32 + 1024 + 512)
    small = RequestLimits(max_reply_bytes=100 * (64 + 4 * 384))
    small.check_search(10, 10, 10, dimension=384)
    with pytest.raises(ResourceExhausted, match="--max-reply-bytes"):
        small.check_search(11, 10, 10, dimension=384)
    small.check_search(11, 10, 10)  # without vectors it fits


def test_metadata_is_limited_per_value_and_per_document() -> None:
    limits = RequestLimits(max_metadata_bytes=100, max_metadata_value_bytes=40)
    limits.check_metadata("doc", [("a", 40), ("b", 40)])  # 82 bytes
    with pytest.raises(ResourceExhausted, match="'big' has 41 bytes; the limit is 40"):
        limits.check_metadata("doc", [("big", 41)])
    with pytest.raises(ResourceExhausted, match="more than 100 bytes"):
        limits.check_metadata("doc", [("a", 40), ("b", 40), ("c", 20)])


def test_text_is_limited_in_bytes_not_characters() -> None:
    limits = RequestLimits(max_text_bytes=8)
    limits.check_text("doc", "ab")
    limits.check_text("doc", "é" * 4)  # 8 bytes
    with pytest.raises(ResourceExhausted, match="9 bytes; the limit is 8"):
        limits.check_text("doc", "é" * 4 + "a")


def test_a_48_mb_metadata_value_is_refused_before_conversion() -> None:
    document = common_pb2.Document(id="a")
    document.metadata["blob"].string_value = "x" * (48 << 20)
    with pytest.raises(ResourceExhausted, match="metadata value 'blob'"):
        check_documents(LIMITS, [document])


def test_a_search_request_is_checked_with_its_include_flags() -> None:
    request = shoal_pb2.SearchBatchRequest(k=100, ef=100)
    request.include.vector = True
    check_search(LIMITS, request, 100, 0)  # vectors not counted without a dimension
    with pytest.raises(ResourceExhausted, match="reply"):
        check_search(RequestLimits(max_reply_bytes=1 << 20), request, 100, 384)


def test_a_group_search_counts_its_group_size() -> None:
    grouped = shoal_pb2.SearchBatchRequest(k=10, group_by="section", group_size=100)
    check_search(LIMITS, shoal_pb2.SearchBatchRequest(k=10), MAX_BATCH_QUERIES, 0)
    check_search(LIMITS, grouped, 10, 0)
    with pytest.raises(ResourceExhausted, match="reply"):
        check_search(LIMITS, grouped, MAX_BATCH_QUERIES, 0)
    single = shoal_pb2.SearchRequest(k=10, group_by="section", group_size=100)
    single.include.metadata = True
    check_search(LIMITS, single, 1, 0)


@pytest.mark.parametrize(
    ("kind", "check", "flag"),
    [
        (shoal_pb2.DeleteRequest, check_delete, "delete_all"),
        (shoal_pb2.UpdateRequest, check_update, "update_all"),
    ],
)
def test_writing_every_document_needs_its_flag(kind: Any, check: Any, flag: str) -> None:
    for request in (kind(collection="c"), kind(collection="c", filter=common_pb2.Filter())):
        with pytest.raises(InvalidArgument, match=flag):
            check(request)
        setattr(request, flag, True)
        assert check(request) is not None
    by_filter = kind(collection="c", filter=common_pb2.Filter(text_contains="x"))
    assert check(by_filter) == by_filter.filter
    assert check(kind(collection="c", ids=["a"])) is None
    with pytest.raises(InvalidArgument, match="without ids"):
        check(kind(collection="c", ids=["a"], **{flag: True}))


def test_versions_beyond_now_plus_the_skew_are_refused() -> None:
    now_ms = 1_700_000_000_000
    horizon = VersionHorizon(max_skew_s=10, now_ms=lambda: now_ms)
    horizon.check([("a", (now_ms + 10_000) << VERSION_MS_SHIFT | 0xFFFFF), ("b", 1)])
    with pytest.raises(InvalidArgument, match=r"'b': version .* ahead .* at most 10 s"):
        horizon.check([("a", 1), ("b", (now_ms + 10_001) << VERSION_MS_SHIFT)])
    with pytest.raises(InvalidArgument, match="ahead"):
        horizon.check([("max", 2**64 - 1)])
    versions = {"ok": VersionState(5), "pinned": VersionState(2**64 - 1, True)}
    assert horizon.drop_future(versions) == {"ok": VersionState(5)}


def test_the_horizon_reads_versions_as_the_coordinators_clock_makes_them() -> None:
    from coordinator.core.clock import MS_SHIFT, HybridLogicalClock

    assert MS_SHIFT == VERSION_MS_SHIFT
    version = HybridLogicalClock(7, now_ms=lambda: 1_700_000_000_000).next()
    VersionHorizon(max_skew_s=0.001, now_ms=lambda: 1_700_000_000_000).check([("a", version)])
