"""`python -m bench.floor_calls`: what one gRPC call costs here, with no work in it.

A blocking client calls the bare grpc.aio server of `bench.floor_server` one
call at a time, as a SearchBatch with one call in flight goes through each hop
(SDK -> coordinator, coordinator -> shard): `Inline` answers on the event loop,
`Executor` after one round trip through a thread pool. Printed per call: wall
time, the server's CPU (its process clock) and the client's. The figures move
with the machine (they are several times higher when it is busy or its cores
are stolen), so read them next to a benchmark run in the same window.

    python -m bench.floor_calls --calls 3000
"""

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from bench import services
from bench.floor_server import EXECUTOR, INLINE
from bench.procfs import cpu_seconds, own_cpu_seconds
from shoal.cli.service_process import ServiceProcess

PAYLOAD = b"x" * 100
WARM_UP = 300


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as tmp,
        services.running(ServiceProcess("floor", "bench.floor_server", [], Path(tmp))) as floor,
    ):
        assert floor is not None
        with grpc.insecure_channel(floor.address) as channel:
            _measure(channel, services.pid(floor), args.calls)
    print(f"\nReproduce: `python -m bench.floor_calls --calls {args.calls}`")


def _measure(channel: grpc.Channel, server: int, calls: int) -> None:
    """Per method, a Markdown row: wall time, the server's and this process's CPU per call."""
    print(f"One blocking call at a time, {calls} calls of {len(PAYLOAD)} bytes")
    print("| method | wall µs/call | server CPU µs/call | client CPU µs/call |")
    print("|---|---:|---:|---:|")
    for method in (INLINE, EXECUTOR):
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        for _ in range(WARM_UP):
            call(PAYLOAD)
        server_cpu, client_cpu = cpu_seconds(server), own_cpu_seconds()
        began = time.perf_counter()
        for _ in range(calls):
            call(PAYLOAD)
        per_call = [
            (time.perf_counter() - began) / calls,
            (cpu_seconds(server) - server_cpu) / calls,
            (own_cpu_seconds() - client_cpu) / calls,
        ]
        cells = " | ".join(f"{1e6 * seconds:,.0f}" for seconds in per_call)
        print(f"| {method.rsplit('/', 1)[1]} | {cells} |")


if __name__ == "__main__":
    main()
