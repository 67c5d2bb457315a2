"""The coordinator's command line; every flag also reads SHOAL_<FLAG_UPPER_SNAKE> as its default."""

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coordinator.api.servicer import DEFAULT_READ_TIMEOUT_S, DEFAULT_WRITE_TIMEOUT_S
from coordinator.core.catalog import CONFIG_TTL_S
from coordinator.core.clock import MAX_COORDINATOR_ID

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    port_file: Path | None
    topology: Path
    embedder: str
    coordinator_id: int
    read_timeout_s: float
    write_timeout_s: float
    config_ttl_s: float


def _env(flag: str, default: str | None = None) -> str | None:
    return os.environ.get("SHOAL_" + flag.upper().replace("-", "_"), default)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _coordinator_id(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_COORDINATOR_ID:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and {MAX_COORDINATOR_ID}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m coordinator",
        description="Shoal coordinator: the public API in front of the shard groups.",
    )
    parser.add_argument("--host", default=_env("host", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(_env("port", str(DEFAULT_PORT)) or 0))
    parser.add_argument(
        "--port-file", type=Path, default=_env("port-file"), help="write the bound port here"
    )
    topology = _env("topology")
    parser.add_argument(
        "--topology", type=Path, default=topology, required=topology is None,
        help='JSON: {"version": 1, "groups": [{"replicas": ["HOST:PORT", ...]}, ...]}',
    )  # fmt: skip
    embedder = _env("embedder")
    parser.add_argument(
        "--embedder", default=embedder, required=embedder is None,
        help="HOST:PORT of the embedder service",
    )  # fmt: skip
    parser.add_argument(
        "--coordinator-id", type=_coordinator_id,
        default=_coordinator_id(_env("coordinator-id", "0") or "0"),
        help="0-255, distinct per coordinator: the low bits of every write version",
    )  # fmt: skip
    parser.add_argument(
        "--read-timeout-s", type=_positive_float,
        default=_positive_float(_env("read-timeout-s", str(DEFAULT_READ_TIMEOUT_S)) or "0"),
        help="deadline for reads whose caller set none",
    )  # fmt: skip
    parser.add_argument(
        "--write-timeout-s", type=_positive_float,
        default=_positive_float(_env("write-timeout-s", str(DEFAULT_WRITE_TIMEOUT_S)) or "0"),
        help="deadline for writes whose caller set none",
    )  # fmt: skip
    parser.add_argument(
        "--config-ttl-s", type=_positive_float,
        default=_positive_float(_env("config-ttl-s", str(CONFIG_TTL_S)) or "0"),
        help="how long a collection's settings are cached",
    )  # fmt: skip
    args = parser.parse_args(argv)
    return Settings(
        host=args.host,
        port=args.port,
        port_file=args.port_file,
        topology=args.topology,
        embedder=args.embedder,
        coordinator_id=args.coordinator_id,
        read_timeout_s=args.read_timeout_s,
        write_timeout_s=args.write_timeout_s,
        config_ttl_s=args.config_ttl_s,
    )
