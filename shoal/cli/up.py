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
            secure=args.secure,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    cluster = LocalCluster(root, spec)

    def when_serving() -> None:
        print(f"Shoal is serving at {cluster.address}", flush=True)
        ca = cluster.pki.ca if cluster.pki is not None else None
        if args.secure:
            print(how_to_connect(cluster.address, ca, api_key, root / "api-keys.json"), flush=True)
        if args.demo:
            with Client(cluster.address, timeout=120, api_key=api_key, ca_file=ca) as client:
                load_demo(client, args.model)
            tls_flag = f" --ca-file {ca}" if ca is not None else ""
            print(
                f"\ntry: shoal --address {cluster.address}{tls_flag} search demo"
                " --text 'audio editor'"
            )

    print(
        f"starting {args.groups} shard groups x {args.replicas} replicas, "
        f"embedder ({args.model}) and coordinator; data in {cluster.root}",
        flush=True,
    )
    try:
        run_until_stopped(cluster, when_serving)
    except ClusterError as error:
        raise SystemExit(f"error: {error}") from None


def how_to_connect(address: str, ca: Path | None, api_key: str | None, keys_file: Path) -> str:
    """What `shoal up --secure` prints: where the CA is, the admin key, and how
    clients use them."""
    lines = []
    if ca is not None:
        lines += [
            f"TLS: the coordinator's certificate is signed by the local CA {ca};",
            "the shards and the embedder accept only certificates of that CA (mTLS).",
        ]
    if api_key is not None:
        lines += [
            f"API keys are required (keys file {keys_file}); admin key:",
            f"  {api_key}",
            "more keys: shoal keys create --role read",
        ]
    lines += ["connect with:", f"  export SHOAL_ADDRESS={address}"]
    lines += [f"  export SHOAL_CA_FILE={ca}"] if ca is not None else []
    lines += [f"  export SHOAL_API_KEY={api_key}"] if api_key is not None else []
    lines += [
        "  shoal list       # or: shoal --address HOST:PORT --ca-file CA --api-key KEY list",
        "  shoal.Client(address, ca_file=..., api_key=...)  # or from the same variables",
    ]
    return "\n".join(lines)


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
        "--secure", action="store_true",
        help="TLS on the coordinator and mTLS between the services, with a local CA and"
        " certificates made in DATA_DIR/tls (kept for the next start), and API keys: a new"
        " admin key in DATA_DIR/api-keys.json (hashed); prints how to connect",
    )  # fmt: skip
    up.add_argument(
        "--metrics-port-base", type=int, default=0,
        help="Prometheus /metrics on consecutive ports from here: coordinator, embedder,"
        " shards (0: off)",
    )  # fmt: skip
    up.set_defaults(run=cmd_up)
