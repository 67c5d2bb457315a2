"""A shard SIGKILLed while it replaces chunked documents, restarted on the same data dir.

Each write replaces a document with a new number of chunks (1 to 12, so a
shorter text must leave none of the old chunks behind). Each round writes
batches from a thread and SIGKILLs the shard at a random moment; after every
restart each live document must hold exactly the chunks of its newest stored
version (its spans, its chunk vectors in the index and nothing else), the
index's chunk count must be the sum over the documents, every acknowledged
write must be there, and the batch cut off must be all there or not at all.
Checkpoints come every 200 writes or 0.2 s, so restarts load the newest one
(with each document's chunk count) and catch up on the writes after it, rather
than rebuilding the index from RocksDB.
"""

import json
import random
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from shoal.cli.service_process import ServiceProcess
from shoal.runtime.server import GRPC_OPTIONS
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc
from tests.fault import replicas

COLLECTION = "manuals"
DIM = 16
POOL = 80
BATCH = 10
MAX_CHUNKS = 12
MAX_ROUNDS = 12
MAX_SECONDS = 120.0
State = tuple[int, int]  # (version, chunks)


def chunk_vectors(doc_id: str, version: int, chunks: int) -> np.ndarray:
    rng = np.random.default_rng([int(doc_id), version])
    return rng.standard_normal((chunks, DIM)).astype("<f4")


def write_for(doc_id: str, version: int, chunks: int) -> shard_pb2.ShardWrite:
    write = shard_pb2.ShardWrite(
        id=doc_id,
        version=version,
        vector_f32=chunk_vectors(doc_id, version, chunks).tobytes(),
        text="x" * (10 * chunks),
        chunks=[common_pb2.ChunkSpan(start=10 * i, end=10 * i + 10) for i in range(chunks)],
    )
    write.metadata["v"].int_value = version
    write.metadata["n"].int_value = chunks
    return write


class Writer(threading.Thread):
    """Batches of replacements until the shard dies (or a bound is hit)."""

    def __init__(self, address: str, rng: random.Random, version: int) -> None:
        super().__init__(daemon=True)
        self.address, self.rng, self.version = address, rng, version
        self.acked: dict[str, State] = {}
        self.in_flight: dict[str, State] = {}

    def run(self) -> None:
        with grpc.insecure_channel(self.address, options=GRPC_OPTIONS) as channel:
            stub = shard_pb2_grpc.ShardServiceStub(channel)
            for _ in range(2000):
                batch: dict[str, State] = {}
                for row in self.rng.sample(range(POOL), BATCH):
                    self.version += 1
                    batch[str(row)] = (self.version, self.rng.randint(1, MAX_CHUNKS))
                writes = [write_for(i, v, n) for i, (v, n) in batch.items()]
                self.in_flight = batch
                try:
                    stub.Write(
                        shard_pb2.ShardWriteRequest(collection=COLLECTION, writes=writes),
                        timeout=30,
                    )
                except grpc.RpcError:
                    return
                self.acked.update(batch)
                self.in_flight = {}


def start(workdir: Path) -> ServiceProcess:
    shard = ServiceProcess(
        "shard",
        "shard",
        [
            *("--data-dir", str(workdir / "data"), "--threads", "2"),
            *("--checkpoint-every-writes", "200", "--checkpoint-interval-s", "0.2"),
        ],
        workdir,
    )
    shard.start()
    shard.wait_ready(60)
    return shard


def index_source(shard: ServiceProcess) -> object:
    """Where the newest start of `shard` took the collection's index from."""
    for line in reversed(shard.log_path.read_text().splitlines()):
        if '"event": "collection_loaded"' in line:
            return json.loads(line[line.index("{") :])["index_source"]
    raise AssertionError(f"no load line in the log:\n{shard.log_tail()}")


