"""The `shoal` command against a real cluster: tables by default, --json everywhere.

Every command that prints data is run both ways: the JSON must parse, use
snake_case keys and carry numbers as numbers; the default must be text for
people (not JSON). Global options work after the command too, and `shoal
loadtest` calls SHOAL_ADDRESS.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.cli.app import main as cli
from shoal.cli.local_cluster import LocalCluster
from tests.conftest import StartCluster

COLLECTION = "notes"
NOTES = [
    {"id": "n1", "text": "buy more coffee", "metadata": {"tags": ["home"], "prio": 2}},
    {"id": "n2", "text": "call the bank", "metadata": {"tags": ["money"], "prio": 1}},
    {"id": "n3", "text": "water the plants", "metadata": {"tags": ["home"], "prio": 3}},
]
SNAKE_CASE = re.compile(r"[a-z][a-z0-9_]*")


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    return start_module_cluster(groups=1, replicas=2, model="hash-384")


@pytest.fixture
def notes(cluster: LocalCluster, tmp_path: Path) -> Iterator[Path]:
    """A fresh `notes` collection holding NOTES, dropped afterwards."""
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps(note) + "\n" for note in NOTES))
    cli(["--address", cluster.address, "create", COLLECTION, "--model", "hash-384"])
    cli(["--address", cluster.address, "import", COLLECTION, str(path)])
    yield path
    cli(["--address", cluster.address, "drop", COLLECTION])


def run(cluster: LocalCluster, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """One command with the address after the command's name; what it printed."""
    capsys.readouterr()
    cli([*argv, "--address", cluster.address])
    return capsys.readouterr().out


def keys_and_values(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) in a JSON value, at any depth (user metadata left out)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            if key != "metadata":
                yield from keys_and_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_and_values(item)


def assert_convention(value: Any) -> None:
    for key, item in keys_and_values(value):
        assert SNAKE_CASE.fullmatch(key), f"key {key!r} is not snake_case"
        if isinstance(item, str):
            assert not re.fullmatch(r"-?\d+", item), f"{key}: the number {item!r} is a string"


DATA_COMMANDS = [
    ["list"],
    ["info", COLLECTION],
    ["search", COLLECTION, "--text", "coffee", "-k", "2"],
    ["search", COLLECTION, "--vector", json.dumps([0.1] * 384), "-k", "2"],
    ["search", COLLECTION, "--text", "coffee", "--mode", "hybrid", "--explain"],
    ["get", COLLECTION, "n1", "n2"],
    ["count", COLLECTION],  # a bare number for people, which is JSON too
    ["cluster"],
    ["verify"],
    ["topology", "show"],
]


