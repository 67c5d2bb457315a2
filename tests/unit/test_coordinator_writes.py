"""Writes: routing, versions, embedding, and counting acknowledgements per group."""

import asyncio

import numpy as np
import pytest

from coordinator.core.clock import split_version
from coordinator.core.model import DocumentInput, WriteConsistency
from coordinator.core.ports import Include
from shoal.errors import DeadlineExceeded, InvalidArgument, NotFound, Unavailable
from shoal.sdk.where import where_to_filter
from tests.unit.coordinator_fakes import FakeCluster, deadline

DIM = 8
ONE, QUORUM, ALL = WriteConsistency.ONE, WriteConsistency.QUORUM, WriteConsistency.ALL


def documents(count: int, prefix: str = "d") -> list[DocumentInput]:
    rng = np.random.default_rng(count)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    return [DocumentInput(f"{prefix}{i}", vectors[i]) for i in range(count)]


async def test_each_document_goes_to_every_replica_of_its_group_only() -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    config = await cluster.create("c", DIM, partitions=16)
    result = await cluster.core.writer.upsert("c", documents(60), ALL, deadline())
    assert (result.written, result.acknowledged, result.replicas) == (60, 2, 2)
    for group, replicas in enumerate(cluster.shards):
        held = [set(replica.documents["c"]) for replica in replicas]
        assert held[0] == held[1]
        assert all(cluster.topology.group_of(i, config.partitions) == group for i in held[0])
    assert sum(len(replicas[0].documents["c"]) for replicas in cluster.shards) == 60


async def test_versions_are_fresh_and_carry_the_coordinator_id() -> None:
    cluster = FakeCluster(groups=1, replicas=1, coordinator_id=9)

    await cluster.create("c", DIM)
    await cluster.core.writer.upsert("c", documents(5), ONE, deadline())
    first = {i: s.version for i, s in cluster.shards[0][0].documents["c"].items()}
    await cluster.core.writer.upsert("c", documents(5), ONE, deadline())
    second = {i: s.version for i, s in cluster.shards[0][0].documents["c"].items()}
    assert len(set(first.values())) == 5
    assert all(second[i] > first[i] for i in first)
    assert {split_version(v)[2] for v in second.values()} == {9}


async def test_quorum_returns_without_waiting_for_a_slow_replica() -> None:
    """The slow replica's call is not cancelled: it gets the write once it answers."""
    cluster = FakeCluster(groups=2, replicas=3)

    await cluster.create("c", DIM)
    gate = asyncio.Event()
    for group in cluster.shards:
        group[2].gate = gate
    result = await cluster.core.writer.upsert("c", documents(20), QUORUM, deadline())
    assert (result.acknowledged, result.replicas) == (2, 3)
    assert all(not group[2].documents["c"] for group in cluster.shards)
    assert len(cluster.core.background) == 2
    gate.set()
    await cluster.core.background.drain(5)
    assert len(cluster.core.background) == 0
    for group in cluster.shards:
        assert set(group[2].documents["c"]) == set(group[0].documents["c"])


@pytest.mark.parametrize(
    ("consistency", "failed", "acknowledged"),
    [(ONE, 2, 1), (QUORUM, 1, 2), (ALL, 0, 3)],
)
async def test_write_succeeds_when_enough_replicas_acknowledge(
    consistency: WriteConsistency, failed: int, acknowledged: int
) -> None:
    cluster = FakeCluster(groups=2, replicas=3)

    await cluster.create("c", DIM)
    for group in cluster.shards:
        for replica in group[:failed]:
            replica.fail = Unavailable("connection refused")
    result = await cluster.core.writer.upsert("c", documents(10), consistency, deadline())
    assert result.acknowledged == acknowledged
    assert result.replicas == 3


@pytest.mark.parametrize(
    ("consistency", "failed", "words"),
    [
        (ONE, 3, "0 of 3 replicas acknowledged, 1 needed"),
        (QUORUM, 2, "1 of 3 replicas acknowledged, 2 needed"),
        (ALL, 1, "2 of 3 replicas acknowledged, 3 needed"),
    ],
)
async def test_write_fails_naming_the_group_when_too_few_acknowledge(
    consistency: WriteConsistency, failed: int, words: str
) -> None:
    cluster = FakeCluster(groups=2, replicas=3)

    await cluster.create("c", DIM)
    for replica in cluster.shards[1][:failed]:
        replica.fail = Unavailable("connection refused")
    with pytest.raises(Unavailable) as caught:
        await cluster.core.writer.upsert("c", documents(30), consistency, deadline())
    message = str(caught.value)
    assert f"shard group 1: {words}" in message
    assert "shard group 0" not in message
    assert "10.0.1.0:7000" in message and "connection refused" in message


