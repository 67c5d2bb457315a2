"""The collection catalog in etcd (`shoal.catalog.CatalogStore`).

One key per collection name, `/shoal/v1/collections/<name>`, holding JSON:
`{"settings": {...}, "dropped": false}` and, once known, `"incarnation": N`.
A create writes no incarnation: the entry's incarnation is then the key's
mod_revision, the revision of the creating transaction, which etcd makes
unique and larger than any before it. Every later write of the key (a drop)
copies the incarnation in explicitly.

Create and drop are transactions that compare the key's mod_revision with the
one just read, so of concurrent callers exactly one changes the key; the
others read again and see the winner's entry.
"""

import json
from collections.abc import AsyncIterator

from shoal.catalog import CatalogChange, CatalogEntry, CatalogListing, Compacted, Settings
from shoal.errors import DataLoss, Unavailable
from shoal.etcd.client import EtcdClient, EtcdError
from shoal.etcdpb import kv_pb2, rpc_pb2

PREFIX = b"/shoal/v1/collections/"

#: Creates and drops read and try again when another writer got in between.
MAX_ATTEMPTS = 20


def key_of(name: str) -> bytes:
    return PREFIX + name.encode()


def entry_from_kv(kv: kv_pb2.KeyValue) -> CatalogEntry:
    name = kv.key[len(PREFIX) :].decode()
    try:
        value = json.loads(kv.value)
        settings = dict(value["settings"])
        incarnation = int(value.get("incarnation") or kv.mod_revision)
        dropped = bool(value.get("dropped", False))
    except (ValueError, KeyError, TypeError) as error:
        raise DataLoss(f"catalog entry {kv.key!r} is unreadable: {error}") from error
    return CatalogEntry(name, settings, incarnation, dropped)


def _entry_bytes(settings: Settings, incarnation: int = 0, dropped: bool = False) -> bytes:
    value: dict[str, object] = {"settings": dict(settings), "dropped": dropped}
    if incarnation:
        value["incarnation"] = incarnation
    return json.dumps(value, sort_keys=True).encode()


def _compare_mod(key: bytes, revision: int) -> rpc_pb2.Compare:
    return rpc_pb2.Compare(
        key=key,
        target=rpc_pb2.Compare.MOD,
        result=rpc_pb2.Compare.EQUAL,
        mod_revision=revision,
    )


def _put(key: bytes, value: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))


class EtcdCatalog:
    def __init__(self, client: EtcdClient) -> None:
        self._client = client

    async def listing(self) -> CatalogListing:
        reply = await self._client.range(PREFIX, prefix=True)
        entries = [entry_from_kv(kv) for kv in reply.kvs]
        return CatalogListing({e.name: e for e in entries}, reply.header.revision)

    async def _current(self, key: bytes) -> kv_pb2.KeyValue | None:
        reply = await self._client.range(key)
        return reply.kvs[0] if reply.kvs else None

    async def create(self, name: str, settings: Settings) -> tuple[CatalogEntry, bool]:
        key = key_of(name)
        for _ in range(MAX_ATTEMPTS):
            kv = await self._current(key)
            if kv is not None:
                entry = entry_from_kv(kv)
                if not entry.dropped:
                    return entry, False
            revision = 0 if kv is None else kv.mod_revision
            reply = await self._client.txn(
                rpc_pb2.TxnRequest(
                    compare=[_compare_mod(key, revision)],
                    success=[_put(key, _entry_bytes(settings))],
                )
            )
            if reply.succeeded:
                return CatalogEntry(name, dict(settings), reply.header.revision), True
        raise Unavailable(f"collection {name!r}: the catalog kept changing; retry the create")

    async def drop(self, name: str) -> CatalogChange | None:
        key = key_of(name)
        for _ in range(MAX_ATTEMPTS):
            kv = await self._current(key)
            if kv is None:
                return None
            entry = entry_from_kv(kv)
            if entry.dropped:
                return None
            reply = await self._client.txn(
                rpc_pb2.TxnRequest(
                    compare=[_compare_mod(key, kv.mod_revision)],
                    success=[
                        _put(key, _entry_bytes(entry.settings, entry.incarnation, dropped=True))
                    ],
                )
            )
            if reply.succeeded:
                dropped = CatalogEntry(name, entry.settings, entry.incarnation, dropped=True)
                return CatalogChange(name, dropped, reply.header.revision)
        raise Unavailable(f"collection {name!r}: the catalog kept changing; retry the delete")

    async def register(self, name: str, settings: Settings, incarnation: int) -> CatalogEntry:
        key = key_of(name)
        never_existed = rpc_pb2.Compare(
            key=key,
            target=rpc_pb2.Compare.CREATE,
            result=rpc_pb2.Compare.EQUAL,
            create_revision=0,
        )
        reply = await self._client.txn(
            rpc_pb2.TxnRequest(
                compare=[never_existed],
                success=[_put(key, _entry_bytes(settings, incarnation))],
                failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
            )
        )
        if reply.succeeded:
            return CatalogEntry(name, dict(settings), incarnation or reply.header.revision)
        return entry_from_kv(reply.responses[0].response_range.kvs[0])

    async def watch(self, after_revision: int) -> AsyncIterator[list[CatalogChange]]:
        try:
            async for _, events in self._client.watch_prefix(PREFIX, after_revision + 1):
                changes = []
                for event in events:
                    name = event.kv.key[len(PREFIX) :].decode()
                    if event.type == kv_pb2.Event.DELETE:
                        changes.append(CatalogChange(name, None, event.kv.mod_revision))
                    else:
                        entry = entry_from_kv(event.kv)
                        changes.append(CatalogChange(name, entry, event.kv.mod_revision))
                yield changes
        except EtcdError as error:
            if "compacted" in str(error):
                raise Compacted(str(error)) from None
            raise
