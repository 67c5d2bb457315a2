"""The coordinator SIGKILLed in the middle of a batch upsert.

The kill lands while a batch is being written: after one replica of a group
has applied its part and before its peer has, so before the client got an
answer. The hints of that coordinator die with it, and the replicas disagree
about the batch. After a restarted coordinator's VerifyReplicas with repair:
every acknowledged document is on every replica of its group, and no document
anywhere is half written (a vector without its metadata or the reverse): each
replica applies one write request as one RocksDB batch.
"""

import os
import signal
import threading
from typing import Any

import numpy as np
import pytest

from shoal import Client
from shoal.cli.service_process import ServiceProcess
from shoal.errors import ShoalError
from shoal.runtime.wait import wait_for
from tests import datasets
from tests.conftest import StartCluster
from tests.fault import replicas

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
BATCH = 400
ACKNOWLEDGED_BATCHES = 3
MAX_SECONDS = 60.0


def pause(shard: ServiceProcess) -> None:
    assert shard.process is not None
    os.kill(shard.process.pid, signal.SIGSTOP)


def resume(shard: ServiceProcess) -> None:
    assert shard.process is not None
    os.kill(shard.process.pid, signal.SIGCONT)


class BatchUpsert(threading.Thread):
    def __init__(self, address: str, documents: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.documents = documents
        self.acknowledged = False
        self.error: ShoalError | None = None

    def run(self) -> None:
        try:
            with Client(self.address, timeout=60) as client:
                client.upsert(COLLECTION, self.documents, "quorum")
            self.acknowledged = True
        except ShoalError as error:
            self.error = error


def test_acknowledged_batches_survive_a_coordinator_killed_mid_batch(
    start_cluster: StartCluster,
) -> None:
    data = datasets.load()
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384)

    acknowledged: list[str] = []
    for batch in range(ACKNOWLEDGED_BATCHES):
        documents = datasets.with_vectors(data, batch * BATCH, (batch + 1) * BATCH)
        writer = BatchUpsert(cluster.address, documents)
        writer.run()
        assert writer.acknowledged, f"batch {batch} failed: {writer.error}"
        acknowledged += [str(document["id"]) for document in documents]

    # The cut-off batch. One replica of group 0 is paused (a stand-in for a slow
    # replica), so the kill lands after its peer has applied the batch and before
    # the call can be acknowledged (QUORUM of 2 is both).
    start = ACKNOWLEDGED_BATCHES * BATCH
    documents = datasets.with_vectors(data, start, start + BATCH)
    cut = [str(document["id"]) for document in documents]
    fast, slow = cluster.shards[0]
    before = replicas.count(fast.address, COLLECTION)
    writer = BatchUpsert(cluster.address, documents)
    pause(slow)
    try:
        writer.start()
        wait_for(
            lambda: replicas.count(fast.address, COLLECTION) > before,
            MAX_SECONDS,
            "the unpaused replica to apply its part of the batch",
        )
        assert writer.is_alive()
        cluster.coordinator.kill()
    finally:
        resume(slow)
    writer.join(60)
    assert not writer.acknowledged, "the batch was acknowledged by a dead coordinator"
    print(f"coordinator killed mid-batch: {writer.error}")

    cluster.coordinator.start()
    cluster.coordinator.wait_ready()
    with Client(cluster.address, timeout=120) as client:
        first = client.verify_replicas(COLLECTION, repair=True)
        print(f"verify with repair: {first.differing} differing, {first.repaired} repaired")
        assert first.differing > 0, "the replicas of group 0 should disagree about the batch"
        assert first.repaired == first.differing
        again = client.verify_replicas(COLLECTION)
    assert again.differing == 0
    assert all(not group.partitions and not group.unreachable for group in again.groups)

    rows = {doc_id: row for row, doc_id in enumerate(data.ids)}
    every = acknowledged + cut
    found: set[str] = set()
    for group in cluster.shards:
        held = [replicas.documents(shard.address, COLLECTION, every) for shard in group]
        assert held[0].keys() == held[1].keys()
        for replica in held:
            for doc_id, stored in replica.items():
                row = rows[doc_id]
                # Whole: the vector, the text and the metadata that were sent, together.
                vector = np.frombuffer(stored.vector, dtype="<f4")
                assert np.array_equal(vector, data.document_vectors[row])
                assert stored.text == data.documents[row]["text"]
                assert (
                    stored.metadata["section"].string_value
                    == (data.documents[row]["metadata"]["section"])
                )
        found.update(held[0])
    assert set(acknowledged) <= found
    print(
        f"{len(acknowledged)} acknowledged documents on every replica; of the cut-off batch"
        f" {len(set(cut) & found)} of {len(cut)} whole on every replica of their group, the"
        " rest on none"
    )
