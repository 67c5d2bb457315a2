"""Partition moves: the record of each move, the topology steps it takes, and plans.

A move takes partition p (of every collection: partition numbers are shared)
from its owning group (the source) to another group (the target) while reads
and writes go on. It is driven through phases, each a change of the topology
in etcd or a copy, and each safe to run again after a crash:

1. ``started``: the topology marks p as moving to the target (`begin_move`).
   Coordinators then write p's documents to both groups, the target counted as
   a group of its own that must meet the write's consistency too; replicas of
   the source refuse a write for p routed with an older version, so no
   coordinator that missed the mark keeps writing to the source alone.
2. ``copying``: the target's replicas get p's records from a source replica
   (versions compared, newer ones fetched, tombstones included; last writer
   wins makes a copy run twice harmless).
3. ``switched``: one topology change makes the target the owner and marks the
   source as ``leaving`` (`switch_move`); the source refuses writes for p from
   then on, and a last copy from every source replica brings over what got
   there before the switch and was missed.
4. ``cleaning``: the source's replicas tombstone p's records, then the mark is
   dropped (`finish_move`) and the move is ``done``.

Before the switch a move can be cancelled (`abort_move`): the mark is dropped
and, as the source's after a switch, the target's replicas tombstone what was
copied or dual-written to them, so no copy is found once reads stop cutting to
owned partitions (they cut only while a move is in flight).

This module is pure: no etcd, no gRPC. The store of move records is a port
(`MoveStore`), implemented over etcd by `shoal.etcd.move_store`.
"""

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from shoal.errors import FailedPrecondition, InvalidArgument
from shoal.topology import ShardGroup, Topology

PHASES = ("started", "copying", "switched", "cleaning", "done", "cancelled")
#: Phases after which nothing is left to do.
FINAL = frozenset({"done", "cancelled"})


@dataclass(frozen=True, slots=True)
class MoveRecord:
    """One move of one partition, as kept in the store."""

    id: str
    partition: int
    source: int
    target: int
    phase: str = "started"
    #: Records (documents and tombstones) written to the target, and their bytes.
    copied: int = 0
    copied_bytes: int = 0
    #: Records tombstoned on the source by the clean-up.
    cleaned: int = 0
    cancel: bool = False
    error: str = ""
    created_s: float = field(default_factory=time.time)
    #: When a driver began it (0: not yet).
    started_s: float = 0.0
    updated_s: float = field(default_factory=time.time)

    @property
    def finished(self) -> bool:
        return self.phase in FINAL

    def at(self, phase: str, **changes: Any) -> "MoveRecord":
        return replace(self, phase=phase, updated_s=time.time(), **changes)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "MoveRecord":
        data = json.loads(raw)
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


class MoveStore(Protocol):
    """Where move records live (etcd). Calls raise Unavailable when it cannot be reached."""

    async def list(self) -> list[MoveRecord]:
        """Every record, oldest first."""
        ...

    async def put(self, record: MoveRecord) -> None: ...

    async def delete_finished(self) -> int:
        """Forget finished moves; how many."""
        ...


def _normalized(topology: Topology, **changes: Any) -> Topology:
    """`topology` with `changes`, through its JSON form (drops default entries)."""
    return Topology.from_dict(replace(topology, **changes).to_dict())


def begin_move(topology: Topology, partition: int, source: int, target: int) -> Topology:
    """Mark `partition` as moving from `source` to `target` (as it stands, if it does)."""
    if topology.moving.get(partition) == target:
        return topology
    owner = topology.group_of_partition(partition)
    if owner != source:
        raise FailedPrecondition(
            f"partition {partition} is owned by shard group {owner}, not {source}:"
            " plan the move again from the current topology"
        )
    if not 0 <= target < len(topology.groups) or target == source:
        raise InvalidArgument(
            f"partition {partition} cannot move to group {target}: the topology has groups"
            f" 0-{len(topology.groups) - 1} and the partition is in group {source}"
        )
    if partition in topology.moving or partition in topology.leaving:
        raise FailedPrecondition(f"partition {partition} is already in a move")
    return _normalized(topology, moving={**topology.moving, partition: target})


def switch_move(topology: Topology, partition: int, source: int, target: int) -> Topology:
    """Make `target` the owner of `partition`; `source` keeps it as leaving."""
    if topology.group_of_partition(partition) == target and partition not in topology.moving:
        return topology
    if topology.moving.get(partition) != target:
        raise FailedPrecondition(
            f"partition {partition} is not moving to group {target} in topology version"
            f" {topology.version}"
        )
    moving = {p: g for p, g in topology.moving.items() if p != partition}
    return _normalized(
        topology,
        partition_groups={**topology.partition_groups, partition: target},
        moving=moving,
        leaving={**topology.leaving, partition: source},
    )


def finish_move(topology: Topology, partition: int) -> Topology:
    """Drop the leaving mark once the source holds nothing of `partition`."""
    if partition not in topology.leaving:
        return topology
    leaving = {p: g for p, g in topology.leaving.items() if p != partition}
    return _normalized(topology, leaving=leaving)


def abort_move(topology: Topology, partition: int) -> Topology:
    """Undo `begin_move` (only before the switch)."""
    if partition not in topology.moving:
        return topology
    moving = {p: g for p, g in topology.moving.items() if p != partition}
    return _normalized(topology, moving=moving)


def pinned(topology: Topology, partitions: int) -> dict[int, int]:
    """Every partition below `partitions` with its owner, so a change of the group
    count leaves them where they are."""
    return {p: topology.group_of_partition(p) for p in range(partitions)}


