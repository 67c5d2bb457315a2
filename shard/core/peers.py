"""Which replicas are this shard's peers: the other replicas of its group in the topology.

The topology file is the coordinator's (see shoal.topology). It is read again
whenever it changes, so a shard started before the file exists (a local
cluster writes it once the shards have bound their ports) or a topology that
is edited later are both picked up. A shard finds its own group by its
advertised address, the HOST:PORT the topology lists it under.
"""

import logging
from collections.abc import Callable
from pathlib import Path

from shoal.topology import Topology, TopologyError

log = logging.getLogger(__name__)


class PeerDirectory:
    def __init__(self, topology: Path | None, advertise: Callable[[], str | None]) -> None:
        """`advertise` gives this shard's address, or None while it is not known yet."""
        self._path = topology
        self._advertise = advertise
        self._stamp: tuple[int, int] | None = None
        self._peers: list[str] = []
        self._group: int | None = None
        self._reason = "no topology file given"

    @property
    def configured(self) -> bool:
        """Whether a topology file was given at all (without one there are no peers)."""
        return self._path is not None

    @property
    def reason(self) -> str:
        """Why the peer list is what it is (for logs)."""
        return self._reason

    def group(self) -> int | None:
        """This shard's group in the topology now, or None while it is not listed."""
        self.peers()  # reads the topology again if it changed
        return self._group

    def peers(self) -> list[str]:
        """The other replicas of this shard's group, as the topology lists them now."""
        if self._path is None:
            return []
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            self._stamp, self._peers, self._group = None, [], None
            self._reason = f"topology {self._path} does not exist yet"
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._read(stamp)
        return list(self._peers)

    def _read(self, stamp: tuple[int, int]) -> None:
        assert self._path is not None
        address = self._advertise()
        if address is None:
            self._peers, self._group = [], None
            self._reason = "this shard's address is not known yet"
            return  # not remembered: read again once the address is known
        try:
            topology = Topology.load(self._path)
        except TopologyError as error:
            log.warning("cannot use topology: %s", error)
            self._stamp, self._peers, self._group = stamp, [], None
            self._reason = str(error)
            return
        self._stamp = stamp
        group = topology.group_with(address)
        self._group = None if group is None else group.group
        if group is None:
            self._peers = []
            self._reason = f"{address} is not in topology {self._path} (see --advertise)"
            log.warning("%s", self._reason)
            return
        self._peers = [replica for replica in group.replicas if replica != address]
        self._reason = f"shard group {group.group} of topology version {topology.version}"
        log.info(
            "%s is a replica of shard group %d; peers: %s",
            address,
            group.group,
            ", ".join(self._peers) or "none",
        )
