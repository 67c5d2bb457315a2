"""VerifyReplicas: compare the replicas of every shard group, partition by partition.

Per group: every replica's partition digests (count and hash of its (id,
version) pairs, tombstones included); for the partitions whose digests differ,
every replica's version list, and the diff of those lists counts the ids the
replicas do not agree on. With `repair`, the newest record of each such id is
fetched from a replica that holds it and written, with its original version,
to the replicas behind (last writer wins makes that idempotent, and nothing
newer can be undone).

A comparison under live writes may count writes still on their way to some
replicas; repeat it to tell those from real divergence. Replicas that do not
answer are listed as unreachable and left out of the comparison.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coordinator.core.catalog import CollectionCatalog
from coordinator.core.deadline import Deadline
from coordinator.core.fanout import on_every_replica
from coordinator.core.future_versions import without_future
from coordinator.core.observer import NO_REPLICATION_OBSERVER, ReplicationObserver
from coordinator.core.ports import CollectionConfig, ShardClient, WriteOp
from coordinator.core.replicas import Replica, ReplicaGroup
from shoal import limits
from shoal.errors import NotFound, ShoalError
from shoal.partitioning import partition_of
from shoal.replication import Divergence, PartitionDigest, diff, differing_partitions
from shoal.version_horizon import VersionHorizon

log = logging.getLogger(__name__)

#: Partitions per ListVersions call, and ids per Fetch / repair Write.
VERSION_PARTITIONS_PER_CALL = 16
REPAIR_BATCH = 256


@dataclass(frozen=True, slots=True)
class ReplicaDigest:
    address: str
    records: int
    hash: int


@dataclass(slots=True)
class PartitionReport:
    partition: int
    replicas: list[ReplicaDigest]
    differing: int = 0
    repaired: int = 0


@dataclass(slots=True)
class GroupReport:
    group: int
    partitions: list[PartitionReport] = field(default_factory=list)  # only differing ones
    partitions_compared: int = 0
    unreachable: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    groups: list[GroupReport]

    @property
    def differing(self) -> int:
        return sum(p.differing for g in self.groups for p in g.partitions)

    @property
    def repaired(self) -> int:
        return sum(p.repaired for g in self.groups for p in g.partitions)


class Verifier:
    def __init__(
        self,
        groups: Callable[[], Sequence[ReplicaGroup]],
        catalog: CollectionCatalog,
        observer: ReplicationObserver = NO_REPLICATION_OBSERVER,
        horizon: VersionHorizon | None = None,
    ) -> None:
        self._groups = groups  # those of the topology routed with now
        self._catalog = catalog
        self._observer = observer
        self._horizon = horizon or VersionHorizon()

    async def verify(self, collection: str, repair: bool, deadline: Deadline) -> VerifyReport:
        limits.check_collection_name(collection)
        config = await self._catalog.config(collection, deadline)
        reports = await asyncio.gather(
            *(self._verify_group(group, config, repair, deadline) for group in self._groups())
        )
        if all(report.missing for report in reports):
            self._catalog.invalidate(collection)
            raise NotFound(f"collection {collection!r} does not exist")
        return VerifyReport([report.report for report in reports])

    async def _verify_group(
        self,
        group: ReplicaGroup,
        config: CollectionConfig,
        repair: bool,
        deadline: Deadline,
    ) -> "_GroupOutcome":
        collection, partitions = config.name, config.partitions
        report = GroupReport(group.group)

        async def digest(client: ShardClient, timeout_s: float) -> list[PartitionDigest]:
            return await client.digest(collection, timeout_s)

        outcomes = await on_every_replica(group.replicas, digest, deadline)
        reachable: list[tuple[Replica, list[PartitionDigest]]] = []
        not_found = 0
        for replica, outcome in zip(group.replicas, outcomes, strict=True):
            if isinstance(outcome, ShoalError):
                not_found += isinstance(outcome, NotFound)
                report.unreachable.append(replica.address)
                log.warning(
                    "verify %r: shard group %d replica %s: %s",
                    collection,
                    group.group,
                    replica.address,
                    outcome,
                )
            else:
                reachable.append((replica, outcome))
        missing = not_found == len(group.replicas)
        digests = [d for _, d in reachable]
        report.partitions_compared = len({d.partition for ds in digests for d in ds})
        if len(reachable) < 2:
            return _GroupOutcome(report, missing)
        differing = differing_partitions(digests)
        by_partition = [{d.partition: d for d in ds} for ds in digests]
        for start in range(0, len(differing), VERSION_PARTITIONS_PER_CALL):
            chunk = differing[start : start + VERSION_PARTITIONS_PER_CALL]
            divergences = await self._diff(collection, reachable, chunk, partitions, deadline)
            for partition in chunk:
                found = divergences.get(partition, [])
                partition_report = PartitionReport(
                    partition,
                    [
                        _replica_digest(replica.address, known.get(partition))
                        for (replica, _), known in zip(reachable, by_partition, strict=True)
                    ],
                    differing=len(found),
                )
                if repair and found:
                    partition_report.repaired = await self._repair(
                        config, reachable, found, deadline, group.group
                    )
                report.partitions.append(partition_report)
        differing_ids = sum(p.differing for p in report.partitions)
        if differing_ids:
            self._observer.record_divergence(group.group, differing_ids)
        repaired = sum(p.repaired for p in report.partitions)
        if repaired:
            self._observer.record_repairs(group.group, "verify", repaired)
            log.info(
                "verify %r: repaired %d of %d differing documents in shard group %d",
                collection,
                repaired,
                differing_ids,
                group.group,
            )
        return _GroupOutcome(report, missing)

    async def _diff(
        self,
        collection: str,
        reachable: Sequence[tuple[Replica, list[PartitionDigest]]],
        chunk: list[int],
        partitions: int,
        deadline: Deadline,
    ) -> dict[int, list[Divergence]]:
        """The ids the replicas disagree on in the partitions of `chunk`, per partition."""
        replicas = [replica for replica, _ in reachable]
        listed = await asyncio.gather(
            *(
                replica.client.list_versions(collection, chunk, deadline.check("listing versions"))
                for replica in replicas
            )
        )
        found: dict[int, list[Divergence]] = {}
        versions = {replica.address: v for replica, v in zip(replicas, listed, strict=True)}
        for divergence in diff(versions):
            found.setdefault(partition_of(divergence.id, partitions), []).append(divergence)
        return found

    async def _repair(
        self,
        config: CollectionConfig,
        reachable: Sequence[tuple[Replica, list[PartitionDigest]]],
        divergences: list[Divergence],
        deadline: Deadline,
        group: int,
    ) -> int:
        """Copy the newest record of each divergent id to the replicas behind; how many
        ids reached every replica that was behind."""
        collection = config.name
        clients = {replica.address: replica.client for replica, _ in reachable}
        by_source: dict[str, list[Divergence]] = {}
        for divergence in divergences:
            by_source.setdefault(divergence.source, []).append(divergence)
        repaired = 0
        for source, items in by_source.items():
            for start in range(0, len(items), REPAIR_BATCH):
                batch = items[start : start + REPAIR_BATCH]
                records = await clients[source].fetch(
                    collection, [d.id for d in batch], deadline.check("fetching records")
                )
                copyable, skipped = without_future(
                    self._horizon, records, f"repair of {collection!r} from {source}"
                )
                if skipped:
                    self._observer.record_repairs_skipped(group, "verify", len(skipped))
                fetched = {op.id: op for op in copyable}
                writes: dict[str, list[WriteOp]] = {}
                for divergence in batch:
                    op = fetched.get(divergence.id)
                    if op is None:
                        continue  # purged meanwhile (an old tombstone)
                    for address in divergence.behind:
                        writes.setdefault(address, []).append(op)
                failed: set[str] = set()
                results = await asyncio.gather(
                    *(
                        clients[address].write(
                            collection, ops, deadline.check("repairing"), config.incarnation
                        )
                        for address, ops in writes.items()
                    ),
                    return_exceptions=True,
                )
                for (address, ops), result in zip(writes.items(), results, strict=True):
                    if isinstance(result, BaseException):
                        if not isinstance(result, ShoalError):
                            raise result
                        log.warning("repair write to %s failed: %s", address, result)
                        failed.update(op.id for op in ops)
                repaired += sum(1 for d in batch if d.id in fetched and d.id not in failed)
        return repaired


@dataclass(frozen=True, slots=True)
class _GroupOutcome:
    report: GroupReport
    missing: bool  # every replica said the collection does not exist


def _replica_digest(address: str, digest: PartitionDigest | None) -> ReplicaDigest:
    if digest is None:
        return ReplicaDigest(address, 0, 0)
    return ReplicaDigest(address, digest.records, digest.hash)
