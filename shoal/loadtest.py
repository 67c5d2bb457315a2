"""`shoal loadtest`: what ghz does, in Python, for machines where ghz is not installed.

It reads the same config files as `ghz --config` (loadtest/ghz/*.json: call,
host, total, concurrency, duration, max-duration, timeout, rps, connections,
data or data-file, metadata, with ghz's call templates such as
{{.RequestNumber}}), runs the calls on grpc.aio and prints the summary ghz
prints: count, total, slowest, fastest, average, requests/sec, the response
time histogram, the latency distribution (10 to 99 %) and the status code and
error distributions. `--output FILE` writes ghz's JSON report, and `--json`
prints it instead of the summary (with ghz's own keys, so tools that read
ghz's reports read it too). It calls --host if given, else `shoal --address`
or SHOAL_ADDRESS if set, else the config's host.

A run always stops by itself: after `total` calls or when `duration` (or
`max-duration`) has passed, and never later than --max-duration (default 5
minutes). Calls already on the wire when time runs out are allowed to finish
(ghz's --duration-stop=wait).

The request and reply bytes are not parsed per call: requests are encoded once
(unless templated) and replies are left as bytes, so on a small machine the
tool spends its CPU on sending, not on protobuf.

    shoal loadtest --config loadtest/ghz/search_vector.json
    python -m shoal.loadtest --config loadtest/ghz/search_text.json --total 500 -o report.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from shoal.help_format import HelpFormatter
from shoal.server import GRPC_OPTIONS

ADDRESS_ENV = "SHOAL_ADDRESS"
#: Where a config without a host goes, as for every `shoal` command.
DEFAULT_HOST = "127.0.0.1:50051"
DEFAULT_TOTAL = 200
DEFAULT_CONCURRENCY = 50
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
#: The hard stop for any run, so a config with neither duration nor a sane total
#: cannot keep a machine busy for long.
DEFAULT_MAX_RUN_S = 300.0
PERCENTILES = (10, 25, 50, 75, 90, 95, 99)
HISTOGRAM_BUCKETS = 10

# ghz config keys: those this tool honours, and those that only matter to ghz
# itself (how it finds descriptors, prints, connects with TLS) and are ignored
# here. Any other key is refused rather than silently changing the run.
HONOURED_KEYS = {
    "call", "host", "total", "concurrency", "duration", "max-duration", "timeout", "rps",
    "connections", "data", "data-file", "metadata", "name", "skipFirst", "count-errors",
    "insecure", "connect-timeout",
}  # fmt: skip
IGNORED_KEYS = {
    "proto", "protoset", "import-paths", "format", "output", "cpus", "tags", "debug",
    "keepalive", "enable-compression", "max-recv-message-size", "max-send-message-size",
    "reflect-metadata", "lb-strategy", "duration-stop", "disable-template-functions",
}  # fmt: skip

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


class LoadTestError(Exception):
    """A config, data file or method the tool cannot use (the message says which)."""


def parse_duration(value: str | float | int) -> float:
    """Seconds from a Go duration string ('10s', '1m30s', '250ms') or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if text in ("", "0"):
        return 0.0
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise LoadTestError(f"duration {value!r}: write it like 10s, 1m30s or 250ms")
    return seconds


# --- config ----------------------------------------------------------------


@dataclass
class LoadConfig:
    """One run, as a ghz config describes it."""

    call: str
    host: str
    data: list[dict[str, Any]]
    total: int = DEFAULT_TOTAL
    concurrency: int = DEFAULT_CONCURRENCY
    duration_s: float = 0.0
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    rps: int = 0
    connections: int = 1
    metadata: dict[str, str] = field(default_factory=dict)
    name: str = ""
    skip_first: int = 0
    count_errors: bool = False

    def check(self) -> None:
        if not self.call:
            raise LoadTestError("the config names no call (e.g. shoal.v1.ShoalService.Search)")
        if not self.host:
            raise LoadTestError("no host: set it in the config or pass --host HOST:PORT")
        if not self.data:
            raise LoadTestError("no request data: give data or data-file")
        for name, value in [("total", self.total), ("concurrency", self.concurrency)]:
            if value < 1:
                raise LoadTestError(f"{name} must be at least 1, not {value}")
        if self.connections < 1 or self.connections > self.concurrency:
            raise LoadTestError("connections must be between 1 and concurrency")