async def test_hung_replica_with_all_runs_into_the_deadline() -> None:
    cluster = FakeCluster(groups=1, replicas=2)

    await cluster.create("c", DIM)
    cluster.shards[0][1].hang = True
    with pytest.raises(DeadlineExceeded, match="1 of 2 replicas acknowledged"):
        await cluster.core.writer.upsert("c", documents(3), ALL, deadline(0.2))


async def test_hung_replica_with_quorum_of_three_is_not_waited_for() -> None:
    cluster = FakeCluster(groups=1, replicas=3)

    await cluster.create("c", DIM)
    cluster.shards[0][1].hang = True
    result = await cluster.core.writer.upsert("c", documents(3), QUORUM, deadline(30))
    assert result.acknowledged == 2
    # The hung call is still running in the background, not cancelled.
    assert len(cluster.core.background) == 1


async def test_delete_counts_documents_that_existed() -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    await cluster.create("c", DIM)
    await cluster.core.writer.upsert("c", documents(30), ALL, deadline())
    ids = ["d1", "d2", "d3", "missing-1", "missing-2"]
    result = await cluster.core.writer.delete("c", ids, ALL, deadline())
    assert (result.deleted, result.acknowledged, result.replicas) == (3, 2, 2)
    count = await cluster.core.reader.count("c", False, deadline())
    assert count.count == 27
    found = await cluster.core.reader.get("c", ids, Include(), False, deadline())
    assert found.documents == []
    again = await cluster.core.writer.delete("c", ids, ALL, deadline())
    assert again.deleted == 0


async def test_texts_are_embedded_in_batches_and_vectors_are_kept() -> None:
    cluster = FakeCluster(groups=2, replicas=1)
    cluster.embedder.max_batch = 4

    await cluster.create("t", model="hash-8")
    given = np.full(DIM, 0.5, dtype=np.float32)
    docs = [DocumentInput(f"t{i}", None, f"text {i}") for i in range(10)]
    docs.append(DocumentInput("v", given, "kept as it is"))
    await cluster.core.writer.upsert("t", docs, QUORUM, deadline())
    assert sorted(cluster.embedder.batches) == [2, 4, 4]
    stored = {
        doc_id: entry.op
        for group in cluster.shards
        for doc_id, entry in group[0].documents["t"].items()
    }
    assert np.frombuffer(stored["v"].vector_f32, "<f4").tolist() == given.tolist()
    assert stored["v"].text == "kept as it is"
    assert len(stored["t3"].vector_f32) == 4 * DIM
    assert stored["t3"].text == "text 3"


async def test_texts_longer_than_the_embedder_takes_are_cut_for_embedding_only() -> None:
    cluster = FakeCluster(groups=1, replicas=1)
    cluster.embedder.max_input_chars = 10

    await cluster.create("t", model="hash-8")
    long_text = "0123456789" + "x" * 50
    await cluster.core.writer.upsert(
        "t", [DocumentInput("long", None, long_text)], QUORUM, deadline()
    )
    assert cluster.embedder.texts == ["0123456789"]
    assert cluster.shards[0][0].documents["t"]["long"].op.text == long_text


async def test_embedder_failure_stores_nothing() -> None:
    cluster = FakeCluster(groups=2, replicas=1)

    await cluster.create("t", model="hash-8")
    cluster.embedder.fail = Unavailable("embedder:1: connection refused")
    docs = [DocumentInput("v", np.ones(DIM, np.float32)), DocumentInput("t", None, "x")]
    with pytest.raises(Unavailable, match="embedder"):
        await cluster.core.writer.upsert("t", docs, QUORUM, deadline())
    assert all("write" not in shard.calls for shard in cluster.all_shards)


