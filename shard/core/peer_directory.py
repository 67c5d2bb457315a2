"""Which replicas are this shard's peers: the other replicas of its group in the topology.

The topology comes from a `TopologySource` (etcd's, or the topology file's),
asked again on every call, so a shard started before the topology lists it (a
local cluster writes it once the shards have bound their ports; a replica added
to a running cluster) or a topology changed later are both picked up. A shard
finds its own group by its advertised address, the HOST:PORT the topology lists
it under.
"""

import logging
from collections.abc import Callable

from shoal.topology import ShardGroup, Topology
from shoal.topology_source import TopologySource

log = logging.getLogger(__name__)


class PeerDirectory:
    def __init__(
        self,
        source: TopologySource | None,
        advertise: Callable[[], str | None],
        dynamic: bool = False,
    ) -> None:
        """`advertise` gives this shard's address, or None while it is not known yet.

        `dynamic`: the topology is changed while the cluster runs (etcd), so a
        shard it does not list is waiting to be added, not misconfigured.
        """
        self._source = source
        self._advertise = advertise
        self._dynamic = dynamic
        self._seen: tuple[Topology, str] | None = None
        self._peers: list[str] = []
        self._group: int | None = None
        self._reason = "no topology given"

    @property
    def configured(self) -> bool:
        """Whether a topology was given at all (without one there are no peers)."""
        return self._source is not None

    @property
    def reason(self) -> str:
        """Why the peer list is what it is (for logs)."""
        return self._reason

    def group(self) -> int | None:
        """This shard's group in the topology now, or None while it is not listed."""
        self.peers()  # looks at the topology again
        return self._group

    def peers(self) -> list[str]:
        """The other replicas of this shard's group, as the topology lists them now."""
        if self._source is None:
            return []
        topology = self._source.current()
        address = self._advertise()
        if topology is None or address is None:
            self._seen, self._peers, self._group = None, [], None
            self._reason = (
                "this shard's address is not known yet"
                if address is None
                else self._source.describe()
            )
            return []
        if self._seen is None or self._seen[0] is not topology or self._seen[1] != address:
            self._seen = (topology, address)
            self._follow(topology, topology.group_with(address), address)
        return list(self._peers)

    def _follow(self, topology: Topology, group: ShardGroup | None, address: str) -> None:
        self._group = None if group is None else group.group
        if group is None:
            self._peers = []
            self._reason = (
                f"{address} is not in topology version {topology.version}"
                f" ({self._source.describe() if self._source else ''}; see --advertise)"
            )
            if self._dynamic:
                log.info("%s: it serves as a replica once the topology lists it", self._reason)
            else:
                log.warning("%s", self._reason)
            return
        self._peers = [replica for replica in group.replicas if replica != address]
        self._reason = f"shard group {group.group} of topology version {topology.version}"
        log.info(
            "%s is a replica of shard group %d (topology version %d); peers: %s",
            address,
            group.group,
            topology.version,
            ", ".join(self._peers) or "none",
        )
