"""Whether this replica's group still owns the partitions a write was routed to it for.

Every write from a coordinator carries the topology version it was routed with.
When this shard knows a newer topology under which a written document's
partition belongs to another group (it moved), or under which this shard is in
no group at all, the whole write is refused before anything is stored: the
coordinator routed with a map that is out of date. It then routes again with a
newer topology (passed back with the refusal) and retries.

While a partition moves (the topology's `moving`), a write for it routed with
an older version is refused by the source and the target alike: it may have
been routed to the source alone, and the copy to the target must not miss it.

A write routed with the current version or a newer one is taken: the
coordinator knows at least as much as this shard. Version 0 means "not routed
by partition" (a write addressed to this group for what it already holds, as a
read repair is) and is never refused.

With etcd (`ready`), a routed write is refused with UNAVAILABLE until etcd has
answered: the topology file that stands in for etcd's meanwhile is the
cluster's first, so a write routed with an old version (a hint replayed the
moment a restarted replica answers) would pass the check and put a moved
partition's document back on a group that gave it away and was cleaned. (Once
etcd has answered that it holds no topology yet, the file's is the cluster's.)
"""

from collections.abc import Callable, Iterable

from shoal.errors import PartitionMoved, Unavailable
from shoal.partitioning import stable_hash
from shoal.topology import Topology


class PartitionOwnership:
    def __init__(
        self,
        topology: Callable[[], Topology | None],
        address: Callable[[], str | None],
        ready: Callable[[], bool] | None = None,
    ) -> None:
        """`ready`: whether `topology` is the authoritative one yet (etcd has
        answered); routed writes wait for it (UNAVAILABLE) until then."""
        self._topology = topology
        self._address = address
        self._ready = ready

    def version(self) -> int:
        """The topology version writes are checked against now (0: none yet)."""
        topology = self._topology()
        return 0 if topology is None else topology.version

    def check(self, collection: str, partitions: int, ids: Iterable[str], routed: int) -> None:
        """Raise PartitionMoved if a write routed with topology version `routed`
        holds a document whose partition this shard's group no longer owns."""
        if routed == 0 or partitions < 1:
            return
        if self._ready is not None and not self._ready():
            raise Unavailable(
                f"this replica has not heard from etcd since it started, so it cannot tell"
                f" whether the write to {collection!r} routed with topology version {routed}"
                " is still for its group; retry or ask another replica"
            )
        topology = self._topology()
        if topology is None or routed >= topology.version:
            return
        address = self._address()
        if address is None:
            return
        mine = topology.group_with(address)
        if mine is None:
            raise PartitionMoved(
                f"this replica ({address}) is in no shard group as of topology version"
                f" {topology.version}; the write to {collection!r} was routed with version"
                f" {routed}",
                topology,
            )
        for doc_id in ids:
            partition = stable_hash(doc_id) % partitions
            owner = topology.group_of_partition(partition)
            target = topology.moving.get(partition)
            if target is not None and mine.group in (owner, target):
                raise PartitionMoved(
                    f"partition {partition} of collection {collection!r} is moving from shard"
                    f" group {owner} to {target} as of topology version {topology.version}:"
                    f" its writes go to both, and this one was routed with version {routed}",
                    topology,
                )
            if owner != mine.group:
                raise PartitionMoved(
                    f"partition {partition} of collection {collection!r} moved to shard group"
                    f" {owner} at topology version {topology.version}; this replica is in group"
                    f" {mine.group} and the write was routed with version {routed}",
                    topology,
                )
