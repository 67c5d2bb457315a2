"""The shard's command line; every flag also reads SHOAL_<FLAG_UPPER_SNAKE> as its default."""

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shard.core.search_plan import Strategy
from shoal.settings import (
    ServerSettings,
    add_server_flags,
    boolean,
    env,
    positive_float,
    positive_int,
)

DEFAULT_PORT = 50061


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    data_dir: Path
    threads: int
    sync_writes: bool
    checkpoint_every_writes: int
    checkpoint_interval_s: float
    filtered_search: Strategy = Strategy.AUTO


def default_threads() -> int:
    return max(4, 2 * (os.cpu_count() or 1))


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m shard", description="Shoal shard server: one replica of one shard group."
    )
    add_server_flags(parser, DEFAULT_PORT)
    data_dir = env("data-dir")
    parser.add_argument(
        "--data-dir", type=Path, default=data_dir, required=data_dir is None,
        help="collections live under DATA_DIR/collections",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=int(env("threads", "0") or 0),
        help=f"request worker threads (0: {default_threads()} on this machine)",
    )  # fmt: skip
    parser.add_argument(
        "--sync-writes", type=boolean, default=boolean(env("sync-writes", "false") or ""),
        help="fsync the WAL before acknowledging a write (survives power loss, slower)",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-every-writes", type=positive_int,
        default=int(env("checkpoint-every-writes", "20000") or 0),
        help="checkpoint a collection's index after this many new writes",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-interval-s", type=positive_float,
        default=float(env("checkpoint-interval-s", "60") or 0),
        help="checkpoint a collection's index when it has had new writes this long",
    )  # fmt: skip
    parser.add_argument(
        "--filtered-search", choices=[s.value for s in Strategy],
        default=env("filtered-search", Strategy.AUTO.value),
        help="how filtered searches run: auto (by selectivity), or always exact or graph"
        " (for tests and benchmarks)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error("--threads must be 0 (default) or positive")
    return Settings(
        server=ServerSettings.from_args(args),
        data_dir=args.data_dir,
        threads=args.threads or default_threads(),
        sync_writes=args.sync_writes,
        checkpoint_every_writes=args.checkpoint_every_writes,
        checkpoint_interval_s=args.checkpoint_interval_s,
        filtered_search=Strategy(args.filtered_search),
    )
