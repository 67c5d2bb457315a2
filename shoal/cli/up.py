"""`shoal up`: run a local cluster until Ctrl-C (see shoal.cli.local_cluster)."""

import argparse
import json
from pathlib import Path
from typing import Any

from shoal.access import Role
from shoal.api_keys import KeysFileError, generate_key, key_entry, parse_keys
from shoal.cli.demo import load_demo
from shoal.cli.local_cluster import (
    DEFAULT_MODEL,
    ClusterSpec,
    LocalCluster,
    run_until_stopped,
)
from shoal.cli.options import command
from shoal.cli.service_process import ClusterError
from shoal.runtime.settings import positive_int
from shoal.sdk.client import Client

ADMIN_KEY_NAME = "shoal-up-admin"


def write_admin_key(root: Path) -> tuple[str, Path]:
    """A new admin key for `--secure`, in ROOT/api-keys.json (hashed, owner-only).

    Each start replaces the key it made before, so an old printed key stops
    working; entries added by hand (`shoal keys create`) stay.
    """
    key = generate_key()
    root.mkdir(parents=True, exist_ok=True)
    path = root / "api-keys.json"
    kept: list[dict[str, object]] = []
    if path.exists():
        parse_keys(path.read_text())  # a broken file is an error, not something to overwrite
        entries = json.loads(path.read_text())["keys"]
        kept = [entry for entry in entries if entry.get("name") != ADMIN_KEY_NAME]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"keys": [*kept, key_entry(key, ADMIN_KEY_NAME, Role.ADMIN)]}, indent=1) + "\n"
    )
    tmp.chmod(0o600)
    tmp.replace(path)
    return key, path


def cmd_up(args: argparse.Namespace) -> None:
    root = Path(args.data_dir).resolve()
    api_key: str | None = None
    coordinator_args: tuple[str, ...] = ()
    if args.secure:
        try:
            api_key, keys_path = write_admin_key(root)
        except (OSError, KeysFileError) as error:
            raise SystemExit(f"error: {root / 'api-keys.json'}: {error}") from None
        coordinator_args = ("--api-keys-file", str(keys_path))
    try:
        spec = ClusterSpec(
            groups=args.groups,
            replicas=args.replicas,
            model=args.model,
            host=args.host,
            coordinator_port=args.port if args.base_port is None else 0,
            base_port=args.base_port,
            embedder_threads=args.embedder_threads,
            metrics_port_base=args.metrics_port_base,
            coordinator_args=coordinator_args,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    cluster = LocalCluster(root, spec)

    def when_serving() -> None:
        print(f"Shoal is serving at {cluster.address}", flush=True)
        if api_key is not None:
            print(
                f"API keys are required (keys file {root / 'api-keys.json'}); admin key:\n"
                f"  {api_key}\n"
                f"connect: export SHOAL_API_KEY={api_key}  (or shoal --api-key,"
                " shoal.Client(api_key=...)); more keys: shoal keys create --role read",
                flush=True,
            )
        if args.demo:
            with Client(cluster.address, timeout=120, api_key=api_key) as client:
                load_demo(client, args.model)
            print(f"\ntry: shoal --address {cluster.address} search demo --text 'audio editor'")

    print(
        f"starting {args.groups} shard groups x {args.replicas} replicas, "
        f"embedder ({args.model}) and coordinator; data in {cluster.root}",
        flush=True,
    )
    try:
        run_until_stopped(cluster, when_serving)
    except ClusterError as error:
        raise SystemExit(f"error: {error}") from None


def add_up_command(commands: Any) -> None:
    up = command(commands, "up", "run a local cluster until Ctrl-C", client=False)
    up.add_argument("--data-dir", default="shoal-data", help="where all data, logs live")
    up.add_argument("--groups", type=int, default=2, help="shard groups")
    up.add_argument("--replicas", type=int, default=2, help="replicas per shard group")
    up.add_argument("--host", default="127.0.0.1", help="the address every service binds")
    ports = up.add_mutually_exclusive_group()
    ports.add_argument("--port", type=int, default=50051, help="coordinator port")
    ports.add_argument(
        "--base-port", type=int,
        help="fixed ports for every service: coordinator BASE, embedder BASE+1, shards"
        " BASE+2... group by group (default: the coordinator --port, the rest any free port)",
    )  # fmt: skip
    up.add_argument(
        "--embedder-threads", type=positive_int,
        help="torch threads for the embedder (default: every CPU it may use)",
    )  # fmt: skip
    up.add_argument("--model", default=DEFAULT_MODEL, help="embedder model")
    up.add_argument("--demo", action="store_true", help="load the demo collection")
    up.add_argument(
        "--metrics-port-base", type=int, default=0,
        help="Prometheus /metrics on consecutive ports from here: coordinator, embedder,"
        " shards (0: off)",
    )  # fmt: skip
    up.add_argument(
        "--secure", action="store_true",
        help="require API keys: write a new admin key to DATA_DIR/api-keys.json (hashed)"
        " and print it",
    )  # fmt: skip
    up.set_defaults(run=cmd_up)
