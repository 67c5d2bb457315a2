"""The packed hybrid answer: what a shard packs is what the coordinator reads, and fusing
the packed lists with numpy gives exactly what the per-hit fusion gave."""

import random
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from coordinator.api.public_messages import hit_to_proto
from coordinator.clients.packed_results import hybrid_answer
from coordinator.core.fusion import fuse
from coordinator.core.keyword_reads import _with_carried
from coordinator.core.model import FusedHit, Fusion, HybridOptions, MergedHits
from coordinator.core.packed import ChunkColumns, PackedBatch, PackedHits
from coordinator.core.packed_fusion import fuse_columns
from coordinator.core.ports import HitMessage
from shard.api import proto_reads
from shard.api.packed_hits import fill_packed
from shard.core.documents import QueryHits, StoredDocument
from shoal.keyword import TermStatistics
from shoal.v1 import common_pb2, shard_pb2

NO_FIELDS = common_pb2.Include()
TEXT = common_pb2.Include(text=True, metadata=True)


def _columns(
    ids: Sequence[str],
    scores: Sequence[float],
    documents: Sequence[common_pb2.Document] | None = None,
    chunks: ChunkColumns | None = None,
) -> PackedHits:
    values = np.asarray(scores, dtype=np.float32)
    return PackedHits(list(ids), values, -values, documents, chunks)


def _random_lists(seed: int) -> tuple[PackedHits, PackedHits]:
    """Two best-first lists sharing some ids, scores drawn from few values (ties)."""
    rng = random.Random(seed)
    pool = [f"d{n:03d}" for n in range(rng.randint(0, 60))]
    vector_ids = rng.sample(pool, rng.randint(0, len(pool)))
    keyword_ids = rng.sample(pool, rng.randint(0, len(pool)))
    vector_scores = sorted((rng.choice([0.9, 0.75, 0.5, 0.25]) for _ in vector_ids), reverse=True)
    keyword_scores = sorted((rng.choice([12.5, 7.0, 3.25]) for _ in keyword_ids), reverse=True)
    if rng.random() < 0.2:  # all equal: relative score normalizes to 1
        keyword_scores = [4.0] * len(keyword_ids)
    return _columns(vector_ids, vector_scores), _columns(keyword_ids, keyword_scores)


def _key(hits: Sequence[FusedHit]) -> list[tuple[str, float, object]]:
    return [(hit.id, hit.score, hit.explanation) for hit in hits]


