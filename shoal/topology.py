"""The shard groups and their replicas, as the topology file lists them.

Where a document lives: stable hash -> partition (shoal.partitioning) -> shard
group. Partitions are fixed per collection, and the versioned topology maps them
to shard groups, so moving data later is a matter of moving whole partitions.
The coordinator routes with it; a shard reads it to find the other replicas of
its own group (its peers for catch-up).
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        return partition % len(self.groups)

    def group_of(self, doc_id: str, partitions: int) -> int:
        return partition_of(doc_id, partitions) % len(self.groups)

    def split_by_group(self, ids: Iterable[str], partitions: int) -> dict[int, list[int]]:
        """Positions of `ids` per owning group, in input order within each group."""
        groups = len(self.groups)
        by_group: dict[int, list[int]] = {}
        for position, doc_id in enumerate(ids):
            group = stable_hash(doc_id) % partitions % groups
            by_group.setdefault(group, []).append(position)
        return by_group

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
        return cls(version, tuple(parsed))

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


def _check_address(address: object, group: int) -> None:
    if not isinstance(address, str) or ":" not in address:
        raise TopologyError(f"group {group}: replica {address!r} is not a HOST:PORT address")
    port = address.rsplit(":", 1)[1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TopologyError(f"group {group}: replica {address!r} has no valid port")
