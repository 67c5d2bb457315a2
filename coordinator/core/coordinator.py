"""The coordinator's parts, wired together from a topology and its clients."""

from collections.abc import Mapping
from dataclasses import dataclass

from coordinator.clients.contracts import EmbedderClient, ShardClient
from coordinator.core.background import Background
from coordinator.core.catalog import CONFIG_TTL_S, CollectionCatalog
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.cluster_info import ClusterInspector
from coordinator.core.embedding import Embedding
from coordinator.core.hints import HintLimits, HintReplayer, HintStore
from coordinator.core.observer import (
    NO_OBSERVER,
    NO_REPLICATION_OBSERVER,
    ReadObserver,
    ReplicationObserver,
)
from coordinator.core.reads import Reader
from coordinator.core.replicas import NO_MEMBERSHIP, Membership, Replica, ReplicaGroup
from coordinator.core.verify import Verifier
from coordinator.core.writes import Writer
from shoal.catalog import CatalogFollower
from shoal.topology import Topology


@dataclass(frozen=True)
class Coordinator:
    catalog: CollectionCatalog
    writer: Writer
    reader: Reader
    inspector: ClusterInspector
    verifier: Verifier
    hints: HintStore
    hint_replayer: HintReplayer
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
        replication_observer: ReplicationObserver = NO_REPLICATION_OBSERVER,
        hint_limits: HintLimits | None = None,
        catalog_follower: CatalogFollower | None = None,
        membership: Membership = NO_MEMBERSHIP,
    ) -> "Coordinator":
        """`shards` has a client for every replica address in the topology.

        The hint replayer is built stopped: the server starts it (`start()`).
        """
        missing = [address for address in topology.addresses if address not in shards]
        if missing:
            raise ValueError(f"no shard client for {', '.join(missing)}")
        groups = [
            ReplicaGroup(
                group.group,
                [Replica(shards[address]) for address in group.replicas],
                observer=observer,
                membership=membership,
            )
            for group in topology.groups
        ]
        embedding = Embedding(embedder)
        catalog = CollectionCatalog(groups, embedding, ttl=config_ttl, follower=catalog_follower)
        background = Background()
        hints = HintStore(hint_limits, observer=replication_observer)
        return cls(
            catalog=catalog,
            writer=Writer(topology, groups, catalog, embedding, clock, background, hints),
            reader=Reader(
                topology, groups, catalog, embedding, observer, background, replication_observer
            ),
            inspector=ClusterInspector(topology, groups, embedder, membership),
            verifier=Verifier(groups, catalog, replication_observer),
            hints=hints,
            hint_replayer=HintReplayer(hints, shards),
            background=background,
        )
