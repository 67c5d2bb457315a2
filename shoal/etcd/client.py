"""A small asyncio etcd v3 client over stubs generated from etcd's own protos.

Why not a PyPI client: see docs/etcd.md. In short, the stubs in shoal/etcdpb
are built by the grpcio-tools Shoal already pins (so they match its grpc and
protobuf, are typed for mypy, and `make proto-check` guards them), and this
module needs only what Shoal uses: range, transactions, watches and leases.

Endpoints: several IP:PORT give one channel that balances over the members
(round robin skips a member that is down); one HOST:PORT is resolved by DNS
and may name every member (a Kubernetes headless Service). Unary calls wait
for a member to connect (a member restarting, or the channel's reconnect
backoff) but fail with `Unavailable` when none answers within their timeout.
"""

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import grpc.aio

from shoal.errors import ShoalError, Unavailable
from shoal.etcdpb import kv_pb2, rpc_pb2, rpc_pb2_grpc

#: The default deadline of one call to etcd.
CALL_TIMEOUT_S = 5.0

#: Pauses between tries of a call etcd could not serve just then.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 0.5

R = TypeVar("R")

#: A member that comes back is reconnected to within a second.
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
]

#: A watch or keep-alive on a member cut off from the quorum fails rather than
#: waiting silently (etcd's "require leader").
REQUIRE_LEADER = (("hasleader", "true"),)


class EtcdError(ShoalError):
    """etcd answered with an error that is not about availability."""


def channel_target(endpoints: Sequence[str]) -> str:
    """One gRPC target for the endpoints (HOST:PORT, an http:// prefix allowed)."""
    cleaned = [e.strip().removeprefix("http://") for e in endpoints if e.strip()]
    if not cleaned:
        raise ValueError("no etcd endpoint given")
    if len(cleaned) == 1:
        host = cleaned[0].rsplit(":", 1)[0]
        return cleaned[0] if _is_ip(host) else f"dns:///{cleaned[0]}"
    hosts = [e.rsplit(":", 1)[0] for e in cleaned]
    if not all(_is_ip(host) for host in hosts):
        raise ValueError(
            f"etcd endpoints {', '.join(cleaned)}: give IP:PORT of every member,"
            " or one HOST:PORT whose DNS name resolves to all of them"
        )
    return "ipv4:" + ",".join(cleaned)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes a range cover every key starting with `prefix`."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def _unavailable(error: grpc.RpcError, what: str) -> ShoalError:
    code = error.code() if isinstance(error, grpc.aio.AioRpcError) else None
    details = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
    message = f"etcd {what} failed: {details or code}"
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        return EtcdError(message)
    return Unavailable(message)


class EtcdClient:
    def __init__(self, endpoints: Sequence[str], timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.endpoints = list(endpoints)
        self.timeout_s = timeout_s
        self._channel = grpc.aio.insecure_channel(channel_target(endpoints), CHANNEL_OPTIONS)
        self._kv = rpc_pb2_grpc.KVStub(self._channel)
        self._watch = rpc_pb2_grpc.WatchStub(self._channel)
        self._lease = rpc_pb2_grpc.LeaseStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    # -- keys -------------------------------------------------------------------

    async def _call(self, method: Callable[..., Awaitable[R]], request: object, what: str) -> R:
        """One call, tried again while etcd says it is briefly unable (a leader
        election after a member is lost, a member restarting) until the timeout.

        A retried transaction may have been applied the first time; Shoal's are
        guarded by compares on the key's revision, so a repeat changes nothing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        pause = RETRY_FIRST_S
        while True:
            left = deadline - loop.time()
            try:
                return await method(request, timeout=max(left, 0.01), wait_for_ready=True)
            except grpc.RpcError as error:
                failure = _unavailable(error, what)
                if not isinstance(failure, Unavailable) or loop.time() + pause >= deadline:
                    raise failure from None
            await asyncio.sleep(pause)
            pause = min(RETRY_MAX_S, pause * 2)

    async def range(self, key: bytes, prefix: bool = False) -> rpc_pb2.RangeResponse:
        request = rpc_pb2.RangeRequest(key=key, range_end=prefix_end(key) if prefix else b"")
        return await self._call(self._kv.Range, request, "range")

    async def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        return await self._call(self._kv.Txn, request, "transaction")

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> rpc_pb2.PutResponse:
        request = rpc_pb2.PutRequest(key=key, value=value, lease=lease)
        return await self._call(self._kv.Put, request, "put")

    async def delete(self, key: bytes) -> rpc_pb2.DeleteRangeResponse:
        request = rpc_pb2.DeleteRangeRequest(key=key)
        return await self._call(self._kv.DeleteRange, request, "delete")

    # -- watches ----------------------------------------------------------------

    async def watch_prefix(
        self, prefix: bytes, start_revision: int
    ) -> AsyncIterator[tuple[int, list[kv_pb2.Event]]]:
        """(revision, events) for every change under `prefix` from `start_revision`
        on. Raises Unavailable when the stream breaks, EtcdError("compacted") when
        the start revision was compacted away."""
        create = rpc_pb2.WatchCreateRequest(
            key=prefix, range_end=prefix_end(prefix), start_revision=start_revision
        )
        call = self._watch.Watch(metadata=REQUIRE_LEADER)
        try:
            await call.write(rpc_pb2.WatchRequest(create_request=create))
            while True:
                reply = await call.read()
                if reply is grpc.aio.EOF:
                    raise Unavailable("etcd closed the watch")
                assert isinstance(reply, rpc_pb2.WatchResponse)
                if reply.compact_revision:
                    raise EtcdError(f"compacted: revision {reply.compact_revision}")
                if reply.canceled:
                    raise Unavailable(f"etcd canceled the watch: {reply.cancel_reason}")
                if reply.events:
                    yield reply.header.revision, list(reply.events)
        except grpc.RpcError as error:
            raise _unavailable(error, "watch") from None
        finally:
            call.cancel()

    # -- leases -----------------------------------------------------------------

    async def grant(self, ttl_s: int) -> int:
        reply: rpc_pb2.LeaseGrantResponse = await self._call(
            self._lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=ttl_s), "lease grant"
        )
        if reply.error:
            raise EtcdError(f"etcd lease grant failed: {reply.error}")
        return int(reply.ID)

    async def revoke(self, lease: int) -> None:
        await self._call(self._lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=lease), "revoke")

    async def keep_alive(self, lease: int, every_s: float) -> None:
        """Keep `lease` alive until cancelled. Returns when the lease has expired
        (etcd answers TTL 0); raises Unavailable when etcd cannot be reached."""
        call = self._lease.LeaseKeepAlive(metadata=REQUIRE_LEADER)
        try:
            while True:
                await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease))
                reply = await asyncio.wait_for(call.read(), self.timeout_s)
                if reply is grpc.aio.EOF:
                    raise Unavailable("etcd closed the lease keep-alive")
                assert isinstance(reply, rpc_pb2.LeaseKeepAliveResponse)
                if reply.TTL <= 0:
                    return
                await asyncio.sleep(every_s)
        except TimeoutError:
            raise Unavailable("etcd did not answer a lease keep-alive in time") from None
        except grpc.RpcError as error:
            raise _unavailable(error, "lease keep-alive") from None
        finally:
            call.cancel()
