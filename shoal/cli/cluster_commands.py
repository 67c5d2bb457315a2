"""`shoal cluster | verify | topology | loadtest`: the cluster as a whole."""

import argparse
import json
from pathlib import Path
from typing import Any

from loadtest import command as loadtest
from shoal.cli import output as out
from shoal.cli.move_commands import add_move_commands
from shoal.cli.options import ENVIRONMENT, command, connect, global_options, print_json
from shoal.topology import Topology, TopologyError


def cmd_verify(args: argparse.Namespace) -> None:
    """One report per collection; exits 2 when replicas still differ afterwards, or
    some could not be compared (unreachable)."""
    with connect(args, args.timeout) as client:
        names = (
            [args.collection]
            if args.collection
            else [collection.name for collection in client.list_collections()]
        )
        reports = {name: client.verify_replicas(name, args.repair) for name in names}
    if args.json:
        print_json({name: out.message_dict(report) for name, report in reports.items()})
    elif not reports:
        print("no collections")
    else:
        for name, report in reports.items():
            out.print_verify(name, report)
    if any(out.verify_failed(report) for report in reports.values()):
        raise SystemExit(2)


def cmd_cluster(args: argparse.Namespace) -> None:
    with connect(args) as client:
        info = client.cluster_info()
    if args.json:
        print_json(out.message_dict(info))
    else:
        out.print_cluster(info)


def _topology_dict(topology: Topology) -> dict[str, Any]:
    """The topology file's form (what `shoal topology set` reads back)."""
    return {"partition_groups": {}, **topology.to_dict()}


def cmd_topology_show(args: argparse.Namespace) -> None:
    with connect(args) as client:
        topology = client.get_topology()
    if args.json:
        print_json(_topology_dict(topology))
    else:
        out.print_topology(topology)


def _topology_file(path: Path) -> tuple[Topology, int]:
    """A topology from a file (as `topology show --json` prints it, or topology.json)
    and the version it says it was edited from."""
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("topology"), dict):
            data = data["topology"]
        return Topology.from_dict(data), int(data.get("version", 0))
    except (OSError, ValueError, TopologyError) as error:
        raise SystemExit(f"error: cannot use topology {path}: {error}") from None


def cmd_topology_set(args: argparse.Namespace) -> None:
    topology, edited_from = _topology_file(Path(args.file))
    expected = args.expected_version if args.expected_version is not None else edited_from
    if not expected:
        raise SystemExit(
            f"error: {args.file} has no version: give --expected-version (shoal topology show)"
        )
    with connect(args) as client:
        updated = client.update_topology(topology, expected)
    _print_topology_change(args, updated, f"topology version {updated.version} stored")


def cmd_topology_move(args: argparse.Namespace) -> None:
    with connect(args) as client:
        updated = client.move_partition(args.partition, args.group)
    _print_topology_change(
        args,
        updated,
        f"partition {args.partition} belongs to shard group {args.group}"
        f" as of topology version {updated.version}",
    )


def _print_topology_change(args: argparse.Namespace, topology: Topology, summary: str) -> None:
    if args.json:
        print_json(_topology_dict(topology))
        return
    print(f"{summary}; routing follows at once, stored documents do not move")
    out.print_topology(topology)


def add_cluster_commands(commands: Any) -> None:
    command(commands, "cluster", "shard groups, replicas, health, document counts").set_defaults(
        run=cmd_cluster
    )
    verify = command(
        commands,
        "verify",
        "compare the replicas of every shard group (exit 2: they differ or one is down)",
    )
    verify.add_argument("--collection", help="only this collection (default: all)")
    verify.add_argument(
        "--repair", action="store_true", help="copy the newest version to replicas behind"
    )
    verify.add_argument("--timeout", type=float, default=300.0, help="seconds per collection")
    verify.set_defaults(run=cmd_verify)
    add_topology_commands(commands)
    loadtest.add_parser(
        commands,
        parents=[global_options(subcommand=True, json_help=loadtest.JSON_HELP)],
        epilog=ENVIRONMENT,
    )


def add_topology_commands(commands: Any) -> None:
    topology = command(
        commands,
        "topology",
        "show or change the partition -> shard group -> replica map (in etcd)",
    )
    actions = topology.add_subparsers(
        dest="topology_command",
        required=True,
        metavar="ACTION",
        help="show, set, move (routing only), add-group, plan, rebalance, moves, cancel,"
        " remove-group",
    )
    command(actions, "show", "the topology the coordinator routes with").set_defaults(
        run=cmd_topology_show
    )
    put = command(
        actions,
        "set",
        "store a new topology (groups, replicas, partition_groups) from a JSON file;"
        " fails if the topology changed since the version it was edited from",
    )
    put.add_argument("file", help="JSON as `shoal topology show --json` prints it")
    put.add_argument(
        "--expected-version",
        type=int,
        help="the version the change is made from (default: the file's version)",
    )
    put.set_defaults(run=cmd_topology_set)
    move = command(
        actions, "move", "route a partition (of every collection) to another shard group"
    )
    move.add_argument("partition", type=int, help="the partition number")
    move.add_argument("group", type=int, help="the shard group that owns it from now on")
    move.set_defaults(run=cmd_topology_move)
    add_move_commands(actions)
