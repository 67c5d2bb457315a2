"""Snapshots in S3-compatible object storage: a real moto server on loopback (not a
mock object), reached by the coordinator process through boto3 like any S3; the
`shoal snapshot` commands end to end."""

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from shoal import Client
from shoal.cli.app import main as cli
from shoal.errors import DataLoss, NotFound
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

BUCKET = "shoal-snapshots"
COLLECTION = "debian"
DOCUMENTS = 600


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto S3 server on 127.0.0.1 (a free port), its endpoint in the environment
    the coordinator inherits; a boto3 client on it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for name, value in {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        server.stop()


def shoal(address: str, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    cli(["--address", address, *argv, "--json"])
    return json.loads(capsys.readouterr().out)


def test_snapshot_to_s3_and_restore_from_it(
    start_cluster: StartCluster, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = datasets.load()
    originals = datasets.with_vectors(data, 0, DOCUMENTS)
    cluster = start_cluster(
        groups=2,
        replicas=1,
        model="hash-8",
        coordinator_args=("--snapshot-location", f"s3://{BUCKET}/backups"),
    )
    address = cluster.address
    vectors_only: list[dict[str, Any]] = [
        {"id": f"v{n}", "vector": np.full(3, n / 7, dtype=np.float32)} for n in range(50)
    ]
    with Client(address, timeout=120) as client:
        client.create_collection(COLLECTION, dimension=384, partitions=8)
        client.upsert(COLLECTION, originals, "all")
        client.create_collection("vectors", dimension=3, metric="l2", hnsw_m=8)
        client.upsert("vectors", vectors_only, "all")

    created = shoal(address, capsys, "snapshot", "create", "nightly")  # every collection
    assert {c["name"]: c["documents"] for c in created["collections"]} == {
        COLLECTION: DOCUMENTS,
        "vectors": len(vectors_only),
    }
    keys = {
        item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    }  # written by the coordinator process, through boto3
    assert "backups/nightly/manifest.json" in keys
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key="backups/nightly/manifest.json")["Body"].read()
    )
    files = [f for c in manifest["collections"] for f in c["files"]]
    assert {f"backups/nightly/{f['name']}" for f in files} <= keys
    assert all(len(f["sha256"]) == 64 for f in files)
    assert manifest["cut"] == created["cut"] and manifest["shoal_version"]
    assert [s["name"] for s in shoal(address, capsys, "snapshot", "list")] == ["nightly"]

    restored = shoal(
        address, capsys, "snapshot", "restore", "nightly",
        "--collection", COLLECTION, "--new-name", "copy",
    )  # fmt: skip
    assert restored["name"] == "nightly"
    with Client(address, timeout=120) as client:
        assert client.count("copy") == DOCUMENTS
        copies = {d.id: d for d in client.get("copy", [d["id"] for d in originals])}
        for original in originals:
            copy = copies[original["id"]]
            assert (
                np.asarray(copy.vector, dtype=np.float32).tobytes()
                == np.asarray(original["vector"], dtype=np.float32).tobytes()
            )
            assert copy.text == original["text"] and copy.metadata == original["metadata"]

        # Every collection back under its own name, settings included.
        settings = client.get_collection("vectors")
        client.delete_collection(COLLECTION)
        client.delete_collection("vectors")
        client.restore_snapshot("nightly")
        assert client.count(COLLECTION) == DOCUMENTS
        assert client.get_collection("vectors") == settings
        back = client.get("vectors", [d["id"] for d in vectors_only])
        assert [np.asarray(d.vector, dtype=np.float32).tobytes() for d in back] == [
            d["vector"].tobytes() for d in vectors_only
        ]

        # One object damaged in the store: refused, naming it, before anything exists.
        damaged = files[0]["name"]
        key = f"backups/nightly/{damaged}"
        body = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        body[-1] ^= 0xFF
        s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
        with pytest.raises(DataLoss, match=re.escape(damaged)):
            client.restore_snapshot("nightly", [COLLECTION], new_name="broken")
        with pytest.raises(NotFound):
            client.get_collection("broken")

    # Without --json: a progress bar per phase on stderr, a sentence on stdout.
    capsys.readouterr()
    cli(["--address", address, "snapshot", "create", "again", "--collection", COLLECTION])
    printed = capsys.readouterr()
    assert printed.out.startswith(f"snapshot again: {DOCUMENTS} documents of {COLLECTION}")
    assert "copying" in printed.err and "doc" in printed.err

    assert shoal(address, capsys, "snapshot", "delete", "nightly") == {"deleted": True}
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="backups/nightly/")
