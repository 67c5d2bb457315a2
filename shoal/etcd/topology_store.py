"""The topology in etcd (`shoal.topology_store.TopologyStore`).

One key, `/shoal/v1/topology`, holding the topology's JSON (`Topology.to_dict`:
version, groups, partition_groups). A seed is a transaction that writes only if
the key was never created; an update one that writes only if the key's
mod_revision is still the one read with the expected version, so of two
updates from one version exactly one lands and the other is told the version
moved on.
"""

import json
from collections.abc import AsyncIterator

from shoal.errors import DataLoss, FailedPrecondition, NotFound, Unavailable
from shoal.etcd.client import EtcdClient, EtcdError
from shoal.etcdpb import kv_pb2, rpc_pb2
from shoal.topology import Topology, TopologyError

KEY = b"/shoal/v1/topology"


def topology_from_kv(kv: kv_pb2.KeyValue) -> Topology:
    try:
        return Topology.from_dict(json.loads(kv.value))
    except (ValueError, TopologyError) as error:
        raise DataLoss(f"the topology in etcd ({KEY.decode()}) is unreadable: {error}") from None


def _encode(topology: Topology) -> bytes:
    return json.dumps(topology.to_dict(), sort_keys=True).encode()


class EtcdTopology:
    def __init__(self, client: EtcdClient) -> None:
        self._client = client

    async def _current(self) -> tuple[kv_pb2.KeyValue | None, int]:
        reply = await self._client.range(KEY)
        return (reply.kvs[0] if reply.kvs else None), reply.header.revision

    async def read(self) -> tuple[Topology | None, int]:
        kv, revision = await self._current()
        return (None if kv is None else topology_from_kv(kv)), revision

    async def seed(self, topology: Topology) -> Topology:
        never_created = rpc_pb2.Compare(
            key=KEY,
            target=rpc_pb2.Compare.CREATE,
            result=rpc_pb2.Compare.EQUAL,
            create_revision=0,
        )
        seeded = topology.with_version(max(topology.version, 1))
        reply = await self._client.txn(
            rpc_pb2.TxnRequest(
                compare=[never_created],
                success=[_put(_encode(seeded))],
                failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=KEY))],
            )
        )
        if reply.succeeded:
            return seeded
        return topology_from_kv(reply.responses[0].response_range.kvs[0])

    async def update(self, expected_version: int, topology: Topology) -> Topology:
        kv, _ = await self._current()
        if kv is None:
            raise NotFound("etcd holds no topology yet; a coordinator seeds it from its file")
        current = topology_from_kv(kv)
        if current.version != expected_version:
            raise _moved_on(expected_version, current.version)
        updated = topology.with_version(expected_version + 1)
        unchanged = rpc_pb2.Compare(
            key=KEY,
            target=rpc_pb2.Compare.MOD,
            result=rpc_pb2.Compare.EQUAL,
            mod_revision=kv.mod_revision,
        )
        reply = await self._client.txn(
            rpc_pb2.TxnRequest(
                compare=[unchanged],
                success=[_put(_encode(updated))],
                failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=KEY))],
            )
        )
        if reply.succeeded:
            return updated
        # A retried transaction that had landed the first time finds its own write.
        kvs = reply.responses[0].response_range.kvs
        now = topology_from_kv(kvs[0]) if kvs else None
        if now is not None and now.version == updated.version and now.same_layout(updated):
            return now
        raise _moved_on(expected_version, None if now is None else now.version)

    async def watch(self, after_revision: int) -> AsyncIterator[Topology]:
        try:
            async for _, events in self._client.watch_prefix(KEY, after_revision + 1):
                for event in events:
                    if event.kv.key == KEY and event.type == kv_pb2.Event.PUT:
                        yield topology_from_kv(event.kv)
        except EtcdError as error:
            raise Unavailable(f"topology watch: {error}") from None


def _put(value: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=KEY, value=value))


def _moved_on(expected: int, current: int | None) -> FailedPrecondition:
    now = "changed meanwhile" if current is None else f"is at version {current}"
    return FailedPrecondition(
        f"the topology {now}, not at the expected version {expected}:"
        " read it again (shoal topology show) and make the change from there"
    )
