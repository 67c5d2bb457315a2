"""A group's answer cut to what it owns while partitions move: columns stay columns, with
the same hits, in the same order, as the cut of the same answer read hit by hit."""

from dataclasses import dataclass

import numpy as np

from coordinator.core.owned_hits import Ownership
from coordinator.core.packed import ChunkColumns, PackedBatch
from shoal.partitioning import stable_hash
from shoal.topology import ShardGroup, Topology

PARTITIONS = 8


@dataclass(frozen=True)
class Doc:
    """A stored document as a shard returned it (a `DocumentMessage`)."""

    id: str


def test_a_packed_answer_is_cut_as_columns_like_the_per_hit_one() -> None:
    groups = (ShardGroup(0, ("a:1",)), ShardGroup(1, ("b:1",)))
    # Group 0 owns the even partitions; partition 3 is moving to it (group 1 still owns it).
    ownership = Ownership(0, Topology(2, groups, moving={3: 0}), PARTITIONS)
    ids = [f"d{i}" for i in range(40)]
    counts = [15, 0, 25]
    scores = np.linspace(1.0, 0.0, len(ids), dtype=np.float32)
    chunks = ChunkColumns(
        np.arange(len(ids), dtype=np.int32),
        np.arange(len(ids), dtype=np.int32) * 10,
        np.arange(len(ids), dtype=np.int32) * 10 + 5,
        [f"chunk {i}" for i in range(len(ids))],
    )
    batch = PackedBatch.from_counts(
        counts, ids, scores, -scores, [Doc(doc_id) for doc_id in ids], chunks
    )

    cut = ownership.hits(batch)

    assert isinstance(cut, PackedBatch)
    per_hit = ownership.hits(list(batch))  # the same lists, not as a batch: hit by hit
    # Ids, scores, distances, stored fields and chunks, hit for hit.
    assert [hits.hits for hits in cut] == [list(hits.hits) for hits in per_hit]
    owned = [doc_id for doc_id in ids if stable_hash(doc_id) % PARTITIONS % 2 == 0]
    assert list(cut.ids) == owned and 0 < len(owned) < len(ids)
    assert cut.counts.tolist() == [
        sum(1 for doc_id in ids[:15] if doc_id in owned),
        0,
        sum(1 for doc_id in ids[15:] if doc_id in owned),
    ]
