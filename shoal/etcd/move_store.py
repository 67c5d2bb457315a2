"""Partition moves in etcd: their records (`MoveStore`) and who drives them (`MoveLock`).

`/shoal/v1/moves/<id>` holds one move's record as JSON (`MoveRecord`); ids sort
in the order the moves were asked for. `/shoal/v1/move-lock` is held by the one
coordinator that drives moves, under a lease it keeps alive: if that process
dies the lease runs out within `ttl_s` and another coordinator takes over.
"""

import asyncio
import contextlib
import logging

from shoal.errors import DataLoss, ShoalError
from shoal.etcd.client import EtcdClient
from shoal.etcdpb import rpc_pb2
from shoal.moves import MoveRecord

log = logging.getLogger(__name__)

PREFIX = b"/shoal/v1/moves/"
LOCK_KEY = b"/shoal/v1/move-lock"
DEFAULT_TTL_S = 5


class EtcdMoveStore:
    def __init__(self, client: EtcdClient) -> None:
        self._client = client

    async def list(self) -> list[MoveRecord]:
        reply = await self._client.range(PREFIX, prefix=True)
        records = []
        for kv in reply.kvs:
            try:
                records.append(MoveRecord.from_json(kv.value))
            except (ValueError, TypeError) as error:
                raise DataLoss(f"move record {kv.key.decode()} is unreadable: {error}") from None
        return sorted(records, key=lambda record: record.id)

    async def put(self, record: MoveRecord) -> None:
        await self._client.put(PREFIX + record.id.encode(), record.to_json())

    async def delete_finished(self) -> int:
        deleted = 0
        for record in await self.list():
            if record.finished:
                await self._client.delete(PREFIX + record.id.encode())
                deleted += 1
        return deleted


class EtcdMoveLock:
    """`LOCK_KEY` under this process's lease; taken only when no one holds it."""

    def __init__(self, client: EtcdClient, owner: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._client = client
        self._owner = owner.encode()
        self._ttl_s = ttl_s
        self._lease = 0
        self._keeper: asyncio.Task[None] | None = None

    def _alive(self) -> bool:
        return self._lease != 0 and self._keeper is not None and not self._keeper.done()

    async def acquire(self) -> bool:
        if not self._alive():
            self._lease = await self._client.grant(self._ttl_s)
            self._keeper = asyncio.create_task(self._keep(self._lease), name="move lock lease")
        free = rpc_pb2.Compare(
            key=LOCK_KEY,
            target=rpc_pb2.Compare.CREATE,
            result=rpc_pb2.Compare.EQUAL,
            create_revision=0,
        )
        reply = await self._client.txn(
            rpc_pb2.TxnRequest(
                compare=[free],
                success=[
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(
                            key=LOCK_KEY, value=self._owner, lease=self._lease
                        )
                    )
                ],
                failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=LOCK_KEY))],
            )
        )
        if reply.succeeded:
            log.info("took the move lock (lease %x)", self._lease)
            return True
        kvs = reply.responses[0].response_range.kvs
        return bool(kvs) and kvs[0].lease == self._lease

    async def _keep(self, lease: int) -> None:
        try:
            await self._client.keep_alive(lease, self._ttl_s / 3)
        except ShoalError as error:
            log.warning("move lock lease lost: %s", error)

    async def release(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self._lease:
            with contextlib.suppress(ShoalError):
                await self._client.revoke(self._lease)
        self._lease = 0
