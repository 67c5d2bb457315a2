"""Partial updates in the coordinator: a read of the newest record, the change applied
here and the whole record written to every replica."""

from collections.abc import Sequence
from typing import Any

import numpy as np

from coordinator.core.model import DocumentInput, WriteConsistency
from coordinator.core.ports import WriteOp
from coordinator.core.updates import UPDATE_BATCH, MetadataChange
from shoal.errors import Unavailable
from shoal.sdk.where import where_to_filter
from tests.unit.coordinator_fakes import FakeCluster, deadline

DIM = 8
ONE, ALL = WriteConsistency.ONE, WriteConsistency.ALL


async def test_replicas_holding_different_versions_end_with_one_record() -> None:
    cluster = FakeCluster(groups=1, replicas=2)
    ahead, behind = cluster.shards[0]
    await cluster.create("c", DIM)
    vector = np.ones(DIM, dtype=np.float32)
    await cluster.core.writer.upsert(
        "c", [DocumentInput("a", vector, "old text", {"edition": 1})], ALL, deadline()
    )
    base = ahead.documents["c"]["a"].op
    newer = WriteOp("a", base.version + 1, vector_f32=base.vector_f32, text="new text")
    await ahead.write("c", [newer], 1.0)

    change = MetadataChange(set_metadata={"reviewed": True})
    result = await cluster.core.updater.update("c", ["a"], None, change, ALL, deadline())

    assert result.applied == 1
    on_ahead, on_behind = ahead.documents["c"]["a"].op, behind.documents["c"]["a"].op
    assert on_ahead == on_behind
    assert on_ahead.version > newer.version and not on_ahead.patch
    assert (on_ahead.text, dict(on_ahead.metadata)) == ("new text", {"reviewed": True})


async def test_an_update_at_one_works_with_a_replica_down_and_hints_the_whole_record() -> None:
    cluster = FakeCluster(groups=1, replicas=2)
    up, down = cluster.shards[0]
    await cluster.create("c", DIM)
    await cluster.core.writer.upsert(
        "c", [DocumentInput("a", np.ones(DIM, np.float32), "t", {"k": 1})], ALL, deadline()
    )
    down.fail = Unavailable("connection refused")
    change = MetadataChange(set_metadata={"k": 2}, remove_metadata=["missing"])
    result = await cluster.core.updater.update("c", ["a", "gone"], None, change, ONE, deadline())
    assert (result.applied, result.acknowledged) == (1, 1)
    assert dict(up.documents["c"]["a"].op.metadata) == {"k": 2}
    assert cluster.core.hints.pending(down.address) == 1


async def test_many_documents_are_read_and_written_a_batch_at_a_time() -> None:
    """Records travel whole (long texts, chunk vectors): an update of many documents,
    by ids or by filter, goes in calls of at most UPDATE_BATCH of them."""
    cluster = FakeCluster(groups=1, replicas=2)
    shard = cluster.shards[0][0]
    await cluster.create("c", DIM)
    count = 2 * UPDATE_BATCH + 5
    vectors = np.random.default_rng(1).standard_normal((count, DIM)).astype(np.float32)
    ids = [f"d{i}" for i in range(count)]
    await cluster.core.writer.upsert(
        "c",
        [DocumentInput(i, v, None, {"tag": "x"}) for i, v in zip(ids, vectors, strict=True)],
        ALL,
        deadline(),
    )
    written: list[int] = []
    write = shard.write

    async def counting(collection: str, writes: Sequence[WriteOp], *args: Any, **kw: Any) -> Any:
        written.append(len(writes))
        return await write(collection, writes, *args, **kw)

    shard.write = counting  # type: ignore[method-assign]
    change = MetadataChange(set_metadata={"seen": 1})
    by_ids = await cluster.core.updater.update("c", ids, None, change, ALL, deadline())
    assert by_ids.applied == count and sum(written) == count
    assert max(written) <= UPDATE_BATCH and len(written) == 3
    written.clear()
    tag = where_to_filter({"tag": "x"})
    by_filter = await cluster.core.updater.update("c", [], tag, change, ALL, deadline())
    assert by_filter.applied == count and sum(written) == count
    assert max(written) <= UPDATE_BATCH
    assert all(
        dict(s.op.metadata) == {"tag": "x", "seen": 1} for s in shard.documents["c"].values()
    )
