"""API keys with roles on a real coordinator (issue 14): every public RPC x every kind
of caller, rotation without restart, reflection and health; and the issue's attacks
that need no shard port, each refused with its status while the stored data stays
the same (a digest of everything before and after)."""

import hashlib
import json
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from shoal import Client
from shoal.access import PUBLIC_RULES, Role
from shoal.api_keys import generate_key, key_entry
from shoal.cli.local_cluster import LocalCluster
from shoal.errors import FailedPrecondition, ShoalError
from shoal.limits import MAX_BATCH_QUERIES, MAX_EF, MAX_K
from shoal.runtime.wait import wait_for
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc, shoal_pb2, shoal_pb2_grpc
from shoal.vectors import vector_to_f32
from tests.conftest import StartCluster

DIM = 8
MAIN = "main"
OTHER = "other"
Code = grpc.StatusCode

#: Caller -> (role, collections) of its key; "none" sends no key, "unknown" a key
#: the file does not list.
KEYS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "read": (Role.READ, ()),
    "write": (Role.WRITE, ()),
    "admin": (Role.ADMIN, ()),
    "admin-of-other": (Role.ADMIN, (OTHER,)),
}
CALLERS = ["none", "unknown", *KEYS]


class Keys:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_caller = {caller: generate_key() for caller in KEYS}
        self.by_caller["unknown"] = generate_key()
        self.write()

    def entries(self) -> list[dict[str, object]]:
        return [
            key_entry(self.by_caller[caller], caller, role, collections)
            for caller, (role, collections) in KEYS.items()
        ]

    def write(self, *extra: dict[str, object]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [*self.entries(), *extra]}))
        tmp.replace(self.path)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys") / "api-keys.json")


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster, keys: Keys) -> LocalCluster:
    cluster = start_module_cluster(
        groups=1,
        replicas=2,
        model="hash-8",
        coordinator_args=("--api-keys-file", str(keys.path)),
    )
    with Client(cluster.address, api_key=keys.by_caller["admin"]) as client:
        for name in (MAIN, OTHER):
            client.create_collection(name, dimension=DIM)
            client.upsert(
                name,
                [
                    {"id": f"d{i}", "vector": np.full(DIM, i + 1.0), "metadata": {"i": i}}
                    for i in range(20)
                ],
                consistency="all",
            )
    return cluster


@pytest.fixture(scope="module")
def channel(cluster: LocalCluster) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(cluster.address) as channel:
        yield channel


def metadata(keys: Keys, caller: str) -> tuple[tuple[str, str], ...]:
    if caller == "none":
        return ()
    if caller == "write":  # the other header Qdrant and Weaviate accept
        return (("api-key", keys.by_caller[caller]),)
    return (("authorization", f"Bearer {keys.by_caller[caller]}"),)


def vector(value: float = 1.0) -> bytes:
    return vector_to_f32(np.full(DIM, value, dtype=np.float32))


