"""The coordinator's parts, wired together from a topology and its clients."""

from collections.abc import Mapping
from dataclasses import dataclass

from coordinator.clients.contracts import EmbedderClient, ShardClient
from coordinator.core.background import Background
from coordinator.core.catalog import CONFIG_TTL_S, CollectionCatalog
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.cluster_info import ClusterInspector
from coordinator.core.embedding import Embedding
from coordinator.core.observer import NO_OBSERVER, ReadObserver
from coordinator.core.reads import Reader
from coordinator.core.replicas import Replica, ReplicaGroup
from coordinator.core.routing import Topology
from coordinator.core.writes import Writer


@dataclass(frozen=True)
class Coordinator:
    catalog: CollectionCatalog
    writer: Writer
    reader: Reader
    inspector: ClusterInspector
    background: Background

    @classmethod
    def build(
        cls,
        topology: Topology,
        shards: Mapping[str, ShardClient],
        embedder: EmbedderClient,
        clock: HybridLogicalClock,
        config_ttl: float = CONFIG_TTL_S,
        observer: ReadObserver = NO_OBSERVER,
    ) -> "Coordinator":
        """`shards` has a client for every replica address in the topology."""
        missing = [address for address in topology.addresses if address not in shards]
        if missing:
            raise ValueError(f"no shard client for {', '.join(missing)}")
        groups = [
            ReplicaGroup(
                group.group,
                [Replica(shards[address]) for address in group.replicas],
                observer=observer,
            )
            for group in topology.groups
        ]
        embedding = Embedding(embedder)
        catalog = CollectionCatalog(groups, embedding, ttl=config_ttl)
        background = Background()
        return cls(
            catalog=catalog,
            writer=Writer(topology, groups, catalog, embedding, clock, background),
            reader=Reader(topology, groups, catalog, embedding, observer),
            inspector=ClusterInspector(topology, groups, embedder),
            background=background,
        )
