"""Composition root: settings -> storage -> core -> servicer -> shoal.server.serve."""

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor

from shard.api.convert import metadata_from_payload
from shard.api.servicer import ShardServicer
from shard.core.checkpointer import Checkpointer, CheckpointPolicy
from shard.core.collections import Collections
from shard.settings import Settings, parse_args
from shard.storage.layout import DataDir
from shoal.logs import configure_logging
from shoal.metrics import Metrics
from shoal.server import ServerSpec, Service, serve
from shoal.v1 import shard_pb2, shard_pb2_grpc

log = logging.getLogger("shard")


async def run(settings: Settings, metrics: Metrics) -> None:
    executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="shard")
    collections = Collections(
        DataDir(settings.data_dir),
        sync_writes=settings.sync_writes,
        read_metadata=metadata_from_payload,
        filtered_search=settings.filtered_search,
    )
    checkpointer = Checkpointer(
        collections,
        CheckpointPolicy(settings.checkpoint_every_writes, settings.checkpoint_interval_s),
    )
    loop = asyncio.get_running_loop()

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

    async def stop() -> None:
        await loop.run_in_executor(executor, checkpointer.stop)
        await loop.run_in_executor(executor, collections.close)

    service = Service(
        name=shard_pb2.DESCRIPTOR.services_by_name["ShardService"].full_name,
        servicer=ShardServicer(collections, executor),
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
