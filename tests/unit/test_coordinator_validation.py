"""Bad requests are rejected whole, with the right error, before anything is written."""

import numpy as np
import pytest

from coordinator.api.public_messages import (
    consistency_from_proto,
    create_config_from_proto,
    document_from_proto,
    query_from_proto,
)
from coordinator.core.model import DocumentInput, QueryInput, SearchOptions, WriteConsistency
from coordinator.core.ports import CollectionConfig
from coordinator.core.validation import check_documents, check_ids, check_search
from shoal import limits
from shoal.distance_metric import Metric
from shoal.errors import InvalidArgument, NotFound, ResourceExhausted, ShoalError
from shoal.v1 import common_pb2, shoal_pb2
from shoal.vectors import vector_to_f32
from tests.unit.coordinator_fakes import FakeCluster, deadline

DIM = 8
PLAIN = CollectionConfig("plain", DIM, Metric.COSINE, 16, 200, 64, "", 16)
WITH_MODEL = CollectionConfig("texts", DIM, Metric.COSINE, 16, 200, 64, "hash-8", 16)


def vec(*values: float) -> np.ndarray:
    vector = np.ones(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector


def doc(
    doc_id: str = "a", vector: np.ndarray | None = None, text: str | None = None
) -> DocumentInput:
    return DocumentInput(doc_id, vec() if vector is None and text is None else vector, text)


BadDocuments = tuple[CollectionConfig, list[DocumentInput], type[ShoalError], str]
BAD_DOCUMENTS: dict[str, BadDocuments] = {
    "wrong dimension": (
        PLAIN,
        [doc(vector=np.ones(DIM + 1, np.float32))],
        InvalidArgument,
        "dimension 9",
    ),
    "NaN": (PLAIN, [doc(vector=vec(np.nan))], InvalidArgument, "NaN"),
    "infinity": (PLAIN, [doc(vector=vec(np.inf))], InvalidArgument, "infinity"),
    "empty id": (PLAIN, [doc("")], InvalidArgument, "empty"),
    "oversize id": (PLAIN, [doc("x" * (limits.MAX_ID_BYTES + 1))], InvalidArgument, "limit"),
    "duplicate ids": (PLAIN, [doc("a"), doc("b"), doc("a")], InvalidArgument, "duplicate"),
    "text without model": (PLAIN, [doc(text="hello")], InvalidArgument, "embedding model"),
    "neither vector nor text": (PLAIN, [DocumentInput("a")], InvalidArgument, "vector"),
    "empty text to embed": (WITH_MODEL, [doc(text="")], InvalidArgument, "empty"),
    "too long text": (
        WITH_MODEL,
        [doc(text="x" * (limits.MAX_TEXT_CHARS + 1))],
        InvalidArgument,
        "limit",
    ),
    "too many metadata keys": (
        PLAIN,
        [
            DocumentInput(
                "a", vec(), None, {f"k{i}": 1 for i in range(limits.MAX_METADATA_KEYS + 1)}
            )
        ],
        InvalidArgument,
        "metadata",
    ),
    "too many documents": (
        PLAIN,
        [doc(f"d{i}") for i in range(limits.MAX_BATCH_DOCUMENTS + 1)],
        ResourceExhausted,
        "limit",
    ),
}


@pytest.mark.parametrize("case", BAD_DOCUMENTS, ids=list(BAD_DOCUMENTS))
def test_bad_documents(case: str) -> None:
    config, documents, error, words = BAD_DOCUMENTS[case]
    with pytest.raises(error, match=words):
        check_documents(config, [doc("fine"), *documents])


def test_documents_to_embed_are_those_with_text_and_no_vector() -> None:
    documents = [doc("v"), doc("t", text="hi"), doc("both", vec(), "hi"), doc("t2", text="yo")]
    assert check_documents(WITH_MODEL, documents) == [1, 3]


def test_text_next_to_a_vector_is_stored_without_a_model() -> None:
    assert check_documents(PLAIN, [doc("a", vec(), "a description")]) == []


def test_ids_for_get_and_delete() -> None:
    check_ids(["a", "b"], "ids")
    with pytest.raises(InvalidArgument, match="duplicate"):
        check_ids(["a", "a"], "ids")
    with pytest.raises(InvalidArgument, match="empty"):
        check_ids([""], "ids")
    with pytest.raises(ResourceExhausted, match="limit"):
        check_ids([str(i) for i in range(limits.MAX_BATCH_DOCUMENTS + 1)], "ids")


BAD_SEARCHES: dict[
    str, tuple[CollectionConfig, list[QueryInput], int, int, type[ShoalError], str]
] = {
    "k zero": (PLAIN, [QueryInput(vec())], 0, 0, InvalidArgument, "k is 0"),
    "k too large": (PLAIN, [QueryInput(vec())], limits.MAX_K + 1, 0, InvalidArgument, "k is"),
    "ef too large": (PLAIN, [QueryInput(vec())], 10, limits.MAX_EF + 1, InvalidArgument, "ef"),
    "wrong dimension": (
        PLAIN,
        [QueryInput(np.ones(3, np.float32))],
        10,
        0,
        InvalidArgument,
        "dimension 3",
    ),
    "empty query": (PLAIN, [QueryInput()], 10, 0, InvalidArgument, "empty"),
    "vector and text": (WITH_MODEL, [QueryInput(vec(), "hi")], 10, 0, InvalidArgument, "not both"),
    "text without model": (PLAIN, [QueryInput(text="hi")], 10, 0, InvalidArgument, "model"),
    "too many queries": (
        PLAIN,
        [QueryInput(vec())] * (limits.MAX_BATCH_QUERIES + 1),
        10,
        0,
        ResourceExhausted,
        "limit",
    ),
}


@pytest.mark.parametrize("case", BAD_SEARCHES, ids=list(BAD_SEARCHES))
def test_bad_searches(case: str) -> None:
    config, queries, k, ef, error, words = BAD_SEARCHES[case]
    with pytest.raises(error, match=words):
        check_search(config, queries, k, ef)


async def test_search_nan_is_caught_for_the_whole_batch() -> None:
    cluster = FakeCluster(groups=2, replicas=1)

    await cluster.create("plain", DIM)
    queries = [QueryInput(vec()), QueryInput(vec(np.nan))]
    with pytest.raises(InvalidArgument, match="query 1: vector contains NaN"):
        await cluster.core.reader.search("plain", queries, SearchOptions(5), deadline())
    assert all("search" not in shard.calls for shard in cluster.all_shards)


@pytest.mark.parametrize("case", ["NaN", "duplicate ids", "text without model", "empty id"])
async def test_bad_upsert_writes_nothing(case: str) -> None:
    cluster = FakeCluster(groups=2, replicas=2)
    _, documents, error, _ = BAD_DOCUMENTS[case]

    await cluster.create("plain", DIM)
    good = [doc(f"good-{i}") for i in range(20)]
    with pytest.raises(error):
        await cluster.core.writer.upsert(
            "plain", [*good, *documents], WriteConsistency.QUORUM, deadline()
        )
    assert all("write" not in shard.calls for shard in cluster.all_shards)


async def test_unknown_collection_is_not_found() -> None:
    cluster = FakeCluster()
    with pytest.raises(NotFound, match="'nope'"):
        await cluster.core.writer.upsert("nope", [doc()], WriteConsistency.ONE, deadline())


async def test_collection_name_with_path_characters() -> None:
    cluster = FakeCluster()
    for name in ["../x", "a/b", "", ".hidden"]:
        with pytest.raises(InvalidArgument, match="name"):
            await cluster.core.reader.count(name, False, deadline())


# The api layer's part: malformed messages.


def test_document_vector_as_bytes_is_not_copied_element_by_element() -> None:
    vector = np.arange(DIM, dtype=np.float32)
    message = common_pb2.Document(id="a", vector_f32=vector_to_f32(vector))
    document = document_from_proto(message)
    assert document.vector is not None
    np.testing.assert_array_equal(document.vector, vector)
    assert document.text is None


def test_document_with_vector_twice() -> None:
    message = common_pb2.Document(id="a", vector=[1.0] * DIM, vector_f32=vector_to_f32(vec()))
    with pytest.raises(InvalidArgument, match="not both"):
        document_from_proto(message)


def test_document_with_empty_metadata_value() -> None:
    message = common_pb2.Document(id="a", vector=[1.0] * DIM, metadata={"k": common_pb2.Value()})
    with pytest.raises(InvalidArgument, match="'k' has no value"):
        document_from_proto(message)


def test_query_forms() -> None:
    assert query_from_proto(shoal_pb2.Query(text="hi"), "query").text == "hi"
    query = query_from_proto(shoal_pb2.Query(vector=[1.0, 2.0]), "query")
    assert query.vector is not None and query.vector.tolist() == [1.0, 2.0]
    assert query_from_proto(shoal_pb2.Query(), "query") == QueryInput()


def test_consistency_and_metric_values() -> None:
    assert consistency_from_proto(0) is WriteConsistency.QUORUM
    assert consistency_from_proto(3) is WriteConsistency.ALL
    with pytest.raises(InvalidArgument, match="consistency"):
        consistency_from_proto(9)
    assert create_config_from_proto(common_pb2.CollectionConfig(name="a")).metric is Metric.COSINE
    with pytest.raises(InvalidArgument, match="metric"):
        create_config_from_proto(common_pb2.CollectionConfig(name="a", metric=7))  # type: ignore[arg-type]
