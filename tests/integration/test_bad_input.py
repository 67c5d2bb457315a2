"""Bad input gets the right gRPC status, and nothing of the request is stored."""

from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.limits import MAX_BATCH_DOCUMENTS, MAX_ID_BYTES, MAX_K
from shoal.v1 import common_pb2, embedder_pb2, shard_pb2, shoal_pb2, shoal_pb2_grpc
from shoal.vectors import vector_to_f32
from tests.conftest import StartCluster

DIM = 8
VECTORS = "vectors"  # collection without an embedding model
TEXTS = "texts"  # collection with the (hash) model
Code = grpc.StatusCode


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=2, replicas=2, model="hash-8")
    with Client(cluster.address) as client:
        client.create_collection(VECTORS, dimension=DIM)
        client.create_collection(TEXTS, embedding_model="hash-8")
        client.upsert(VECTORS, [{"id": "kept", "vector": np.ones(DIM)}])
    return cluster


@pytest.fixture
def stub(cluster: LocalCluster) -> Iterator[shoal_pb2_grpc.ShoalServiceStub]:
    with grpc.insecure_channel(cluster.address) as channel:
        yield shoal_pb2_grpc.ShoalServiceStub(channel)


def doc(doc_id: str, vector: object = None, text: str | None = None) -> common_pb2.Document:
    vec = np.ones(DIM, dtype=np.float32) if vector is None else np.asarray(vector, np.float32)
    document = common_pb2.Document(id=doc_id, vector_f32=vector_to_f32(vec))
    if text is not None:
        document.text = text
    return document


def good() -> common_pb2.Document:
    return doc("innocent-bystander")


def assert_status(call: Callable[[], object], code: grpc.StatusCode, words: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert isinstance(error, grpc.Call)
    assert error.code() == code, error.details()
    assert words in (error.details() or ""), error.details()


def assert_nothing_stored(cluster: LocalCluster) -> None:
    with Client(cluster.address) as client:
        assert client.count(VECTORS) == 1
        assert [d.id for d in client.get(VECTORS, ["kept", "innocent-bystander"])] == ["kept"]


BAD_UPSERTS = {
    "wrong dimension": ([doc("a", np.ones(DIM + 1))], Code.INVALID_ARGUMENT, "dimension 9"),
    "NaN": ([doc("a", [np.nan] + [1.0] * (DIM - 1))], Code.INVALID_ARGUMENT, "NaN"),
    "infinity": ([doc("a", [np.inf] + [1.0] * (DIM - 1))], Code.INVALID_ARGUMENT, "infinity"),
    "empty id": ([doc("")], Code.INVALID_ARGUMENT, "empty"),
    "oversize id": ([doc("x" * (MAX_ID_BYTES + 1))], Code.INVALID_ARGUMENT, "limit"),
    "duplicate ids": ([doc("a"), doc("a")], Code.INVALID_ARGUMENT, "duplicate"),
    "text without model": (
        [common_pb2.Document(id="a", text="hello")],
        Code.INVALID_ARGUMENT,
        "model",
    ),
    "no vector": (
        [common_pb2.Document(id="a")],
        Code.INVALID_ARGUMENT,
        "vector",
    ),
    "too many documents": (
        [doc(f"d{i}") for i in range(MAX_BATCH_DOCUMENTS + 1)],
        Code.RESOURCE_EXHAUSTED,
        "limit",
    ),
}


@pytest.mark.parametrize("case", BAD_UPSERTS, ids=list(BAD_UPSERTS))
def test_bad_upsert_is_rejected_whole(
    case: str, stub: shoal_pb2_grpc.ShoalServiceStub, cluster: LocalCluster
) -> None:
    documents, code, words = BAD_UPSERTS[case]
    request = shoal_pb2.UpsertRequest(collection=VECTORS, documents=[good(), *documents])
    assert_status(lambda: stub.Upsert(request), code, words)
    assert_nothing_stored(cluster)


def test_oversize_request(stub: shoal_pb2_grpc.ShoalServiceStub, cluster: LocalCluster) -> None:
    huge = common_pb2.Document(
        id="huge", vector_f32=vector_to_f32(np.ones(DIM)), text="x" * 70_000_000
    )
    request = shoal_pb2.UpsertRequest(collection=VECTORS, documents=[good(), huge])
    assert_status(lambda: stub.Upsert(request), Code.RESOURCE_EXHAUSTED, "")
    assert_nothing_stored(cluster)


def test_unknown_collection(stub: shoal_pb2_grpc.ShoalServiceStub) -> None:
    upsert = shoal_pb2.UpsertRequest(collection="nope", documents=[good()])
    assert_status(lambda: stub.Upsert(upsert), Code.NOT_FOUND, "nope")
    search = shoal_pb2.SearchRequest(
        collection="nope", query=shoal_pb2.Query(vector=[1.0] * DIM), k=1
    )
    assert_status(lambda: stub.Search(search), Code.NOT_FOUND, "nope")
    get = shoal_pb2.GetCollectionRequest(name="nope")
    assert_status(lambda: stub.GetCollection(get), Code.NOT_FOUND, "nope")


@pytest.mark.parametrize("k", [0, MAX_K + 1])
def test_k_out_of_range(k: int, stub: shoal_pb2_grpc.ShoalServiceStub) -> None:
    request = shoal_pb2.SearchRequest(
        collection=VECTORS, query=shoal_pb2.Query(vector=[1.0] * DIM), k=k
    )
    assert_status(lambda: stub.Search(request), Code.INVALID_ARGUMENT, "k")


def test_search_vector_with_wrong_dimension(stub: shoal_pb2_grpc.ShoalServiceStub) -> None:
    request = shoal_pb2.SearchRequest(
        collection=VECTORS, query=shoal_pb2.Query(vector=[1.0] * 3), k=1
    )
    assert_status(lambda: stub.Search(request), Code.INVALID_ARGUMENT, "dimension 3")


def test_search_text_without_model(stub: shoal_pb2_grpc.ShoalServiceStub) -> None:
    request = shoal_pb2.SearchRequest(collection=VECTORS, query=shoal_pb2.Query(text="hi"), k=1)
    assert_status(lambda: stub.Search(request), Code.INVALID_ARGUMENT, "model")


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 64, "sp ace"])
def test_collection_names_with_path_characters(
    name: str, stub: shoal_pb2_grpc.ShoalServiceStub
) -> None:
    request = shoal_pb2.CreateCollectionRequest(
        config=common_pb2.CollectionConfig(name=name, dimension=DIM)
    )
    assert_status(lambda: stub.CreateCollection(request), Code.INVALID_ARGUMENT, "name")


