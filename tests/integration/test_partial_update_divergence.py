"""A partial update on replicas that hold different versions of a document: 1 shard
group x 2 replicas, real servers, no anti-entropy pass during the module.

The divergence is made by writing straight to one replica a newer version than the
other holds, the way a write acknowledged by one replica (the other down, its hint
not yet replayed) looks before catch-up; and once with real processes stopped and
started (the last test). The update must leave both replicas with
the same record: if each patched the record it held, both would carry the same new
version with different contents, and the version digests of anti-entropy and
verify would never see the difference.
"""

import time
from collections.abc import Iterator

import numpy as np
import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.v1 import common_pb2, shard_pb2
from tests import datasets
from tests.conftest import StartCluster
from tests.fault import replicas

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "diverged"
DOCUMENTS = 50


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    # No anti-entropy pass during the module, and a replica that starts while its
    # peer is down serves after a second without catching up.
    cluster = start_module_cluster(
        groups=1,
        replicas=2,
        model="hash-8",
        shard_args=("--anti-entropy-interval-s", "3600", "--catch-up-wait-s", "1"),
    )
    data = datasets.load()
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384)
        client.upsert(COLLECTION, datasets.with_vectors(data, 0, DOCUMENTS), "all")
    return cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address, timeout=60) as client:
        yield client


def recent_version() -> int:
    """Newer than the coordinator's upsert, older than its next write (its clock is
    milliseconds << 20 and has moved on by the time the update is sent)."""
    return (int(time.time() * 1000) - 1) << 20


def records(address: str, ids: list[str]) -> dict[str, shard_pb2.ShardWrite]:
    with replicas.shard_stub(address) as stub:
        reply = stub.Fetch(shard_pb2.ShardFetchRequest(collection=COLLECTION, ids=ids), timeout=30)
    return {record.id: record for record in reply.records}


def test_an_update_leaves_replicas_that_held_different_versions_identical(
    cluster: LocalCluster, client: Client
) -> None:
    data = datasets.load()
    doc_id = data.ids[3]
    ahead, behind = cluster.shards[0]
    newer_vector = np.ones(384, dtype="<f4").tobytes()
    with replicas.shard_stub(ahead.address) as stub:
        stub.Write(
            shard_pb2.ShardWriteRequest(
                collection=COLLECTION,
                writes=[
                    shard_pb2.ShardWrite(
                        id=doc_id,
                        version=recent_version(),
                        vector_f32=newer_vector,
                        text="the newer text",
                        metadata={"edition": common_pb2.Value(string_value="second")},
                    )
                ],
            ),
            timeout=30,
        )
    assert records(ahead.address, [doc_id])[doc_id] != records(behind.address, [doc_id])[doc_id]

    result = client.update(
        COLLECTION, [doc_id], set_metadata={"reviewed": "yes"}, consistency="all"
    )
    assert result.count == 1

    on_ahead = records(ahead.address, [doc_id])[doc_id]
    on_behind = records(behind.address, [doc_id])[doc_id]
    assert on_ahead == on_behind, "the replicas hold the same version with different contents"
    # The update was made on the newest record: the newer write's fields are kept.
    assert on_ahead.text == "the newer text"
    assert on_ahead.vector_f32 == newer_vector
    assert dict(on_ahead.metadata) == {
        "edition": common_pb2.Value(string_value="second"),
        "reviewed": common_pb2.Value(string_value="yes"),
    }
    assert client.verify_replicas(COLLECTION).differing == 0


def test_an_update_by_filter_reads_the_newest_record_too(
    cluster: LocalCluster, client: Client
) -> None:
    data = datasets.load()
    doc_id = data.ids[7]
    section = data.documents[7]["metadata"]["section"]
    ahead, behind = cluster.shards[0]
    with replicas.shard_stub(ahead.address) as stub:
        stub.Write(
            shard_pb2.ShardWriteRequest(
                collection=COLLECTION,
                writes=[
                    shard_pb2.ShardWrite(
                        id=doc_id,
                        version=recent_version(),
                        vector_f32=np.full(384, 0.5, dtype="<f4").tobytes(),
                        metadata={
                            "section": common_pb2.Value(string_value=section),
                            "batch": common_pb2.Value(string_value="late"),
                        },
                    )
                ],
            ),
            timeout=30,
        )
    # The matching ids are listed from one replica, the records read from both.
    client.update(
        COLLECTION, where={"section": section}, set_metadata={"seen": 1}, consistency="all"
    )
    on_ahead = records(ahead.address, [doc_id])
    on_behind = records(behind.address, [doc_id])
    assert on_ahead == on_behind
    assert client.verify_replicas(COLLECTION).differing == 0


def restart(service: ServiceProcess) -> None:
    service.stop()
    service.start()
    service.wait_ready()


def test_a_replica_that_missed_a_write_and_its_hint_ends_like_the_other(
    cluster: LocalCluster,
) -> None:
    """The missed write made with real processes: one replica stopped while a new
    version is written at ONE, the hint lost with the coordinator's restart, the
    replica back while its peer is down (so it serves without catching up), the
    peer back (it pulls only what is newer). Then the update."""
    data = datasets.load()
    doc_id = data.ids[11]
    ahead, behind = cluster.shards[0]
    behind.stop()
    newer = {"id": doc_id, "vector": np.full(384, 0.25, dtype="<f4"), "text": "rewritten",
             "metadata": {"edition": "third"}}  # fmt: skip
    with Client(cluster.address, timeout=60) as client:
        client.upsert(COLLECTION, [newer], "one")
    restart(cluster.coordinator)  # its hints for the stopped replica go with it
    ahead.stop()
    behind.start()
    behind.wait_ready()
    ahead.start()
    ahead.wait_ready()
    assert records(ahead.address, [doc_id])[doc_id].text == "rewritten"
    assert records(behind.address, [doc_id])[doc_id].text != "rewritten"

    with Client(cluster.address, timeout=60) as client:
        result = client.update(COLLECTION, [doc_id], remove_metadata=["edition"], consistency="all")
        assert result.count == 1
        on_ahead = records(ahead.address, [doc_id])[doc_id]
        assert on_ahead == records(behind.address, [doc_id])[doc_id]
        assert (on_ahead.text, dict(on_ahead.metadata)) == ("rewritten", {})
        assert client.verify_replicas(COLLECTION).differing == 0
