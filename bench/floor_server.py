"""`python -m bench.floor_server`: the least a Python grpc.aio server can do per request.

Two unary methods on raw bytes (no protobuf, no interceptors, no Shoal code):
`Inline` answers on the event loop; `Executor` first makes one round trip
through a thread pool (`loop.run_in_executor`), the hand-off every Shoal
handler that calls hnswlib, RocksDB or torch makes. Measured under the same
load as the services, they are the floor a Python service stands on here, and
their difference is the price of one thread hand-off.
"""

import argparse
import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

SERVICE = "bench.Floor"
INLINE = f"/{SERVICE}/Inline"
EXECUTOR = f"/{SERVICE}/Executor"


def _identity(request: bytes) -> bytes:
    return request


def _write_port_file(path: Path, port: int) -> None:
    """Whole or not at all: the starter polls this file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


async def serve(host: str, port: int, port_file: Path | None, threads: int) -> None:
    pool = ThreadPoolExecutor(threads, thread_name_prefix="floor")
    loop = asyncio.get_running_loop()

    async def inline(request: bytes, context: Any) -> bytes:
        return request

    async def executor(request: bytes, context: Any) -> bytes:
        return await loop.run_in_executor(pool, _identity, request)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Inline": grpc.unary_unary_rpc_method_handler(inline),
                    "Executor": grpc.unary_unary_rpc_method_handler(executor),
                },
            )
        ]
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    if port_file is not None:
        _write_port_file(port_file, bound)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(1)
    pool.shutdown(wait=False)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--threads", type=int, default=max(4, 2 * (os.cpu_count() or 1)))
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.port_file, args.threads))


if __name__ == "__main__":
    main()
