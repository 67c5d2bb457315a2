"""Composition root: settings -> channels and clients -> core -> servicer -> serve.

(`serve` is shoal.runtime.server's.)
"""

import asyncio
import logging
import os

import grpc.aio

from coordinator.api.servicer import ShoalServicer
from coordinator.clients.channels import open_balanced_channel, open_channel
from coordinator.clients.embedder import GrpcEmbedderClient
from coordinator.clients.shard import GrpcShardClient
from coordinator.clients.snapshot_shard import GrpcSnapshotShardClient
from coordinator.clients.snapshot_stores import snapshot_store
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.coordinator import Coordinator
from coordinator.core.hints import HintLimits
from coordinator.core.ports import ShardClient
from coordinator.core.replicas import NO_MEMBERSHIP
from coordinator.core.snapshot_ports import SnapshotShardClient
from coordinator.core.snapshots import SnapshotService
from coordinator.metrics import CoordinatorMetrics
from coordinator.settings import Settings, parse_args
from shoal.api_keys import KeyFile, KeysFileError
from shoal.catalog import CatalogFollower
from shoal.etcd.catalog_store import EtcdCatalog
from shoal.etcd.client import EtcdClient
from shoal.etcd.membership import MemberFollower
from shoal.etcd.move_store import EtcdMoveLock, EtcdMoveStore
from shoal.etcd.topology_store import EtcdTopology
from shoal.runtime.auth import ApiKeyInterceptor
from shoal.runtime.balancing import CONNECTION_AGE_OPTIONS
from shoal.runtime.logs import configure_logging
from shoal.runtime.server import ServerSpec, Service, serve
from shoal.topology import Topology, TopologyError
from shoal.topology_store import TopologyFollower
from shoal.v1 import shoal_pb2

log = logging.getLogger("coordinator")

#: On shutdown, how long writes still running for slower replicas may finish.
DRAIN_SECONDS = 5.0

#: On start, how long to wait for etcd's topology before routing with the file's.
TOPOLOGY_WAIT_S = 5.0


async def run(settings: Settings, metrics: CoordinatorMetrics) -> None:
    try:
        topology = Topology.load(settings.topology)
    except TopologyError as error:
        raise SystemExit(str(error)) from error
    keepalive = settings.server.keepalive
    cluster_tls = settings.server.tls.cluster()
    if cluster_tls is None:
        log.warning("plaintext to the shards and the embedder: no --cluster-ca (or --insecure)")
    channels: dict[str, grpc.aio.Channel] = {}

    def connect(address: str) -> ShardClient:
        """A client for a replica, also for one a later topology adds."""
        channels[address] = open_channel(address, keepalive, cluster_tls)
        return GrpcShardClient(address, channels[address])

    embedder_channel = open_balanced_channel(settings.embedder, keepalive, cluster_tls)
    etcd = EtcdClient(settings.etcd) if settings.etcd else None
    follower = CatalogFollower(EtcdCatalog(etcd)) if etcd is not None else None
    members = MemberFollower(etcd) if etcd is not None else None
    # With etcd the topology is etcd's; the file seeds it when etcd holds none.
    topology_follower = (
        TopologyFollower(EtcdTopology(etcd), seed=topology) if etcd is not None else None
    )
    core = Coordinator.build(
        topology,
        {},
        GrpcEmbedderClient(settings.embedder, embedder_channel),
        HybridLogicalClock(settings.coordinator_id),
        config_ttl=settings.config_ttl_s,
        observer=metrics,
        replication_observer=metrics,
        hint_limits=HintLimits(
            max_writes=settings.hint_max_writes, max_age_s=settings.hint_max_age_s
        ),
        catalog_follower=follower,
        membership=members if members is not None else NO_MEMBERSHIP,
        connect=connect,
        topology_follower=topology_follower,
        move_store=EtcdMoveStore(etcd) if etcd is not None else None,
        move_lock=(
            EtcdMoveLock(etcd, f"coordinator {settings.coordinator_id} pid {os.getpid()}")
            if etcd is not None
            else None
        ),
    )
    log.info(
        "topology version %d: %d shard groups x %d replicas; embedder %s; coordinator id %d",
        topology.version,
        len(topology.groups),
        topology.replication_factor,
        settings.embedder,
        settings.coordinator_id,
    )

    async def start() -> None:
        if topology_follower is not None:
            topology_follower.start()
            # Route with etcd's topology from the first call when etcd is there.
            if await topology_follower.wait_seen(TOPOLOGY_WAIT_S):
                log.info("topology version %d from etcd", core.routing.table.version)
            else:
                log.warning(
                    "etcd has not given the topology within %.0f s; routing with the file's"
                    " until it does",
                    TOPOLOGY_WAIT_S,
                )
        core.hint_replayer.start()
        if follower is not None:
            follower.start()
        if members is not None:
            members.start()
        if core.moves is not None:
            core.moves.start()

    async def stop() -> None:
        if core.moves is not None:
            await core.moves.stop()
        if topology_follower is not None:
            await topology_follower.stop()
        if follower is not None:
            await follower.stop()
        if members is not None:
            await members.stop()
        await core.hint_replayer.stop()
        await core.background.drain(DRAIN_SECONDS)
        for channel in [*channels.values(), embedder_channel]:
            await channel.close()
        if etcd is not None:
            await etcd.close()

    def snapshot_client(address: str) -> SnapshotShardClient:
        channel = channels.get(address)
        if channel is None:
            channel = channels[address] = open_channel(address, keepalive)
        return GrpcSnapshotShardClient(address, channel)

    snapshots = SnapshotService(
        lambda: core.routing.topology,
        core.catalog,
        snapshot_client,
        snapshot_store(settings.snapshot_location),
        settings.snapshot_staging,
    )
    service = Service(
        name=shoal_pb2.DESCRIPTOR.services_by_name["ShoalService"].full_name,
        servicer=ShoalServicer(
            core,
            settings.read_timeout_s,
            settings.write_timeout_s,
            settings.limits,
            snapshots=snapshots,
        ),
    )
    # Clients balancing per call resolve the coordinators' names again when their
    # connections age out, and so find coordinators the HPA added.
    spec = ServerSpec(
        settings.server,
        [service],
        metrics,
        start,
        stop,
        options=CONNECTION_AGE_OPTIONS,
        interceptors=api_key_interceptors(settings),
    )
    await serve(spec)


def api_key_interceptors(settings: Settings) -> list[ApiKeyInterceptor]:
    """Keys from --api-keys-file; none: every caller may do everything (said loudly)."""
    if settings.api_keys_file is None:
        log.warning(
            "no --api-keys-file (SHOAL_API_KEYS_FILE): the API takes calls without API keys;"
            " anyone who reaches this port may read, write and drop collections"
        )
        return []
    try:
        keys = KeyFile(settings.api_keys_file)
    except (OSError, KeysFileError) as error:
        raise SystemExit(f"--api-keys-file {settings.api_keys_file}: {error}") from None
    return [ApiKeyInterceptor(keys)]


def main() -> None:
    settings = parse_args()
    configure_logging("coordinator", settings.server.log_level, settings.server.log_format)
    asyncio.run(run(settings, CoordinatorMetrics()))


if __name__ == "__main__":
    main()
