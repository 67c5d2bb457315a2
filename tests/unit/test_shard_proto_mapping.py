"""The shard's proto <-> domain conversion: configs, write payloads, included fields."""

import numpy as np
import pytest

from shard.api.proto_reads import hits_to_proto, queries_from_proto
from shard.core.config import CollectionConfig
from shard.core.documents import QueryHits, StoredDocument
from shard.proto_config import config_from_proto
from shard.proto_records import write_from_proto
from shoal.distance_metric import Metric
from shoal.errors import InvalidArgument
from shoal.runtime.proto_values import config_to_proto
from shoal.v1 import common_pb2, shard_pb2


def _write(**fields: object) -> shard_pb2.ShardWrite:
    base: dict[str, object] = {
        "id": "a",
        "version": 1,
        "vector_f32": np.ones(4, "<f4").tobytes(),
    }
    return shard_pb2.ShardWrite(**{**base, **fields})  # type: ignore[arg-type]


def test_config_round_trips_and_unspecified_metric_is_cosine() -> None:
    proto = common_pb2.CollectionConfig(name="c", dimension=4, hnsw_m=8, partitions=3)
    config = config_from_proto(proto)
    assert config == CollectionConfig("c", 4, Metric.COSINE, 8, 0, 0, "", 3)
    back = config_to_proto(config)
    assert back.metric == common_pb2.METRIC_COSINE and back.partitions == 3


def test_payload_is_deterministic_and_holds_only_text_and_metadata() -> None:
    metadata = {key: common_pb2.Value(int_value=i) for i, key in enumerate(["z", "a", "m", "b"])}
    reordered = dict(reversed(list(metadata.items())))
    first = write_from_proto(_write(text="hello", metadata=metadata))
    second = write_from_proto(_write(text="hello", metadata=reordered))
    assert first.payload == second.payload
    document = common_pb2.Document.FromString(first.payload)
    assert document.text == "hello" and document.metadata["m"].int_value == 2
    assert not document.id and not document.vector_f32


def test_a_tombstone_drops_vector_and_payload() -> None:
    op = write_from_proto(_write(deleted=True, text="x"))
    assert op.deleted and op.vector == b"" and op.payload == b""


def test_a_document_without_text_or_metadata_has_no_payload() -> None:
    assert write_from_proto(_write()).payload == b""


def test_an_empty_metadata_value_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="no value"):
        write_from_proto(_write(metadata={"k": common_pb2.Value()}))


def test_oversize_text_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="text"):
        write_from_proto(_write(text="x" * 70_000))


@pytest.mark.parametrize(
    ("text", "metadata", "vector"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, True)],
)
def test_hits_carry_exactly_the_included_fields(text: bool, metadata: bool, vector: bool) -> None:
    op = write_from_proto(_write(text="hello", metadata={"n": common_pb2.Value(string_value="v")}))
    stored = StoredDocument("a", op.vector if vector else b"", op.payload)
    include = common_pb2.Include(text=text, metadata=metadata, vector=vector)
    result = shard_pb2.ShardSearchResult()
    hits_to_proto(QueryHits(["a"], [0.9], [0.1], [stored]), include, result)
    [target] = result.hits
    assert target.id == target.document.id == "a"
    assert target.score == pytest.approx(0.9)
    assert target.document.HasField("text") == text
    assert bool(target.document.metadata) == metadata
    assert bool(target.document.vector_f32) == vector


def test_queries_must_be_whole_floats() -> None:
    with pytest.raises(InvalidArgument):
        queries_from_proto(b"\x00" * 6)
    assert queries_from_proto(np.ones(8, "<f4").tobytes()).shape == (8,)
