"""A replica restarted with an empty data dir is rebuilt completely from its peer.

It learns the collection (same settings) from its peer, copies every record,
tombstones included, and serves reads only once it has: the health check says
SERVING after the first catch-up, and from then on it answers like its peer.
"""

import shutil

import numpy as np
import pytest

from shoal import Client
from shoal.v1 import shard_pb2
from tests import datasets
from tests.conftest import StartCluster
from tests.fault import replicas

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
DELETED = 150


def test_replica_with_an_empty_data_dir_is_rebuilt_from_its_peer(
    start_cluster: StartCluster,
) -> None:
    data = datasets.load()
    cluster = start_cluster(groups=1, replicas=2, model="hash-8")
    with Client(cluster.address, timeout=120) as client:
        client.create_collection(COLLECTION, dimension=384, partitions=16, hnsw_ef=80)
        for start in range(0, len(data.documents), 500):
            client.upsert(COLLECTION, datasets.with_vectors(data, start, start + 500), "all")
        client.delete(COLLECTION, data.ids[:DELETED], consistency="all")
    peer, victim = cluster.shards[0]
    peer_digests = replicas.digests(peer.address, COLLECTION)
    assert sum(records for records, _ in peer_digests.values()) == len(data.ids)

    victim.kill()
    data_dir = cluster.root / "data" / victim.name
    shutil.rmtree(data_dir)
    victim.start()
    victim.wait_ready(120)  # SERVING only once the first catch-up is over

    with replicas.shard_stub(victim.address) as stub:
        listed = stub.ListCollections(shard_pb2.ShardListCollectionsRequest(), timeout=30)
    with replicas.shard_stub(peer.address) as stub:
        expected = stub.ListCollections(shard_pb2.ShardListCollectionsRequest(), timeout=30)
    assert listed == expected  # same settings, same live count
    assert replicas.digests(victim.address, COLLECTION) == peer_digests  # tombstones too

    ids = data.ids
    rebuilt = replicas.documents(victim.address, COLLECTION, ids)
    assert rebuilt == replicas.documents(peer.address, COLLECTION, ids)
    assert set(rebuilt) == set(ids[DELETED:])
    assert replicas.count(victim.address, COLLECTION) == len(ids) - DELETED

    # Its index was built too: every document finds itself.
    live = np.arange(DELETED, len(ids))
    found = replicas.nearest(victim.address, COLLECTION, data.document_vectors[live], k=5)
    missing = [ids[row] for row, hits in zip(live, found, strict=True) if ids[row] not in hits]
    assert len(missing) <= len(live) // 200, f"{len(missing)} documents not found by themselves"

    with Client(cluster.address, timeout=60) as client:
        report = client.verify_replicas(COLLECTION)
    assert report.differing == 0 and not report.groups[0].partitions
    print(f"rebuilt {len(rebuilt)} documents and {DELETED} tombstones from the peer")