async def test_collection_deleted_behind_the_cache_is_not_found() -> None:
    cluster = FakeCluster(groups=1, replicas=2)

    await cluster.create("c", DIM)
    await cluster.core.writer.upsert("c", documents(2), ALL, deadline())
    for replica in cluster.all_shards:  # another coordinator deleted it
        replica.collections.clear()
    with pytest.raises(NotFound, match="'c'"):
        await cluster.core.writer.upsert("c", documents(2), QUORUM, deadline())
    # The stale config is gone: the next call asks the shards again.
    calls = sum(replica.calls.count("list_collections") for replica in cluster.all_shards)
    with pytest.raises(NotFound):
        await cluster.core.writer.upsert("c", documents(2), QUORUM, deadline())
    after = sum(replica.calls.count("list_collections") for replica in cluster.all_shards)
    assert after == calls + 1


async def test_shard_rejection_is_passed_on_not_counted_as_unavailable() -> None:
    cluster = FakeCluster(groups=1, replicas=2)

    await cluster.create("c", DIM)
    for replica in cluster.all_shards:
        replica.fail = InvalidArgument("metadata 'x': too long")
    with pytest.raises(InvalidArgument, match="too long"):
        await cluster.core.writer.upsert("c", documents(2), ONE, deadline())


async def test_empty_write_touches_no_shard() -> None:
    cluster = FakeCluster(groups=2, replicas=3)

    await cluster.create("c", DIM)
    result = await cluster.core.writer.upsert("c", [], QUORUM, deadline())
    assert (result.written, result.replicas) == (0, 3)
    assert all("write" not in shard.calls for shard in cluster.all_shards)


#: The documents whose metadata "n" is below 25.
is_small = where_to_filter({"n": {"$lt": 25}})
#: Every document of `documents` (they have no metadata).
everything = where_to_filter({"n": {"$exists": False}})


async def test_delete_by_filter_tombstones_every_match_in_every_group() -> None:
    cluster = FakeCluster(groups=3, replicas=2)

    await cluster.create("c", DIM)
    docs = [DocumentInput(d.id, d.vector, None, {"n": n}) for n, d in enumerate(documents(2_500))]
    await cluster.core.writer.upsert("c", docs, ALL, deadline())
    result = await cluster.core.writer.delete("c", [], QUORUM, deadline(), filter=is_small)
    assert (result.deleted, result.replicas) == (25, 2)
    assert result.acknowledged >= 2
    count = await cluster.core.reader.count("c", False, deadline())
    assert count.count == 2_475
    none_left = await cluster.core.writer.delete("c", [], QUORUM, deadline(), filter=is_small)
    assert none_left.deleted == 0


async def test_delete_by_filter_pages_through_large_matches() -> None:
    cluster = FakeCluster(groups=1, replicas=1)

    await cluster.create("c", DIM)
    await cluster.core.writer.upsert("c", documents(2_500), ALL, deadline())
    result = await cluster.core.writer.delete("c", [], ONE, deadline(), filter=everything)
    assert result.deleted == 2_500
    assert cluster.shards[0][0].calls.count("write") == 1 + 3  # the upsert, three pages


async def test_delete_by_ids_and_filter_at_once_is_rejected() -> None:
    cluster = FakeCluster(groups=1, replicas=1)

    await cluster.create("c", DIM)
    with pytest.raises(InvalidArgument, match="not both"):
        await cluster.core.writer.delete("c", ["a"], ONE, deadline(), filter=is_small)


async def test_writes_keep_succeeding_and_hinting_while_a_replica_stays_down() -> None:
    """A replica down for thousands of writes: its back-off stays bounded (it once
    overflowed after 1,024 failures and every write then failed INTERNAL), writes
    at ONE and QUORUM succeed, and each write it missed is kept as a hint."""
    cluster = FakeCluster(groups=1, replicas=3)
    down = cluster.shards[0][2]
    vector = np.ones(DIM, dtype=np.float32)

    await cluster.create("c", DIM)
    down.fail = Unavailable("connection refused")
    for i in range(2_100):
        consistency = ONE if i < 2_000 else QUORUM
        document = DocumentInput(f"d{i}", vector)
        result = await cluster.core.writer.upsert("c", [document], consistency, deadline())
        assert result.acknowledged == 2
    assert cluster.core.hints.pending(down.address) == 2_100
