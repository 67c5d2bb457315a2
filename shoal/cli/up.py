"""`shoal up`: run a local cluster until Ctrl-C (see shoal.cli.local_cluster)."""

import argparse
from pathlib import Path
from typing import Any

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


def cmd_up(args: argparse.Namespace) -> None:
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
            secure=args.secure,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    cluster = LocalCluster(Path(args.data_dir).resolve(), spec)

    def when_serving() -> None:
        print(f"Shoal is serving at {cluster.address}", flush=True)
        ca = cluster.pki.ca if cluster.pki is not None else None
        if ca is not None:
            print(how_to_connect(cluster.address, ca), flush=True)
        if args.demo:
            with Client(cluster.address, timeout=120, ca_file=ca) as client:
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


def how_to_connect(address: str, ca: Path) -> str:
    """What `shoal up --secure` prints: where the CA is and how clients use it.

    (API keys, when `--secure` makes an admin key, are printed here too.)
    """
    return "\n".join(
        [
            f"TLS: the coordinator's certificate is signed by the local CA {ca};",
            "the shards and the embedder accept only certificates of that CA (mTLS).",
            "connect with:",
            f"  export SHOAL_ADDRESS={address} SHOAL_CA_FILE={ca}",
            "  shoal list               # or: shoal --ca-file CA --address HOST:PORT list",
            f"  shoal.Client('{address}', ca_file='{ca}')",
        ]
    )


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
        " certificates made in DATA_DIR/tls (kept for the next start); prints how to connect",
    )  # fmt: skip
    up.add_argument(
        "--metrics-port-base", type=int, default=0,
        help="Prometheus /metrics on consecutive ports from here: coordinator, embedder,"
        " shards (0: off)",
    )  # fmt: skip
    up.set_defaults(run=cmd_up)
