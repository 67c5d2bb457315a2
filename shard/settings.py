"""The shard's command line; every flag also reads SHOAL_<FLAG_UPPER_SNAKE> as its default."""

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shard.core.anti_entropy import AntiEntropySettings
from shard.core.search_plan import Strategy
from shard.core.tombstones import DEFAULT_GRACE_S, DEFAULT_PURGE_INTERVAL_S
from shoal.limits import WRITE_LIMITS, RequestLimits, add_limit_flags, limits_from_args
from shoal.runtime.settings import (
    ServerSettings,
    add_server_flags,
    boolean,
    env,
    positive_float,
    positive_int,
)
from shoal.runtime.tls import COORDINATOR_IDENTITY, SHARD_IDENTITY
from shoal.version_horizon import DEFAULT_MAX_CLOCK_SKEW_S

DEFAULT_PORT = 50061
#: RocksDB's memory (see shard.storage.document_store.StoreMemory): small, since the
#: indexes in memory answer searches and RocksDB is read for stored fields and loading.
DEFAULT_BLOCK_CACHE_MIB = 8
DEFAULT_WRITE_BUFFER_MIB = 4
DEFAULT_WRITE_BUFFERS = 2
#: glibc malloc arenas: its default (8 per core) lets every worker thread keep the
#: memory it freed; Python threads allocate under the GIL, so few arenas cost little.
DEFAULT_MALLOC_ARENAS = 2


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    data_dir: Path
    threads: int
    sync_writes: bool
    checkpoint_every_writes: int
    checkpoint_interval_s: float
    filtered_search: Strategy = Strategy.AUTO
    topology: Path | None = None
    advertise: str | None = None
    anti_entropy_interval_s: float = AntiEntropySettings.interval_s
    catch_up_wait_s: float = AntiEntropySettings.first_wait_s
    tombstone_grace_s: float = DEFAULT_GRACE_S
    tombstone_purge_interval_s: float = DEFAULT_PURGE_INTERVAL_S
    etcd: tuple[str, ...] = ()
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    rocksdb_block_cache_mib: int = DEFAULT_BLOCK_CACHE_MIB
    rocksdb_write_buffer_mib: int = DEFAULT_WRITE_BUFFER_MIB
    rocksdb_write_buffers: int = DEFAULT_WRITE_BUFFERS
    malloc_arenas: int = DEFAULT_MALLOC_ARENAS
    #: Sizes a Write's documents must keep, whoever sent it (at least the coordinators').
    limits: RequestLimits = field(default_factory=RequestLimits)


def default_threads() -> int:
    return max(4, 2 * (os.cpu_count() or 1))


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m shard", description="Shoal shard server: one replica of one shard group."
    )
    add_server_flags(parser, DEFAULT_PORT, [COORDINATOR_IDENTITY, SHARD_IDENTITY])
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
    parser.add_argument(
        "--etcd", default=env("etcd", ""),
        help="etcd endpoints (IP:PORT,... or one DNS name): the catalog this shard's"
        " collections follow; without it collections come from the coordinator alone",
    )  # fmt: skip
    parser.add_argument(
        "--topology", type=Path, default=env("topology"),
        help="the coordinator's topology JSON: this shard's peers are the other replicas of"
        " its group (read again when it changes); without it and without --etcd there is"
        " no catch-up; with --etcd the topology in etcd is followed and this file only"
        " stands in until etcd answers",
    )  # fmt: skip
    parser.add_argument(
        "--advertise", default=env("advertise"),
        help="HOST:PORT the topology lists this shard under (default: --host and the bound port)",
    )  # fmt: skip
    parser.add_argument(
        "--anti-entropy-interval-s", type=positive_float,
        default=env("anti-entropy-interval-s", str(AntiEntropySettings.interval_s)),
        help="seconds between comparisons with the peers (digests; copy what is newer there)",
    )  # fmt: skip
    parser.add_argument(
        "--catch-up-wait-s", type=positive_float,
        default=env("catch-up-wait-s", str(AntiEntropySettings.first_wait_s)),
        help="on start, how long to wait for a peer to catch up from before serving reads anyway",
    )  # fmt: skip
    parser.add_argument(
        "--tombstone-grace-s", type=positive_float,
        default=env("tombstone-grace-s", str(DEFAULT_GRACE_S)),
        help="keep deletes this long (a replica down longer must rejoin with an empty data dir)",
    )  # fmt: skip
    parser.add_argument(
        "--tombstone-purge-interval-s", type=positive_float,
        default=env("tombstone-purge-interval-s", str(DEFAULT_PURGE_INTERVAL_S)),
        help="seconds between purges of tombstones past the grace period",
    )  # fmt: skip
    parser.add_argument(
        "--max-clock-skew-s", type=positive_float,
        default=env("max-clock-skew-s", str(DEFAULT_MAX_CLOCK_SKEW_S)),
        help="refuse writes (and copies from peers) whose version is more than this far"
        " ahead of this shard's clock, so no version can pin a document forever; keep"
        " it above the clock skew between coordinators and shards",
    )  # fmt: skip
    parser.add_argument(
        "--rocksdb-block-cache-mib", type=positive_int,
        default=int(env("rocksdb-block-cache-mib", str(DEFAULT_BLOCK_CACHE_MIB)) or 0),
        help="RocksDB block cache (MiB), shared by every collection of this shard",
    )  # fmt: skip
    parser.add_argument(
        "--rocksdb-write-buffer-mib", type=positive_int,
        default=int(env("rocksdb-write-buffer-mib", str(DEFAULT_WRITE_BUFFER_MIB)) or 0),
        help="size of one RocksDB memtable (MiB), per collection",
    )  # fmt: skip
    parser.add_argument(
        "--rocksdb-write-buffers", type=positive_int,
        default=int(env("rocksdb-write-buffers", str(DEFAULT_WRITE_BUFFERS)) or 0),
        help="RocksDB memtables per collection at most (one filling, the others flushing)",
    )  # fmt: skip
    parser.add_argument(
        "--malloc-arenas", type=int,
        default=int(env("malloc-arenas", str(DEFAULT_MALLOC_ARENAS)) or 0),
        help="most glibc malloc arenas (0: glibc's default of 8 per core, which keeps more"
        " freed memory resident)",
    )  # fmt: skip
    # The same flags as the coordinator's: keep them at least as large here.
    add_limit_flags(parser, env, WRITE_LIMITS)
    args = parser.parse_args(argv)
    if args.malloc_arenas < 0:
        parser.error("--malloc-arenas must be 0 (glibc's default) or positive")
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
        topology=args.topology,
        etcd=tuple(e for e in args.etcd.split(",") if e.strip()),
        advertise=args.advertise,
        anti_entropy_interval_s=args.anti_entropy_interval_s,
        catch_up_wait_s=args.catch_up_wait_s,
        tombstone_grace_s=args.tombstone_grace_s,
        tombstone_purge_interval_s=args.tombstone_purge_interval_s,
        max_clock_skew_s=args.max_clock_skew_s,
        rocksdb_block_cache_mib=args.rocksdb_block_cache_mib,
        rocksdb_write_buffer_mib=args.rocksdb_write_buffer_mib,
        rocksdb_write_buffers=args.rocksdb_write_buffers,
        malloc_arenas=args.malloc_arenas,
        limits=limits_from_args(args),
    )
