"""Composition root: settings -> storage -> core -> servicer -> shoal.runtime.server.serve."""

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from shard.api.servicer import SERVICE, ShardServicer
from shard.clients.peer import GrpcPeer
from shard.core.anti_entropy import AntiEntropy, AntiEntropySettings, Readiness
from shard.core.catalog_sync import CatalogSync
from shard.core.checkpointer import Checkpointer, CheckpointPolicy
from shard.core.collection_registry import Collections
from shard.core.local_replica import CollectionsReplica
from shard.core.ownership import PartitionOwnership
from shard.core.peer_directory import PeerDirectory
from shard.core.tombstones import TombstoneGrace, TombstonePurger
from shard.metrics import ShardMetrics
from shard.proto_records import metadata_from_payload, text_from_payload
from shard.settings import Settings, parse_args
from shard.size_metrics import size_reporter
from shard.storage.document_store import MIB, StoreMemory
from shard.storage.layout import DataDir
from shoal.catalog import CatalogFollower
from shoal.errors import Unavailable
from shoal.etcd.catalog_store import EtcdCatalog
from shoal.etcd.client import EtcdClient
from shoal.etcd.membership import MemberLease
from shoal.etcd.topology_store import EtcdTopology
from shoal.runtime.data_lock import DataDirInUse, DataDirLock
from shoal.runtime.health import ServerHealth
from shoal.runtime.logs import configure_logging
from shoal.runtime.native_memory import limit_arenas, release_free_memory
from shoal.runtime.server import ServerSpec, Service, serve
from shoal.topology_source import FollowedTopology, TopologyFile, TopologySource
from shoal.topology_store import TopologyFollower
from shoal.version_horizon import VersionHorizon

log = logging.getLogger("shard")


def advertised(settings: Settings) -> Callable[[], str | None]:
    """This shard's address as the topology lists it: --advertise, or --host and the
    bound port (from --port, or the port file the server writes once bound)."""

    def address() -> str | None:
        if settings.advertise:
            return settings.advertise
        port = settings.server.port
        if not port and settings.server.port_file is not None:
            try:
                port = int(settings.server.port_file.read_text())
            except (OSError, ValueError):
                return None
        return f"{settings.server.host}:{port}" if port else None

    return address


