"""The bytes of a shard Search request, joined from the parameters' bytes and the queries."""

import numpy as np
import pytest

from coordinator.clients.shard_messages import search_parameters, search_request
from shoal.v1 import common_pb2, shard_pb2

FILTER = common_pb2.Filter(
    condition=common_pb2.Condition(
        key="section", op=common_pb2.OPERATOR_EQ, value=common_pb2.Value(string_value="sound")
    )
)


@pytest.mark.parametrize(
    ("include", "filter", "threshold", "rows", "dimension"),
    [
        (common_pb2.Include(), None, None, 1, 4),
        (common_pb2.Include(text=True, metadata=True), FILTER, 0.25, 3, 384),
        (common_pb2.Include(vector=True), FILTER, None, 64, 384),  # a 3-byte length
        (common_pb2.Include(), None, -1.0, 1, 1),
    ],
)
def test_the_joined_bytes_are_the_request_with_its_queries(
    include: common_pb2.Include,
    filter: common_pb2.Filter | None,
    threshold: float | None,
    rows: int,
    dimension: int,
) -> None:
    queries = np.random.default_rng(7).random((rows, dimension), dtype=np.float32)
    parameters = search_parameters("docs", 10, 64, include, filter, threshold)
    sent = shard_pb2.ShardSearchRequest.FromString(search_request(parameters, queries))
    expected = shard_pb2.ShardSearchRequest(
        collection="docs",
        queries_f32=queries.astype("<f4").tobytes(),
        k=10,
        ef=64,
        include=include,
        filter=filter,
        score_threshold=threshold,
        packed=True,  # the coordinator reads the packed answer (coordinator.core.packed)
    )
    assert sent == expected
    assert np.array_equal(np.frombuffer(sent.queries_f32, "<f4").reshape(rows, dimension), queries)


def test_equal_parameters_give_equal_keys_and_others_do_not() -> None:
    first = search_parameters("docs", 10, 0, common_pb2.Include(), FILTER, None)
    again = search_parameters("docs", 10, 0, common_pb2.Include(), FILTER, None)
    assert first == again
    assert first != search_parameters("docs", 11, 0, common_pb2.Include(), FILTER, None)
    assert first != search_parameters("docs", 10, 0, common_pb2.Include(), None, None)


def test_queries_that_are_not_contiguous_float32_are_sent_as_float32_rows() -> None:
    matrix = np.arange(24, dtype=np.float64).reshape(4, 6)
    queries = matrix[:, ::2]  # a strided view, float64
    parameters = search_parameters("docs", 1, 0, common_pb2.Include(), None, None)
    sent = shard_pb2.ShardSearchRequest.FromString(search_request(parameters, queries))  # type: ignore[arg-type]
    assert np.frombuffer(sent.queries_f32, "<f4").tolist() == queries.ravel().tolist()
