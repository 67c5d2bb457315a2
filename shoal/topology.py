"""The shard groups, their replicas, and which group owns each partition.

Where a document lives: stable hash -> partition (shoal.partitioning) -> shard
group. Partitions are fixed per collection, and the versioned topology maps them
to shard groups, so moving data later is a matter of moving whole partitions.
The coordinator routes with it; a shard reads it to find the other replicas of
its own group (its peers for catch-up) and to refuse writes for partitions its
group no longer owns.

Partition p (of any collection: partition numbers are shared, so "partition 5"
is partition 5 of every collection that has one) belongs to group
`p mod len(groups)` unless `partition_groups` names another group for it: a
partition is moved by naming its new group there. Adding a group changes the
default for every partition not named, so pin the ones that must stay.

The topology lives in etcd when the cluster runs one (`shoal.topology_store`):
the file (`topology.json`) is then only its seed. Every change gets a higher
`version`; writes carry the version they were routed with.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shoal.limits import MAX_PARTITIONS
from shoal.partitioning import partition_of, stable_hash


class TopologyError(ValueError):
    """The topology file is malformed."""


@dataclass(frozen=True, slots=True)
class ShardGroup:
    group: int
    replicas: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Topology:
    """Shard groups in order (group id = position) and the replicas of each."""

    version: int
    groups: tuple[ShardGroup, ...]
    #: Partitions that do not follow the default `p mod len(groups)`: partition -> group.
    partition_groups: Mapping[int, int] = field(default_factory=dict, hash=False)
    #: Partitions being copied to another group (partition -> target group): the
    #: owner above still answers for them, writes go to the owner and the target.
    moving: Mapping[int, int] = field(default_factory=dict, hash=False)
    #: Partitions whose former group still holds their records until a clean-up
    #: (partition -> former group): searches count only the owner's hits.
    leaving: Mapping[int, int] = field(default_factory=dict, hash=False)

    @property
    def replication_factor(self) -> int:
        return max(len(group.replicas) for group in self.groups)

    @property
    def addresses(self) -> list[str]:
        return [address for group in self.groups for address in group.replicas]

    def group_with(self, address: str) -> "ShardGroup | None":
        """The group `address` is a replica of, if any."""
        for group in self.groups:
            if address in group.replicas:
                return group
        return None

    def group_of_partition(self, partition: int) -> int:
        group = self.partition_groups.get(partition)
        return partition % len(self.groups) if group is None else group

    @property
    def moves_in_flight(self) -> bool:
        """Whether some partition's records are (or were just) in two groups."""
        return bool(self.moving or self.leaving)

    def write_groups_of_partition(self, partition: int) -> tuple[int, ...]:
        """The groups a write of `partition` goes to: the owner, and a move's target."""
        owner = self.group_of_partition(partition)
        target = self.moving.get(partition)
        return (owner,) if target is None or target == owner else (owner, target)

    def split_for_write(self, ids: Iterable[str], partitions: int) -> dict[int, list[int]]:
        """`split_by_group`, plus each moving partition's ids for its target group too."""
        if not self.moving:
            return self.split_by_group(ids, partitions)
        by_group: dict[int, list[int]] = {}
        for position, doc_id in enumerate(ids):
            for group in self.write_groups_of_partition(stable_hash(doc_id) % partitions):
                by_group.setdefault(group, []).append(position)
        return by_group

    def group_of(self, doc_id: str, partitions: int) -> int:
        return self.group_of_partition(partition_of(doc_id, partitions))

    def split_by_group(self, ids: Iterable[str], partitions: int) -> dict[int, list[int]]:
        """Positions of `ids` per owning group, in input order within each group."""
        groups = len(self.groups)
        moved = self.partition_groups
        by_group: dict[int, list[int]] = {}
        for position, doc_id in enumerate(ids):
            partition = stable_hash(doc_id) % partitions
            group = moved.get(partition, partition % groups) if moved else partition % groups
            by_group.setdefault(group, []).append(position)
        return by_group

    def same_layout(self, other: "Topology") -> bool:
        """The same groups, replicas and partition map, whatever the versions."""
        return (
            self.groups == other.groups
            and dict(self.partition_groups) == dict(other.partition_groups)
            and dict(self.moving) == dict(other.moving)
            and dict(self.leaving) == dict(other.leaving)
        )

    def with_version(self, version: int) -> "Topology":
        return replace(self, version=version)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as the topology file and etcd hold it."""
        data: dict[str, Any] = {
            "version": self.version,
            "groups": [{"replicas": list(group.replicas)} for group in self.groups],
        }
        if self.partition_groups:
            data["partition_groups"] = {
                str(partition): group for partition, group in sorted(self.partition_groups.items())
            }
        for key, moves in (("moving", self.moving), ("leaving", self.leaving)):
            if moves:
                data[key] = {str(p): group for p, group in sorted(moves.items())}
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "Topology":
        if not isinstance(data, dict):
            raise TopologyError("topology must be a JSON object")
        version = data.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise TopologyError(f"topology version must be a non-negative integer, not {version!r}")
        groups = data.get("groups")
        if not isinstance(groups, list) or not groups:
            raise TopologyError("topology needs a non-empty list 'groups'")
        parsed: list[ShardGroup] = []
        seen: set[str] = set()
        for position, group in enumerate(groups):
            replicas = group.get("replicas") if isinstance(group, dict) else None
            if not isinstance(replicas, list) or not replicas:
                raise TopologyError(f"group {position} needs a non-empty list 'replicas'")
            for address in replicas:
                _check_address(address, position)
                if address in seen:
                    raise TopologyError(f"replica {address} appears twice in the topology")
                seen.add(address)
            parsed.append(ShardGroup(position, tuple(replicas)))
        return cls(
            version,
            tuple(parsed),
            _partition_groups(data, len(parsed)),
            _partition_map(data, "moving", len(parsed)),
            _partition_map(data, "leaving", len(parsed)),
        )

    @classmethod
    def load(cls, path: Path) -> "Topology":
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise TopologyError(f"cannot read topology {path}: {error}") from error
        return cls.from_dict(data)

    @classmethod
    def of(cls, groups: Sequence[Sequence[str]], version: int = 1) -> "Topology":
        """A topology from replica addresses per group (tests, tools)."""
        return cls.from_dict(
            {"version": version, "groups": [{"replicas": list(g)} for g in groups]}
        )


def _partition_groups(data: dict[str, Any], groups: int) -> dict[int, int]:
    return {
        partition: group
        for partition, group in _partition_map(data, "partition_groups", groups).items()
        if group != partition % groups  # the default needs no entry
    }


def _partition_map(data: dict[str, Any], key: str, groups: int) -> dict[int, int]:
    raw = data.get(key, {})
    if not isinstance(raw, dict):
        raise TopologyError(f"{key!r} must map partition numbers to group numbers")
    moved: dict[int, int] = {}
    for name, group in raw.items():
        partition = int(name) if isinstance(name, str) and name.isdigit() else -1
        if not 0 <= partition < MAX_PARTITIONS:
            raise TopologyError(
                f"{key}: {name!r} is not a partition number (0-{MAX_PARTITIONS - 1})"
            )
        if not isinstance(group, int) or isinstance(group, bool) or not 0 <= group < groups:
            raise TopologyError(
                f"{key}: partition {partition} is given group {group!r};"
                f" the topology has groups 0-{groups - 1}"
            )
        moved[partition] = group
    return moved


def _check_address(address: object, group: int) -> None:
    if not isinstance(address, str) or ":" not in address:
        raise TopologyError(f"group {group}: replica {address!r} is not a HOST:PORT address")
    port = address.rsplit(":", 1)[1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TopologyError(f"group {group}: replica {address!r} has no valid port")