def _data_items(data: Any, origin: str) -> list[dict[str, Any]]:
    """ghz data: one request object, or a list of them used round-robin."""
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        raise LoadTestError(f"{origin}: data must be an object or a non-empty list of objects")
    return items


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> LoadConfig:
    """Read a ghz JSON config; `overrides` (ghz key -> value) win over the file.

    As in ghz, a relative data-file is read from the current directory.
    """
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise LoadTestError(f"{path}: {error}") from None
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(raw) - HONOURED_KEYS - IGNORED_KEYS
    if unknown:
        raise LoadTestError(f"{path}: ghz options {sorted(unknown)} are not supported here")
    if raw.get("insecure") is False:
        raise LoadTestError(f"{path}: only plaintext (insecure) connections are supported")

    if "data-file" in raw:
        data_path = Path(raw["data-file"])
        try:
            data = json.loads(data_path.read_text())
        except OSError as error:
            raise LoadTestError(
                f"data-file {data_path}: {error.strerror}; run from the repository root, "
                "after `python -m loadtest.generate` has written the data"
            ) from None
        items = _data_items(data, str(data_path))
    elif "data" in raw:
        items = _data_items(raw["data"], str(path))
    else:
        items = []

    duration = parse_duration(raw.get("duration", 0))
    max_duration = parse_duration(raw.get("max-duration", 0))
    total = int(raw.get("total", DEFAULT_TOTAL))
    if max_duration > 0:  # ghz: max-duration caps a count-bound run
        duration = max_duration
    elif duration > 0:  # ghz: with a duration, total is ignored
        total = sys.maxsize
    config = LoadConfig(
        call=str(raw.get("call", "")),
        host=str(raw.get("host", "")),
        data=items,
        total=total,
        concurrency=int(raw.get("concurrency", DEFAULT_CONCURRENCY)),
        duration_s=duration,
        timeout_s=parse_duration(raw.get("timeout", DEFAULT_TIMEOUT_S)),
        connect_timeout_s=parse_duration(raw.get("connect-timeout", DEFAULT_CONNECT_TIMEOUT_S)),
        rps=int(raw.get("rps", 0)),
        connections=int(raw.get("connections", 1)),
        metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
        name=str(raw.get("name", "")),
        skip_first=int(raw.get("skipFirst", 0)),
        count_errors=bool(raw.get("count-errors", False)),
    )
    return config


# --- methods and requests --------------------------------------------------


def method_path(call: str) -> tuple[str, str]:
    """('shoal.v1.ShoalService', 'Search') from ghz's 'shoal.v1.ShoalService.Search' or '/'."""
    if "/" in call:
        service, _, method = call.strip("/").rpartition("/")
    else:
        service, _, method = call.rpartition(".")
    if not service or not method:
        raise LoadTestError(f"call {call!r}: write it as package.Service.Method")
    return service, method


def builtin_method(call: str) -> MethodDescriptor:
    """The method from the descriptors compiled into this package (shoal.v1)."""
    from shoal.v1 import embedder_pb2, shard_pb2, shoal_pb2  # noqa: F401  (registers them)

    return _find_method(descriptor_pool.Default(), call)


def reflected_method(call: str, host: str, timeout_s: float) -> MethodDescriptor:
    """The method as the server describes it through gRPC server reflection."""
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(host) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise LoadTestError(f"cannot connect to {host} within {timeout_s:g}s") from None
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = _find_method(pool, call)
        # Resolve the message types while the channel is open.
        message_factory.GetMessageClass(method.input_type)
        return method


def _find_method(pool: descriptor_pool.DescriptorPool, call: str) -> MethodDescriptor:
    service, method = method_path(call)
    try:
        # Through the service: a pool backed by server reflection looks services
        # up in its database, but not methods.
        return pool.FindServiceByName(service).methods_by_name[method]
    except KeyError:
        raise LoadTestError(f"no method {service}.{method}") from None


def build_request(method: MethodDescriptor, data: dict[str, Any]) -> Message:
    """A request message from ghz JSON data (proto field names or their JSON names)."""
    message: Message = message_factory.GetMessageClass(method.input_type)()
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as error:
        raise LoadTestError(f"{method.full_name}: bad request data: {error}") from None
    return message


