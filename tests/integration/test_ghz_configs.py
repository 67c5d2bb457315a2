"""Do what ghz does with loadtest/ghz/*.json, against a real local cluster.

For each config: resolve its method through server reflection and through the
proto files (protoc with the repo's proto/ as import path, as `ghz --proto
proto/shoal/v1/shoal.proto --import-paths proto` does), check both give the
same messages, build the request from the ghz JSON data with
json_format.ParseDict, and call the coordinator with it. Then `shoal loadtest`
runs a short burst of each config against the same cluster. The data is the
generator's default, the demo sample every clone has.
"""

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_tools import protoc  # type: ignore[import-untyped]

from loadtest import generate
from loadtest.calls import CallData, builtin_method, method_path, reflected_method, render_template
from loadtest.config import load_config
from loadtest.runner import run
from loadtest.sample import load_sample
from shoal.cli.local_cluster import LocalCluster
from tests.conftest import StartCluster

REPO = Path(__file__).resolve().parents[2]
GHZ = REPO / "loadtest" / "ghz"
# Creating and filling the collection comes first; the searches need its documents.
ORDER = ["create_collection", "upsert", "search_vector", "search_text", "search_batch"]
MODEL = "hash-384"
DOCUMENTS = 400
QUERIES = 40


@dataclass
class Ghz:
    """One config, with its data read from the generated files."""

    name: str
    config: dict[str, Any]
    data: list[dict[str, Any]]

    @property
    def call(self) -> str:
        return str(self.config["call"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ghz-data")
    generate.generate(
        generate.parse_args(
            [
                "--out", str(out), "--model", MODEL,
                "--documents", str(DOCUMENTS), "--queries", str(QUERIES),
            ]
        )
    )  # fmt: skip
    return out


def _ghz(name: str, data_dir: Path) -> Ghz:
    config = json.loads((GHZ / f"{name}.json").read_text())
    data = json.loads((data_dir / Path(config["data-file"]).name).read_text())
    return Ghz(name, config, data if isinstance(data, list) else [data])


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    return start_module_cluster(groups=2, replicas=2, model=MODEL)


@pytest.fixture(scope="module")
def reflection_pool(cluster: LocalCluster) -> Iterator[descriptor_pool.DescriptorPool]:
    with grpc.insecure_channel(cluster.address) as channel:
        yield descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))


