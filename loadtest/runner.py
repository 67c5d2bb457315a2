"""Running a config's calls on grpc.aio: `concurrency` workers over `connections`
channels, until `total` calls or the time limit.

A run always stops by itself: calls already on the wire when time runs out are
allowed to finish (ghz's --duration-stop=wait). Replies are left as bytes.
"""

import asyncio
import time

import grpc
import grpc.aio
from google.protobuf.descriptor import MethodDescriptor

from loadtest.calls import Requests, method_path
from loadtest.config import DEFAULT_MAX_RUN_S, LoadConfig, LoadTestError
from loadtest.report import Report, Result
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.tls import aio_channel


def go_status_name(code: grpc.StatusCode) -> str:
    """A status code as Go's codes.Code.String() writes it, which ghz reports."""
    if code is grpc.StatusCode.OK:
        return "OK"
    if code is grpc.StatusCode.CANCELLED:
        return "Canceled"
    return "".join(part.capitalize() for part in code.name.split("_"))


async def _wait_ready(channel: grpc.aio.Channel, host: str, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout_s)
    except TimeoutError:
        raise LoadTestError(f"cannot connect to {host} within {timeout_s:g}s") from None


async def run(
    config: LoadConfig, method: MethodDescriptor, max_run_s: float = DEFAULT_MAX_RUN_S
) -> Report:
    """Run the calls and gather the report."""
    config.check()
    requests = Requests(config, method)
    service, name = method_path(config.call)
    path = f"/{service}/{name}"
    channels = [
        aio_channel(config.host, config.tls, GRPC_OPTIONS) for _ in range(config.connections)
    ]
    results: list[Result] = []
    try:
        await asyncio.gather(
            *(_wait_ready(c, config.host, config.connect_timeout_s) for c in channels)
        )
        start = time.perf_counter()
        time_limit = min(config.duration_s or max_run_s, max_run_s)
        deadline = start + time_limit
        next_number = iter(range(config.total))
        timed_out = False

        async def worker(index: int) -> None:
            nonlocal timed_out
            channel = channels[index % len(channels)]
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
            worker_id = f"g{index}c{index % len(channels)}"
            for number in next_number:
                if config.rps:
                    wait = start + number / config.rps - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                now = time.perf_counter()
                if now >= deadline:
                    timed_out = True
                    return
                request = requests.request(number, worker_id)
                metadata = requests.metadata(number, worker_id)
                began = time.perf_counter()
                try:
                    await call(request, timeout=config.timeout_s, metadata=metadata)
                    status, error = "OK", ""
                except grpc.aio.AioRpcError as failure:
                    status = go_status_name(failure.code())
                    error = f"rpc error: code = {status} desc = {failure.details() or ''}"
                results.append(Result(time.time(), time.perf_counter() - began, status, error))

        await asyncio.gather(*(worker(i) for i in range(config.concurrency)))
        total_s = time.perf_counter() - start
    finally:
        for channel in channels:
            await channel.close()
    return Report.of(config, results[config.skip_first :], total_s, timed_out)