def with_group_added(topology: Topology, replicas: Sequence[str], partitions: int) -> Topology:
    """A new, empty group; every partition stays with its owner (pinned)."""
    if not replicas:
        raise InvalidArgument("a new shard group needs at least one replica address")
    groups = (*topology.groups, ShardGroup(len(topology.groups), tuple(replicas)))
    return _normalized(
        topology,
        groups=groups,
        partition_groups={**topology.partition_groups, **pinned(topology, partitions)},
    )


def with_group_removed(topology: Topology, group: int, partitions: int) -> Topology:
    """The topology without `group`, which must own no partition any more (drained);
    the groups after it move down one place."""
    owners = pinned(topology, partitions)
    if group in owners.values() or group in topology.moving.values():
        held = sorted(p for p, g in owners.items() if g == group)
        raise FailedPrecondition(
            f"shard group {group} still owns partitions {held}: drain it first"
        )
    if group in topology.leaving.values():
        raise FailedPrecondition(f"shard group {group} still has a move being cleaned up")
    if len(topology.groups) < 2:
        raise FailedPrecondition("the last shard group cannot be removed")

    def renumber(g: int) -> int:
        return g - 1 if g > group else g

    groups = tuple(
        ShardGroup(renumber(g.group), g.replicas) for g in topology.groups if g.group != group
    )
    return _normalized(
        topology,
        groups=groups,
        partition_groups={p: renumber(g) for p, g in owners.items()},
        moving={},
        leaving={},
    )


@dataclass(frozen=True, slots=True)
class PlannedMove:
    partition: int
    source: int
    target: int


def plan_rebalance(
    topology: Topology, partitions: int, exclude: Iterable[int] = ()
) -> list[PlannedMove]:
    """Moves that leave every group (but the `exclude`d, which are emptied) owning
    an even share of partitions 0..`partitions`-1, within one; the fewest moves,
    taken from the most loaded groups first."""
    excluded = frozenset(exclude)
    groups = [g.group for g in topology.groups if g.group not in excluded]
    if not groups:
        raise InvalidArgument("no shard group is left to hold the partitions")
    owners = pinned(topology, partitions)
    owned: dict[int, list[int]] = {g.group: [] for g in topology.groups}
    for partition, group in sorted(owners.items()):
        owned[group].append(partition)
    base, extra = divmod(partitions, len(groups))
    # The groups holding the most keep the extra partitions: fewer moves.
    by_load = sorted(groups, key=lambda g: (-len(owned[g]), g))
    quota = {g: base + (1 if rank < extra else 0) for rank, g in enumerate(by_load)}
    for group in excluded:
        quota[group] = 0
    spare: list[tuple[int, int]] = []  # (partition, its group) to move
    for group in sorted(owned, key=lambda g: (-len(owned[g]), g)):
        surplus = len(owned[group]) - quota.get(group, 0)
        if surplus > 0:
            spare += [(p, group) for p in owned[group][-surplus:]]
    moves: list[PlannedMove] = []
    for group in sorted(groups, key=lambda g: (len(owned[g]), g)):
        while len(owned[group]) < quota[group] and spare:
            partition, source = spare.pop(0)
            owned[group].append(partition)
            moves.append(PlannedMove(partition, source, group))
    return moves


def owner_counts(topology: Topology, partitions: int) -> Mapping[int, int]:
    """How many of partitions 0..`partitions`-1 each group owns."""
    counts = {g.group: 0 for g in topology.groups}
    for group in pinned(topology, partitions).values():
        counts[group] += 1
    return counts


class MoveLock(Protocol):
    """Who drives the moves: one process at a time (an etcd key under a lease)."""

    async def acquire(self) -> bool:
        """Whether this process holds the lock now (taking it if it is free)."""
        ...

    async def release(self) -> None: ...


def _with_replicas(topology: Topology, group: int, replicas: Sequence[str]) -> Topology:
    if not 0 <= group < len(topology.groups):
        raise InvalidArgument(
            f"there is no shard group {group}: the topology has groups 0-{len(topology.groups) - 1}"
        )
    if not replicas:
        raise FailedPrecondition(f"shard group {group} would have no replica left")
    groups = tuple(
        ShardGroup(g.group, tuple(replicas)) if g.group == group else g for g in topology.groups
    )
    return _normalized(topology, groups=groups)


def with_replica_added(topology: Topology, group: int, address: str) -> Topology:
    """`address` as one more replica of `group`. Start its process after this change:
    a shard that finds itself in a group catches up from its peers before it serves
    reads, and takes writes meanwhile."""
    if topology.group_with(address) is not None:
        raise InvalidArgument(f"{address} is a replica already")
    return _with_replicas(topology, group, [*topology.groups[group].replicas, address])


def with_replica_replaced(topology: Topology, old: str, new: str) -> Topology:
    """`new` in `old`'s place (same group, same position)."""
    group = topology.group_with(old)
    if group is None:
        raise InvalidArgument(f"{old} is not a replica of any shard group")
    if topology.group_with(new) is not None:
        raise InvalidArgument(f"{new} is a replica already")
    return _with_replicas(topology, group.group, [new if a == old else a for a in group.replicas])


def with_replica_removed(topology: Topology, address: str) -> Topology:
    group = topology.group_with(address)
    if group is None:
        raise InvalidArgument(f"{address} is not a replica of any shard group")
    return _with_replicas(topology, group.group, [a for a in group.replicas if a != address])
