"""The shard's command line; every flag also reads SHOAL_<FLAG_UPPER_SNAKE> as its default."""

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 7001


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    port_file: Path | None
    data_dir: Path
    threads: int
    sync_writes: bool
    checkpoint_every_writes: int
    checkpoint_interval_s: float


def _env(flag: str, default: str | None = None) -> str | None:
    return os.environ.get("SHOAL_" + flag.upper().replace("-", "_"), default)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean")


def default_threads() -> int:
    return max(4, 2 * (os.cpu_count() or 1))


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m shard", description="Shoal shard server: one replica of one shard group."
    )
    parser.add_argument("--host", default=_env("host", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(_env("port", str(DEFAULT_PORT)) or 0))
    parser.add_argument(
        "--port-file", type=Path, default=_env("port-file"), help="write the bound port here"
    )
    data_dir = _env("data-dir")
    parser.add_argument(
        "--data-dir", type=Path, default=data_dir, required=data_dir is None,
        help="collections live under DATA_DIR/collections",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=int(_env("threads", "0") or 0),
        help=f"request worker threads (0: {default_threads()} on this machine)",
    )  # fmt: skip
    parser.add_argument(
        "--sync-writes", type=_bool, default=_bool(_env("sync-writes", "false") or ""),
        help="fsync the WAL before acknowledging a write (survives power loss, slower)",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-every-writes", type=_positive_int,
        default=int(_env("checkpoint-every-writes", "20000") or 0),
        help="checkpoint a collection's index after this many new writes",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-interval-s", type=_positive_float,
        default=float(_env("checkpoint-interval-s", "60") or 0),
        help="checkpoint a collection's index when it has had new writes this long",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error("--threads must be 0 (default) or positive")
    return Settings(
        host=args.host,
        port=args.port,
        port_file=args.port_file,
        data_dir=args.data_dir,
        threads=args.threads or default_threads(),
        sync_writes=args.sync_writes,
        checkpoint_every_writes=args.checkpoint_every_writes,
        checkpoint_interval_s=args.checkpoint_interval_s,
    )
