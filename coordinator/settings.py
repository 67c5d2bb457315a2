"""The coordinator's command line; every flag also reads SHOAL_<FLAG_UPPER_SNAKE> as its default."""

import argparse
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.api.servicer import DEFAULT_READ_TIMEOUT_S, DEFAULT_WRITE_TIMEOUT_S
from coordinator.core.catalog import CONFIG_TTL_S
from coordinator.core.clock import MAX_COORDINATOR_ID
from coordinator.core.hints import HintLimits
from shoal.limits import RequestLimits, add_limit_flags, limits_from_args
from shoal.runtime.settings import (
    ServerSettings,
    add_server_flags,
    env,
    positive_float,
    positive_int,
)

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    topology: Path
    embedder: str
    coordinator_id: int
    read_timeout_s: float
    write_timeout_s: float
    config_ttl_s: float
    hint_max_writes: int = HintLimits.max_writes
    hint_max_age_s: float = HintLimits.max_age_s
    etcd: tuple[str, ...] = ()
    api_keys_file: Path | None = None
    limits: RequestLimits = field(default_factory=RequestLimits)
    snapshot_location: str = ""
    snapshot_staging: Path | None = None


def _coordinator_id(text: str) -> int:
    """A number 0-255, or `auto`: random per process.

    The id only breaks ties between two coordinators that version a write in the
    same millisecond with the same counter; shards settle even an exact tie the
    same way on every replica, so a Deployment's pods may share ids safely.
    """
    if text == "auto":
        return secrets.randbelow(MAX_COORDINATOR_ID + 1)
    value = int(text)
    if not 0 <= value <= MAX_COORDINATOR_ID:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and {MAX_COORDINATOR_ID}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m coordinator",
        description="Shoal coordinator: the public API in front of the shard groups.",
    )
    add_server_flags(parser, DEFAULT_PORT)
    topology = env("topology")
    parser.add_argument(
        "--topology", type=Path, default=topology, required=topology is None,
        help='JSON: {"version": 1, "groups": [{"replicas": ["HOST:PORT", ...]}, ...]};'
        " with --etcd only the seed of the topology in etcd (used when etcd holds none)",
    )  # fmt: skip
    embedder = env("embedder")
    parser.add_argument(
        "--embedder", default=embedder, required=embedder is None,
        help="HOST:PORT (or a gRPC target, dns:///NAME:PORT) of the embedder service; calls"
        " go round-robin to every address the name resolves to (a headless Service's pods)",
    )  # fmt: skip
    parser.add_argument(
        "--coordinator-id", type=_coordinator_id, default=env("coordinator-id", "auto"),
        help=f"0-{MAX_COORDINATOR_ID} or auto (random): the low bits of every write version",
    )  # fmt: skip
    parser.add_argument(
        "--read-timeout-s", type=positive_float,
        default=env("read-timeout-s", str(DEFAULT_READ_TIMEOUT_S)),
        help="deadline for reads whose caller set none",
    )  # fmt: skip
    parser.add_argument(
        "--write-timeout-s", type=positive_float,
        default=env("write-timeout-s", str(DEFAULT_WRITE_TIMEOUT_S)),
        help="deadline for writes whose caller set none",
    )  # fmt: skip
    parser.add_argument(
        "--config-ttl-s", type=positive_float,
        default=env("config-ttl-s", str(CONFIG_TTL_S)),
        help="how long a collection's settings are cached",
    )  # fmt: skip
    parser.add_argument(
        "--hint-max-writes", type=positive_int,
        default=env("hint-max-writes", str(HintLimits.max_writes)),
        help="writes kept per unreachable replica for replay (beyond: left to anti-entropy)",
    )  # fmt: skip
    parser.add_argument(
        "--hint-max-age-s", type=positive_float,
        default=env("hint-max-age-s", str(HintLimits.max_age_s)),
        help="hints older than this are dropped (keep it below the shards' tombstone grace)",
    )  # fmt: skip
    parser.add_argument(
        "--etcd", default=env("etcd", ""),
        help="etcd endpoints (IP:PORT,... or one DNS name) holding the collection catalog;"
        " without it the shards' own lists are used (no single source of truth)",
    )  # fmt: skip
    parser.add_argument(
        "--api-keys-file", type=Path, default=env("api-keys-file"),
        help='JSON {"keys": [{"name", "sha256", "role", "collections"}]} (`shoal keys'
        " create` makes entries); read again when it changes. Without it the API takes"
        " calls without keys (a warning at start)",
    )  # fmt: skip
    add_limit_flags(parser, env)
    parser.add_argument(
        "--snapshot-location", default=env("snapshot-location", ""),
        help="where snapshots live: a directory, or s3://BUCKET/PREFIX (endpoint and"
        " credentials from boto3's usual sources, e.g. AWS_ENDPOINT_URL); empty: no snapshots",
    )  # fmt: skip
    staging = env("snapshot-staging", "")
    parser.add_argument(
        "--snapshot-staging", type=Path, default=Path(staging) if staging else None,
        help="local directory for a snapshot's files before they are stored, and for a"
        " restore's downloads (default: the system's temporary directory)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    return Settings(
        server=ServerSettings.from_args(args),
        topology=args.topology,
        embedder=args.embedder,
        coordinator_id=args.coordinator_id,
        read_timeout_s=args.read_timeout_s,
        write_timeout_s=args.write_timeout_s,
        config_ttl_s=args.config_ttl_s,
        hint_max_writes=args.hint_max_writes,
        hint_max_age_s=args.hint_max_age_s,
        etcd=tuple(e for e in args.etcd.split(",") if e.strip()),
        api_keys_file=args.api_keys_file,
        limits=limits_from_args(args),
        snapshot_location=args.snapshot_location,
        snapshot_staging=args.snapshot_staging,
    )
