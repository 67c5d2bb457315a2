"""The `shoal` command: run a local cluster, manage collections, import, search, export.

Every command that prints data prints a table or a sentence, or JSON with
--json (shoal.cli.output says how). --address and --json may come before or
after the command's name.
"""

import argparse
import sys
from collections.abc import Sequence

from shoal.cli.cluster_commands import add_cluster_commands
from shoal.cli.collection_commands import add_collection_commands
from shoal.cli.document_commands import add_document_commands
from shoal.cli.key_commands import add_key_commands
from shoal.cli.options import ENVIRONMENT, global_options, version
from shoal.cli.snapshot_commands import add_snapshot_commands
from shoal.cli.transfer_commands import add_transfer_commands
from shoal.cli.up import add_up_command
from shoal.errors import ShoalError
from shoal.runtime.help_format import HelpFormatter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal",
        description=__doc__,
        parents=[global_options(subcommand=False)],
        formatter_class=HelpFormatter,
        epilog=ENVIRONMENT,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_up_command(commands)
    add_collection_commands(commands)
    add_document_commands(commands)
    add_transfer_commands(commands)
    add_cluster_commands(commands)
    add_key_commands(commands)
    add_snapshot_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ShoalError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except BrokenPipeError:  # `shoal scroll ... | head`: the reader has what it wanted
        sys.stderr.close()
