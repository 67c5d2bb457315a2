"""Composition root: settings -> storage -> core -> servicer -> shoal.server.serve."""

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from shard.api.convert import metadata_from_payload, text_from_payload
from shard.api.peers import GrpcPeer
from shard.api.servicer import ShardServicer
from shard.core.anti_entropy import AntiEntropy, AntiEntropySettings, Readiness
from shard.core.checkpointer import Checkpointer, CheckpointPolicy
from shard.core.collections import Collections
from shard.core.local_replica import CollectionsReplica
from shard.core.peers import PeerDirectory
from shard.core.tombstones import TombstoneGrace, TombstonePurger
from shard.settings import Settings, parse_args
from shard.size_metrics import size_reporter
from shard.storage.layout import DataDir
from shoal.logs import configure_logging
from shoal.metrics import Metrics
from shoal.server import ServerSpec, Service, serve
from shoal.v1 import shard_pb2, shard_pb2_grpc

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


async def run(settings: Settings, metrics: Metrics) -> None:
    executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="shard")
    collections = Collections(
        DataDir(settings.data_dir),
        sync_writes=settings.sync_writes,
        read_metadata=metadata_from_payload,
        read_text=text_from_payload,
        filtered_search=settings.filtered_search,
    )
    checkpointer = Checkpointer(
        collections,
        CheckpointPolicy(settings.checkpoint_every_writes, settings.checkpoint_interval_s),
    )
    loop = asyncio.get_running_loop()
    readiness = Readiness()
    grace = TombstoneGrace(settings.tombstone_grace_s)
    peers: list[GrpcPeer] = []
    sizes = size_reporter(collections, executor, metrics)

    def connect(address: str) -> GrpcPeer:
        peer = GrpcPeer(address)
        peers.append(peer)
        return peer

    anti_entropy = AntiEntropy(
        CollectionsReplica(collections, executor, grace),
        PeerDirectory(settings.topology, advertised(settings)).peers,
        connect,
        AntiEntropySettings(
            interval_s=settings.anti_entropy_interval_s, first_wait_s=settings.catch_up_wait_s
        ),
        readiness,
        metrics.record_catch_up,
    )
    purger = TombstonePurger(
        collections.open_collections,
        grace,
        settings.tombstone_purge_interval_s,
        metrics.record_purge,
    )

    async def start() -> None:
        report = await loop.run_in_executor(executor, collections.load)
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
        # Health stays NOT_SERVING and reads UNAVAILABLE until this is over; writes
        # and the replication calls are served meanwhile.
        await anti_entropy.first_catch_up()
        anti_entropy.start()
        purger.start()
        sizes.start()

    async def stop() -> None:
        await sizes.stop()
        await anti_entropy.stop()
        for peer in peers:
            await peer.close()
        await loop.run_in_executor(executor, purger.stop)
        await loop.run_in_executor(executor, checkpointer.stop)
        await loop.run_in_executor(executor, collections.close)

    service = Service(
        name=shard_pb2.DESCRIPTOR.services_by_name["ShardService"].full_name,
        servicer=ShardServicer(collections, executor, readiness, grace),
        register=shard_pb2_grpc.add_ShardServiceServicer_to_server,
    )
    try:
        await serve(ServerSpec(settings.server, [service], metrics, start=start, stop=stop))
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def main() -> None:
    settings = parse_args()
    configure_logging("shard", settings.server.log_level, settings.server.log_format)
    asyncio.run(run(settings, Metrics("shard")))


if __name__ == "__main__":
    main()
