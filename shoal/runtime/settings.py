"""Command-line flags every Shoal server shares.

Every flag also reads SHOAL_<FLAG_UPPER_SNAKE> from the environment as its
default (how the Kubernetes manifests configure the services).
"""

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from shoal.runtime.help_format import ServerHelpFormatter, env_name
from shoal.runtime.keepalive import DEFAULT_INTERVAL_MS, MIN_INTERVAL_MS, Keepalive


def env(flag: str, default: str | None = None) -> str | None:
    """The environment's default for --flag."""
    return os.environ.get(env_name(flag), default)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def keepalive_interval(text: str) -> int:
    value = int(text)
    if value < MIN_INTERVAL_MS:
        raise argparse.ArgumentTypeError(f"{text} ms is below the minimum, {MIN_INTERVAL_MS} ms")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean")


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    port_file: Path | None
    metrics_port: int  # 0: no metrics endpoint
    log_level: str
    log_format: str
    grace_seconds: float
    keepalive_ms: int = DEFAULT_INTERVAL_MS
    metrics_host: str = ""  # empty: the same as host

    @property
    def keepalive(self) -> Keepalive:
        return Keepalive(self.keepalive_ms)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ServerSettings":
        return cls(
            host=args.host,
            port=args.port,
            port_file=args.port_file,
            metrics_port=args.metrics_port,
            log_level=args.log_level,
            log_format=args.log_format,
            grace_seconds=args.grace_seconds,
            keepalive_ms=args.keepalive_ms,
            metrics_host=args.metrics_host,
        )


def add_server_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    """--host, --port, --port-file, --metrics-port, --metrics-host, --log-level, --log-format,
    --grace-seconds, --keepalive-ms.

    Also makes the parser's --help show each flag's default and SHOAL_ variable.
    """
    parser.formatter_class = ServerHelpFormatter
    parser.add_argument("--host", default=env("host", "127.0.0.1"), help="address to bind")
    parser.add_argument(
        "--port", type=int, default=int(env("port", str(default_port)) or 0),
        help="gRPC port (0: any free port; see --port-file)",
    )  # fmt: skip
    parser.add_argument(
        "--port-file", type=Path, default=env("port-file"),
        help="write the bound port here once listening",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-port", type=int, default=int(env("metrics-port", "0") or 0),
        help="serve Prometheus metrics on /metrics at this port (0: off)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-host", default=env("metrics-host", ""),
        help="address the metrics endpoint binds (empty: --host); metrics carry no API"
        " key check, so bind them to an interface only the monitoring can reach",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", default=env("log-level", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR",
    )  # fmt: skip
    parser.add_argument(
        "--log-format", choices=["text", "json"], default=env("log-format", "text"),
        help="json: one JSON object per line",
    )  # fmt: skip
    parser.add_argument(
        "--grace-seconds", type=non_negative_float,
        default=non_negative_float(env("grace-seconds", "10") or "10"),
        help="on SIGTERM, how long in-flight calls may take to finish",
    )  # fmt: skip
    parser.add_argument(
        "--keepalive-ms", type=keepalive_interval,
        default=keepalive_interval(env("keepalive-ms", str(DEFAULT_INTERVAL_MS)) or "0"),
        help="channels to other Shoal services ping every this many ms; this server"
        " accepts pings every half of it (give every service of a cluster the same)",
    )  # fmt: skip
