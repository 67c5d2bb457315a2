"""`shoal keys create`: a new API key and the entry to add to the coordinators' keys file.

Nothing is stored: the key is printed once (only its SHA-256 goes into the
file, see shoal.api_keys), so whoever runs this keeps it.
"""

import argparse
import json
from typing import Any

from shoal.access import Role, scope_text
from shoal.api_keys import generate_key, key_entry
from shoal.cli.options import command, print_json


def cmd_keys_create(args: argparse.Namespace) -> None:
    role = Role.parse(args.role)
    key = generate_key()
    entry = key_entry(key, args.name or f"{role.name.lower()}-key", role, args.collection)
    if args.json:
        print_json({"key": key, "entry": entry})
        return
    print(f"API key ({role.name.lower()}, {scope_text(args.collection)}); shown only now:")
    print(f"  {key}")
    print('add this entry to the "keys" list of the --api-keys-file (read again on change):')
    print(f"  {json.dumps(entry)}")
    print("clients: shoal --api-key KEY ..., SHOAL_API_KEY=KEY, shoal.Client(api_key=KEY)")


def add_key_commands(commands: Any) -> None:
    keys = command(commands, "keys", "API keys for clusters that require them", client=False)
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = command(actions, "create", "print a new API key and its keys-file entry", client=False)
    create.add_argument(
        "--role", required=True, choices=[role.name.lower() for role in Role],
        help="read: search, get, count, scroll, info; write: also upsert, delete;"
        " admin: also create/drop collections, verify/repair, topology",
    )  # fmt: skip
    create.add_argument(
        "--collection", action="append", default=[],
        help="limit the key to this collection (repeat for more; default: all)",
    )  # fmt: skip
    create.add_argument("--name", default="", help="the key's name in logs and errors")
    create.add_argument("--json", action="store_true", help='print {"key": ..., "entry": ...}')
    create.set_defaults(run=cmd_keys_create)
