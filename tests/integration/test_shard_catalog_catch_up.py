"""A shard on an empty data dir, with a catalog in etcd, before and after it has
created the catalog's collections (issue 16: a replica replaced by one on an
empty data dir answered NOT_FOUND for a collection that existed, which the
coordinator handed to the client instead of asking the other replica).

etcd is down while the shard starts, so the window in which the shard serves
but has not learnt the catalog (milliseconds in a real replacement) stays
open for as long as the test looks at it.
"""

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np

from shoal.cli.service_process import ServiceProcess
from shoal.etcd.catalog_store import EtcdCatalog
from shoal.etcd.client import EtcdClient
from shoal.etcd.server import EtcdCluster
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.wait import wait_for
from shoal.v1 import shard_pb2, shard_pb2_grpc

SETTINGS = {"dimension": 4, "metric": "cosine", "partitions": 4}
TIMEOUT = 60.0


async def create_in_catalog(endpoints: list[str], name: str) -> int:
    client = EtcdClient(endpoints)
    try:
        entry, created = await EtcdCatalog(client).create(name, SETTINGS)
        assert created
        return entry.incarnation
    finally:
        await client.close()


def write(stub: shard_pb2_grpc.ShardServiceStub, incarnation: int) -> shard_pb2.ShardWriteResponse:
    vector = np.ones(4, dtype="<f4").tobytes()
    request = shard_pb2.ShardWriteRequest(
        collection="docs",
        incarnation=incarnation,
        writes=[shard_pb2.ShardWrite(id="a", version=1 << 20, vector_f32=vector)],
    )
    reply: shard_pb2.ShardWriteResponse = stub.Write(request, timeout=10)
    return reply


def code_of(call: Callable[[], object]) -> grpc.StatusCode | None:
    """The status code `call` fails with, None when it succeeds."""
    try:
        call()
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return None


def test_a_shard_that_has_not_created_the_catalogs_collections_answers_unavailable(
    tmp_path: Path,
) -> None:
    etcd = EtcdCluster(tmp_path / "etcd", 1)
    etcd.start()
    shard: ServiceProcess | None = None
    try:
        incarnation = asyncio.run(create_in_catalog(etcd.endpoints, "docs"))
        etcd.stop()
        args = [
            "--data-dir", str(tmp_path / "data"),
            "--etcd", etcd.endpoints_flag,
            "--catch-up-wait-s", "1",
        ]  # fmt: skip
        shard = ServiceProcess("shard", "shard", args, tmp_path)
        shard.start()
        shard.wait_ready(TIMEOUT)  # serves without the catalog once the wait is over
        with grpc.insecure_channel(shard.address, options=GRPC_OPTIONS) as channel:
            stub = shard_pb2_grpc.ShardServiceStub(channel)
            search = shard_pb2.ShardSearchRequest(
                collection="docs", queries_f32=np.ones(4, dtype="<f4").tobytes(), k=1
            )
            digest = shard_pb2.ShardDigestRequest(collection="docs", incarnation=incarnation)
            # Not NOT_FOUND: the coordinator would hand that to its caller.
            assert code_of(lambda: write(stub, incarnation)) == grpc.StatusCode.UNAVAILABLE
            assert code_of(lambda: stub.Search(search, timeout=10)) == grpc.StatusCode.UNAVAILABLE
            assert code_of(lambda: stub.Digest(digest, timeout=10)) == grpc.StatusCode.UNAVAILABLE

            etcd.start()
            # Once the catalog is in, the collection is created and takes the write,
            # and a name the catalog does not know is NOT_FOUND again.
            wait_for(
                lambda: code_of(lambda: write(stub, incarnation)) is None,
                TIMEOUT,
                "the shard to create the catalog's collection",
                interval=0.2,
            )
            unknown = shard_pb2.ShardCountRequest(collection="unknown")
            assert code_of(lambda: stub.Count(unknown, timeout=10)) == grpc.StatusCode.NOT_FOUND
            count = stub.Count(shard_pb2.ShardCountRequest(collection="docs"), timeout=10)
            assert count.count == 1
    finally:
        if shard is not None:
            shard.stop()
        etcd.stop()
