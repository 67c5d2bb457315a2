"""The `shoal` command's conventions, without a server: options, help, version, JSON forms."""

import argparse
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coordinator import settings as coordinator_settings
from embedder import __main__ as embedder_main
from loadtest.command import target_host
from shard import settings as shard_settings
from shoal.access import Principal, Role
from shoal.api_keys import KeysFileError, key_entry, key_hash, parse_keys
from shoal.cli import output as cli_output
from shoal.cli.app import build_parser, main
from shoal.cli.collection_commands import keyword_settings
from shoal.cli.options import address
from shoal.cli.up import write_admin_key
from shoal.v1 import shoal_pb2

# One valid command line (after the command's name) for each command that talks
# to a coordinator.
CLIENT_COMMANDS = {
    "create": ["c"],
    "list": [],
    "info": ["c"],
    "drop": ["c"],
    "import": ["c", "docs.jsonl"],
    "export": ["c", "c.parquet"],
    "search": ["c", "--text", "audio"],
    "get": ["c", "a", "b"],
    "delete": ["c", "a"],
    "update": ["c", "a", "--set", "k=1"],
    "count": ["c"],
    "scroll": ["c"],
    "cluster": [],
    "verify": [],
    "topology": ["show"],
    "snapshot": ["list"],
    "loadtest": ["--config", "loadtest/ghz/search_vector.json"],
}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [choices] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(choices.choices)


def test_every_command_that_talks_to_a_coordinator_is_listed_here() -> None:
    assert set(subcommands()) == {*CLIENT_COMMANDS, "up", "keys"}


def test_import_takes_an_export_alone_or_a_collection_and_a_file() -> None:
    parser = build_parser()
    alone = parser.parse_args(["import", "x.parquet", "--name", "copy"])
    assert (alone.collection, alone.file, alone.name) == (None, "x.parquet", "copy")
    both = parser.parse_args(["import", "c", "docs.jsonl"])
    assert (both.collection, both.file, both.name) == ("c", "docs.jsonl", None)


@pytest.mark.parametrize("command", sorted(CLIENT_COMMANDS))
def test_global_options_go_before_or_after_the_command(command: str) -> None:
    parser = build_parser()
    rest = CLIENT_COMMANDS[command]
    before = parser.parse_args(["--address", "h:1", "--json", command, *rest])
    after = parser.parse_args([command, *rest, "--address", "h:1", "--json"])
    neither = parser.parse_args([command, *rest])
    assert (before.address, before.json) == (after.address, after.json) == ("h:1", True)
    assert (neither.address, neither.json) == (None, False)
    # Given on both sides, the one after the command wins.
    both = parser.parse_args(["--address", "h:1", command, *rest, "--address", "h:2"])
    assert both.address == "h:2"
    keyed = [
        parser.parse_args(["--api-key", "k", command, *rest]),
        parser.parse_args([command, *rest, "--api-key", "k"]),
    ]
    assert [args.api_key for args in keyed] == ["k", "k"] and neither.api_key is None


def test_the_address_comes_from_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = build_parser()
    monkeypatch.delenv("SHOAL_ADDRESS", raising=False)
    assert address(parser.parse_args(["list"])) == "127.0.0.1:50051"
    monkeypatch.setenv("SHOAL_ADDRESS", "env:7")
    assert address(parser.parse_args(["list"])) == "env:7"
    assert address(parser.parse_args(["list", "--address", "flag:8"])) == "flag:8"


