"""Which shard group owns each partition now, and the replicas of every group.

The topology changes while the coordinator runs: etcd's watch brings each new
version, a change made here through the admin API is taken at once, and a shard
that refused a write routed with an old version passes its newer one back. Each
call routes with one `RoutingTable` taken when it starts, so a change halfway
through never mixes two maps; the next call gets the new one. A replica that
stays in the topology keeps its `Replica` (back-off, requests in flight) and its
client; one that is new gets a client from `connect`.

Without etcd the topology is the file's and never changes here (the admin API
answers FAILED_PRECONDITION). With etcd the file is only a stand-in until etcd's
topology arrives, which then replaces it whatever the versions say; after that
only a higher version replaces the one held.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from coordinator.core.observer import NO_OBSERVER, ReadObserver
from coordinator.core.ports import ShardClient
from coordinator.core.replicas import NO_MEMBERSHIP, Membership, Replica, ReplicaGroup
from shoal.errors import FailedPrecondition, InvalidArgument, ShoalError
from shoal.topology import Topology
from shoal.topology_store import TopologyFollower

log = logging.getLogger(__name__)

#: Makes a client for a replica address the coordinator has not called before.
ShardConnector = Callable[[str], ShardClient]


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """One topology version and the replica groups it names, in group order."""

    topology: Topology
    groups: tuple[ReplicaGroup, ...]

    @property
    def version(self) -> int:
        return self.topology.version


class Routing:
    def __init__(
        self,
        topology: Topology,
        shards: Mapping[str, ShardClient],
        connect: ShardConnector | None = None,
        observer: ReadObserver = NO_OBSERVER,
        membership: Membership = NO_MEMBERSHIP,
        follower: TopologyFollower | None = None,
    ) -> None:
        """`shards`: clients already made (every address of `topology` unless
        `connect` makes the missing ones). `follower`: the topology in etcd."""
        self._clients = dict(shards)
        self._connect = connect
        self._observer = observer
        self._membership = membership
        self._replicas: dict[str, Replica] = {}
        self._follower = follower
        #: The file's topology stands in until etcd's arrives.
        self._provisional = follower is not None
        self.table = self._build(topology)
        if follower is not None:
            follower.add_listener(self._from_store)

    @property
    def topology(self) -> Topology:
        return self.table.topology

    @property
    def groups(self) -> tuple[ReplicaGroup, ...]:
        return self.table.groups

    def client(self, address: str) -> ShardClient | None:
        """The client of any replica this coordinator has known, listed now or not
        (hints for a replica that left the topology still reach it)."""
        return self._clients.get(address)

    def _client_for(self, address: str) -> ShardClient:
        client = self._clients.get(address)
        if client is None:
            if self._connect is None:
                raise ValueError(f"no shard client for {address}")
            client = self._clients[address] = self._connect(address)
        return client

    def _build(self, topology: Topology) -> RoutingTable:
        groups = []
        for group in topology.groups:
            replicas = []
            for address in group.replicas:
                replica = self._replicas.get(address)
                if replica is None:
                    replica = self._replicas[address] = Replica(self._client_for(address))
                replicas.append(replica)
            groups.append(
                ReplicaGroup(
                    group.group, replicas, observer=self._observer, membership=self._membership
                )
            )
        return RoutingTable(topology, tuple(groups))

    def install(self, topology: Topology) -> bool:
        """Route with `topology` from now on if it is newer; whether it was taken."""
        if topology.version <= self.table.version and not self._provisional:
            return False
        if topology.version == self.table.version and topology.same_layout(self.topology):
            self._provisional = False
            return False
        previous = self.table.version
        self.table = self._build(topology)
        self._provisional = False
        log.info(
            "routing with topology version %d (was %d): %d shard groups, %d partitions moved",
            topology.version,
            previous,
            len(topology.groups),
            len(topology.partition_groups),
        )
        return True

    def _from_store(self, topology: Topology) -> None:
        self.install(topology)

    async def learn(self, newer: Topology | None) -> bool:
        """After a shard refused a write: take the topology it passed back, else
        read etcd's; whether the routing changed."""
        before = self.table.version
        if newer is not None:
            if self._follower is not None:
                await self._follower.offer(newer)
            else:
                self.install(newer)
        if self.table.version == before and self._follower is not None:
            try:
                await self._follower.refresh()
            except ShoalError as error:
                log.info("cannot read the topology from etcd now: %s", error)
        return self.table.version != before

    async def update(self, expected_version: int, topology: Topology) -> Topology:
        """Change the topology in etcd (`TopologyStore.update`) and route with it."""
        if self._follower is None:
            raise FailedPrecondition(
                "this coordinator runs without etcd (--etcd): its topology is the file"
                " it was started with; change the file and restart the cluster"
            )
        missing = [a for a in topology.addresses if a not in self._clients and not self._connect]
        if missing:
            raise InvalidArgument(f"no way to reach replicas {', '.join(missing)}")
        updated = await self._follower.store.update(expected_version, topology)
        await self._follower.offer(updated)
        return updated
