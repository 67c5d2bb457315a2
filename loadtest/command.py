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
    python -m loadtest --config loadtest/ghz/search_text.json --total 500 -o report.json
"""

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.calls import builtin_method, reflected_method
from loadtest.config import (
    ADDRESS_ENV,
    DEFAULT_CONCURRENCY,
    DEFAULT_HOST,
    DEFAULT_MAX_RUN_S,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOTAL,
    LoadConfig,
    LoadTestError,
    load_config,
    parse_duration,
)
from loadtest.runner import run
from shoal.runtime.help_format import HelpFormatter

#: The SDK's TLS variables (shoal.sdk.channel), read here too.
CA_FILE_ENV = "SHOAL_CA_FILE"
CERT_ENV = "SHOAL_CLIENT_CERT"
KEY_ENV = "SHOAL_CLIENT_KEY"
NAME_ENV = "SHOAL_SERVER_NAME"


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
        # TLS: ghz's flags, else `shoal`'s global ones, else their SHOAL_ variables.
        "cacert": args.cacert or getattr(args, "ca_file", None) or os.environ.get(CA_FILE_ENV),
        "cert": args.cert or getattr(args, "client_cert", None) or os.environ.get(CERT_ENV),
        "key": args.key or getattr(args, "client_key", None) or os.environ.get(KEY_ENV),
        "cname": args.cname or getattr(args, "server_name", None) or os.environ.get(NAME_ENV),
    }


def target_host(args: argparse.Namespace) -> str | None:
    """--host, else `shoal --address`, else SHOAL_ADDRESS; None: the config's host."""
    return args.host or getattr(args, "address", None) or os.environ.get(ADDRESS_ENV) or None


def add_api_key(metadata: dict[str, str], api_key: str | None) -> None:
    """`shoal --api-key`, else SHOAL_API_KEY, as every call's `authorization`, unless
    the config's own metadata sets one (ghz configs take `"metadata"` the same way)."""
    key = api_key or os.environ.get("SHOAL_API_KEY")
    if key and not {"authorization", "api-key"} & set(metadata):
        metadata["authorization"] = f"Bearer {key}"


def add_reflection_key(config: LoadConfig) -> None:
    """Reflection follows the API's keys: without its own reflect-metadata, the
    reflection calls carry the key the calls carry (from --api-key, SHOAL_API_KEY
    or the config's metadata)."""
    if config.reflect_metadata:
        return
    config.reflect_metadata.update(
        (name, value)
        for name, value in config.metadata.items()
        if name in {"authorization", "api-key"} and "{{" not in value
    )


def cmd_loadtest(args: argparse.Namespace) -> None:
    overrides = _overrides(args)
    overrides["host"] = target_host(args)
    as_json = bool(getattr(args, "json", False))
    try:
        config = load_config(Path(args.config), overrides)
        config.host = config.host or DEFAULT_HOST
        add_api_key(config.metadata, getattr(args, "api_key", None))
        add_reflection_key(config)
        config.check()
        if args.reflection:
            method = reflected_method(
                config.call,
                config.host,
                config.connect_timeout_s,
                config.tls,
                tuple(config.reflect_metadata.items()),
            )
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
    """The options of `shoal loadtest` and `python -m loadtest` (not --json, --address)."""
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
    tls = parser.add_argument_group("TLS (as ghz's flags; any of them turns TLS on)")
    tls.add_argument(
        "--cacert", help=f"the CA of the server's certificate (default: ${CA_FILE_ENV})"
    )
    tls.add_argument("--cert", help=f"client certificate (default: ${CERT_ENV})")
    tls.add_argument("--key", help=f"key of --cert (default: ${KEY_ENV})")
    tls.add_argument(
        "--cname", help=f"the name the server's certificate carries (default: ${NAME_ENV})"
    )
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
        prog="python -m loadtest",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=f"environment:\n  {ADDRESS_ENV}  HOST:PORT to call where --host is not given",
    )
    configure_parser(parser)
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    args = parser.parse_args(argv)
    args.run(args)
