"""A shard starting with etcd, before and after it has learnt the catalog and the
topology from it (issue 16, partition moves under replica kills):

- on an empty data dir it answered NOT_FOUND for a collection that existed but
  that it had not created yet, which the coordinator handed to the client
  instead of asking the other replica;
- restarted, it checked the ownership of routed writes against the topology
  file (the cluster's first topology) until etcd's arrived, so a hint routed
  with an old version put a moved partition's document back on its old group.

etcd is down while the shard starts, so the window in which the shard serves
but has not heard from etcd (milliseconds in a real restart) stays open for as
long as the test looks at it.
"""

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np

from shoal.cli.service_process import ServiceProcess
from shoal.etcd.catalog_store import EtcdCatalog
from shoal.etcd.client import EtcdClient
from shoal.etcd.server import EtcdCluster, free_port
from shoal.etcd.topology_store import EtcdTopology
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.wait import wait_for
from shoal.topology import Topology
from shoal.v1 import shard_pb2, shard_pb2_grpc

SETTINGS = {"dimension": 4, "metric": "cosine", "partitions": 4}
TIMEOUT = 60.0


async def create_in_catalog(
    endpoints: list[str], name: str, topology: Topology | None = None
) -> int:
    """Create `name` in the catalog (and seed etcd's topology); its incarnation."""
    client = EtcdClient(endpoints)
    try:
        entry, created = await EtcdCatalog(client).create(name, SETTINGS)
        assert created
        if topology is not None:
            await EtcdTopology(client).seed(topology)
        return entry.incarnation
    finally:
        await client.close()


def write(
    stub: shard_pb2_grpc.ShardServiceStub, incarnation: int, topology_version: int = 0
) -> shard_pb2.ShardWriteResponse:
    vector = np.ones(4, dtype="<f4").tobytes()
    request = shard_pb2.ShardWriteRequest(
        collection="docs",
        incarnation=incarnation,
        writes=[shard_pb2.ShardWrite(id="a", version=1 << 20, vector_f32=vector)],
        topology_version=topology_version,
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


def test_a_restarted_shard_takes_no_routed_write_before_it_has_etcds_topology(
    tmp_path: Path,
) -> None:
    """The file lists the shard as the owner of everything (version 1); etcd's
    topology (version 5) has replaced it. Restarted while etcd is down, the shard
    must not take a write routed with version 1 (a hint from before the change)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    elsewhere = ["127.0.0.1:1", "127.0.0.1:2"]
    topology_file = tmp_path / "topology.json"
    topology_file.write_text(json.dumps(Topology.of([[address]]).to_dict()))
    etcd = EtcdCluster(tmp_path / "etcd", 1)
    etcd.start()
    shard: ServiceProcess | None = None
    try:
        replaced = Topology.of([elsewhere], version=5)
        incarnation = asyncio.run(create_in_catalog(etcd.endpoints, "docs", replaced))
        args = [
            "--data-dir", str(tmp_path / "data"),
            "--topology", str(topology_file),
            "--etcd", etcd.endpoints_flag,
            "--catch-up-wait-s", "1",
        ]  # fmt: skip
        shard = ServiceProcess("shard", "shard", args, tmp_path, port=port)
        shard.start()
        shard.wait_ready(TIMEOUT)
        with grpc.insecure_channel(address, options=GRPC_OPTIONS) as channel:
            stub = shard_pb2_grpc.ShardServiceStub(channel)
            wait_for(
                lambda: code_of(lambda: write(stub, incarnation, topology_version=5)) is None,
                TIMEOUT,
                "the shard to create the catalog's collection",
                interval=0.2,
            )
        shard.stop()
        etcd.stop()

        shard.start()
        shard.wait_ready(TIMEOUT)  # serves once the waits for etcd are over
        with grpc.insecure_channel(address, options=GRPC_OPTIONS) as channel:
            stub = shard_pb2_grpc.ShardServiceStub(channel)
            stale = lambda: write(stub, incarnation, topology_version=1)  # noqa: E731
            assert code_of(stale) == grpc.StatusCode.UNAVAILABLE
            # Not routed by partition (a copy, a repair): taken as before.
            assert code_of(lambda: write(stub, incarnation)) is None

            etcd.start()
            wait_for(
                lambda: code_of(stale) == grpc.StatusCode.FAILED_PRECONDITION,
                TIMEOUT,
                "the shard to refuse the stale write with etcd's topology",
                interval=0.2,
            )
    finally:
        if shard is not None:
            shard.stop()
        etcd.stop()
