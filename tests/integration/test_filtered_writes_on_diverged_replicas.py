"""Deletes and updates by filter on replicas that hold different versions: 1 shard
group x 2 replicas, real servers, no anti-entropy pass during the module.

A replica that missed a write lists a document by the record it holds. One
replica's listing used to decide what a write by filter reached: listed by the
stale replica, a document whose newest record no longer matches was deleted (or
updated); listed by the up-to-date one, a document whose newest record newly
matches was skipped. The listing now merges as many replicas as the write's
consistency needs and keeps a document only if its newest record matches.
"""

import time
from collections.abc import Iterator

import numpy as np
import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.sdk.requests import Consistency
from shoal.sdk.where import combined_filter
from shoal.v1 import common_pb2, shard_pb2
from tests.conftest import StartCluster
from tests.fault import replicas

COLLECTION = "diverged_filters"
VECTOR = np.full(8, 0.5, dtype="<f4")


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(
        groups=1,
        replicas=2,
        model="hash-8",
        shard_args=("--anti-entropy-interval-s", "3600"),
    )
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=8)
    return cluster


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address, timeout=60) as client:
        yield client


def write_straight(address: str, doc_id: str, tag: str) -> None:
    """A newer version on this replica alone, as a write acknowledged by one replica
    looks before the other catches up."""
    version = (int(time.time() * 1000) - 1) << 20  # above the upsert's, below the next write's
    with replicas.shard_stub(address) as stub:
        stub.Write(
            shard_pb2.ShardWriteRequest(
                collection=COLLECTION,
                writes=[
                    shard_pb2.ShardWrite(
                        id=doc_id,
                        version=version,
                        vector_f32=VECTOR.tobytes(),
                        metadata={"tag": common_pb2.Value(string_value=tag)},
                    )
                ],
            ),
            timeout=30,
        )


def stored(address: str, doc_id: str) -> shard_pb2.ShardWrite:
    with replicas.shard_stub(address) as stub:
        reply = stub.Fetch(
            shard_pb2.ShardFetchRequest(collection=COLLECTION, ids=[doc_id]), timeout=30
        )
    [record] = reply.records
    return record


def diverge(cluster: LocalCluster, client: Client, old: str) -> tuple[str, str]:
    """`moved`: tagged `old` on one replica, "moved" (newer) on the other; `joined`:
    tagged "other" on one, `old` (newer) on the other. Only `joined` matches
    {"tag": old} by its newest record."""
    moved, joined = f"{old}-moved", f"{old}-joined"
    client.upsert(
        COLLECTION,
        [
            {"id": moved, "vector": VECTOR, "metadata": {"tag": old}},
            {"id": joined, "vector": VECTOR, "metadata": {"tag": "other"}},
        ],
        "all",
    )
    first, second = cluster.shards[0]
    write_straight(first.address, moved, "moved")
    write_straight(second.address, joined, old)
    return moved, joined


@pytest.mark.parametrize("consistency", ["quorum", "all"])
def test_a_delete_by_filter_deletes_what_matches_by_the_newest_record(
    cluster: LocalCluster, client: Client, consistency: Consistency
) -> None:
    old = f"delete-{consistency}"
    moved, joined = diverge(cluster, client, old)
    result = client.delete(COLLECTION, where={"tag": old}, consistency=consistency)
    assert result.count == 1
    for shard in cluster.shards[0]:
        assert stored(shard.address, joined).deleted, f"{joined} kept on {shard.name}"
    [kept] = client.get(COLLECTION, [moved], consistency="all")
    assert kept.metadata == {"tag": "moved"}


@pytest.mark.parametrize("consistency", ["quorum", "all"])
def test_an_update_by_filter_updates_what_matches_by_the_newest_record(
    cluster: LocalCluster, client: Client, consistency: Consistency
) -> None:
    old = f"update-{consistency}"
    moved, joined = diverge(cluster, client, old)
    result = client.update(
        COLLECTION,
        where={"tag": old},
        set_metadata={"seen": True},
        consistency=consistency,
    )
    assert result.count == 1
    for shard in cluster.shards[0]:
        assert dict(stored(shard.address, joined).metadata) == {
            "tag": common_pb2.Value(string_value=old),
            "seen": common_pb2.Value(bool_value=True),
        }, shard.name
    [untouched] = client.get(COLLECTION, [moved], consistency="all")
    assert untouched.metadata == {"tag": "moved"}


def test_a_shard_judges_a_fetch_filter_on_each_record_it_returns(
    cluster: LocalCluster, client: Client
) -> None:
    client.upsert(
        COLLECTION,
        [
            {"id": "judged-yes", "vector": VECTOR, "metadata": {"tag": "judged"}},
            {"id": "judged-no", "vector": VECTOR, "metadata": {"tag": "not"}},
        ],
        "all",
    )
    client.delete(COLLECTION, ["judged-gone"])
    condition = combined_filter({"tag": "judged"}, None)
    ids = ["judged-yes", "judged-no", "judged-gone", "never-written"]
    with replicas.shard_stub(cluster.shards[0][0].address) as stub:
        plain = stub.Fetch(shard_pb2.ShardFetchRequest(collection=COLLECTION, ids=ids), timeout=30)
        judged = stub.Fetch(
            shard_pb2.ShardFetchRequest(collection=COLLECTION, ids=ids, filter=condition),
            timeout=30,
        )
        everything = stub.Fetch(
            shard_pb2.ShardFetchRequest(collection=COLLECTION, ids=ids, filter=common_pb2.Filter()),
            timeout=30,
        )
    assert not plain.filter_judged and list(plain.matching) == []
    assert judged.filter_judged and list(judged.matching) == ["judged-yes"]
    assert list(everything.matching) == ["judged-yes", "judged-no"]  # an empty filter: live ones
    assert [r.id for r in judged.records] == [r.id for r in plain.records]
