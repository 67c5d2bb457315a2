"""Where a process finds the topology it acts on now: etcd's, else the file's.

A shard asks for the current topology whenever it needs it (its peers, whether
a write's partition is still its group's), so a change is picked up without a
restart. With etcd the topology is the one the `TopologyFollower` saw last; the
file is only a stand-in until etcd has answered once (its seed). Without etcd
the file is read again whenever it changes on disk, as before the topology
moved to etcd.
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from shoal.topology import Topology, TopologyError
from shoal.topology_store import TopologyFollower

log = logging.getLogger(__name__)


class TopologySource(Protocol):
    def current(self) -> Topology | None:
        """The topology to act on now, None while there is none."""
        ...

    def describe(self) -> str:
        """Where it comes from, or why there is none (for logs)."""
        ...


#: How often a topology file is looked at again (a shard asks on every write).
FILE_CHECK_S = 1.0


class TopologyFile:
    """A topology file, read again when it changes (mtime and size), looked at
    no more often than every `check_s` seconds."""

    def __init__(
        self,
        path: Path,
        check_s: float = FILE_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_s = check_s
        self._clock = clock
        self._checked: float | None = None
        self._stamp: tuple[int, int] | None = None
        self._topology: Topology | None = None
        self._reason = f"topology {path} has not been read"

    def current(self) -> Topology | None:
        now = self._clock()
        if self._checked is not None and now - self._checked < self._check_s:
            return self._topology
        self._checked = now
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._topology = None, None
            self._reason = f"topology {self.path} does not exist yet"
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._topology = Topology.load(self.path)
                self._reason = f"topology {self.path}"
            except TopologyError as error:
                log.warning("cannot use topology: %s", error)
                self._topology = None
                self._reason = str(error)
        return self._topology

    def describe(self) -> str:
        return self._reason


class FollowedTopology:
    """etcd's topology as `follower` last saw it; `fallback` (the file) until then."""

    def __init__(self, follower: TopologyFollower, fallback: TopologyFile | None = None) -> None:
        self._follower = follower
        self._fallback = fallback

    def current(self) -> Topology | None:
        if self._follower.topology is not None:
            return self._follower.topology
        return None if self._fallback is None else self._fallback.current()

    def describe(self) -> str:
        if self._follower.topology is not None:
            return "the topology in etcd"
        if self._fallback is None:
            return "no topology in etcd yet"
        return f"{self._fallback.describe()} (etcd has not answered yet)"