#: One request per public RPC, and the status it gets when the key may call it.
#: Requests name MAIN; DeleteCollection names a collection that does not exist, so
#: "allowed" is NOT_FOUND while every refusal is the same whether it exists or not.
REQUESTS: dict[str, tuple[Message, Code]] = {
    "CreateCollection": (
        shoal_pb2.CreateCollectionRequest(
            config=common_pb2.CollectionConfig(name=MAIN, dimension=DIM)
        ),
        Code.OK,
    ),
    "GetCollection": (shoal_pb2.GetCollectionRequest(name=MAIN), Code.OK),
    "ListCollections": (shoal_pb2.ListCollectionsRequest(), Code.OK),
    "DeleteCollection": (shoal_pb2.DeleteCollectionRequest(name="never-made"), Code.NOT_FOUND),
    "Upsert": (
        shoal_pb2.UpsertRequest(
            collection=MAIN, documents=[common_pb2.Document(id="matrix", vector_f32=vector())]
        ),
        Code.OK,
    ),
    "Get": (shoal_pb2.GetRequest(collection=MAIN, ids=["d1"]), Code.OK),
    "Update": (
        shoal_pb2.UpdateRequest(
            collection=MAIN, ids=["d1"], set_metadata={"seen": common_pb2.Value(bool_value=True)}
        ),
        Code.OK,
    ),
    "Delete": (shoal_pb2.DeleteRequest(collection=MAIN, ids=["matrix"]), Code.OK),
    "Count": (shoal_pb2.CountRequest(collection=MAIN), Code.OK),
    "Scroll": (shoal_pb2.ScrollRequest(collection=MAIN), Code.OK),
    "Search": (
        shoal_pb2.SearchRequest(collection=MAIN, query=shoal_pb2.Query(vector_f32=vector()), k=3),
        Code.OK,
    ),
    "SearchBatch": (
        shoal_pb2.SearchBatchRequest(
            collection=MAIN, queries=[shoal_pb2.Query(vector_f32=vector())], k=3
        ),
        Code.OK,
    ),
    "GetClusterInfo": (shoal_pb2.GetClusterInfoRequest(), Code.OK),
    "VerifyReplicas": (shoal_pb2.VerifyReplicasRequest(collection=MAIN), Code.OK),
    "GetTopology": (shoal_pb2.GetTopologyRequest(), Code.OK),
    # An empty topology: allowed callers get INVALID_ARGUMENT, nothing moves.
    "UpdateTopology": (
        shoal_pb2.UpdateTopologyRequest(expected_version=999_999),
        Code.INVALID_ARGUMENT,
    ),
    # No moves: allowed callers get INVALID_ARGUMENT (start) and empty lists.
    "StartMoves": (shoal_pb2.StartMovesRequest(), Code.INVALID_ARGUMENT),
    "ListMoves": (shoal_pb2.ListMovesRequest(), Code.OK),
    "CancelMoves": (shoal_pb2.CancelMovesRequest(), Code.OK),
    # This cluster has no --snapshot-location: allowed callers get FAILED_PRECONDITION.
    "CreateSnapshot": (shoal_pb2.CreateSnapshotRequest(name="s"), Code.FAILED_PRECONDITION),
    "ListSnapshots": (shoal_pb2.ListSnapshotsRequest(), Code.FAILED_PRECONDITION),
    "DeleteSnapshot": (shoal_pb2.DeleteSnapshotRequest(name="s"), Code.FAILED_PRECONDITION),
    "RestoreSnapshot": (shoal_pb2.RestoreSnapshotRequest(name="s"), Code.FAILED_PRECONDITION),
}

#: Methods that answer with a stream: the status comes with reading it.
STREAMING = {"CreateSnapshot", "RestoreSnapshot"}


def expected(method: str, caller: str) -> Code:
    if caller in ("none", "unknown"):
        return Code.UNAUTHENTICATED
    role, collections = KEYS[caller]
    if role < PUBLIC_RULES[method].role or collections:  # scoped to OTHER; requests name MAIN
        return Code.PERMISSION_DENIED
    return REQUESTS[method][1]


def call(channel: grpc.Channel, method: str, request: Message, md: object) -> Code:
    stub = shoal_pb2_grpc.ShoalServiceStub(channel)
    try:
        answer = getattr(stub, method)(request, metadata=md, timeout=30)
        if method in STREAMING:
            list(answer)
    except grpc.RpcError as error:
        assert isinstance(error, grpc.Call)
        return error.code()
    return Code.OK


def test_every_public_rpc_is_in_the_matrix() -> None:
    methods = {m.name for m in shoal_pb2.DESCRIPTOR.services_by_name["ShoalService"].methods}
    assert set(REQUESTS) == methods


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method", sorted(REQUESTS))
def test_every_rpc_by_every_caller(
    channel: grpc.Channel, keys: Keys, method: str, caller: str
) -> None:
    request, _ = REQUESTS[method]
    assert call(channel, method, request, metadata(keys, caller)) == expected(method, caller)


def test_a_scoped_key_works_on_its_collection_and_answers_the_same_for_any_other(
    channel: grpc.Channel, keys: Keys
) -> None:
    md = metadata(keys, "admin-of-other")
    search = shoal_pb2.SearchRequest(
        collection=OTHER, query=shoal_pb2.Query(vector_f32=vector()), k=3
    )
    assert call(channel, "Search", search, md) == Code.OK
    assert call(channel, "VerifyReplicas", shoal_pb2.VerifyReplicasRequest(collection=OTHER), md)
    details: list[str | None] = []
    for name in (MAIN, "does-not-exist"):
        search.collection = name
        with pytest.raises(grpc.RpcError) as caught:
            shoal_pb2_grpc.ShoalServiceStub(channel).Search(search, metadata=md, timeout=10)
        error = caught.value
        assert isinstance(error, grpc.Call) and error.code() == Code.PERMISSION_DENIED
        details.append(error.details())
    assert details[0] == details[1]  # nothing says whether the collection exists


