"""Tombstones past the grace period are purged on every replica, and replicas still agree.

The grace period is shortened to two seconds here (the default is seven days),
and checkpoints are frequent, since only tombstones an index checkpoint covers
are purged.
"""

import pytest

from shoal import Client
from shoal.runtime.wait import wait_for
from tests import datasets
from tests.conftest import StartCluster
from tests.fault import replicas

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
DOCUMENTS = 100
DELETED = 30


def test_expired_tombstones_are_purged_and_replicas_still_agree(
    start_cluster: StartCluster,
) -> None:
    data = datasets.load()
    cluster = start_cluster(
        groups=1,
        replicas=2,
        model="hash-8",
        shard_args=(
            "--tombstone-grace-s", "2",
            "--tombstone-purge-interval-s", "0.5",
            "--checkpoint-interval-s", "0.5",
        ),
    )  # fmt: skip
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384, partitions=8)
        client.upsert(COLLECTION, datasets.with_vectors(data, 0, DOCUMENTS), "all")
        client.delete(COLLECTION, data.ids[:DELETED], consistency="all")

    def purged() -> bool:
        """Every replica logged its purge (the store), and digests count live records only."""
        return all(
            "purged 30 expired tombstones" in shard.log_path.read_text()
            and sum(n for n, _ in replicas.digests(shard.address, COLLECTION).values())
            == DOCUMENTS - DELETED
            for shard in cluster.shards[0]
        )

    wait_for(purged, 30, "the tombstones to be purged")
    for shard in cluster.shards[0]:
        assert replicas.count(shard.address, COLLECTION) == DOCUMENTS - DELETED
        assert not replicas.documents(shard.address, COLLECTION, data.ids[:DELETED])
    with Client(cluster.address, timeout=60) as client:
        report = client.verify_replicas(COLLECTION)
        assert report.differing == 0 and not report.groups[0].partitions
        assert client.count(COLLECTION) == DOCUMENTS - DELETED
