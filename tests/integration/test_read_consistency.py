"""Get at QUORUM and ALL through the real services, read repair, VerifyReplicas and
`shoal verify`, on 2 shard groups x 2 replicas.

Divergence is made by writing straight to one replica's ShardService a newer
version than the coordinator wrote, the way a write acknowledged by one replica
looks before the other has it.
"""

import json
import re
import time
from collections.abc import Iterator

import numpy as np
import pytest

from shoal import Client
from shoal.cli.app import main as cli
from shoal.cli.local_cluster import LocalCluster
from shoal.partitioning import partition_of
from shoal.runtime.wait import wait_for
from shoal.v1 import common_pb2, shard_pb2
from tests import datasets
from tests.conftest import StartCluster
from tests.fault import replicas

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
PARTITIONS = 16
DOCUMENTS = 200


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    # No anti-entropy pass during the module: the divergence made here is for the
    # coordinator's reads and VerifyReplicas to find.
    cluster = start_module_cluster(
        groups=2, replicas=2, model="hash-8", shard_args=("--anti-entropy-interval-s", "3600")
    )
    data = datasets.load()
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384, partitions=PARTITIONS)
        client.upsert(COLLECTION, datasets.with_vectors(data, 0, DOCUMENTS), "all")
    return cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address, timeout=60) as client:
        yield client


def group_of(cluster: LocalCluster, doc_id: str) -> int:
    return partition_of(doc_id, PARTITIONS) % len(cluster.shards)


def write_to_one_replica(address: str, write: shard_pb2.ShardWrite) -> None:
    with replicas.shard_stub(address) as stub:
        stub.Write(shard_pb2.ShardWriteRequest(collection=COLLECTION, writes=[write]), timeout=30)


def future_version() -> int:
    """Newer than anything the coordinator has written (its clock is milliseconds << 20)."""
    return (int(time.time() * 1000) + 60_000) << 20


def test_get_at_every_consistency_returns_the_same_documents(client: Client) -> None:
    data = datasets.load()
    ids = [*data.ids[:20], "missing"]
    one = client.get(COLLECTION, ids)
    assert [document.id for document in one] == data.ids[:20]
    for consistency in ("quorum", "all"):
        assert client.get(COLLECTION, ids, consistency=consistency) == one
    only_text = client.get(COLLECTION, ids[:3], include=["text"], consistency="all")
    assert [(d.text, d.vector, d.metadata) for d in only_text] == [
        (document["text"], None, {}) for document in data.documents[:3]
    ]


def test_get_at_all_answers_with_the_newest_version_and_repairs_the_other(
    cluster: LocalCluster, client: Client
) -> None:
    data = datasets.load()
    updated, deleted = data.ids[DOCUMENTS - 1], data.ids[DOCUMENTS - 2]
    ahead = {doc_id: cluster.shards[group_of(cluster, doc_id)][0] for doc_id in (updated, deleted)}
    vector = np.ones(384, dtype="<f4")
    write_to_one_replica(
        ahead[updated].address,
        shard_pb2.ShardWrite(
            id=updated,
            version=future_version(),
            vector_f32=vector.tobytes(),
            metadata={"fresh": common_pb2.Value(bool_value=True)},
        ),
    )
    write_to_one_replica(
        ahead[deleted].address,
        shard_pb2.ShardWrite(id=deleted, version=future_version(), deleted=True),
    )
    found = client.get(COLLECTION, [updated, deleted], consistency="all")
    assert [(d.id, d.metadata) for d in found] == [(updated, {"fresh": True})]
    assert found[0].vector == pytest.approx(vector.tolist())

    def repaired() -> bool:
        for doc_id, gone in ((updated, False), (deleted, True)):
            for shard in cluster.shards[group_of(cluster, doc_id)]:
                held = replicas.documents(shard.address, COLLECTION, [doc_id])
                if gone == (doc_id in held):
                    return False
                if not gone and "fresh" not in held[doc_id].metadata:
                    return False
        return True

    wait_for(repaired, 30, "read repair to reach the replica that was behind")


def test_verify_reports_divergence_and_repairs_it(cluster: LocalCluster, client: Client) -> None:
    data = datasets.load()
    doc_id = data.ids[0]
    group = group_of(cluster, doc_id)
    ahead = cluster.shards[group][0]
    write_to_one_replica(
        ahead.address,
        shard_pb2.ShardWrite(
            id=doc_id, version=future_version(), vector_f32=np.ones(384, "<f4").tobytes()
        ),
    )
    report = client.verify_replicas(COLLECTION)
    assert report.differing == 1 and report.repaired == 0
    [partition] = report.groups[group].partitions
    assert partition.partition == partition_of(doc_id, PARTITIONS)
    assert [r.address for r in partition.replicas] == [s.address for s in cluster.shards[group]]
    assert partition.replicas[0].records == partition.replicas[1].records
    assert partition.replicas[0].hash != partition.replicas[1].hash
    assert all(not g.partitions for g in report.groups if g.group != group)
    assert sum(g.partitions_compared for g in report.groups) == PARTITIONS

    repaired = client.verify_replicas(COLLECTION, repair=True)
    assert (repaired.differing, repaired.repaired) == (1, 1)
    assert client.verify_replicas(COLLECTION).differing == 0


def test_shoal_verify_cli(cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    data = datasets.load()
    doc_id = data.ids[1]
    write_to_one_replica(
        cluster.shards[group_of(cluster, doc_id)][1].address,
        shard_pb2.ShardWrite(id=doc_id, version=future_version(), deleted=True),
    )
    with pytest.raises(SystemExit) as differs:
        cli(["verify", "--collection", COLLECTION, "--address", cluster.address])
    assert differs.value.code == 2
    table = capsys.readouterr().out
    assert table.startswith(f"{COLLECTION}: 1 document differs, 0 repaired")
    assert re.search(r"^\s*group\s+partition\s+replica\s+records\s+hash", table, re.MULTILINE)
    with pytest.raises(SystemExit) as differs:
        cli(["--address", cluster.address, "verify", "--collection", COLLECTION, "--json"])
    assert differs.value.code == 2
    assert json.loads(capsys.readouterr().out)[COLLECTION]["differing"] == 1
    cli(["--address", cluster.address, "verify", "--repair", "--json"])  # every one; exit 0
    report = json.loads(capsys.readouterr().out)[COLLECTION]
    assert (report["differing"], report["repaired"]) == (1, 1)
    cli(["--address", cluster.address, "--json", "verify"])
    assert json.loads(capsys.readouterr().out)[COLLECTION]["differing"] == 0