def test_health_is_open_and_reflection_follows_the_keys(channel: grpc.Channel, keys: Keys) -> None:
    health: Any = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    with pytest.raises(grpc.RpcError) as caught:
        list(reflection.ServerReflectionInfo(iter([ask]), timeout=10))
    assert isinstance(caught.value, grpc.Call) and caught.value.code() == Code.UNAUTHENTICATED
    [answer] = reflection.ServerReflectionInfo(
        iter([ask]), metadata=metadata(keys, "read"), timeout=10
    )
    names = {service.name for service in answer.list_services_response.service}
    assert "shoal.v1.ShoalService" in names


def test_keys_are_added_and_revoked_without_a_restart(cluster: LocalCluster, keys: Keys) -> None:
    new = generate_key()
    with Client(cluster.address, api_key=new) as client:

        def status() -> str:
            try:
                client.count(MAIN)
            except ShoalError as error:
                return type(error).__name__
            return "ok"

        assert status() == "Unauthenticated"
        keys.write(key_entry(new, "rotated-in", Role.READ))
        wait_for(lambda: status() == "ok", 10, "the new key to be accepted")
        keys.write()
        wait_for(lambda: status() == "Unauthenticated", 10, "the revoked key to be refused")


# -- attacks (issue 14) -------------------------------------------------------


def digest(cluster: LocalCluster, keys: Keys) -> str:
    """Every stored document of both collections, everything included, hashed."""
    hasher = hashlib.sha256()
    with Client(cluster.address, api_key=keys.by_caller["admin"]) as client:
        for name in (MAIN, OTHER):
            for doc in client.scroll(name, include=("vector", "text", "metadata")):
                hasher.update(
                    repr((name, doc.id, list(doc.vector or []), doc.text, doc.metadata)).encode()
                )
            hasher.update(str(client.count(name)).encode())
        hasher.update(repr(sorted(c.name for c in client.list_collections())).encode())
    return hasher.hexdigest()


@pytest.fixture
def unchanged(cluster: LocalCluster, keys: Keys) -> Iterator[None]:
    before = digest(cluster, keys)
    yield
    assert digest(cluster, keys) == before