def test_loadtest_calls_shoal_address_rather_than_the_configs_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = build_parser()
    config = CLIENT_COMMANDS["loadtest"]
    monkeypatch.delenv("SHOAL_ADDRESS", raising=False)
    assert target_host(parser.parse_args(["loadtest", *config])) is None  # the config's
    monkeypatch.setenv("SHOAL_ADDRESS", "env:7")
    assert target_host(parser.parse_args(["loadtest", *config])) == "env:7"
    assert target_host(parser.parse_args(["--address", "a:1", "loadtest", *config])) == ("a:1")
    with_host = parser.parse_args(["loadtest", *config, "--host", "h:2", "--address", "a:1"])
    assert target_host(with_host) == "h:2"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert re.fullmatch(r"shoal \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


@pytest.mark.parametrize("command", sorted([*CLIENT_COMMANDS, "up"]))
def test_every_option_has_help_that_shows_its_default(command: str) -> None:
    parser = subcommands()[command]
    formatter = parser._get_formatter()
    for action in _options(parser):
        text = formatter._expand_help(action) if action.help else ""
        assert text.strip(), f"shoal {command} {action.option_strings[0]} has no help"
        if action.default not in (None, False, argparse.SUPPRESS):
            assert "(default" in text, f"shoal {command} {action.option_strings[0]}: {text!r}"
    for action in parser._actions:
        if not action.option_strings:  # positionals say what they are too
            assert action.help, f"shoal {command} {action.dest} has no help"


def test_help_lists_the_environment_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "SHOAL_ADDRESS" in text and "SHOAL_<FLAG>" in text
    for command, parser in subcommands().items():
        assert "SHOAL_ADDRESS" in parser.format_help() and "SHOAL_<FLAG>" in text, command


@pytest.mark.parametrize(
    ("parse", "environment"),
    [
        (coordinator_settings.parse_args, {"SHOAL_TOPOLOGY": "t.json", "SHOAL_EMBEDDER": "e:1"}),
        (shard_settings.parse_args, {"SHOAL_DATA_DIR": "/tmp/d"}),
        (embedder_main.parse_args, {}),
    ],
    ids=["coordinator", "shard", "embedder"],
)
def test_service_help_names_the_variable_of_every_flag(
    parse: Callable[[list[str]], Any],
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README: every service flag can be set as SHOAL_<FLAG>, and --help lists them."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        parse(["--help"])
    printed = capsys.readouterr().out
    # Each option's entry starts a line: "  --flag FLAG, --alias FLAG  help...".
    flags = set(re.findall(r"^ {2}(?:-\w \S+, )?--([a-z][a-z0-9-]*)", printed, re.MULTILINE))
    flags -= {"help"}
    assert {"host", "port", "log-format", "grace-seconds"} <= flags
    text = " ".join(printed.split())  # undo the line wrapping
    for flag in flags:
        assert f"[env SHOAL_{flag.upper().replace('-', '_')}]" in text, flag


def test_counts_say_one_or_many() -> None:
    assert cli_output.count_of(1, "document") == "1 document"
    assert cli_output.count_of(0, "document") == "0 documents"
    assert cli_output.count_of(1000, "document") == "1,000 documents"
    assert cli_output.count_of(2, "replica", "replicas") == "2 replicas"


def test_a_vector_shows_as_its_first_values_and_its_dimension() -> None:
    assert cli_output.vector_preview([0.123456, -2.0, 3e-9, 4.0]) == "[0.1235, -2, 3e-09, ...] (4)"
    assert cli_output.vector_preview([1.5]) == "[1.5] (1)"
    assert cli_output.vector_preview(None) == "-"


def test_messages_become_snake_case_json_with_numbers_and_enum_names() -> None:
    info = shoal_pb2.GetClusterInfoResponse(
        topology_version=2**40,
        replication_factor=2,
        embedder_address="e:1",
        embedder_health=shoal_pb2.REPLICA_HEALTH_NOT_SERVING,
        groups=[
            shoal_pb2.ShardGroupInfo(
                group=0,
                replicas=[
                    shoal_pb2.ReplicaInfo(
                        address="s:1",
                        health=shoal_pb2.REPLICA_HEALTH_SERVING,
                        collections=[shoal_pb2.CollectionCount(collection="c", documents=7)],
                        failed_collections=[
                            shoal_pb2.FailedCollection(collection="d", reason="corrupt")
                        ],
                    ),
                    shoal_pb2.ReplicaInfo(address="s:2", member=True),
                ],
            )
        ],
    )
    value = json.loads(json.dumps(cli_output.message_dict(info)))
    assert value == {
        "topology_version": 2**40,
        "replication_factor": 2,
        "embedder_address": "e:1",
        "embedder_health": "not_serving",
        "moves": [],
        "groups": [
            {
                "group": 0,
                "replicas": [
                    {
                        "address": "s:1",
                        "health": "serving",
                        "collections": [{"collection": "c", "documents": 7}],
                        "failed_collections": [{"collection": "d", "reason": "corrupt"}],
                        "member": None,
                    },
                    {
                        "address": "s:2",
                        "health": "unspecified",
                        "collections": [],
                        "failed_collections": [],
                        "member": True,
                    },
                ],
            }
        ],
    }


def test_cluster_table_shows_membership_and_collections_that_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    serving = shoal_pb2.REPLICA_HEALTH_SERVING
    info = shoal_pb2.GetClusterInfoResponse(
        groups=[
            shoal_pb2.ShardGroupInfo(
                group=0,
                replicas=[
                    shoal_pb2.ReplicaInfo(address="s:1", health=serving, member=True),
                    shoal_pb2.ReplicaInfo(
                        address="s:2",
                        health=shoal_pb2.REPLICA_HEALTH_DEGRADED,
                        member=False,
                        failed_collections=[
                            shoal_pb2.FailedCollection(collection="d", reason="corrupt CURRENT")
                        ],
                    ),
                ],
            )
        ],
    )
    cli_output.print_cluster(info)
    lines = capsys.readouterr().out.splitlines()
    assert "member" in lines[2]
    assert re.search(r"s:1 +serving +yes", lines[-2])
    assert re.search(r"s:2 +degraded +lease gone +d FAILED: corrupt CURRENT", lines[-1])


def test_cluster_table_has_no_member_column_without_etcd(
    capsys: pytest.CaptureFixture[str],
) -> None:
    replica = shoal_pb2.ReplicaInfo(address="s:1", health=shoal_pb2.REPLICA_HEALTH_SERVING)
    info = shoal_pb2.GetClusterInfoResponse(
        groups=[shoal_pb2.ShardGroupInfo(group=0, replicas=[replica])]
    )
    cli_output.print_cluster(info)
    assert "member" not in capsys.readouterr().out


def _readme_commands() -> list[str]:
    """Every `shoal ...` command in the README's sh blocks, continuation lines joined."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    lines = " ".join(blocks).replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip().startswith("shoal ")]


@pytest.mark.parametrize("line", _readme_commands())
def test_the_readmes_commands_parse(line: str) -> None:
    words = shlex.split(line, comments=True)[1:]
    for end, word in enumerate(words):  # up to a redirection or a pipe
        if word in (">", "|"):
            words = words[:end]
            break
    args = build_parser().parse_args(words)
    if args.command == "create":  # its keyword options are checked before any call
        keyword_settings(args)


def test_search_needs_a_text_or_a_vector() -> None:
    with pytest.raises(SystemExit, match="give --text, --vector"):
        main(["search", "c", "--mode", "hybrid", "--address", "127.0.0.1:1"])


def test_keys_create_prints_a_key_and_the_entry_that_admits_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["keys", "create", "--role", "read", "--collection", "c", "--name", "ci", "--json"])
    printed = json.loads(capsys.readouterr().out)
    table = parse_keys(json.dumps({"keys": [printed["entry"]]}))
    assert table[key_hash(printed["key"])] == Principal("ci", Role.READ, frozenset({"c"}))
    main(["keys", "create", "--role", "admin"])
    text = capsys.readouterr().out
    assert "shown only now" in text and '"role": "admin"}' in text


def test_shoal_up_secure_replaces_its_own_admin_key_and_keeps_others(tmp_path: Path) -> None:
    first, path = write_admin_key(tmp_path)
    mine = key_entry("shoal_added-by-hand", "reader", Role.READ)
    entries = json.loads(path.read_text())["keys"]
    path.write_text(json.dumps({"keys": [*entries, mine]}))
    second, _ = write_admin_key(tmp_path)
    table = parse_keys(path.read_text())
    assert key_hash(first) not in table and key_hash("shoal_added-by-hand") in table
    assert table[key_hash(second)].role == Role.ADMIN
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("{")
    with pytest.raises(KeysFileError):
        write_admin_key(tmp_path)