@pytest.fixture(scope="module")
def proto_pool(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pool.DescriptorPool:
    """The descriptors protoc compiles from proto/shoal/v1/shoal.proto with -I proto."""
    out = tmp_path_factory.mktemp("protoset") / "shoal.protoset"
    status = protoc.main(
        [
            "protoc",
            f"-I{REPO / 'proto'}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            str(REPO / "proto" / "shoal" / "v1" / "shoal.proto"),
        ]
    )
    assert status == 0, "protoc failed"
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool


def _method(pool: descriptor_pool.DescriptorPool, call: str) -> MethodDescriptor:
    service, method = method_path(call)
    return pool.FindServiceByName(service).methods_by_name[method]


def _shape(message: Descriptor) -> descriptor_pb2.DescriptorProto:
    """A message's fields and nested types; json_name aside (protoc fills it, stubs omit it)."""
    proto = descriptor_pb2.DescriptorProto()
    message.CopyToProto(proto)
    pending = [proto]
    while pending:
        current = pending.pop()
        for field in current.field:
            field.ClearField("json_name")
        pending.extend(current.nested_type)
    return proto


def _invoke(
    address: str, method: MethodDescriptor, data: dict[str, Any], metadata: dict[str, str]
) -> Message:
    """One call as ghz makes it: JSON data -> request message -> unary call -> reply."""
    request = message_factory.GetMessageClass(method.input_type)()
    json_format.ParseDict(data, request)
    reply_class = message_factory.GetMessageClass(method.output_type)
    call_data = CallData(0, "g0c0", method)
    rendered = tuple((k, render_template(v, call_data)) for k, v in metadata.items())
    path = f"/{method.containing_service.full_name}/{method.name}"
    with grpc.insecure_channel(address) as channel:
        call: grpc.UnaryUnaryMultiCallable[Message, Message] = channel.unary_unary(
            path,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=reply_class.FromString,
        )
        reply: Message = call(request, timeout=60, metadata=rendered)
    return reply


@pytest.fixture(scope="module")
def loaded(
    cluster: LocalCluster, data_dir: Path, proto_pool: descriptor_pool.DescriptorPool
) -> None:
    """The collection created and filled by the create_collection and upsert data."""
    for name in ("create_collection", "upsert"):
        ghz = _ghz(name, data_dir)
        method = _method(proto_pool, ghz.call)
        for item in ghz.data:
            _invoke(cluster.address, method, item, ghz.config.get("metadata", {}))


def test_every_config_is_covered() -> None:
    assert sorted(path.stem for path in GHZ.glob("*.json")) == sorted(ORDER)


@pytest.mark.usefixtures("loaded")
@pytest.mark.parametrize("name", ORDER)
def test_config_calls_succeed_through_reflection_and_protos(
    name: str,
    cluster: LocalCluster,
    data_dir: Path,
    reflection_pool: descriptor_pool.DescriptorPool,
    proto_pool: descriptor_pool.DescriptorPool,
) -> None:
    ghz = _ghz(name, data_dir)
    reflected = _method(reflection_pool, ghz.call)
    compiled = _method(proto_pool, ghz.call)
    assert reflected.full_name == compiled.full_name
    # The server describes exactly the messages the repo's protos define.
    assert _shape(reflected.input_type) == _shape(compiled.input_type)
    assert _shape(reflected.output_type) == _shape(compiled.output_type)

    metadata = ghz.config.get("metadata", {})
    for method in (reflected, compiled):
        reply = _invoke(cluster.address, method, ghz.data[0], metadata)
        assert reply.DESCRIPTOR.full_name == method.output_type.full_name
        result = json_format.MessageToDict(reply, preserving_proto_field_name=True)
        _check_reply(name, ghz.data[0], result)


def _check_reply(name: str, request: dict[str, Any], reply: dict[str, Any]) -> None:
    if name == "create_collection":
        assert reply["config"]["name"] == request["config"]["name"]
        assert reply["config"]["embedding_model"] == MODEL
    elif name == "upsert":
        assert reply["upserted"] == len(request["documents"])
    elif name in ("search_vector", "search_text"):
        assert 0 < len(reply["hits"]) <= request["k"]
        assert reply["coverage"]["groups_answered"] == reply["coverage"]["groups_asked"] == 2
    elif name == "search_batch":
        assert len(reply["results"]) == len(request["queries"])
        assert all(0 < len(result["hits"]) <= request["k"] for result in reply["results"])
    else:
        raise AssertionError(f"no check for {name}")


def test_vector_search_data_finds_known_items(
    cluster: LocalCluster,
    data_dir: Path,
    proto_pool: descriptor_pool.DescriptorPool,
    loaded: None,
) -> None:
    """The generated queries are the sample's: most find their package in the top 10."""
    ghz = _ghz("search_vector", data_dir)
    method = _method(proto_pool, ghz.call)
    sample = load_sample()
    loaded_ids = {row["id"] for row in sample.documents[:DOCUMENTS]}
    queries = sample.queries[:QUERIES]
    found = checked = 0
    for query, item in zip(queries, ghz.data, strict=True):
        if query["relevant"][0] not in loaded_ids:
            continue
        reply = _invoke(cluster.address, method, item, {})
        hits = json_format.MessageToDict(reply, preserving_proto_field_name=True)["hits"]
        checked += 1
        found += query["relevant"][0] in {hit["id"] for hit in hits}
    assert checked and found / checked >= 0.8


@pytest.mark.usefixtures("loaded")
@pytest.mark.parametrize("reflection", [False, True], ids=["protos", "reflection"])
@pytest.mark.parametrize("name", ORDER[1:])
def test_shoal_loadtest_runs_each_config(
    name: str, reflection: bool, cluster: LocalCluster, data_dir: Path
) -> None:
    """A short burst of `shoal loadtest` per config: every call answered OK."""
    overrides = {
        "host": cluster.address,
        "total": 20,
        "concurrency": 4,
        "data-file": str(data_dir / f"{name}.json"),
    }
    config = load_config(GHZ / f"{name}.json", overrides)
    if reflection:
        method = reflected_method(config.call, config.host, 10)
    else:
        method = builtin_method(config.call)
    report = asyncio.run(run(config, method))
    print(report.summary())
    assert report.count == 20
    assert report.status_codes == {"OK": 20}, report.errors