@dataclass(frozen=True)
class CallData:
    """What a ghz call template may use, for one call."""

    request_number: int
    worker_id: str
    method: MethodDescriptor

    def value(self, expression: str) -> str:
        now = time.time_ns()
        values = {
            ".RequestNumber": str(self.request_number),
            ".WorkerID": self.worker_id,
            ".UUID": str(uuid.uuid4()),
            ".FullyQualifiedName": self.method.full_name,
            ".MethodName": self.method.name,
            ".ServiceName": self.method.containing_service.name,
            ".InputName": self.method.input_type.name,
            ".OutputName": self.method.output_type.name,
            ".Timestamp": datetime.fromtimestamp(now / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            ".TimestampUnix": str(now // 1_000_000_000),
            ".TimestampUnixMilli": str(now // 1_000_000),
            ".TimestampUnixNano": str(now),
            "newUUID": str(uuid.uuid4()),
        }
        if expression in values:
            return values[expression]
        raise LoadTestError(f"call template {{{{ {expression} }}}} is not supported")


def render_template(text: str, call: CallData) -> str:
    """Substitute ghz's {{ .Field }} templates (the subset CallData knows)."""
    return _TEMPLATE.sub(lambda match: call.value(match.group(1)), text)


class Requests:
    """Serialized requests and metadata for each call, rendered only where templated."""

    def __init__(self, config: LoadConfig, method: MethodDescriptor) -> None:
        self._method = method
        self._items: list[bytes | str] = []
        for item in config.data:
            text = json.dumps(item)
            if _TEMPLATE.search(text):
                self._items.append(text)
            else:
                self._items.append(build_request(method, item).SerializeToString())
        self._metadata = list(config.metadata.items())
        self._templated_metadata = any(_TEMPLATE.search(v) for _, v in self._metadata)
        # Fail now, not on the first call, if a template is not one we know.
        self.request(0, "check")
        self.metadata(0, "check")

    def request(self, number: int, worker_id: str) -> bytes:
        item = self._items[number % len(self._items)]
        if isinstance(item, bytes):
            return item
        rendered = render_template(item, CallData(number, worker_id, self._method))
        return build_request(self._method, json.loads(rendered)).SerializeToString()

    def metadata(self, number: int, worker_id: str) -> tuple[tuple[str, str], ...]:
        if not self._templated_metadata:
            return tuple(self._metadata)
        call = CallData(number, worker_id, self._method)
        return tuple((k, render_template(v, call)) for k, v in self._metadata)


# --- running ---------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    timestamp: float
    latency_s: float
    status: str  # the status code as ghz names it: OK, Unavailable, DeadlineExceeded
    error: str


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
        grpc.aio.insecure_channel(config.host, options=GRPC_OPTIONS)
        for _ in range(config.connections)
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


# --- the report ------------------------------------------------------------


@dataclass
class Report:
    """ghz's report: the same numbers, the same JSON keys (durations in nanoseconds)."""

    config: LoadConfig
    results: list[Result]
    total_s: float
    end_reason: str
    date: datetime

    @classmethod
    def of(
        cls, config: LoadConfig, results: list[Result], total_s: float, timed_out: bool
    ) -> Report:
        return cls(
            config, results, total_s, "timeout" if timed_out else "normal", datetime.now(UTC)
        )

    @property
    def count(self) -> int:
        return len(self.results)

    @property
    def rps(self) -> float:
        return self.count / self.total_s if self.total_s > 0 else 0.0

    @property
    def average_s(self) -> float:
        return sum(r.latency_s for r in self.results) / self.count if self.results else 0.0

    @property
    def latencies(self) -> list[float]:
        """Sorted latencies of the calls that count: OK ones, or all with count-errors."""
        chosen = [r.latency_s for r in self.results if r.status == "OK" or self.config.count_errors]
        return sorted(chosen)

    @property
    def status_codes(self) -> Counter[str]:
        return Counter(r.status for r in self.results)

    @property
    def errors(self) -> Counter[str]:
        return Counter(r.error for r in self.results if r.error)

    def percentiles(self) -> list[tuple[int, float]]:
        """ghz's rank: the value at index ceil(p/100 * n) - 1 of the sorted latencies."""
        latencies = self.latencies
        if not latencies:
            return []
        points = []
        for percent in PERCENTILES:
            rank = percent / 100 * len(latencies)
            index = int(rank) - 1 if rank == int(rank) else int(rank)
            points.append((percent, latencies[min(max(index, 0), len(latencies) - 1)]))
        return points

    def histogram(self) -> list[tuple[float, int, float]]:
        """(mark in seconds, count, frequency): ghz's 10 equal-width buckets plus the slowest."""
        latencies = self.latencies
        if not latencies:
            return []
        fastest, slowest = latencies[0], latencies[-1]
        width = (slowest - fastest) / HISTOGRAM_BUCKETS
        marks = [fastest + width * i for i in range(HISTOGRAM_BUCKETS)] + [slowest]
        counts = [0] * len(marks)
        bucket = 0
        for latency in latencies:
            while latency > marks[bucket] and bucket < len(marks) - 1:
                bucket += 1
            counts[bucket] += 1
        return [(m, c, c / len(latencies)) for m, c in zip(marks, counts, strict=True)]

    def to_json(self) -> dict[str, Any]:
        latencies = self.latencies
        ns = _nanoseconds
        return {
            "name": self.config.name,
            "endReason": self.end_reason,
            "date": self.date.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "options": {
                "call": self.config.call,
                "host": self.config.host,
                "total": self.config.total,
                "concurrency": self.config.concurrency,
                "connections": self.config.connections,
                "rps": self.config.rps,
                "duration": ns(self.config.duration_s),
                "timeout": ns(self.config.timeout_s),
                "metadata": self.config.metadata,
                "count-errors": self.config.count_errors,
                "skipFirst": self.config.skip_first,
            },
            "count": self.count,
            "total": ns(self.total_s),
            "average": ns(self.average_s),
            "fastest": ns(latencies[0]) if latencies else 0,
            "slowest": ns(latencies[-1]) if latencies else 0,
            "rps": self.rps,
            "errorDistribution": dict(self.errors),
            "statusCodeDistribution": dict(self.status_codes),
            "latencyDistribution": [
                {"percentage": p, "latency": ns(v)} for p, v in self.percentiles()
            ],
            "histogram": [{"mark": m, "count": c, "frequency": f} for m, c, f in self.histogram()],
            "details": [
                {
                    "timestamp": datetime.fromtimestamp(r.timestamp, UTC).isoformat(),
                    "latency": ns(r.latency_s),
                    "error": r.error,
                    "status": r.status,
                }
                for r in self.results
            ],
        }

    def summary(self) -> str:
        """The text ghz prints (its default 'summary' format), tabs and all."""
        latencies = self.latencies
        text = "\nSummary:\n"
        if self.config.name:
            text += f"  Name:\t\t{self.config.name}\n"
        text += (
            f"  Count:\t{self.count}\n"
            f"  Total:\t{format_duration(self.total_s)}\n"
            f"  Slowest:\t{format_duration(latencies[-1] if latencies else 0)}\n"
            f"  Fastest:\t{format_duration(latencies[0] if latencies else 0)}\n"
            f"  Average:\t{format_duration(self.average_s)}\n"
            f"  Requests/sec:\t{self.rps:4.2f}\n"
            "\nResponse time histogram:\n"
            f"{_histogram_text(self.histogram())}"
            "\nLatency distribution:"
        )
        text += "".join(f"\n  {p} % in {format_duration(v)} " for p, v in self.percentiles())
        text += "\n\n"
        if self.status_codes:
            rows = [(f"[{s}]", f"{n} responses") for s, n in self.status_codes.most_common()]
            text += "Status code distribution:\n" + _tabulate(rows)
        text += "\n"
        if self.errors:
            rows = [(f"[{n}]", error) for error, n in self.errors.most_common()]
            text += "Error distribution:\n" + _tabulate(rows)
        return text + "\n"


def _nanoseconds(seconds: float) -> int:
    return round(seconds * 1e9)


def format_duration(seconds: float) -> str:
    """ghz's formatNanoUnit: '950 ns', '12.34 ms', '1.50 s'."""
    nanoseconds = _nanoseconds(seconds)
    if nanoseconds < 10_000:
        return f"{nanoseconds} ns"
    milliseconds = nanoseconds / 1e6
    if milliseconds < 1000:
        return f"{milliseconds:4.2f} ms"
    return f"{milliseconds / 1000:4.2f} s"


def _histogram_text(buckets: list[tuple[float, int, float]]) -> str:
    """ghz's histogram: mark in ms, [count], and a bar of up to 40 '∎'."""
    if not buckets:
        return ""
    marks = [f"{mark * 1000:.3f}" for mark, _, _ in buckets]
    counts = [str(count) for _, count, _ in buckets]
    mark_width = max(len(mark) for mark in marks)
    count_width = max(len(count) for count in counts)
    most = max(count for _, count, _ in buckets)
    text = ""
    for mark, count, (_, number, _) in zip(marks, counts, buckets, strict=True):
        bar = "∎" * ((number * 40 + most // 2) // most if most else 0)
        text += f"  {mark.ljust(mark_width)} [{count}]{' ' * (count_width - len(count))} |{bar}\n"
    return text


def _tabulate(rows: list[tuple[str, str]]) -> str:
    """Go's tabwriter with padding 3, as ghz lays out its distributions."""
    first_width = max(len(first) for first, _ in rows) + 3
    second_width = max(len(second) for _, second in rows) + 3
    return "".join(
        f"  {first.ljust(first_width)}{second.ljust(second_width)}\n" for first, second in rows
    )


# --- command line ----------------------------------------------------------


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "total": args.total,
        "concurrency": args.concurrency,
        "duration": args.duration,
        "timeout": args.timeout,
        "rps": args.rps,
        "connections": args.connections,
        "data-file": args.data_file,
        "name": args.name,
    }


def target_host(args: argparse.Namespace) -> str | None:
    """--host, else `shoal --address`, else SHOAL_ADDRESS; None: the config's host."""
    return args.host or getattr(args, "address", None) or os.environ.get(ADDRESS_ENV) or None


def cmd_loadtest(args: argparse.Namespace) -> None:
    overrides = _overrides(args)
    overrides["host"] = target_host(args)
    as_json = bool(getattr(args, "json", False))
    try:
        config = load_config(Path(args.config), overrides)
        config.host = config.host or DEFAULT_HOST
        config.check()
        if args.reflection:
            method = reflected_method(config.call, config.host, config.connect_timeout_s)
        else:
            method = builtin_method(config.call)
        report = asyncio.run(run(config, method, parse_duration(args.max_duration)))
    except LoadTestError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.summary(), end="")
    if args.output:
        Path(args.output).write_text(json.dumps(report.to_json(), indent=2) + "\n")
        print(f"report written to {args.output}", file=sys.stderr if as_json else sys.stdout)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The options of `shoal loadtest` and `python -m shoal.loadtest` (not --json, --address)."""
    parser.add_argument("--config", required=True, help="a ghz JSON config (loadtest/ghz/*.json)")
    parser.add_argument(
        "--host",
        help=f"HOST:PORT to call (default: --address or ${ADDRESS_ENV} if given, else the "
        f"config's host, else {DEFAULT_HOST})",
    )
    parser.add_argument(
        "-n", "--total", type=int,
        help=f"number of calls (default: the config's, else {DEFAULT_TOTAL})",
    )  # fmt: skip
    parser.add_argument(
        "-c", "--concurrency", type=int,
        help=f"calls in flight at once (default: the config's, else {DEFAULT_CONCURRENCY})",
    )  # fmt: skip
    parser.add_argument(
        "-z", "--duration",
        help="run for this long, e.g. 30s, ghz syntax (default: the config's, else until "
        "--total calls)",
    )  # fmt: skip
    parser.add_argument(
        "-t", "--timeout",
        help=f"deadline of each call, e.g. 5s (default: the config's, else {DEFAULT_TIMEOUT_S:g}s)",
    )  # fmt: skip
    parser.add_argument(
        "--rps", type=int,
        help="calls per second, 0: as fast as possible (default: the config's, else 0)",
    )  # fmt: skip
    parser.add_argument(
        "--connections", type=int,
        help="gRPC connections to spread calls over (default: the config's, else 1)",
    )  # fmt: skip
    parser.add_argument(
        "-D", "--data-file", help="request data file (default: the config's data or data-file)"
    )
    parser.add_argument("--name", help="a name for the report (default: the config's)")
    parser.add_argument(
        "--reflection",
        action="store_true",
        help="resolve the method through server reflection instead of the built-in protos",
    )
    parser.add_argument(
        "--max-duration",
        default=f"{DEFAULT_MAX_RUN_S:g}s",
        help="hard time limit for the whole run",
    )
    parser.add_argument(
        "-o", "--output", help="also write ghz's JSON report to this file (default: none)"
    )
    parser.set_defaults(run=cmd_loadtest)


JSON_HELP = "print ghz's JSON report (its own keys, as ghz writes them) instead of the summary"


def add_parser(
    subparsers: Any,
    parents: Sequence[argparse.ArgumentParser] = (),
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """Add `loadtest` to the `shoal` command's subparsers.

    `parents` bring the `shoal` command's global options (--address, --json).
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "loadtest",
        help="load-test a server from a ghz config, printing ghz's summary",
        description=__doc__,
        formatter_class=HelpFormatter,
        parents=list(parents),
        epilog=epilog,
    )
    configure_parser(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m shoal.loadtest",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=f"environment:\n  {ADDRESS_ENV}  HOST:PORT to call where --host is not given",
    )
    configure_parser(parser)
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