def held_state(address: str) -> dict[str, tuple[int, list[tuple[int, int]]]]:
    """Per live document: (version, chunk spans) as the replica answers."""
    ids = [str(row) for row in range(POOL)]
    with replicas.shard_stub(address) as stub:
        reply = stub.Get(
            shard_pb2.ShardGetRequest(
                collection=COLLECTION, ids=ids, include=common_pb2.Include(metadata=True, text=True)
            ),
            timeout=30,
        )
    return {
        d.id: (d.metadata["v"].int_value, [(s.start, s.end) for s in d.chunks])
        for d in reply.documents
    }


def index_chunks(address: str) -> int:
    with replicas.shard_stub(address) as stub:
        reply = stub.ListCollections(shard_pb2.ShardListCollectionsRequest(), timeout=30)
    [listed] = [c for c in reply.collections if c.config.name == COLLECTION]
    return int(listed.chunk_count)


def check(address: str, acked: dict[str, State], cut: dict[str, State]) -> bool:
    held = held_state(address)
    applied = [held.get(i, (0, []))[0] == v for i, (v, _) in cut.items()]
    assert all(applied) or not any(applied), "the batch cut off by the kill is half applied"
    expected = dict(acked)
    if cut and all(applied):
        expected.update(cut)
    assert {i: v for i, (v, _) in held.items()} == {i: v for i, (v, _) in expected.items()}
    for doc_id, (_, spans) in held.items():
        assert len(spans) == expected[doc_id][1], f"document {doc_id}: stale or missing spans"
    # Exactly the new chunks in the index: the count, and each chunk found as itself.
    assert index_chunks(address) == sum(n for _, n in expected.values())
    with replicas.shard_stub(address) as stub:
        for doc_id, (version, chunks) in sorted(expected.items())[:20]:
            queries = chunk_vectors(doc_id, version, chunks)
            reply = stub.Search(
                shard_pb2.ShardSearchRequest(
                    collection=COLLECTION, queries_f32=queries.tobytes(), k=3, ef=200
                ),
                timeout=30,
            )
            for chunk, result in enumerate(reply.results):
                top = result.hits[0]
                assert (top.id, top.chunk) == (doc_id, chunk), f"{doc_id} chunk {chunk}"
    return bool(cut) and all(applied)


@pytest.mark.timeout(600)
def test_replacing_chunked_documents_survives_sigkills(tmp_path: Path) -> None:
    rng = random.Random(5)
    shard = start(tmp_path)
    with replicas.shard_stub(shard.address) as stub:
        config = common_pb2.CollectionConfig(
            name=COLLECTION,
            dimension=DIM,
            partitions=4,
            chunking=common_pb2.ChunkingConfig(enabled=True, chunk_tokens=32, overlap_tokens=4),
        )
        stub.CreateCollection(shard_pb2.ShardCreateCollectionRequest(config=config), timeout=30)
    acked: dict[str, State] = {}
    cut: dict[str, State] = {}
    version = rounds = applied_cuts = 0
    sources: list[object] = []
    deadline = time.monotonic() + MAX_SECONDS
    try:
        while rounds < MAX_ROUNDS and time.monotonic() < deadline:
            if rounds:
                shard = start(tmp_path)
                sources.append(index_source(shard))
            if check(shard.address, acked, cut):
                acked.update(cut)
                applied_cuts += 1
            writer = Writer(shard.address, rng, version)
            writer.start()
            time.sleep(rng.uniform(0.05, 0.5))  # a random moment for the kill
            shard.kill()
            writer.join(60)
            assert not writer.is_alive()
            acked.update(writer.acked)
            cut, version = writer.in_flight, writer.version
            rounds += 1
        shard = start(tmp_path)
        sources.append(index_source(shard))
        check(shard.address, acked, cut)
    finally:
        shard.kill()
    print(f"{rounds} SIGKILLs while replacing chunked documents; {len(acked)} ids written")
    print(f"index loaded from: {sources}")
    assert rounds >= 6
    # Stale checkpoints (writes followed them) were loaded and caught up, not rebuilt.
    assert sources.count("checkpoint") >= 3, sources
