"""`shoal topology add-group | plan | rebalance | moves | cancel | remove-group`:
growing and shrinking the cluster with partition moves that copy the data."""

import argparse
import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from shoal.cli import output as out
from shoal.cli.options import address, command, print_json
from shoal.moves import FINAL, PlannedMove
from shoal.sdk.client import Client
from shoal.v1 import shoal_pb2

#: How often `--wait` asks for progress.
POLL_S = 1.0


def _plan_rows(plan: Sequence[PlannedMove]) -> list[dict[str, int]]:
    return [{"partition": m.partition, "from": m.source, "to": m.target} for m in plan]


def _print_plan(args: argparse.Namespace, plan: Sequence[PlannedMove]) -> None:
    if args.json:
        print_json(_plan_rows(plan))
    elif not plan:
        print("the partitions are spread evenly already: nothing to move")
    else:
        out.print_table(
            ["partition", "from group", "to group"],
            [[str(m.partition), str(m.source), str(m.target)] for m in plan],
        )
        print(f"{out.count_of(len(plan), 'move')}, one partition (of every collection) each")


def cmd_add_group(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        topology = client.add_group(args.replicas)
    print(
        f"shard group {len(topology.groups) - 1} added at topology version {topology.version};"
        " it owns nothing until `shoal topology rebalance`"
    )


def cmd_remove_group(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        topology = client.remove_group(args.group)
    print(f"shard group {args.group} removed at topology version {topology.version}")


def cmd_add_replica(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        topology = client.add_replica(args.group, args.replica)
    print(
        f"{args.replica} added to shard group {args.group} at topology version"
        f" {topology.version}: start it now; it catches up before it serves reads"
    )


def cmd_replace_replica(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        topology = client.replace_replica(args.old, args.new)
    print(
        f"{args.new} replaces {args.old} at topology version {topology.version}: start it"
        " now (it catches up before it serves reads), then stop the old one"
    )


def cmd_remove_replica(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        topology = client.remove_replica(args.replica)
    print(f"{args.replica} removed at topology version {topology.version}")


def cmd_plan(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        _print_plan(args, client.plan_rebalance(args.drain))


def cmd_rebalance(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        plan = client.plan_rebalance(args.drain)
        _print_plan(args, plan)
        if not plan:
            return
        started = client.start_moves(plan)
        if not args.json:
            print(f"started {out.count_of(len(started), 'move')}")
        if args.wait:
            _follow(client, {status.id for status in started}, args.json)


def cmd_moves(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        statuses = client.moves(forget_finished=args.forget_finished)
        if args.wait:
            _follow(client, {s.id for s in statuses if s.phase not in FINAL}, args.json)
            return
    if args.json:
        print_json([out.message_dict(status) for status in statuses])
    elif not statuses:
        print("no partition moves")
    else:
        out.print_table(
            ["id", "partition", "from", "to", "phase", "copied", "MB", "error"],
            [_row(status) for status in statuses],
        )


def _row(status: shoal_pb2.PartitionMoveStatus) -> list[str]:
    return [
        status.id,
        str(status.move.partition),
        str(status.move.source),
        str(status.move.target),
        status.phase + (" (cancel asked)" if status.cancel and status.phase not in FINAL else ""),
        str(status.copied),
        f"{status.copied_bytes / 1e6:.1f}",
        status.error,
    ]


def cmd_cancel(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        cancelled = client.cancel_moves()
    print(
        f"asked {out.count_of(len(cancelled), 'move')} to stop: those before their switch"
        " roll back, the others finish"
    )


def _follow(client: Client, ids: set[str], as_json: bool) -> None:
    """A progress bar (moves finished of all, documents copied, ETA) until every
    move in `ids` has finished; Ctrl-C leaves them running."""
    if not ids:
        return
    bar = tqdm(total=len(ids), unit="move", disable=as_json)
    started = time.monotonic()
    try:
        while True:
            mine = [s for s in client.moves() if s.id in ids]
            finished = sum(s.phase in FINAL for s in mine)
            copied = sum(s.copied for s in mine)
            megabytes = sum(s.copied_bytes for s in mine) / 1e6
            bar.n = finished
            running = [s for s in mine if s.phase not in FINAL]
            now = running[0] if running else None
            bar.set_postfix_str(
                f"{copied} records, {megabytes:.1f} MB"
                + (f"; partition {now.move.partition}: {now.phase}" if now else "")
                + (f"; retrying: {now.error}" if now and now.error else "")
            )
            bar.refresh()
            if finished == len(ids) or not mine:
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        print("\nthe moves go on; `shoal topology moves` shows them, `shoal topology cancel` stops")
        raise SystemExit(130) from None
    finally:
        bar.close()
    outcome: dict[str, Any] = {
        "moves": len(mine),
        "done": sum(s.phase == "done" for s in mine),
        "cancelled": sum(s.phase == "cancelled" for s in mine),
        "records_copied": sum(s.copied for s in mine),
        "seconds": round(time.monotonic() - started, 1),
    }
    if as_json:
        print_json(outcome)
    else:
        print(", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in outcome.items()))


def add_move_commands(actions: Any) -> None:
    add = command(actions, "add-group", "add an empty shard group (its replicas running)")
    add.add_argument("replicas", nargs="+", help="HOST:PORT of each replica of the new group")
    add.set_defaults(run=cmd_add_group)
    remove = command(
        actions, "remove-group", "take a drained shard group out (see rebalance --drain)"
    )
    remove.add_argument("group", type=int, help="the group number")
    remove.set_defaults(run=cmd_remove_group)
    add_replica = command(actions, "add-replica", "one more replica for a shard group")
    add_replica.add_argument("group", type=int)
    add_replica.add_argument("replica", help="HOST:PORT (start it after this)")
    add_replica.set_defaults(run=cmd_add_replica)
    replace_replica = command(actions, "replace-replica", "a new replica in an old one's place")
    replace_replica.add_argument("old", help="HOST:PORT now in the topology")
    replace_replica.add_argument("new", help="HOST:PORT (start it after this)")
    replace_replica.set_defaults(run=cmd_replace_replica)
    remove_replica = command(actions, "remove-replica", "take a replica out of its group")
    remove_replica.add_argument("replica", help="HOST:PORT")
    remove_replica.set_defaults(run=cmd_remove_replica)
    for name, help_text, run in (
        ("plan", "show the partition moves a rebalance would make", cmd_plan),
        ("rebalance", "move partitions (copying their data) to even out the groups", cmd_rebalance),
    ):
        action = command(actions, name, help_text)
        action.add_argument(
            "--drain",
            type=int,
            action="append",
            default=[],
            metavar="GROUP",
            help="move every partition off this group (repeatable)",
        )
        if name == "rebalance":
            action.add_argument(
                "--wait", action="store_true", help="show a progress bar until the moves end"
            )
        action.set_defaults(run=run)
    moves = command(actions, "moves", "partition moves: phase, records copied, errors")
    moves.add_argument("--wait", action="store_true", help="progress bar until they end")
    moves.add_argument(
        "--forget-finished", action="store_true", help="then drop finished moves' records"
    )
    moves.set_defaults(run=cmd_moves)
    command(actions, "cancel", "stop the unfinished partition moves").set_defaults(run=cmd_cancel)
