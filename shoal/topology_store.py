"""The topology as one source of truth keeps it (etcd), and following it.

`TopologyStore` is the port the services are written against;
`shoal.etcd.topology_store` implements it over etcd. Nothing here touches gRPC.

The store holds one topology with a version that goes up by one on every
change. A change names the version it was made from (`expected_version`) and
fails if another change got in first, so two operators editing at once cannot
overwrite each other. The first topology comes from the topology file
(`seed`): written only when the store holds none, so every process started
with the same file agrees, and an edited file never overrides the store.

`TopologyFollower` keeps the latest topology in a process: read, then watch;
while the store is away the last one seen stands (routing goes on with it).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from shoal.errors import ShoalError, Unavailable
from shoal.loop_task import LoopTask
from shoal.topology import Topology

log = logging.getLogger(__name__)


class TopologyStore(Protocol):
    """Calls raise Unavailable when the store cannot be reached."""

    async def read(self) -> tuple[Topology | None, int]:
        """The stored topology (None if none yet) and the store revision it is as of."""
        ...

    async def seed(self, topology: Topology) -> Topology:
        """Store `topology` if the store holds none; the stored one either way."""
        ...

    async def update(self, expected_version: int, topology: Topology) -> Topology:
        """Replace the topology at `expected_version` with `topology`'s groups and
        partition map, as version `expected_version + 1` (returned). Raises
        FailedPrecondition when the stored version is another, NotFound when the
        store holds none."""
        ...

    def watch(self, after_revision: int) -> AsyncIterator[Topology]:
        """Each topology stored after `after_revision`, until the store is lost
        (raises Unavailable or another ShoalError: read again)."""
        ...


#: Called with each newer topology the follower sees.
Listener = Callable[[Topology], Awaitable[None] | None]


class TopologyFollower:
    """The newest topology the store has shown this process."""

    def __init__(
        self,
        store: TopologyStore,
        seed: Topology | None = None,
        listeners: list[Listener] | None = None,
        retry_s: float = 0.5,
        max_retry_s: float = 5.0,
    ) -> None:
        """`seed`: the topology file's, stored first if the store holds none."""
        self.store = store
        self._seed = seed
        self._listeners = list(listeners or [])
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self.topology: Topology | None = None
        self._seen = asyncio.Event()
        self._answered = asyncio.Event()
        self._loop = LoopTask("topology follower", self._run)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def wait_seen(self, timeout_s: float) -> bool:
        """Whether a topology from the store arrived within `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._seen.wait(), timeout_s)
        return self._seen.is_set()

    @property
    def answered(self) -> bool:
        """Whether the store has been read at least once (holding a topology or not)."""
        return self._answered.is_set()

    async def wait_answered(self, timeout_s: float) -> bool:
        """Whether the store was read within `timeout_s` (its topology, if it holds
        one, is then `topology`)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), timeout_s)
        return self._answered.is_set()

    async def offer(self, topology: Topology) -> bool:
        """Take `topology` if it is newer than the one held (from the store, or
        passed on by a shard that refused a write); whether it was taken."""
        if self.topology is not None and topology.version <= self.topology.version:
            return False
        self.topology = topology
        self._seen.set()
        for listener in self._listeners:
            outcome = listener(topology)
            if outcome is not None:
                await outcome
        return True

    async def refresh(self) -> int:
        """Read the store now; the store revision read at."""
        topology, revision = await self.store.read()
        if topology is None and self._seed is not None:
            topology = await self.store.seed(self._seed)
            log.info("topology seeded from the topology file as version %d", topology.version)
            topology, revision = await self.store.read()
        if topology is not None:
            await self.offer(topology)
        self._answered.set()
        return revision

    async def _run(self) -> None:
        backoff = self._retry_s
        lost = False
        while True:
            try:
                revision = await self.refresh()
                if lost:
                    log.info("topology watch is back at version %s", self._version())
                lost, backoff = False, self._retry_s
                async for topology in self.store.watch(revision):
                    await self.offer(topology)
                raise Unavailable("the topology watch ended")
            except ShoalError as error:
                if not lost:
                    log.warning(
                        "topology watch lost (%s); routing with version %s", error, self._version()
                    )
                lost = True
            except Exception:
                log.exception("topology watch failed")
                lost = True
            await asyncio.sleep(backoff)
            backoff = min(self._max_retry_s, backoff * 2)

    def _version(self) -> str:
        return "none" if self.topology is None else str(self.topology.version)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
