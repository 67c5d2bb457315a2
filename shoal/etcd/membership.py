"""Live members in etcd: each shard holds a lease on `/shoal/v1/members/<address>`.

A shard registers its address under a lease it keeps alive; if the process
dies (or hangs, or loses etcd) the lease runs out within `ttl_s` and etcd
deletes the key, so whoever watches the prefix sees a dead process without
calling it. A graceful stop revokes the lease at once. The coordinator follows
the prefix (`MemberFollower`) to route around dead replicas and report them in
GetClusterInfo. While etcd is away the last set seen stands: membership is
advice for routing, never a reason to refuse a read or a write.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from shoal.errors import ShoalError
from shoal.etcd.client import EtcdClient
from shoal.etcdpb import kv_pb2
from shoal.loop_task import LoopTask

log = logging.getLogger(__name__)

PREFIX = b"/shoal/v1/members/"

#: Seconds a dead member keeps its registration at most.
DEFAULT_TTL_S = 5


class MemberLease:
    """Keeps this process registered while it runs."""

    def __init__(
        self,
        client: EtcdClient,
        address: Callable[[], str | None],
        role: str,
        ttl_s: int = DEFAULT_TTL_S,
    ) -> None:
        self._client = client
        self._address = address
        self._role = role
        self._ttl_s = ttl_s
        self._lease = 0
        self._loop = LoopTask("member lease", self._run)

    async def _run(self) -> None:
        pause = 0.2
        while True:
            address = self._address()
            if address is None:
                await asyncio.sleep(pause)
                continue
            try:
                self._lease = await self._client.grant(self._ttl_s)
                value = json.dumps({"address": address, "role": self._role}).encode()
                await self._client.put(PREFIX + address.encode(), value, self._lease)
                log.info("registered as member %s (lease %x)", address, self._lease)
                await self._client.keep_alive(self._lease, self._ttl_s / 3)
                log.warning("member lease %x expired; registering again", self._lease)
            except ShoalError as error:
                log.warning("member registration lost (%s); retrying", error)
            await asyncio.sleep(pause)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        if self._lease:
            with contextlib.suppress(ShoalError):
                await self._client.revoke(self._lease)


class MemberFollower:
    """The addresses registered now, as this process last saw them."""

    def __init__(self, client: EtcdClient, retry_s: float = 0.5) -> None:
        self._client = client
        self._retry_s = retry_s
        self._live: set[str] = set()
        self._known = False
        self._loop = LoopTask("member follower", self._run)

    def is_member(self, address: str) -> bool | None:
        """Whether `address` holds a live registration; None before the first listing."""
        return address in self._live if self._known else None

    async def _run(self) -> None:
        while True:
            try:
                reply = await self._client.range(PREFIX, prefix=True)
                self._live = {kv.key[len(PREFIX) :].decode() for kv in reply.kvs}
                self._known = True
                async for _, events in self._client.watch_prefix(PREFIX, reply.header.revision + 1):
                    for event in events:
                        address = event.kv.key[len(PREFIX) :].decode()
                        if event.type == kv_pb2.Event.DELETE:
                            self._live.discard(address)
                        else:
                            self._live.add(address)
            except ShoalError as error:
                log.info("member watch lost (%s); keeping the last members seen", error)
            await asyncio.sleep(self._retry_s)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