@pytest.mark.parametrize("argv", DATA_COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_data_commands_print_text_by_default_and_json_with_the_option(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    value = json.loads(run(cluster, capsys, *argv, "--json"))
    assert value not in ({}, [])
    assert_convention(value)
    text = run(cluster, capsys, *argv)
    assert text.strip()
    if argv[0] != "count":
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)


def test_json_carries_numbers_as_numbers(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = json.loads(run(cluster, capsys, "cluster", "--json"))
    assert isinstance(info["topology_version"], int) and info["replication_factor"] == 2
    replica = info["groups"][0]["replicas"][0]
    assert replica["health"] == "serving"
    assert replica["collections"] == [{"collection": COLLECTION, "documents": len(NOTES)}]
    verify = json.loads(run(cluster, capsys, "verify", "--json"))[COLLECTION]
    assert verify["differing"] == 0 and verify["groups"][0]["partitions_compared"] > 0
    hits = json.loads(run(cluster, capsys, "search", COLLECTION, "--text", "coffee", "--json"))
    assert {hit["id"] for hit in hits["hits"]} == {note["id"] for note in NOTES}
    assert all(isinstance(hit["score"], float) for hit in hits["hits"])
    assert hits["coverage"] == {"groups_asked": 1, "groups_answered": 1, "complete": True}
    assert json.loads(run(cluster, capsys, "count", COLLECTION, "--json")) == {
        "collection": COLLECTION,
        "count": len(NOTES),
    }
    info_json = json.loads(run(cluster, capsys, "info", COLLECTION, "--json"))
    assert info_json["document_count"] == len(NOTES) and info_json["dimension"] == 384


def test_tables_for_people(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = run(cluster, capsys, "list")
    assert re.search(r"^name\s+dimension\s+metric", listing, re.MULTILINE)
    assert re.search(rf"^{COLLECTION}\s+384\s+cosine\s+hash-384", listing, re.MULTILINE)
    hits = run(cluster, capsys, "search", COLLECTION, "--text", "coffee", "-k", "3")
    assert re.search(r"^#\s+score\s+id\s+text", hits, re.MULTILINE)
    assert "buy more coffee" in hits
    cluster_text = run(cluster, capsys, "cluster")
    assert "replication factor 2" in cluster_text
    assert cluster_text.count(" serving ") == 2
    assert f"{COLLECTION}: replicas agree" in run(cluster, capsys, "verify")
    got = run(cluster, capsys, "get", COLLECTION, "n1", "absent")
    assert "buy more coffee" in got and "not found: absent" in got
    assert run(cluster, capsys, "count", COLLECTION) == f"{len(NOTES)}\n"


def test_scroll_prints_lines_and_json_lines_that_import_reads_back(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = run(cluster, capsys, "scroll", COLLECTION).splitlines()
    assert [line.split()[0] for line in lines] == ["n1", "n2", "n3"]
    exported = run(cluster, capsys, "scroll", COLLECTION, "--json")
    documents = [json.loads(line) for line in exported.splitlines()]
    assert documents == NOTES
    (tmp_path / "export.jsonl").write_text(exported)
    imported = run(cluster, capsys, "import", COLLECTION, str(tmp_path / "export.jsonl"), "--json")
    assert json.loads(imported) == {"collection": COLLECTION, "upserted": len(NOTES)}


def test_counts_in_sentences_say_one_or_many(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(NOTES[0]) + "\n")
    assert run(cluster, capsys, "import", COLLECTION, str(one)).endswith(
        f"upserted 1 document into '{COLLECTION}'\n"
    )
    assert run(cluster, capsys, "delete", COLLECTION, "n1") == "deleted 1 document\n"
    assert run(cluster, capsys, "delete", COLLECTION, "n2", "n3") == "deleted 2 documents\n"
    deleted = json.loads(run(cluster, capsys, "delete", COLLECTION, "n1", "--json"))
    assert deleted == {"collection": COLLECTION, "deleted": 0}


def test_keyword_and_hybrid_search_with_explain(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keyword = json.loads(
        run(
            cluster, capsys, "search", COLLECTION, "--text", "coffee", "--mode", "keyword", "--json"
        )
    )
    assert [hit["id"] for hit in keyword["hits"]] == ["n1"]
    assert keyword["hits"][0]["score"] > 0 and "explanation" not in keyword["hits"][0]
    hybrid = ["search", COLLECTION, "--text", "coffee bank", "--mode", "hybrid", "--explain"]
    hits = json.loads(run(cluster, capsys, *hybrid, "--rrf-k", "10", "--json"))["hits"]
    assert {hit["id"] for hit in hits} == {"n1", "n2", "n3"}  # the vector side holds all three
    explained = {hit["id"]: hit["explanation"] for hit in hits}
    assert explained["n3"]["keyword_rank"] is None and explained["n3"]["keyword_score"] is None
    assert {explained[i]["keyword_rank"] for i in ("n1", "n2")} == {1, 2}
    assert all(isinstance(e["vector_rank"], int) for e in explained.values())
    # RRF with rrf_k 10 and alpha 0.5: the score is the sum of the lists' shares.
    for hit in hits:
        e = hit["explanation"]
        expected = sum(
            0.5 / (10 + rank) for rank in (e["vector_rank"], e["keyword_rank"]) if rank is not None
        )
        assert hit["score"] == pytest.approx(expected, rel=1e-5)
    table = run(cluster, capsys, *hybrid)
    assert re.search(
        r"^#\s+score\s+id\s+vector #\s+vector score\s+keyword #\s+keyword score\s+text",
        table,
        re.MULTILINE,
    )
    assert re.search(r"\bn3\s+\d\s+\S+\s+-\s+-\s+water the plants", table)
    # alpha 0 with relative-score fusion: the keyword list alone, its scores normalized.
    relative = [*hybrid, "--fusion", "relative", "--alpha", "0", "--json"]
    ranked = json.loads(run(cluster, capsys, *relative))["hits"]
    assert [hit["explanation"]["keyword_rank"] for hit in ranked] == [1, 2]
    assert [hit["score"] for hit in ranked] == [1.0, 0.0]


def test_bad_hybrid_options_are_one_line_errors(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hybrid = ["search", COLLECTION, "--text", "coffee", "--mode", "hybrid", "-k", "5"]
    with pytest.raises(SystemExit) as exit_info:
        run(cluster, capsys, *hybrid, "--candidates", "2")
    assert exit_info.value.code == 1
    assert "at least k" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(cluster, capsys, *hybrid, "--alpha", "2")
    assert "alpha" in capsys.readouterr().err


def test_where_document_in_search_count_scroll_and_delete(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coffee = ["--where-document", json.dumps({"$contains": "coffee"})]
    not_coffee = ["--where-document", json.dumps({"$not_contains": "coffee"})]
    assert run(cluster, capsys, "count", COLLECTION, *coffee) == "1\n"
    home = ["--where", json.dumps({"tags": "home"})]
    assert run(cluster, capsys, "count", COLLECTION, *not_coffee, *home) == "1\n"
    scrolled = run(cluster, capsys, "scroll", COLLECTION, *not_coffee, "--json").splitlines()
    assert [json.loads(line)["id"] for line in scrolled] == ["n2", "n3"]
    hits = json.loads(
        run(cluster, capsys, "search", COLLECTION, "--text", "coffee", *not_coffee, "--json")
    )
    assert {hit["id"] for hit in hits["hits"]} == {"n2", "n3"}
    assert run(cluster, capsys, "delete", COLLECTION, *coffee) == "deleted 1 document\n"
    assert run(cluster, capsys, "count", COLLECTION) == "2\n"
    with pytest.raises(SystemExit, match="--where-document is not JSON"):
        run(cluster, capsys, "count", COLLECTION, "--where-document", "{coffee")


def test_create_with_keyword_options(
    cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    german = [
        "create", "german", "--dimension", "4", "--keyword-language", "german",
        "--no-stemming", "--k1", "1.5", "--b", "0.5", "--json",
    ]  # fmt: skip
    created = json.loads(run(cluster, capsys, *german))
    assert created["keyword"] == {
        "enabled": True,
        "language": "german",
        "stemming": False,
        "stop_words": True,
        "k1": 1.5,
        "b": 0.5,
    }
    info = run(cluster, capsys, "info", "german")
    assert re.search(r"^keyword\s+german, no stemming, stop words, k1 1.5, b 0.5$", info, re.M)
    no_keyword = ["create", "plain", "--dimension", "4", "--no-keyword"]
    with pytest.raises(SystemExit, match="no keyword index for --no-stop-words, --k1"):
        run(cluster, capsys, *no_keyword, "--no-stop-words", "--k1", "1")
    run(cluster, capsys, *no_keyword)
    listing = run(cluster, capsys, "list")
    assert re.search(r"^german\s.*\sgerman$", listing, re.MULTILINE)
    assert re.search(r"^plain\s.*\soff$", listing, re.MULTILINE)
    with pytest.raises(SystemExit):
        run(cluster, capsys, "search", "plain", "--text", "x", "--mode", "keyword")
    assert "no keyword index" in capsys.readouterr().err
    for name in ("german", "plain"):
        run(cluster, capsys, "drop", name)


def test_loadtest_calls_shoal_address(
    cluster: LocalCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The config names a host where nothing listens; SHOAL_ADDRESS is where the calls go."""
    config = tmp_path / "list.json"
    config.write_text(
        json.dumps(
            {
                "call": "shoal.v1.ShoalService.ListCollections",
                "host": "127.0.0.1:1",
                "total": 5,
                "concurrency": 1,
                "connect-timeout": "5s",
                "data": {},
            }
        )
    )
    monkeypatch.setenv("SHOAL_ADDRESS", cluster.address)
    cli(["loadtest", "--config", str(config), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["options"]["host"] == cluster.address
    assert report["count"] == 5 and report["statusCodeDistribution"] == {"OK": 5}


def test_update_sets_and_unsets_metadata_by_id_and_by_where(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(cluster, capsys, "update", COLLECTION, "n1", "--set", "prio=9", "--set", "who=me")
        == "updated 1 document\n"
    )
    updated = run(
        cluster,
        capsys,
        "update",
        COLLECTION,
        "--where",
        '{"prio": {"$lt": 4}}',
        "--unset",
        "tags",
        "--json",
    )
    assert json.loads(updated) == {"collection": COLLECTION, "updated": 2}
    documents = [
        json.loads(line)
        for line in run(cluster, capsys, "scroll", COLLECTION, "--json").splitlines()
    ]
    assert [doc["metadata"] for doc in documents] == [
        {"tags": ["home"], "prio": 9, "who": "me"},
        {"prio": 1},
        {"prio": 3},
    ]
    assert [doc["text"] for doc in documents] == [note["text"] for note in NOTES]


def test_search_like_a_stored_document_leaves_it_out(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = json.loads(run(cluster, capsys, "search", COLLECTION, "--like", "n1", "--json"))
    assert sorted(hit["id"] for hit in found["hits"]) == ["n2", "n3"]
    with pytest.raises(SystemExit):
        run(cluster, capsys, "search", COLLECTION, "--like", "nope")
    assert "no document 'nope'" in capsys.readouterr().err


def test_search_grouped_by_a_list_valued_key(
    cluster: LocalCluster, notes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = json.loads(
        run(
            cluster,
            capsys,
            "search",
            COLLECTION,
            "--text",
            "coffee",
            "--group-by",
            "tags",
            "--group-size",
            "2",
            "-k",
            "5",
            "--json",
        )
    )
    groups: dict[str, list[str]] = {}
    for hit in found["hits"]:
        groups.setdefault(hit["group"], []).append(hit["id"])
    assert {group: sorted(ids) for group, ids in groups.items()} == {
        "home": ["n1", "n3"],
        "money": ["n2"],
    }
