"""Listings and reads a write by filter starts from, merged over replicas that differ."""

import pytest

from coordinator.core.ports import Include, OpaqueFilter, ScrollPage, WriteOp
from coordinator.core.quorum_reads import matching_ids, newest_records
from coordinator.core.replicas import ReplicaGroup
from shoal.errors import Unavailable
from shoal.sdk.where import combined_filter
from shoal.v1 import common_pb2
from tests.unit.coordinator_fakes import FakeCluster, FakeShard, deadline

TAGGED = combined_filter({"tag": "x"}, None)


def tagged(doc_id: str, version: int, tag: str) -> WriteOp:
    return WriteOp(
        doc_id, version, vector_f32=b"\0" * 32, metadata={"tag": common_pb2.Value(string_value=tag)}
    )


async def cluster_of(holdings: list[list[WriteOp]]) -> tuple[ReplicaGroup, list[FakeShard]]:
    """One group whose replicas hold `holdings` (one list each)."""
    cluster = FakeCluster(groups=1, replicas=len(holdings))
    await cluster.create("c", 8)
    shards = cluster.shards[0]
    for shard, ops in zip(shards, holdings, strict=True):
        await shard.write("c", ops, 5)
    return cluster.core.routing.groups[0], shards


async def all_pages(group: ReplicaGroup, page_size: int, needed: int) -> list[list[str]]:
    assert TAGGED is not None
    pages, after = [], ""
    for _ in range(100):
        ids, after = await matching_ids(group, "c", TAGGED, after, page_size, needed, deadline())
        pages.append(ids)
        if not after:
            return pages
    raise AssertionError("the listing never ended")


async def test_pages_merge_every_replica_asked_and_skip_nothing_between_them() -> None:
    holdings = [
        [tagged(f"d{i:02}", 1, "x") for i in range(0, 20, 2)],  # the even ones
        [tagged(f"d{i:02}", 1, "x") for i in range(1, 20, 3)],  # every third
        [tagged(f"d{i:02}", 1, "x" if i % 5 == 0 else "y") for i in range(20)],
    ]
    group, _ = await cluster_of(holdings)
    expected = sorted({f"d{i:02}" for i in range(20) if i % 2 == 0 or i % 3 == 1 or i % 5 == 0})
    for page_size in (1, 3, 7, 50):
        pages = await all_pages(group, page_size, needed=3)
        listed = [doc_id for page in pages for doc_id in page]
        assert listed == expected, page_size
        assert all(len(page) <= 3 * page_size for page in pages)


async def test_a_listing_at_one_goes_on_with_the_other_replicas_down() -> None:
    group, shards = await cluster_of([[tagged("a", 1, "x")], [tagged("b", 1, "x")]])
    shards[1].fail = Unavailable("down")
    assert await all_pages(group, 10, needed=1) == [["a"]]
    with pytest.raises(Unavailable, match="1 of 2 replicas answered"):
        await all_pages(group, 10, needed=2)


async def test_only_documents_whose_newest_record_matches_are_kept() -> None:
    group, _ = await cluster_of(
        [
            [tagged("moved", 1, "x"), tagged("joined", 2, "x"), tagged("same", 1, "x")],
            [tagged("moved", 2, "y"), tagged("joined", 1, "y"), tagged("same", 1, "x")],
        ]
    )
    ids = ["moved", "joined", "same", "absent"]
    kept = await newest_records(group, "c", ids, 2, deadline(), TAGGED)
    assert {doc_id: op.version for doc_id, op in kept.items()} == {"joined": 2, "same": 1}
    unfiltered = await newest_records(group, "c", ids, 2, deadline())
    assert {doc_id: op.version for doc_id, op in unfiltered.items()} == {
        "moved": 2,
        "joined": 2,
        "same": 1,
    }


class MovingShard(FakeShard):
    """Cuts its pages to the ids it owns, as a shard does while a partition moves:
    here it owns none before "m"."""

    async def scroll(
        self,
        collection: str,
        filter: OpaqueFilter | None,
        after_id: str,
        limit: int,
        include: Include,
        timeout_s: float,
    ) -> ScrollPage:
        page = await super().scroll(collection, filter, after_id, limit, include, timeout_s)
        kept = [document for document in page.documents if document.id >= "m"]
        if len(kept) == len(page.documents):
            return page
        return ScrollPage(kept, page.more, page.documents[-1].id)


async def test_a_page_cut_to_nothing_during_a_move_does_not_end_the_listing() -> None:
    cluster = FakeCluster(groups=1, replicas=1)
    shard = MovingShard(cluster.shards[0][0].address)
    cluster.core.routing.groups[0].replicas[0].client = shard
    await cluster.create("c", 8)
    await shard.write("c", [tagged(doc_id, 1, "x") for doc_id in ("a", "b", "c", "n", "z")], 5)
    pages = await all_pages(cluster.core.routing.groups[0], 2, needed=1)
    assert pages == [[], ["n"], ["z"]]
