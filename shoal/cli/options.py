"""What every `shoal` command shares: the global options (--address, --api-key,
--json), how a command's parser is made, the client it calls with, and how
results are printed as JSON.

--address, --api-key and --json may come before or after the command's name.
"""

import argparse
import json
import os
from importlib import metadata
from typing import Any

from shoal.runtime.help_format import HelpFormatter
from shoal.runtime.tls import ClientTls
from shoal.sdk.channel import (
    API_KEY_ENV,
    CA_FILE_ENV,
    CLIENT_CERT_ENV,
    CLIENT_KEY_ENV,
    DEFAULT_TIMEOUT,
    SERVER_NAME_ENV,
    TLS_ENV,
    client_tls,
)
from shoal.sdk.client import DEFAULT_ADDRESS, Client

ADDRESS_ENV = "SHOAL_ADDRESS"

JSON_HELP = "print JSON (snake_case keys, numbers as numbers) instead of tables and text"
ENVIRONMENT = f"""\
environment:
  {ADDRESS_ENV}   the coordinator's HOST:PORT where --address is not given
                  (else {DEFAULT_ADDRESS}); `shoal loadtest` calls it instead of a
                  config's host
  {API_KEY_ENV}   the API key where --api-key is not given (clusters with
                  --api-keys-file)
  {CA_FILE_ENV}, {CLIENT_CERT_ENV}, {CLIENT_KEY_ENV}, {SERVER_NAME_ENV}, {TLS_ENV}
                  TLS to the coordinator where --ca-file, --client-cert,
                  --client-key, --server-name, --tls are not given
  SHOAL_<FLAG>    `shoal up` passes its environment to the services it starts, so
                  their SHOAL_ variables apply there (e.g. SHOAL_LOG_FORMAT=json;
                  `python -m shard --help` lists a service's), except for the
                  flags `shoal up` sets itself
  NO_COLOR        tables without colour, even on a terminal
"""


def version() -> str:
    try:
        return metadata.version("shoal")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def address(args: argparse.Namespace) -> str:
    """--address, else SHOAL_ADDRESS, else the local default."""
    return str(args.address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS)


def tls(args: argparse.Namespace) -> ClientTls | None:
    """TLS from --ca-file, --client-cert, --client-key, --server-name and --tls, else
    their SHOAL_ variables; None: plaintext."""
    return client_tls(
        getattr(args, "ca_file", None),
        getattr(args, "client_cert", None),
        getattr(args, "client_key", None),
        getattr(args, "server_name", None),
        getattr(args, "tls", None) or None,
    )


def connect(args: argparse.Namespace, timeout: float | None = None) -> Client:
    """A client of the coordinator the global options name, over TLS where they say
    so, with --api-key (else SHOAL_API_KEY)."""
    found = tls(args)
    return Client(
        address(args),
        DEFAULT_TIMEOUT if timeout is None else timeout,
        api_key=getattr(args, "api_key", None),
        ca_file=found.ca if found else None,
        cert_file=found.cert if found else None,
        key_file=found.key if found else None,
        server_name=found.server_name if found else None,
        tls=found is not None,
    )


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def global_options(subcommand: bool, json_help: str = JSON_HELP) -> argparse.ArgumentParser:
    """--address, --api-key and --json, for the top level and again for each command.

    On a command their defaults are SUPPRESS, so a value given before the
    command's name is kept unless it is given again after it.
    """
    unset: Any = argparse.SUPPRESS if subcommand else None
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--address",
        default=unset,
        metavar="HOST:PORT",
        help=f"the coordinator (default: ${ADDRESS_ENV}, else {DEFAULT_ADDRESS})",
    )
    group.add_argument(
        "--api-key",
        default=unset,
        metavar="KEY",
        help=f"the API key sent with every call (default: ${API_KEY_ENV})",
    )
    group.add_argument(
        "--ca-file", default=unset, metavar="PEM",
        help=f"TLS: the CA that signed the coordinator's certificate (default: ${CA_FILE_ENV})",
    )  # fmt: skip
    group.add_argument(
        "--client-cert", default=unset, metavar="PEM",
        help=f"TLS: a client certificate, where the server asks for one (${CLIENT_CERT_ENV})",
    )  # fmt: skip
    group.add_argument(
        "--client-key", default=unset, metavar="PEM",
        help=f"TLS: the key of --client-cert (${CLIENT_KEY_ENV})",
    )  # fmt: skip
    group.add_argument(
        "--server-name", default=unset,
        help="TLS: the name the coordinator's certificate carries, if not the address's host"
        f" (${SERVER_NAME_ENV})",
    )  # fmt: skip
    group.add_argument(
        "--tls", action="store_true", default=argparse.SUPPRESS if subcommand else False,
        help=f"TLS checked against the system's CAs, without --ca-file (${TLS_ENV}=1)",
    )  # fmt: skip
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if subcommand else False,
        help=json_help,
    )
    return options


def command(
    commands: Any, name: str, help_text: str, *, client: bool = True
) -> argparse.ArgumentParser:
    """A command's parser; `client` commands call a coordinator, so take the global options."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        parents=[global_options(subcommand=True)] if client else [],
        formatter_class=HelpFormatter,
        epilog=ENVIRONMENT,
    )
    return parser
