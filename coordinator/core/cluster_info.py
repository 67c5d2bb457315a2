"""What the cluster looks like right now: groups, replicas, health, counts."""

import asyncio

from coordinator.core.deadline import Deadline
from coordinator.core.model import ClusterInfo, GroupInfo, ReplicaInfo
from coordinator.core.ports import EmbedderClient, Health, ShardClient
from coordinator.core.replicas import NO_MEMBERSHIP, Membership
from coordinator.core.routing import Routing
from shoal.errors import ShoalError

#: A replica that takes longer than this to answer a health check is shown as
#: unreachable rather than holding up the whole report.
PROBE_TIMEOUT_S = 2.0


class ClusterInspector:
    def __init__(
        self,
        routing: Routing,
        embedder: EmbedderClient,
        membership: Membership = NO_MEMBERSHIP,
    ) -> None:
        self._routing = routing
        self._embedder = embedder
        self._membership = membership

    async def describe(self, deadline: Deadline) -> ClusterInfo:
        timeout_s = min(PROBE_TIMEOUT_S, deadline.check("probing the cluster"))
        table = self._routing.table
        replica_infos = asyncio.gather(
            *(
                _probe(replica.client, timeout_s, self._membership.is_member(replica.address))
                for group in table.groups
                for replica in group.replicas
            )
        )
        infos, embedder_health = await asyncio.gather(
            replica_infos, self._embedder.health(timeout_s)
        )
        found = iter(infos)
        groups = [
            GroupInfo(group.group, [next(found) for _ in group.replicas]) for group in table.groups
        ]
        return ClusterInfo(
            topology_version=table.version,
            replication_factor=table.topology.replication_factor,
            groups=groups,
            embedder_address=self._embedder.address,
            embedder_health=embedder_health,
        )


async def _probe(client: ShardClient, timeout_s: float, member: bool | None) -> ReplicaInfo:
    """A replica's health and collections; DEGRADED when it serves but some of
    its collections could not be loaded (they are listed with the reason)."""
    health = await client.health(timeout_s)
    if health is Health.UNREACHABLE:
        return ReplicaInfo(client.address, health, [], member=member)
    try:
        listing = await client.list_collections(timeout_s)
    except ShoalError:
        return ReplicaInfo(client.address, health, [], member=member)
    collections = [(c.config.name, c.document_count) for c in listing.collections]
    failed = sorted(listing.failed.items())
    if failed and health is Health.SERVING:
        health = Health.DEGRADED
    return ReplicaInfo(client.address, health, collections, failed, member)