async def run(settings: Settings, metrics: ShardMetrics) -> None:
    executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="shard")
    collections = Collections(
        DataDir(settings.data_dir),
        sync_writes=settings.sync_writes,
        read_metadata=metadata_from_payload,
        read_text=text_from_payload,
        filtered_search=settings.filtered_search,
        store_memory=StoreMemory(
            block_cache_bytes=settings.rocksdb_block_cache_mib * MIB,
            write_buffer_bytes=settings.rocksdb_write_buffer_mib * MIB,
            max_write_buffers=settings.rocksdb_write_buffers,
        ),
        # With a catalog, an unknown name is UNAVAILABLE until the catalog is applied.
        follows_catalog=bool(settings.etcd),
    )
    checkpointer = Checkpointer(
        collections,
        CheckpointPolicy(settings.checkpoint_every_writes, settings.checkpoint_interval_s),
    )
    loop = asyncio.get_running_loop()
    readiness = Readiness()
    grace = TombstoneGrace(settings.tombstone_grace_s)
    peers: list[GrpcPeer] = []
    etcd = EtcdClient(settings.etcd) if settings.etcd else None
    topology_file = TopologyFile(settings.topology) if settings.topology is not None else None
    # With etcd the topology is etcd's (the file stands in until etcd answers);
    # the coordinators seed etcd from their file, the shards only read it.
    topology_follower = TopologyFollower(EtcdTopology(etcd)) if etcd is not None else None
    topology: TopologySource | None = (
        FollowedTopology(topology_follower, topology_file)
        if topology_follower is not None
        else topology_file
    )
    directory = PeerDirectory(topology, advertised(settings), dynamic=etcd is not None)

    def identity() -> tuple[str, str]:
        """(replica, group) for the metrics: the address the topology knows us by."""
        group = directory.group()
        return advertised(settings)() or "", "" if group is None else str(group)

    sizes = size_reporter(collections, executor, metrics, identity)

    def connect(address: str) -> GrpcPeer:
        peer = GrpcPeer(address, settings.server.keepalive, settings.server.tls.cluster())
        peers.append(peer)
        return peer

    horizon = VersionHorizon(settings.max_clock_skew_s)
    anti_entropy = AntiEntropy(
        CollectionsReplica(collections, executor, grace),
        directory.peers,
        connect,
        AntiEntropySettings(
            interval_s=settings.anti_entropy_interval_s,
            first_wait_s=settings.catch_up_wait_s,
            learn_collections=not settings.etcd,
        ),
        readiness,
        metrics.record_catch_up,
        horizon,
    )
    purger = TombstonePurger(
        collections.open_collections,
        grace,
        settings.tombstone_purge_interval_s,
        metrics.record_purge,
    )

    health = ServerHealth([SERVICE])
    ownership = None
    if topology is not None:
        # With etcd, routed writes wait until it has answered: the file standing in
        # for its topology until then is no fence.
        ownership = PartitionOwnership(
            topology.current,
            advertised(settings),
            ready=None if topology_follower is None else lambda: topology_follower.answered,
        )
    servicer = ShardServicer(
        collections, executor, readiness, grace, health, ownership, horizon, settings.limits
    )

    follower: CatalogFollower | None = None
    if etcd is not None:
        catalog = EtcdCatalog(etcd)
        sync = CatalogSync(collections, catalog, executor, after_change=servicer.report_failed)
        follower = CatalogFollower(catalog, [sync])
    lease = MemberLease(etcd, advertised(settings), "shard") if etcd is not None else None

    async def start() -> None:
        report = await loop.run_in_executor(executor, collections.load)
        # Loading freed far more than it kept (records read, vectors batched).
        release_free_memory()
        await servicer.report_failed()
        metrics.identify(*identity())
        details = {
            "event": "shard_loaded",
            "data_dir": str(settings.data_dir),
            "collections": report.collections,
            "documents": report.documents,
            "failed": report.failed,
            "load_seconds": round(report.seconds, 3),
            "threads": settings.threads,
        }
        log.info("%s", json.dumps(details))
        checkpointer.start()
        if topology_follower is not None:
            topology_follower.start()
        if follower is not None:
            # Collections created or dropped while this replica was down are made
            # right before it catches up documents; without etcd it serves what it
            # has (names it does not hold answer UNAVAILABLE until the catalog is in).
            follower.start()
            try:
                await follower.wait_synced(settings.catch_up_wait_s)
            except Unavailable as error:
                log.warning("%s; serving the collections held here", error)
        if topology_follower is not None and not await topology_follower.wait_answered(
            settings.catch_up_wait_s
        ):
            # The topology file stands in: a replica added since (replacing another)
            # is not in it and would find no peers to catch up from.
            log.warning("etcd has not answered; catching up with the peers the file lists")
        # Health stays NOT_SERVING and reads UNAVAILABLE until this is over; writes
        # and the replication calls are served meanwhile.
        await anti_entropy.first_catch_up()
        anti_entropy.start()
        if lease is not None:
            lease.start()  # registered once it serves reads
        purger.start()
        sizes.start()

    async def stop() -> None:
        if lease is not None:
            await lease.stop()  # gone from the members at once, not after the lease's TTL
        if follower is not None:
            await follower.stop()
        if topology_follower is not None:
            await topology_follower.stop()
        if etcd is not None:
            await etcd.close()
        await sizes.stop()
        await anti_entropy.stop()
        for peer in peers:
            await peer.close()
        await loop.run_in_executor(executor, purger.stop)
        await loop.run_in_executor(executor, checkpointer.stop)
        await loop.run_in_executor(executor, collections.close)

    service = Service(name=SERVICE, servicer=servicer)
    spec = ServerSpec(settings.server, [service], metrics, start=start, stop=stop, health=health)
    try:
        await serve(spec)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def main() -> None:
    settings = parse_args()
    limit_arenas(settings.malloc_arenas)  # before any thread starts
    configure_logging("shard", settings.server.log_level, settings.server.log_format)
    # Before anything opens RocksDB: a second shard on this directory would find every
    # store locked and serve without its collections. Held until the process ends.
    lock = DataDirLock(settings.data_dir, "shard")
    try:
        lock.acquire()
    except DataDirInUse as error:
        raise SystemExit(f"shard: cannot start: {error}") from None
    try:
        asyncio.run(run(settings, ShardMetrics()))
    finally:
        lock.release()


if __name__ == "__main__":
    main()