@pytest.mark.parametrize("fusion", list(Fusion))
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("explain", [True, False])
def test_packed_fusion_equals_the_per_hit_fusion(
    fusion: Fusion, alpha: float, explain: bool
) -> None:
    """Same ids, same float64 scores bit for bit, same explanations, same order (ties by
    id), with and without a threshold, for every k."""
    options = HybridOptions(fusion, alpha=alpha)
    for seed in range(150):
        vector, keyword = _random_lists(seed)
        k = 1 + seed % 25
        old = fuse(vector.hits, keyword.hits, k, options, None, explain)
        new = fuse_columns(vector, keyword, k, options, None, explain)
        assert _key(new) == _key(old), seed
        if len(old) > 2:
            threshold = old[len(old) // 2].score
            cut = fuse(vector.hits, keyword.hits, k, options, threshold, explain)
            assert _key(fuse_columns(vector, keyword, k, options, threshold, explain)) == _key(cut)
            assert 0 < len(cut) < len(old) or old[-1].score == threshold


def test_rrf_ties_break_by_id_in_the_packed_fusion() -> None:
    """Rank 2 in one list only scores the same as rank 2 in the other only: by id."""
    vector = _columns(["a", "z", "m"], [0.9, 0.8, 0.7])
    keyword = _columns(["a", "b", "c"], [9.0, 8.0, 7.0])
    fused = fuse_columns(vector, keyword, 3, HybridOptions())
    assert [hit.id for hit in fused] == ["a", "b", "z"]
    assert fused[1].score == fused[2].score


def _merged(hits: PackedHits) -> MergedHits:
    """One list's hits as the per-hit path held them (a list of hit objects)."""
    return MergedHits(list[HitMessage](hits.hits))


def _chunked_vector() -> PackedHits:
    chunks = ChunkColumns(
        np.asarray([2, -1, 0], dtype=np.int32),
        np.asarray([10, -1, 0], dtype=np.int32),
        np.asarray([20, -1, 5], dtype=np.int32),
        ["chunk two", "", "first"],
    )
    documents = [
        common_pb2.Document(id=doc_id, text=f"text of {doc_id}") for doc_id in ("a", "b", "c")
    ]
    return _columns(["a", "b", "c"], [0.9, 0.8, 0.7], documents, chunks)


def test_carried_fields_and_chunks_are_the_ones_the_per_hit_path_gave() -> None:
    """Stored fields come from the vector hit, else the keyword hit; a chunking
    collection's hits carry their vector hit's best chunk: the public hits match."""
    vector = _chunked_vector()
    keyword_documents = [common_pb2.Document(id=i, text=f"kw {i}") for i in ("c", "d", "a")]
    keyword = _columns(["c", "d", "a"], [5.0, 4.0, 1.0], keyword_documents)
    options = HybridOptions()
    old = fuse(vector.hits, keyword.hits, 10, options)
    [old] = _with_carried([old], [_merged(vector)], [_merged(keyword)], True)
    new = fuse_columns(vector, keyword, 10, options, documents=True, chunks=True)
    assert [hit_to_proto(hit) for hit in new] == [hit_to_proto(hit) for hit in old]
    public = {hit.id: hit_to_proto(hit) for hit in new}
    assert (public["a"].chunk, public["a"].chunk_text, public["a"].document.text) == (
        2,
        "chunk two",
        "text of a",
    )
    assert not public["b"].HasField("chunk") and public["d"].document.text == "kw d"
    # Chunks without stored fields: as `_with_carried(documents=False)` gave them.
    [bare] = _with_carried(
        [fuse(vector.hits, keyword.hits, 10, options)],
        [_merged(vector)],
        [_merged(keyword)],
        False,
    )
    packed = fuse_columns(vector, keyword, 10, options, chunks=True)
    assert [hit_to_proto(hit) for hit in packed] == [hit_to_proto(hit) for hit in bare]


def _shard_lists() -> tuple[list[QueryHits], list[QueryHits]]:
    vector = [QueryHits(["a", "b"], [0.875, 0.5], [0.125, 0.5]), QueryHits([], [], [])]
    keyword = [QueryHits(["b", "c", "d"], [3.5, 2.25, 1.0], [-3.5, -2.25, -1.0])]
    return vector, keyword


def _reply(packed: bool, include: common_pb2.Include) -> shard_pb2.ShardHybridSearchResponse:
    """What the shard's HybridSearch writes, in either form, through the wire."""
    vector, keyword = _shard_lists()
    if include.text:
        stored = {
            doc_id: StoredDocument(
                doc_id, b"", common_pb2.Document(text=f"text {doc_id}").SerializeToString()
            )
            for doc_id in "abcd"
        }
        vector, keyword = (
            [replace(hits, documents=[stored[doc_id] for doc_id in hits.ids]) for hits in lists]
            for lists in (vector, keyword)
        )
    response = shard_pb2.ShardHybridSearchResponse()
    if packed:
        fill_packed(response.vector_packed, vector, include)
        fill_packed(response.keyword_packed, keyword, include)
    else:
        for hits in vector:
            proto_reads.hits_to_proto(hits, include, response.vector_results.add())
        for hits in keyword:
            proto_reads.hits_to_proto(hits, include, response.keyword_results.add())
    response.statistics.documents = 4
    response.statistics.total_length = 12
    response.statistics.frequencies.extend([2, 1])
    return shard_pb2.ShardHybridSearchResponse.FromString(response.SerializeToString())


@pytest.mark.parametrize("include", [NO_FIELDS, TEXT], ids=["no fields", "stored fields"])
def test_the_packed_hybrid_reply_reads_back_as_the_per_hit_one(
    include: common_pb2.Include,
) -> None:
    packed = hybrid_answer(_reply(True, include), 2, 1)
    assert isinstance(packed.vector, PackedBatch) and isinstance(packed.keyword, PackedBatch)
    assert packed.vector.counts.tolist() == [2, 0] and packed.keyword.counts.tolist() == [3]
    assert packed.statistics == TermStatistics(4, 12, [2, 1])
    per_hit = hybrid_answer(_reply(False, include), 2, 1)
    assert not isinstance(per_hit.vector, PackedBatch)  # a shard without the packed form
    for new_lists, old_lists in (
        (packed.vector, per_hit.vector),
        (packed.keyword, per_hit.keyword),
    ):
        assert len(new_lists) == len(old_lists)
        for new, old in zip(new_lists, old_lists, strict=True):
            assert [hit_to_proto(hit) for hit in new.hits] == [hit_to_proto(h) for h in old.hits]


def test_a_statistics_only_packed_reply_has_empty_lists() -> None:
    response = shard_pb2.ShardHybridSearchResponse()
    fill_packed(response.keyword_packed, [], NO_FIELDS)
    reply = shard_pb2.ShardHybridSearchResponse.FromString(response.SerializeToString())
    assert reply.HasField("keyword_packed") and not reply.HasField("vector_packed")
    answer = hybrid_answer(reply, 0, 0)
    assert (list(answer.vector), list(answer.keyword)) == ([], [])
