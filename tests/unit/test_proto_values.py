import numpy as np
import pytest

from shoal.distance_metric import Metric
from shoal.errors import InvalidArgument
from shoal.runtime.proto_values import (
    metadata_from_proto,
    metadata_to_proto,
    metric_from_proto,
    metric_to_proto,
)
from shoal.v1 import common_pb2
from shoal.vectors import check_vector, vector_from_fields, vector_to_f32


def test_metadata_round_trips_every_type() -> None:
    metadata = {
        "s": "text",
        "i": -3,
        "f": 2.5,
        "b": True,
        "ss": ["a", "b"],
        "ii": [1, 2],
        "ff": [1.5, 2],
        "bb": [False, True],
    }
    back = metadata_from_proto(metadata_to_proto(metadata))
    assert back == {**metadata, "ff": [1.5, 2.0]}
    assert type(back["b"]) is bool and type(back["i"]) is int


@pytest.mark.parametrize("value", [None, {"a": 1}, [1, "a"], [True, 1], object()])
def test_unsupported_metadata_is_invalid(value: object) -> None:
    with pytest.raises(InvalidArgument, match="'key'"):
        metadata_to_proto({"key": value})


def test_vector_from_bytes_or_floats() -> None:
    vector = np.arange(4, dtype=np.float32)
    assert vector_from_fields([], vector_to_f32(vector), "v").tolist() == vector.tolist()
    assert vector_from_fields([0, 1, 2, 3], b"", "v").tolist() == vector.tolist()
    with pytest.raises(InvalidArgument, match="not both"):
        vector_from_fields([1.0], vector_to_f32(vector), "v")
    with pytest.raises(InvalidArgument, match="multiple of 4"):
        vector_from_fields([], b"\x00" * 5, "v")


def test_check_vector_names_the_problem() -> None:
    with pytest.raises(InvalidArgument, match="dimension 3, collection expects 4"):
        check_vector(np.zeros(3, np.float32), 4, "document 'a'")
    with pytest.raises(InvalidArgument, match="NaN or infinity"):
        check_vector(np.array([0, np.inf], np.float32), 2, "query")
    check_vector(np.ones(2, np.float32), 2, "fine")


def test_every_metric_round_trips_and_unspecified_is_cosine() -> None:
    for metric in Metric:
        assert metric_from_proto(metric_to_proto(metric)) is metric
    assert metric_from_proto(common_pb2.METRIC_UNSPECIFIED) is Metric.COSINE
    assert metric_from_proto(7) is None  # type: ignore[arg-type]
