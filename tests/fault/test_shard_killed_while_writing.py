"""A shard SIGKILLed while it writes, again and again, restarted on the same data dir.

Each round: start the shard, check what the last round left, write batches
(upserts, updates, deletes) from a thread, SIGKILL the shard after a random
moment. On every restart RocksDB and the index must agree (the live count
the index reports equals the live records in the store, and every live record
is found by searching for its own vector), every acknowledged write must be
there, and the batch cut off by the kill must be all there or not at all.
Checkpoints are made often (every 300 writes) so kills also land during a
checkpoint and restarts replay a checkpoint plus the writes after it.
"""

import random
import threading
import time
from pathlib import Path

import grpc
import pytest

from shoal.cli.service_process import ServiceProcess
from shoal.runtime.server import GRPC_OPTIONS
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc
from tests import datasets
from tests.fault import replicas

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
DIM = 384
POOL = 600  # documents the writes choose from
BATCH = 20
MAX_ROUNDS = 30
MAX_SECONDS = 240.0
#: Versions: each write of the test gets a fresh, increasing one.
State = tuple[int, bool]  # (version, deleted)


class Writer(threading.Thread):
    """Batches of upserts and deletes until the shard dies (or a bound is hit)."""

    def __init__(self, address: str, rng: random.Random, next_version: int) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.rng = rng
        self.version = next_version
        self.acked: dict[str, State] = {}
        self.in_flight: dict[str, State] = {}
        self.batches = 0

    def run(self) -> None:
        vectors = datasets.load().document_vectors
        with grpc.insecure_channel(self.address, options=GRPC_OPTIONS) as channel:
            stub = shard_pb2_grpc.ShardServiceStub(channel)
            while self.batches < 400:
                rows = self.rng.sample(range(POOL), BATCH)
                writes = []
                batch: dict[str, State] = {}
                for row in rows:
                    self.version += 1
                    deleted = self.rng.random() < 0.25
                    batch[str(row)] = (self.version, deleted)
                    write = shard_pb2.ShardWrite(id=str(row), version=self.version, deleted=deleted)
                    if not deleted:
                        write.vector_f32 = vectors[row].astype("<f4").tobytes()
                        write.metadata["v"].int_value = self.version
                    writes.append(write)
                self.in_flight = batch
                try:
                    stub.Write(
                        shard_pb2.ShardWriteRequest(collection=COLLECTION, writes=writes),
                        timeout=30,
                    )
                except grpc.RpcError:
                    return  # killed: this batch is the one cut off
                self.acked.update(batch)
                self.in_flight = {}
                self.batches += 1


def start(workdir: Path) -> ServiceProcess:
    shard = ServiceProcess(
        "shard",
        "shard",
        ["--data-dir", str(workdir / "data"), "--threads", "2", "--checkpoint-every-writes", "300"],
        workdir,
    )
    shard.start()
    shard.wait_ready(60)
    return shard


def check(
    shard: ServiceProcess, acked: dict[str, State], cut: dict[str, State]
) -> tuple[int, bool]:
    """Compare the restarted shard with what was acknowledged; (live count, cut batch applied)."""
    vectors = datasets.load().document_vectors
    ids = [str(row) for row in range(POOL)]
    held = replicas.documents(shard.address, COLLECTION, ids)
    versions = {doc_id: stored.metadata["v"].int_value for doc_id, stored in held.items()}
    applied = [
        (doc_id not in held) if deleted else versions.get(doc_id) == version
        for doc_id, (version, deleted) in cut.items()
    ]
    # The cut-off batch: all of it or none of it (a doc it did not change reads as applied).
    before = [
        (doc_id not in held)
        if acked.get(doc_id, (0, True))[1]
        else versions.get(doc_id) == acked[doc_id][0]
        for doc_id in cut
    ]
    assert all(applied) or all(before), "the batch cut off by the kill is half applied"
    cut_applied = bool(cut) and all(applied)
    expected = dict(acked)
    if cut_applied:
        expected.update(cut)
    for doc_id, (version, deleted) in expected.items():
        if deleted:
            assert doc_id not in held, f"deleted document {doc_id} is back"
        else:
            assert versions.get(doc_id) == version, f"document {doc_id}: acknowledged {version}"
            assert held[doc_id].vector == vectors[int(doc_id)].astype("<f4").tobytes()
    assert set(held) == {doc_id for doc_id, (_, deleted) in expected.items() if not deleted}
    # The index agrees with the store: same live count, and every live document is found.
    assert replicas.count(shard.address, COLLECTION) == len(held)
    live = sorted(held)
    if live:
        found = replicas.nearest(
            shard.address, COLLECTION, vectors[[int(i) for i in live]], k=5, ef=200
        )
        missing = [doc_id for doc_id, hits in zip(live, found, strict=True) if doc_id not in hits]
        assert missing == [], f"{len(missing)} live documents are not searchable"
    return len(held), cut_applied


def test_every_acknowledged_write_survives_repeated_sigkills(tmp_path: Path) -> None:
    rng = random.Random(11)
    shard = start(tmp_path)
    with replicas.shard_stub(shard.address) as stub:
        config = common_pb2.CollectionConfig(name=COLLECTION, dimension=DIM, partitions=8)
        stub.CreateCollection(shard_pb2.ShardCreateCollectionRequest(config=config), timeout=30)
    acked: dict[str, State] = {}
    cut: dict[str, State] = {}
    version = 0
    rounds = cut_applied = 0
    deadline = time.monotonic() + MAX_SECONDS
    try:
        while rounds < MAX_ROUNDS and time.monotonic() < deadline:
            if rounds:
                shard = start(tmp_path)
            _, applied = check(shard, acked, cut)
            if applied:
                acked.update(cut)
                cut_applied += 1
            writer = Writer(shard.address, rng, version)
            writer.start()
            time.sleep(rng.uniform(0.05, 0.6))
            shard.kill()
            writer.join(60)
            assert not writer.is_alive()
            acked.update(writer.acked)
            cut = writer.in_flight
            version = writer.version
            rounds += 1
        shard = start(tmp_path)
        live, applied = check(shard, acked, cut)
    finally:
        shard.kill()
    print(
        f"{rounds} SIGKILLs while writing; {len(acked)} ids acknowledged, {live} live at the end;"
        f" the cut-off batch was applied in {cut_applied + applied} of {rounds} kills"
    )
    assert rounds >= 12, f"only {rounds} rounds fit in {MAX_SECONDS:.0f}s"
