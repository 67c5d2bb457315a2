"""Get and Scroll are bounded by --max-reply-bytes as searches are (issue 14): the
reply they could grow to (ids or page size x the fields included) is checked on
a real coordinator before any shard is asked, with a message that says what to
change."""

import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.errors import ResourceExhausted
from tests.conftest import StartCluster

DIM = 4
COLLECTION = "replies"
#: 200 documents with text (64 + 1024 bytes each) are over; 5 with text, or 100
#: without any field (64 bytes each), are not.
MAX_REPLY_BYTES = 10_000


@pytest.fixture
def cluster(start_cluster: StartCluster) -> LocalCluster:
    cluster = start_cluster(
        groups=1,
        replicas=1,
        model="hash-8",
        coordinator_args=("--max-reply-bytes", str(MAX_REPLY_BYTES)),
    )
    with Client(cluster.address) as client:
        client.create_collection(COLLECTION, dimension=DIM)
        documents = [{"id": f"d{i}", "vector": [1.0, i, 0, 0], "text": "t"} for i in range(3)]
        client.upsert(COLLECTION, documents)
    return cluster


def test_get_and_scroll_replies_are_bounded_before_any_work(cluster: LocalCluster) -> None:
    ids = [f"d{i}" for i in range(200)]
    with Client(cluster.address) as client:
        with pytest.raises(ResourceExhausted, match=r"a Get of 200 documents .*--max-reply-bytes"):
            client.get(COLLECTION, ids, include=["text"])
        with pytest.raises(ResourceExhausted, match=r"a Scroll page of 100 documents"):
            list(client.scroll(COLLECTION, page_size=100, include=["text"]))
        # Smaller asks, or fewer fields, are answered.
        assert len(client.get(COLLECTION, ids[:5], include=["text"])) == 3
        assert len(client.get(COLLECTION, ids[:100], include=[])) == 3
        assert len(list(client.scroll(COLLECTION, page_size=5, include=["text"]))) == 3