def test_collection_with_other_settings_exists(stub: shoal_pb2_grpc.ShoalServiceStub) -> None:
    same = common_pb2.CollectionConfig(name=VECTORS, dimension=DIM)
    assert not stub.CreateCollection(shoal_pb2.CreateCollectionRequest(config=same)).created
    other = common_pb2.CollectionConfig(name=VECTORS, dimension=DIM * 2)
    request = shoal_pb2.CreateCollectionRequest(config=other)
    assert_status(lambda: stub.CreateCollection(request), Code.ALREADY_EXISTS, VECTORS)


def test_text_is_embedded_on_a_collection_with_a_model(cluster: LocalCluster) -> None:
    with Client(cluster.address) as client:
        client.upsert(TEXTS, [{"id": "t1", "text": "a small tool"}])
        hits = client.search(TEXTS, text="a small tool", k=1).hits
    assert [hit.id for hit in hits] == ["t1"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


# -- requests that do not parse -----------------------------------------------

PLACEHOLDER = "@@@@"


def with_bad_utf8(request: Message) -> bytes:
    """`request` serialized, with the string PLACEHOLDER made invalid UTF-8."""
    data = request.SerializeToString()
    assert data.count(PLACEHOLDER.encode()) == 1
    return data.replace(PLACEHOLDER.encode(), b"\xff\xfe\xfd\xfc")


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def search_with_nested_filter(depth: int) -> bytes:
    """A SearchRequest whose filter is `depth` `negate`s deep, encoded by hand:
    protobuf's own classes refuse to build what they could not parse."""
    query = shoal_pb2.Query(vector_f32=vector_to_f32(np.ones(DIM)))
    condition = common_pb2.Filter(
        condition=common_pb2.Condition(
            key="n", op=common_pb2.OPERATOR_EQ, value=common_pb2.Value(int_value=1)
        )
    ).SerializeToString()
    nested = condition
    for _ in range(depth):
        nested = b"\x22" + varint(len(nested)) + nested  # Filter.negate: field 4, length-delimited
    filter_tag = bytes([(shoal_pb2.SearchRequest.FILTER_FIELD_NUMBER << 3) | 2])
    head = shoal_pb2.SearchRequest(collection=VECTORS, query=query, k=3).SerializeToString()
    return head + filter_tag + varint(len(nested)) + nested


def malformed_requests(cluster: LocalCluster) -> dict[str, tuple[str, str, bytes]]:
    """name -> (address, method, bytes that do not parse as its request)."""
    shard = cluster.shards[0][0].address
    return {
        "coordinator get, id not UTF-8": (
            cluster.address,
            "/shoal.v1.ShoalService/Get",
            with_bad_utf8(shoal_pb2.GetRequest(collection=VECTORS, ids=[PLACEHOLDER])),
        ),
        "coordinator upsert, id not UTF-8": (
            cluster.address,
            "/shoal.v1.ShoalService/Upsert",
            with_bad_utf8(
                shoal_pb2.UpsertRequest(collection=VECTORS, documents=[doc(PLACEHOLDER)])
            ),
        ),
        "coordinator search, filter 99 deep": (
            cluster.address,
            "/shoal.v1.ShoalService/Search",
            search_with_nested_filter(99),
        ),
        "shard get, id not UTF-8": (
            shard,
            "/shoal.v1.ShardService/Get",
            with_bad_utf8(shard_pb2.ShardGetRequest(collection=VECTORS, ids=[PLACEHOLDER])),
        ),
        "embedder embed, text not UTF-8": (
            cluster.embedder.address,
            "/shoal.v1.EmbedderService/Embed",
            with_bad_utf8(embedder_pb2.EmbedRequest(texts=[PLACEHOLDER])),
        ),
        "health check, service not UTF-8": (
            shard,
            "/grpc.health.v1.Health/Check",
            with_bad_utf8(health_pb2.HealthCheckRequest(service=PLACEHOLDER)),
        ),
    }


MALFORMED = [
    "coordinator get, id not UTF-8",
    "coordinator upsert, id not UTF-8",
    "coordinator search, filter 99 deep",
    "shard get, id not UTF-8",
    "embedder embed, text not UTF-8",
    "health check, service not UTF-8",
]


@pytest.mark.parametrize("case", MALFORMED)
def test_a_request_that_does_not_parse_is_invalid_argument(
    case: str, cluster: LocalCluster
) -> None:
    """It was UNKNOWN ("Unexpected <class 'DecodeError'>") on every server."""
    address, method, data = malformed_requests(cluster)[case]
    with grpc.insecure_channel(address) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        assert_status(
            lambda: call(data, timeout=30), Code.INVALID_ARGUMENT, "the request is not a valid"
        )
        # The server is fine afterwards, on the same connection.
        health = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        reply = health(health_pb2.HealthCheckRequest(), timeout=30)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert_nothing_stored(cluster)
