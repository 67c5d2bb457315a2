"""The role table (shoal.access) and API keys (shoal.api_keys) without a server."""

import json
from pathlib import Path

import pytest

from shoal.access import (
    PUBLIC_RULES,
    UNKNOWN_METHOD,
    Principal,
    Role,
    denial,
    rule_for,
)
from shoal.api_keys import KeyFile, KeysFileError, generate_key, key_entry, key_hash, parse_keys
from shoal.runtime.auth import collection_named, key_from_metadata
from shoal.v1 import common_pb2, shoal_pb2

READS = {"GetCollection", "Get", "Count", "Scroll", "Search", "SearchBatch"}
WRITES = {"Upsert", "Delete", "Update"}
ADMIN = {"CreateCollection", "DeleteCollection", "VerifyReplicas"}
CLUSTER_READS = {"ListCollections", "GetClusterInfo", "GetTopology", "ListMoves"}
CLUSTER_ADMIN = {
    "UpdateTopology",
    "StartMoves",
    "CancelMoves",
    "CreateSnapshot",
    "ListSnapshots",
    "DeleteSnapshot",
    "RestoreSnapshot",
}


def test_every_public_rpc_has_a_rule() -> None:
    methods = {m.name for m in shoal_pb2.DESCRIPTOR.services_by_name["ShoalService"].methods}
    assert set(PUBLIC_RULES) == methods
    assert methods == READS | WRITES | ADMIN | CLUSTER_READS | CLUSTER_ADMIN


@pytest.mark.parametrize("method", sorted(PUBLIC_RULES))
@pytest.mark.parametrize("role", list(Role))
def test_unlimited_keys_by_role(method: str, role: Role) -> None:
    needed = (
        Role.READ
        if method in READS | CLUSTER_READS
        else Role.WRITE
        if method in WRITES
        else Role.ADMIN
    )
    rule = rule_for(f"/shoal.v1.ShoalService/{method}")
    assert Principal("k", role).may(rule, "c") == (role >= needed)


@pytest.mark.parametrize("method", sorted(PUBLIC_RULES))
def test_a_key_limited_to_collections_may_use_those_only(method: str) -> None:
    admin_of_c = Principal("k", Role.ADMIN, frozenset({"c"}))
    rule = rule_for(method)
    cluster_wide = method in CLUSTER_READS | CLUSTER_ADMIN
    assert admin_of_c.may(rule, "c") == (not cluster_wide)
    assert not admin_of_c.may(rule, "other")
    assert not admin_of_c.may(rule, None)


def test_an_unknown_method_needs_an_unlimited_admin_key() -> None:
    assert rule_for("/shoal.v1.ShoalService/SomethingNew") == UNKNOWN_METHOD
    assert rule_for("/shoal.v1.OtherService/Search") == UNKNOWN_METHOD
    assert Principal("a", Role.ADMIN).may(UNKNOWN_METHOD, None)
    assert not Principal("w", Role.WRITE).may(UNKNOWN_METHOD, None)
    assert not Principal("a", Role.ADMIN, frozenset({"c"})).may(UNKNOWN_METHOD, "c")


def test_denials_name_the_role_needed_and_never_the_collection_asked_for() -> None:
    reader = Principal("r", Role.READ)
    assert "needs write" in denial(reader, rule_for("Upsert"), "/s/Upsert")
    scoped = Principal("s", Role.ADMIN, frozenset({"mine"}))
    message = denial(scoped, rule_for("DeleteCollection"), "/s/DeleteCollection")
    assert "'mine'" in message and "secret-collection" not in message
    assert "cluster-wide" in denial(scoped, rule_for("ListCollections"), "/s/ListCollections")


@pytest.mark.parametrize(
    ("request_message", "method", "expected"),
    [
        (shoal_pb2.SearchRequest(collection="c"), "Search", "c"),
        (shoal_pb2.GetCollectionRequest(name="c"), "GetCollection", "c"),
        (
            shoal_pb2.CreateCollectionRequest(config=common_pb2.CollectionConfig(name="c")),
            "CreateCollection",
            "c",
        ),
        (shoal_pb2.DeleteCollectionRequest(name="c"), "DeleteCollection", "c"),
        (object(), "Search", None),  # a request that failed to parse
    ],
)
def test_the_collection_is_read_where_the_rule_says(
    request_message: object, method: str, expected: str | None
) -> None:
    field = rule_for(method).collection_field
    assert field is not None
    assert collection_named(request_message, field) == expected


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer  abc "),), "abc"),
        ((("api-key", "abc"),), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer "),), None),
        ((), None),
        (None, None),
    ],
)
def test_keys_are_read_from_either_header(metadata: object, key: str | None) -> None:
    assert key_from_metadata(metadata) == key


def test_generated_keys_are_long_random_and_only_their_hash_is_stored() -> None:
    first, second = generate_key(), generate_key()
    assert first != second and first.startswith("shoal_") and len(first) >= 40
    entry = key_entry(first, "ingest", Role.WRITE, ["b", "a", "a"])
    assert entry == {
        "name": "ingest",
        "sha256": key_hash(first),
        "role": "write",
        "collections": ["a", "b"],
    }
    assert first not in json.dumps(entry)
    table = parse_keys(json.dumps({"keys": [entry]}))
    assert table == {key_hash(first): Principal("ingest", Role.WRITE, frozenset({"a", "b"}))}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{", "not JSON"),
        ("[]", "expected"),
        ('{"keys": [{"sha256": "12", "role": "read"}]}', "64 hex"),
        ('{"keys": [{"sha256": "' + "a" * 64 + '", "role": "root"}]}', "not one of"),
        ('{"keys": [{"sha256": "' + "a" * 64 + '", "role": "read", "collections": "c"}]}', "list"),
    ],
)
def test_a_bad_keys_file_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(KeysFileError, match=words):
        parse_keys(text)


def test_a_key_file_is_read_again_when_it_changes_and_a_broken_one_keeps_the_old_keys(
    tmp_path: Path,
) -> None:
    now = [0.0]
    old, new = generate_key(), generate_key()
    path = tmp_path / "keys.json"

    def write(*entries: dict[str, object]) -> None:
        path.write_text(json.dumps({"keys": list(entries)}))

    write(key_entry(old, "old", Role.READ))
    keys = KeyFile(path, check_interval_s=1.0, clock=lambda: now[0])
    assert keys.lookup(old) == Principal("old", Role.READ)
    write(key_entry(new, "new", Role.ADMIN))
    assert keys.lookup(old) is not None  # not looked at again within the interval
    now[0] = 1.5
    assert keys.lookup(old) is None and keys.lookup(new) == Principal("new", Role.ADMIN)
    path.write_text('{"keys": [')  # a writer caught half-way
    now[0] = 3.0
    assert keys.lookup(new) is not None
    path.unlink()
    now[0] = 4.5
    assert keys.lookup(new) is not None
