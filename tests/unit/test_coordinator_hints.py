"""Hinted handoff: what is kept for a replica that missed writes, its bounds, and replay."""

from collections import Counter

import numpy as np
import pytest

from coordinator.core.hints import HintLimits, HintReplayer, HintStore
from coordinator.core.model import DocumentInput, WriteConsistency
from coordinator.core.ports import WriteOp
from shoal.errors import InvalidArgument, NotFound, Unavailable
from shoal.runtime.wait import async_wait_for
from tests.unit.coordinator_fakes import FakeCluster, deadline

DIM = 8


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.hints: Counter[tuple[str, str]] = Counter()

    def record_hints(self, replica: str, outcome: str, writes: int) -> None:
        self.hints[(replica, outcome)] += writes

    def record_divergence(self, group: int, documents: int) -> None:
        pass

    def record_repairs(self, group: int, source: str, documents: int) -> None:
        pass

    def record_repairs_skipped(self, group: int, source: str, documents: int) -> None:
        pass


def ops(count: int, start: int = 0) -> list[WriteOp]:
    return [WriteOp(f"d{i}", version=i + 1) for i in range(start, start + count)]


def test_store_keeps_hints_in_order_within_the_write_bound() -> None:
    recorder = Recorder()
    store = HintStore(HintLimits(max_writes=10), observer=recorder)
    assert store.add("r1", "c", ops(6))
    assert not store.add("r1", "c", ops(5, 6))  # would make 11
    assert store.add("r1", "c", ops(4, 6))
    assert store.add("r2", "c", ops(1))
    assert (store.pending("r1"), store.pending("r2"), store.pending()) == (10, 1, 11)
    assert recorder.hints[("r1", "dropped")] == 5
    first = store.oldest("r1")
    assert first is not None and [op.id for op in first.ops] == [f"d{i}" for i in range(6)]
    store.replayed("r1")
    second = store.oldest("r1")
    assert second is not None and len(second.ops) == 4
    store.replayed("r1")
    assert store.oldest("r1") is None
    assert store.pending("r1") == 0
    assert recorder.hints[("r1", "replayed")] == 10


def test_store_drops_hints_past_the_age_limit() -> None:
    clock = Clock()
    recorder = Recorder()
    store = HintStore(HintLimits(max_age_s=60), clock=clock, observer=recorder)
    store.add("r", "c", ops(3))
    clock.now += 30
    store.add("r", "c", ops(2, 3))
    clock.now += 40  # the first is 70 s old, the second 40 s
    hint = store.oldest("r")
    assert hint is not None and len(hint.ops) == 2
    assert recorder.hints[("r", "dropped")] == 3
    assert store.pending("r") == 2


def test_failed_replays_back_off_doubling_up_to_the_limit_and_reset_on_success() -> None:
    clock = Clock()
    store = HintStore(HintLimits(first_backoff_s=1, max_backoff_s=4), clock=clock)
    store.add("r", "c", ops(1))
    store.add("r", "c", ops(1, 1))
    assert store.due() == ["r"]
    assert [store.failed("r") for _ in range(4)] == [1, 2, 4, 4]
    assert store.due() == []
    clock.now += 4
    assert store.due() == ["r"]
    store.replayed("r")
    assert store.failed("r") == 1  # the backoff starts over


def test_replay_back_off_stays_bounded_however_long_the_replica_stays_down() -> None:
    """2,500 failed replays (it once overflowed at 1,024 and lost the hints)."""
    clock = Clock()
    store = HintStore(HintLimits(first_backoff_s=0.25, max_backoff_s=5), clock=clock)
    store.add("r", "c", ops(1))
    backoffs = [store.failed("r") for _ in range(2_500)]
    assert max(backoffs) == backoffs[-1] == 5
    assert store.pending("r") == 1
    store.replayed("r")
    store.add("r", "c", ops(1, 1))
    assert store.failed("r") == 0.25


async def test_a_replica_that_missed_a_write_gets_it_by_replay() -> None:
    cluster = FakeCluster(groups=1, replicas=2)
    down = cluster.shards[0][1]
    vectors = np.eye(DIM, dtype=np.float32)

    await cluster.create("c", DIM)
    down.fail = Unavailable("connection refused")
    documents = [DocumentInput(f"d{i}", vectors[i]) for i in range(DIM)]
    result = await cluster.core.writer.upsert("c", documents, WriteConsistency.ONE, deadline())
    assert result.acknowledged == 1
    await cluster.core.writer.delete("c", ["d0"], WriteConsistency.ONE, deadline())
    assert cluster.core.hints.pending(down.address) == DIM + 1
    replayer = HintReplayer(cluster.core.hints, {down.address: down}.get)
    assert await replayer.replay_due() == 0  # still down: backs off
    assert cluster.core.hints.pending(down.address) == DIM + 1
    down.fail = None
    await _replay_until_empty(replayer, cluster, down.address)
    live = {i for i, s in down.documents["c"].items() if not s.op.deleted}
    assert live == {f"d{i}" for i in range(1, DIM)}
    assert down.documents["c"]["d0"].op.deleted


async def _replay_until_empty(replayer: HintReplayer, cluster: FakeCluster, address: str) -> None:
    """Replay until nothing is left, waiting out the backoff of the failed try (0.25 s)."""

    async def replayed() -> bool:
        await replayer.replay_due()
        return cluster.core.hints.pending(address) == 0

    await async_wait_for(replayed, 2.0, "the hints to be replayed")


async def test_no_hint_for_errors_every_replica_would_give() -> None:
    cluster = FakeCluster(groups=1, replicas=2)

    await cluster.create("c", DIM)
    vector = np.ones(DIM, dtype=np.float32)
    # A replica that says the request is wrong would say so again on replay.
    cluster.shards[0][1].fail = InvalidArgument("bad vector")
    result = await cluster.core.writer.upsert(
        "c", [DocumentInput("a", vector)], WriteConsistency.ONE, deadline()
    )
    assert result.acknowledged == 1
    assert cluster.core.hints.pending() == 0
    # The same for a collection no replica has.
    cluster.shards[0][1].fail = None
    with pytest.raises(NotFound):
        await cluster.core.writer.upsert(
            "missing", [DocumentInput("a", vector)], WriteConsistency.ONE, deadline()
        )
    assert cluster.core.hints.pending() == 0


async def test_replay_drops_hints_for_a_deleted_collection() -> None:
    store = HintStore()
    cluster = FakeCluster(groups=1, replicas=1)
    shard = cluster.shards[0][0]
    store.add(shard.address, "gone", ops(2))

    replayer = HintReplayer(store, {shard.address: shard}.get)
    assert await replayer.replay_due() == 0
    assert store.pending() == 0
