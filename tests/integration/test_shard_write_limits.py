"""A shard holds every Write to the size limits itself (issue 14, defence in
depth behind mTLS): a caller that reaches ShardService directly gets
RESOURCE_EXHAUSTED for oversized metadata or text, before anything is stored,
with the limits its own flags (SHOAL_MAX_*) set."""

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from shoal.cli.service_process import ServiceProcess
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc

DIM = 4
TIMEOUT = 30.0
COLLECTION = "limits"


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[shard_pb2_grpc.ShardServiceStub]:
    env = {
        "SHOAL_MAX_METADATA_BYTES": "2000",
        "SHOAL_MAX_METADATA_VALUE_BYTES": "1000",
        "SHOAL_MAX_TEXT_BYTES": "3000",
    }
    shard = ServiceProcess(
        "shard", "shard", ["--data-dir", str(tmp_path / "data")], tmp_path, env=env
    )
    shard.start()
    try:
        shard.wait_ready(TIMEOUT)
        with grpc.insecure_channel(shard.address) as channel:
            stub = shard_pb2_grpc.ShardServiceStub(channel)
            config = common_pb2.CollectionConfig(name=COLLECTION, dimension=DIM)
            request = shard_pb2.ShardCreateCollectionRequest(config=config)
            stub.CreateCollection(request, timeout=TIMEOUT)
            yield stub
    finally:
        shard.stop()


def _write(**fields: object) -> shard_pb2.ShardWriteRequest:
    ok = shard_pb2.ShardWrite(id="ok", version=1, vector_f32=np.ones(DIM, "<f4").tobytes())
    big = shard_pb2.ShardWrite(id="big", version=1, vector_f32=np.ones(DIM, "<f4").tobytes())
    if "metadata" in fields:
        for key, value in dict(fields["metadata"]).items():  # type: ignore[call-overload]
            big.metadata[key].CopyFrom(value)
    if "text" in fields:
        big.text = str(fields["text"])
    return shard_pb2.ShardWriteRequest(collection=COLLECTION, writes=[ok, big])


def _stored(stub: shard_pb2_grpc.ShardServiceStub) -> set[str]:
    request = shard_pb2.ShardGetRequest(collection=COLLECTION, ids=["ok", "big"])
    return {d.id for d in stub.Get(request, timeout=TIMEOUT).documents}


def _value(size: int) -> common_pb2.Value:
    return common_pb2.Value(string_value="x" * size)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metadata": {"a": _value(1500)}}, "metadata value 'a' has 15"),
        ({"metadata": {f"k{i}": _value(900) for i in range(3)}}, "metadata has more than 2000"),
        ({"text": "é" * 2000}, "text has 4000 bytes; the limit is 3000"),
    ],
    ids=["value", "metadata", "text"],
)
def test_oversized_writes_are_refused_and_store_nothing(
    stub: shard_pb2_grpc.ShardServiceStub, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        stub.Write(_write(**fields), timeout=TIMEOUT)
    assert isinstance(failure.value, grpc.Call)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert message in str(failure.value.details())
    assert _stored(stub) == set()  # the whole request, the small write too
    # Within the limits, the same shard takes it.
    stub.Write(_write(metadata={"a": _value(900)}, text="é" * 1000), timeout=TIMEOUT)
    assert _stored(stub) == {"ok", "big"}