def refused(call: Callable[[], object], code: Code, words: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert isinstance(error, grpc.Call)
    assert error.code() == code, error.details()
    assert words in (error.details() or ""), error.details()


@pytest.mark.usefixtures("unchanged")
def test_upserts_with_48_mb_of_metadata_are_refused(channel: grpc.Channel, keys: Keys) -> None:
    stub = shoal_pb2_grpc.ShoalServiceStub(channel)
    document = common_pb2.Document(id="d1", vector_f32=vector(9))
    document.metadata["blob"].string_value = "x" * (48 << 20)
    request = shoal_pb2.UpsertRequest(collection=MAIN, documents=[document])
    for _ in range(5):
        refused(
            lambda: stub.Upsert(request, metadata=metadata(keys, "write"), timeout=60),
            Code.RESOURCE_EXHAUSTED,
            "--max-metadata-value-bytes",
        )


@pytest.mark.usefixtures("unchanged")
def test_the_huge_search_batch_is_refused_before_any_work(
    channel: grpc.Channel, keys: Keys
) -> None:
    stub = shoal_pb2_grpc.ShoalServiceStub(channel)
    request = shoal_pb2.SearchBatchRequest(
        collection=MAIN,
        queries=[shoal_pb2.Query(vector_f32=vector(i + 1.0)) for i in range(MAX_BATCH_QUERIES)],
        k=MAX_K,
        ef=MAX_EF,
        include=common_pb2.Include(metadata=True, text=True, vector=True),
    )
    refused(
        lambda: stub.SearchBatch(request, metadata=metadata(keys, "read"), timeout=10),
        Code.RESOURCE_EXHAUSTED,
        "1000 queries x ef 4096",
    )
    # Within the work limit, but vectors make the reply too large.
    request.k, request.ef = 100, 100
    refused(
        lambda: stub.SearchBatch(request, metadata=metadata(keys, "read"), timeout=10),
        Code.RESOURCE_EXHAUSTED,
        "--max-reply-bytes",
    )


@pytest.mark.usefixtures("unchanged")
def test_a_match_all_delete_needs_the_flag(channel: grpc.Channel, keys: Keys) -> None:
    stub = shoal_pb2_grpc.ShoalServiceStub(channel)
    for request in (
        shoal_pb2.DeleteRequest(collection=MAIN, filter=common_pb2.Filter()),
        shoal_pb2.DeleteRequest(collection=MAIN),
    ):
        delete = partial(stub.Delete, request, metadata=metadata(keys, "write"), timeout=10)
        refused(delete, Code.INVALID_ARGUMENT, "delete_all")


@pytest.mark.usefixtures("unchanged")
def test_dropping_a_collection_or_repairing_needs_admin(channel: grpc.Channel, keys: Keys) -> None:
    stub = shoal_pb2_grpc.ShoalServiceStub(channel)
    drop = shoal_pb2.DeleteCollectionRequest(name=MAIN)
    refused(lambda: stub.DeleteCollection(drop, timeout=10), Code.UNAUTHENTICATED, "no API key")
    refused(
        lambda: stub.DeleteCollection(drop, metadata=metadata(keys, "write"), timeout=10),
        Code.PERMISSION_DENIED,
        "needs admin",
    )
    refused(
        lambda: stub.DeleteCollection(drop, metadata=metadata(keys, "admin-of-other"), timeout=10),
        Code.PERMISSION_DENIED,
        "limited to collections",
    )
    repair = shoal_pb2.VerifyReplicasRequest(collection=MAIN, repair=True)
    refused(
        lambda: stub.VerifyReplicas(repair, metadata=metadata(keys, "write"), timeout=10),
        Code.PERMISSION_DENIED,
        "needs admin",
    )


@pytest.mark.usefixtures("unchanged")
def test_a_max_version_write_to_a_shard_is_refused_and_pins_nothing(
    cluster: LocalCluster, keys: Keys
) -> None:
    """The shard's own Write (no API key there: the other helper's mTLS guards the
    port) refuses versions beyond its clock skew, live or tombstone; so a later
    write through the API still wins."""
    shard = cluster.all_shards[0]
    with grpc.insecure_channel(shard.address) as channel:
        stub = shard_pb2_grpc.ShardServiceStub(channel)
        for deleted in (False, True):
            write = shard_pb2.ShardWrite(
                id="d1",
                version=2**64 - 1,
                deleted=deleted,
                vector_f32=b"" if deleted else vector(666),
            )
            request = shard_pb2.ShardWriteRequest(collection=MAIN, writes=[write])
            refused(partial(stub.Write, request, timeout=10), Code.INVALID_ARGUMENT, "ahead")


def test_after_a_refused_max_version_write_the_api_write_wins(
    cluster: LocalCluster, keys: Keys
) -> None:
    shard = cluster.all_shards[0]
    with grpc.insecure_channel(shard.address) as channel:
        write = shard_pb2.ShardWrite(id="pinned", version=2**64 - 1, vector_f32=vector(666))
        request = shard_pb2.ShardWriteRequest(collection=MAIN, writes=[write])
        refused(
            lambda: shard_pb2_grpc.ShardServiceStub(channel).Write(request, timeout=10),
            Code.INVALID_ARGUMENT,
            "ahead",
        )
    with Client(cluster.address, api_key=keys.by_caller["write"]) as client:
        result = client.upsert(
            MAIN, [{"id": "pinned", "vector": np.full(DIM, 2.0)}], consistency="all"
        )
        assert result.replicas_acknowledged == 2
        [doc] = client.get(MAIN, ["pinned"], consistency="all")
        assert doc.vector is not None and list(doc.vector) == [2.0] * DIM
        client.delete(MAIN, ["pinned"], consistency="all")
        assert client.get(MAIN, ["pinned"], consistency="all") == []


def test_the_sdk_sends_its_key_with_search_batches_and_snapshot_calls(
    cluster: LocalCluster, keys: Keys
) -> None:
    """Every call of `shoal.Client` carries its key: search_batch (one call, and
    several in flight) and the snapshot calls went without it, UNAUTHENTICATED."""
    queries = np.ones((5, DIM), dtype=np.float32)
    with Client(cluster.address, api_key=keys.by_caller["admin"]) as client:
        assert client.search_batch(MAIN, queries, k=3, include=[]).ids.shape == (5, 3)
        piped = client.search_batch(MAIN, queries, k=3, include=[], batch_size=2, in_flight=2)
        assert piped.ids.shape == (5, 3)
        # Past the key check: this coordinator keeps no snapshots.
        with pytest.raises(FailedPrecondition, match="no snapshots"):
            client.list_snapshots()
