"""Snapshots while the cluster is not in its plain state: after a partition moved to
another group (its older documents stay where they were), and with a replica down."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoal import Client
from shoal.errors import NotFound, Unavailable
from shoal.partitioning import partition_of
from shoal.runtime.wait import wait_for
from tests.conftest import StartCluster

DIM = 4
PARTITIONS = 4
DOCUMENTS = 120


def document(n: int, text: str) -> dict[str, Any]:
    vector = np.random.default_rng(n).standard_normal(DIM).astype(np.float32)
    return {"id": f"d{n}", "vector": vector, "text": text}


def test_snapshot_finds_documents_of_a_moved_partition_where_they_are(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    location = ("--snapshot-location", str(tmp_path / "snapshots"))
    cluster = start_cluster(groups=2, replicas=1, model="hash-8", coordinator_args=location)
    ids = [f"d{n}" for n in range(DOCUMENTS)]
    moved = [n for n in range(DOCUMENTS) if partition_of(f"d{n}", PARTITIONS) == 0]
    updated, deleted, untouched = moved[0::3], moved[1::3], moved[2::3]
    assert updated and deleted and untouched
    with Client(cluster.address, timeout=60) as client:
        client.create_collection("c", dimension=DIM, partitions=PARTITIONS)
        client.upsert("c", [document(n, "before") for n in range(DOCUMENTS)], "all")
        assert client.get_topology().group_of_partition(0) == 0
        client.move_partition(0, 1)  # routing moves; the stored documents stay in group 0
        client.upsert("c", [document(n, "after") for n in updated], "all")
        client.delete("c", [f"d{n}" for n in deleted], consistency="all")

        client.create_snapshot("moved", ["c"])
        client.restore_snapshot("moved", ["c"], new_name="restored")
        restored = {d.id: d for d in client.get("restored", ids)}
    expected_absent = {f"d{n}" for n in deleted}
    assert set(restored) == set(ids) - expected_absent
    for n in updated:
        assert restored[f"d{n}"].text == "after"
    for n in untouched:  # still only in group 0, which no longer owns partition 0
        assert restored[f"d{n}"].text == "before"


def reachable_by_all(client: Client) -> bool:
    try:
        client.get("c", ["d0"], consistency="all")
    except Unavailable:
        return False
    return True


def test_snapshot_with_a_replica_down_reads_the_one_that_holds_every_quorum_write(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    """With 2 replicas a QUORUM write is on both, so one replica is enough to read;
    a restore needs every replica of a group up: refused, and nothing left, until
    the replica is back."""
    location = ("--snapshot-location", str(tmp_path / "snapshots"))
    cluster = start_cluster(groups=1, replicas=2, model="hash-8", coordinator_args=location)
    ids = [f"d{n}" for n in range(DOCUMENTS)]
    with Client(cluster.address, timeout=60) as client:
        client.create_collection("c", dimension=DIM, partitions=PARTITIONS)
        client.upsert("c", [document(n, "before") for n in range(DOCUMENTS)], "quorum")
        down = cluster.shards[0][1]
        down.kill()
        snapshot = client.create_snapshot("one-down", ["c"])
        assert snapshot.collections[0].documents == DOCUMENTS
        # A load that fails halfway (a replica is down) leaves no collection behind.
        with pytest.raises(Unavailable):
            client.restore_snapshot("one-down", ["c"], new_name="restored")
        with pytest.raises(NotFound):
            client.get_collection("restored")
        down.start()
        down.wait_ready(60)
        # The coordinator's channel retries a replica that refused it within 0.5 s.
        wait_for(lambda: reachable_by_all(client), 10, "the coordinator to reach both replicas")
        client.restore_snapshot("one-down", ["c"], new_name="restored")
        restored = client.get("restored", ids, consistency="all")
    assert [d.id for d in restored] == ids
