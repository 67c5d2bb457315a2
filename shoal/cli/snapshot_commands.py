"""`shoal snapshot create | list | delete | restore`: consistent snapshots in the
coordinator's snapshot location (see docs/snapshots.md), with progress bars."""

import argparse
import sys
from dataclasses import asdict
from typing import Any

from tqdm import tqdm

from shoal.cli import output as out
from shoal.cli.options import command, connect, print_json
from shoal.sdk.snapshots import Snapshot, SnapshotProgress


class _Bar:
    """One tqdm bar per phase, on stderr (stdout stays the result); off with --json."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None
        self._phase = ""

    def __call__(self, progress: SnapshotProgress) -> None:
        if not self._enabled:
            return
        if progress.phase != self._phase:
            self.close()
            self._phase = progress.phase
            self._bar = tqdm(
                total=progress.total_documents or None,
                unit="doc",
                desc=progress.phase,
                file=sys.stderr,
            )
        if progress.total_documents and self._bar.total != progress.total_documents:
            self._bar.total = progress.total_documents
        self._bar.update(progress.documents - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _summary(snapshot: Snapshot) -> str:
    documents = sum(c.documents for c in snapshot.collections)
    names = ", ".join(c.name for c in snapshot.collections)
    return (
        f"snapshot {snapshot.name}: {documents} documents of {names} at cut {snapshot.cut}"
        f" ({snapshot.bytes} bytes, {snapshot.created_at})"
    )


def cmd_create(args: argparse.Namespace) -> None:
    bar = _Bar(not args.json)
    try:
        with connect(args) as client:
            snapshot = client.create_snapshot(args.name or "", args.collection or (), bar)
    finally:
        bar.close()
    print_json(asdict(snapshot)) if args.json else print(_summary(snapshot))


def cmd_list(args: argparse.Namespace) -> None:
    with connect(args) as client:
        snapshots = client.list_snapshots()
    if args.json:
        print_json([asdict(s) for s in snapshots])
        return
    if not snapshots:
        print("no snapshots")
        return
    out.print_table(
        ["name", "created", "cut", "collections", "documents", "bytes"],
        [
            [
                s.name,
                s.created_at,
                str(s.cut),
                ", ".join(c.name for c in s.collections),
                str(sum(c.documents for c in s.collections)),
                str(s.bytes),
            ]
            for s in snapshots
        ],
    )


def cmd_delete(args: argparse.Namespace) -> None:
    with connect(args) as client:
        deleted = client.delete_snapshot(args.name)
    if args.json:
        print_json({"deleted": deleted})
    else:
        print(f"snapshot {args.name} deleted" if deleted else f"no snapshot {args.name}")


def cmd_restore(args: argparse.Namespace) -> None:
    bar = _Bar(not args.json)
    try:
        with connect(args) as client:
            snapshot = client.restore_snapshot(
                args.name, args.collection or (), args.new_name or "", bar
            )
    finally:
        bar.close()
    if args.json:
        print_json(asdict(snapshot))
    else:
        names = args.new_name or ", ".join(
            args.collection or [c.name for c in snapshot.collections]
        )
        print(f"restored {names} from snapshot {snapshot.name} (cut {snapshot.cut})")


def add_snapshot_commands(commands: Any) -> None:
    snapshot = command(commands, "snapshot", "consistent snapshots: create, list, delete, restore")
    actions = snapshot.add_subparsers(
        dest="snapshot_command", required=True, metavar="ACTION",
        help="create, list, delete or restore",
    )  # fmt: skip
    create = command(
        actions, "create", "snapshot collections at one cut while reads and writes go on"
    )
    create.add_argument("name", nargs="?", help="the snapshot's name (default: from the time)")
    create.add_argument(
        "--collection", action="append", help="a collection to include (repeat; default: all)"
    )
    create.set_defaults(run=cmd_create)
    command(actions, "list", "the snapshots in the coordinator's location").set_defaults(
        run=cmd_list
    )
    delete = command(actions, "delete", "delete a snapshot")
    delete.add_argument("name", help="the snapshot to delete")
    delete.set_defaults(run=cmd_delete)
    restore = command(
        actions,
        "restore",
        "restore a snapshot into this cluster (any shape); checks every checksum first",
    )
    restore.add_argument("name", help="the snapshot to restore (shoal snapshot list)")
    restore.add_argument(
        "--collection", action="append", help="a collection to restore (repeat; default: all)"
    )
    restore.add_argument("--new-name", help="restore the one --collection under this name")
    restore.set_defaults(run=cmd_restore)
