"""Driving a gRPC method with pre-serialized requests: one at a time, or many in flight.

Requests are serialized before the clock starts and responses are kept as bytes
and parsed after it stops, so the client process spends as little CPU as a gRPC
client can: on a 2-core machine the client shares the cores with the services
it measures, and what it spends would otherwise be charged to them. Every run
is bounded both by a number of calls (the requests given) and by time.
"""

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
import grpc.aio

from bench.procfs import cpu_seconds, own_cpu_seconds
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.tls import ClientTls, aio_channel, sync_channel

CALL_TIMEOUT_S = 120.0


@dataclass
class Calls:
    """What one measurement did: calls made, their latencies and raw responses."""

    seconds: float
    latencies: list[float]
    responses: list[bytes]
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process

    @property
    def count(self) -> int:
        return len(self.responses)


class CpuMeter:
    """CPU seconds each named process (and this one, as "client") spends in a block."""

    def __init__(self, pids: Mapping[str, Sequence[int]]) -> None:
        self._pids = {name: list(values) for name, values in pids.items()}
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self._pids.items()}
        now["client"] = own_cpu_seconds()
        return now

    def __enter__(self) -> "CpuMeter":
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        # A thread that ended meanwhile takes its time with it: never report below 0.
        self.used = {name: max(0.0, end[name] - self._start[name]) for name in end}


def sequential(
    address: str,
    method: str,
    requests: Sequence[bytes],
    max_seconds: float,
    warmup: int = 10,
    pids: Mapping[str, Sequence[int]] | None = None,
    tls: ClientTls | None = None,
    metadata: Sequence[tuple[str, str]] = (),
) -> Calls:
    """One call at a time on a blocking channel, until the requests or the time run out;
    each call carries `metadata` (an API key)."""
    sent_metadata = tuple(metadata) or None
    with sync_channel(address, tls, GRPC_OPTIONS) as channel:
        # No serializers: bytes in, bytes out.
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        for request in requests[:warmup]:
            call(request, timeout=CALL_TIMEOUT_S, metadata=sent_metadata)
        latencies: list[float] = []
        responses: list[bytes] = []
        clock = time.perf_counter
        with CpuMeter(pids or {}) as meter:
            start = clock()
            stop_at = start + max_seconds
            for request in requests:
                sent = clock()
                responses.append(call(request, timeout=CALL_TIMEOUT_S, metadata=sent_metadata))
                done = clock()
                latencies.append(done - sent)
                if done >= stop_at:
                    break
            seconds = clock() - start
    return Calls(seconds, latencies, responses, meter.used)


def alternating(
    address: str,
    method: str,
    requests: Mapping[str, Sequence[bytes]],
    max_seconds: float,
    warmup: int = 10,
) -> dict[str, Calls]:
    """One call at a time, the kinds of request taking turns call by call (request i of
    each kind, then request i + 1 of each, the kind that goes first turning each
    round), until the requests or the time run out: a comparison of latencies in
    which load from elsewhere weighs on every kind alike. Each kind's `seconds` is
    the sum of its own calls' latencies."""
    kinds = list(requests)
    rounds = min(len(requests[kind]) for kind in kinds)
    with sync_channel(address, None, GRPC_OPTIONS) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        for index in range(min(warmup, rounds)):
            for kind in kinds:
                call(requests[kind][index], timeout=CALL_TIMEOUT_S)
        latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
        responses: dict[str, list[bytes]] = {kind: [] for kind in kinds}
        clock = time.perf_counter
        stop_at = clock() + max_seconds
        for index in range(rounds):
            # The first kind of each round turns too: a kind that follows another with
            # the same request may find its caches warm.
            turn = index % len(kinds)
            for kind in kinds[turn:] + kinds[:turn]:
                sent = clock()
                responses[kind].append(call(requests[kind][index], timeout=CALL_TIMEOUT_S))
                latencies[kind].append(clock() - sent)
            if clock() >= stop_at:
                break
    return {kind: Calls(sum(latencies[kind]), latencies[kind], responses[kind]) for kind in kinds}


async def _concurrent(
    address: str,
    method: str,
    requests: Sequence[bytes],
    in_flight: int,
    max_seconds: float,
    warmup: int,
    pids: Mapping[str, Sequence[int]],
    tls: ClientTls | None = None,
    metadata: Sequence[tuple[str, str]] = (),
) -> Calls:
    sent_metadata = tuple(metadata) or None
    async with aio_channel(address, tls, GRPC_OPTIONS) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        await asyncio.gather(
            *(call(r, timeout=CALL_TIMEOUT_S, metadata=sent_metadata) for r in requests[:warmup])
        )
        responses: list[bytes] = [b""] * len(requests)
        latencies = [0.0] * len(requests)
        issued = 0
        clock = time.perf_counter

        async def worker(stop_at: float) -> None:
            nonlocal issued
            while issued < len(requests) and clock() < stop_at:
                index = issued
                issued += 1
                sent = clock()
                responses[index] = await call(
                    requests[index], timeout=CALL_TIMEOUT_S, metadata=sent_metadata
                )
                latencies[index] = clock() - sent

        with CpuMeter(pids) as meter:
            start = clock()
            await asyncio.gather(*(worker(start + max_seconds) for _ in range(in_flight)))
            seconds = clock() - start
    return Calls(seconds, latencies[:issued], responses[:issued], meter.used)


def concurrent(
    address: str,
    method: str,
    requests: Sequence[bytes],
    in_flight: int,
    max_seconds: float,
    warmup: int = 20,
    pids: Mapping[str, Sequence[int]] | None = None,
    tls: ClientTls | None = None,
    metadata: Sequence[tuple[str, str]] = (),
) -> Calls:
    """`in_flight` calls outstanding at all times (grpc.aio, one channel), bounded in time;
    each call carries `metadata` (an API key)."""
    return asyncio.run(
        _concurrent(
            address, method, requests, in_flight, max_seconds, warmup, pids or {}, tls, metadata
        )
    )
