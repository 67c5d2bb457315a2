"""A replica SIGKILLed while chunked documents are replaced, deleted and added is
repaired by its catch-up and anti-entropy: it ends up holding exactly the newest
chunks of each document, as the replicas that saw every write do.

Hints would repair it too; the coordinator keeps none here (a hint queue of one
write, and every write a batch of several), so the repair is the shard's own.
"""

import random

import numpy as np

from shoal import Client
from shoal.runtime.wait import wait_for
from shoal.v1 import common_pb2, shard_pb2
from tests.conftest import StartCluster
from tests.fault import replicas

COLLECTION = "manuals"
MODEL = "hash-64"
CHUNK_TOKENS = 40  # words, for the hash model
DOCUMENTS = 60
WORDS = [f"w{i}" for i in range(300)]

#: What one replica holds of a document: its text and chunk spans.
Held = tuple[str, list[tuple[int, int]]]


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def held(address: str, ids: list[str]) -> dict[str, Held]:
    with replicas.shard_stub(address) as stub:
        reply = stub.Get(
            shard_pb2.ShardGetRequest(
                collection=COLLECTION, ids=ids, include=common_pb2.Include(text=True)
            ),
            timeout=replicas.TIMEOUT,
        )
    return {d.id: (d.text, [(s.start, s.end) for s in d.chunks]) for d in reply.documents}


def index_chunks(address: str) -> int:
    with replicas.shard_stub(address) as stub:
        reply = stub.ListCollections(
            shard_pb2.ShardListCollectionsRequest(), timeout=replicas.TIMEOUT
        )
    [listed] = [c for c in reply.collections if c.config.name == COLLECTION]
    return int(listed.chunk_count)


def searched(address: str, queries: np.ndarray) -> list[tuple[str, int, int, int]]:
    """Every query's 5 nearest documents with their best chunk and its span."""
    with replicas.shard_stub(address) as stub:
        reply = stub.Search(
            shard_pb2.ShardSearchRequest(
                collection=COLLECTION,
                queries_f32=queries.astype("<f4").tobytes(),
                k=5,
                ef=400,
                packed=True,
            ),
            timeout=replicas.TIMEOUT,
        )
    chunks = np.frombuffer(reply.chunks_i32, "<i4").tolist()
    starts = np.frombuffer(reply.chunk_starts_i32, "<i4").tolist()
    ends = np.frombuffer(reply.chunk_ends_i32, "<i4").tolist()
    return list(zip(reply.ids, chunks, starts, ends, strict=True))


def test_a_replica_that_missed_chunked_writes_holds_the_newest_chunks_after_repair(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(
        groups=1,
        replicas=3,
        model=MODEL,
        shard_args=("--anti-entropy-interval-s", "0.5", "--catch-up-wait-s", "5"),
        coordinator_args=("--hint-max-writes", "1"),
    )
    rng = random.Random(18)
    ids = [f"doc-{i}" for i in range(DOCUMENTS)]
    texts = {doc_id: text(rng, rng.randint(5, 400)) for doc_id in ids}
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(
            COLLECTION,
            embedding_model=MODEL,
            partitions=4,
            chunking={"chunk_tokens": CHUNK_TOKENS, "overlap_tokens": 5},
        )
        client.upsert(COLLECTION, [{"id": i, "text": t} for i, t in texts.items()], "all")
        [up, also_up, down] = cluster.shards[0]
        before = held(down.address, ids)
        assert len(before) == DOCUMENTS
        down.kill()

        # While it is down: long documents replaced by short ones and short by long
        # (several batches, so some documents change more than once), deletes, and
        # new documents.
        for _ in range(4):
            changed = rng.sample(ids, 12)
            batch = {}
            for doc_id in changed:
                was_long = len(before[doc_id][1]) > 1
                batch[doc_id] = text(rng, rng.randint(3, 30) if was_long else rng.randint(150, 500))
            client.upsert(COLLECTION, [{"id": i, "text": t} for i, t in batch.items()], "quorum")
            texts.update(batch)
        gone = rng.sample(sorted(texts), 6)
        client.delete(COLLECTION, gone, consistency="quorum")
        for doc_id in gone:
            del texts[doc_id]
        new = {f"new-{i}": text(rng, rng.randint(50, 300)) for i in range(8)}
        client.upsert(COLLECTION, [{"id": i, "text": t} for i, t in new.items()], "quorum")
        texts.update(new)
        every = sorted(set(ids) | set(new))
        reference = held(up.address, every)
        assert {i: t for i, (t, _) in reference.items()} == texts
        assert held(also_up.address, every) == reference
        assert {i: h for i, h in reference.items() if i in before} != before  # it missed them
        # Each document's vector (the mean of its chunks') as a query.
        found = client.get(COLLECTION, sorted(texts), include=["vector"])
        queries = np.asarray([d.vector for d in found], dtype=np.float32)

    down.start()
    down.wait_ready(60)
    wait_for(
        lambda: held(down.address, every) == reference,
        60,
        "the restarted replica to hold the newest text and chunks of every document",
        interval=0.5,
    )
    # Exactly those chunks in its index: none of an old, longer text's left behind.
    total = sum(len(spans) for _, spans in reference.values())
    assert index_chunks(down.address) == index_chunks(up.address) == total
    assert searched(down.address, queries) == searched(up.address, queries)
    assert replicas.digests(down.address, COLLECTION) == replicas.digests(up.address, COLLECTION)
