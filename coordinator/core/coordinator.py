"""The coordinator's parts, wired together from a topology and its clients."""

from collections.abc import Mapping
from dataclasses import dataclass

from coordinator.core.background import Background
from coordinator.core.catalog import CONFIG_TTL_S, CollectionCatalog
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.cluster_info import ClusterInspector
from coordinator.core.embedding import Embedding
from coordinator.core.hints import HintLimits, HintReplayer, HintStore
from coordinator.core.move_runner import MoveRunner
from coordinator.core.mover import PartitionMover
from coordinator.core.observer import (
    NO_OBSERVER,
    NO_REPLICATION_OBSERVER,
    ReadObserver,
    ReplicationObserver,
)
from coordinator.core.ports import EmbedderClient, ShardClient
from coordinator.core.reads import Reader
from coordinator.core.replicas import NO_MEMBERSHIP, Membership, ReplicaGroup
from coordinator.core.routing import Routing, ShardConnector
from coordinator.core.updates import Updater
from coordinator.core.verify import Verifier
from coordinator.core.writes import Writer
from shoal.catalog import CatalogFollower
from shoal.moves import MoveLock, MoveStore
from shoal.topology import Topology
from shoal.topology_store import TopologyFollower


@dataclass(frozen=True)
class Coordinator:
    routing: Routing
    catalog: CollectionCatalog
    writer: Writer
    updater: Updater
    reader: Reader
    inspector: ClusterInspector
    verifier: Verifier
    hints: HintStore
    hint_replayer: HintReplayer
    background: Background
    #: Partition moves (None without etcd: there is no store for them).
    moves: MoveRunner | None = None

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
        connect: ShardConnector | None = None,
        topology_follower: TopologyFollower | None = None,
        move_store: MoveStore | None = None,
        move_lock: MoveLock | None = None,
    ) -> "Coordinator":
        """`shards` has a client for every replica address in the topology, or
        `connect` makes the ones missing (also for replicas a later topology adds).
        `topology_follower`: the topology in etcd, which then replaces `topology`.

        The hint replayer is built stopped: the server starts it (`start()`).
        """
        if connect is None:
            missing = [address for address in topology.addresses if address not in shards]
            if missing:
                raise ValueError(f"no shard client for {', '.join(missing)}")
        routing = Routing(topology, shards, connect, observer, membership, topology_follower)

        def groups() -> tuple[ReplicaGroup, ...]:
            return routing.groups

        embedding = Embedding(embedder)
        catalog = CollectionCatalog(
            groups,
            embedding,
            ttl=config_ttl,
            follower=catalog_follower,
            topology=lambda: routing.topology,
        )
        background = Background()
        hints = HintStore(hint_limits, observer=replication_observer)
        writer = Writer(routing, catalog, embedding, clock, background, hints)
        moves = None
        if move_store is not None and move_lock is not None:
            moves = MoveRunner(PartitionMover(routing, catalog), move_store, move_lock)
        return cls(
            routing=routing,
            catalog=catalog,
            writer=writer,
            updater=Updater(writer, catalog, embedding, clock, routing),
            reader=Reader(routing, catalog, embedding, observer, background, replication_observer),
            inspector=ClusterInspector(routing, embedder, membership),
            verifier=Verifier(groups, catalog, replication_observer),
            hints=hints,
            hint_replayer=HintReplayer(hints, routing.client),
            background=background,
            moves=moves,
        )
