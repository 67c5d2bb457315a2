"""Hybrid candidate lists as columns: what a shard packs, or answers a `Hit` per
candidate, is what the coordinator reads, and the numpy fusion gives, bit for bit,
what the fusion formulas give computed one candidate at a time."""

import random
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from coordinator.api.public_messages import hit_to_proto
from coordinator.clients.packed_results import hybrid_answer
from coordinator.core.fusion import fuse
from coordinator.core.model import Explanation, FusedHit, Fusion, HybridOptions
from coordinator.core.packed import ChunkColumns, PackedHits
from coordinator.core.ports import Include
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


def _one_by_one(
    vector: PackedHits,
    keyword: PackedHits,
    k: int,
    options: HybridOptions,
    threshold: float | None,
) -> list[tuple[str, float, Explanation]]:
    """The fusion computed candidate by candidate in Python floats, as the module's
    docstring states it: each list's parts, summed vector part first, the best k
    by (score descending, id), the threshold judged in float32."""

    def parts(hits: PackedHits, weight: float) -> list[float]:
        scores = [float(score) for score in hits.scores]
        if options.fusion is Fusion.RRF:
            return [weight / (options.rrf_k + rank) for rank in range(1, len(scores) + 1)]
        low, high = min(scores, default=0.0), max(scores, default=0.0)
        if high <= low:
            return [weight * 1.0 for _ in scores]
        return [weight * ((score - low) / (high - low)) for score in scores]

    alpha = options.alpha
    fused: dict[str, float] = {}
    if alpha > 0:
        fused.update(zip(vector.ids, parts(vector, alpha), strict=True))
    if alpha < 1:
        for doc_id, part in zip(keyword.ids, parts(keyword, 1 - alpha), strict=True):
            fused[doc_id] = fused.get(doc_id, 0.0) + part
    ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
    if threshold is not None:
        ranked = [(i, s) for i, s in ranked if np.float32(s) >= np.float32(threshold)]
    v_rank = {doc_id: rank for rank, doc_id in enumerate(vector.ids, 1)}
    w_rank = {doc_id: rank for rank, doc_id in enumerate(keyword.ids, 1)}
    return [
        (
            doc_id,
            score,
            Explanation(
                v_rank.get(doc_id),
                None if doc_id not in v_rank else float(vector.scores[v_rank[doc_id] - 1]),
                w_rank.get(doc_id),
                None if doc_id not in w_rank else float(keyword.scores[w_rank[doc_id] - 1]),
            ),
        )
        for doc_id, score in ranked
    ]


def _key(hits: Sequence[FusedHit]) -> list[tuple[str, float, object]]:
    return [(hit.id, hit.score, hit.explanation) for hit in hits]


@pytest.mark.parametrize("fusion", list(Fusion))
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_the_fusion_equals_the_formulas_one_candidate_at_a_time(
    fusion: Fusion, alpha: float
) -> None:
    """Same ids, same float64 scores bit for bit, same explanations, same order (ties by
    id), with and without a threshold, for every k."""
    options = HybridOptions(fusion, alpha=alpha)
    for seed in range(150):
        vector, keyword = _random_lists(seed)
        k = 1 + seed % 25
        expected = _one_by_one(vector, keyword, k, options, None)
        assert _key(fuse(vector, keyword, k, options, None)) == expected, seed
        unexplained = fuse(vector, keyword, k, options, None, explain=False)
        assert [(hit.id, hit.score, hit.explanation) for hit in unexplained] == [
            (doc_id, score, None) for doc_id, score, _ in expected
        ]
        if len(expected) > 2:
            threshold = expected[len(expected) // 2][1]
            cut = _one_by_one(vector, keyword, k, options, threshold)
            assert _key(fuse(vector, keyword, k, options, threshold)) == cut
            assert 0 < len(cut) < len(expected) or expected[-1][1] == threshold


def test_rrf_ties_break_by_id() -> None:
    """Rank 2 in one list only scores the same as rank 2 in the other only: by id."""
    vector = _columns(["a", "z", "m"], [0.9, 0.8, 0.7])
    keyword = _columns(["a", "b", "c"], [9.0, 8.0, 7.0])
    fused = fuse(vector, keyword, 3, HybridOptions())
    assert [hit.id for hit in fused] == ["a", "b", "z"]
    assert fused[1].score == fused[2].score


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


def test_fused_hits_carry_their_candidates_stored_fields_and_best_chunks() -> None:
    """Stored fields come from the vector hit, else the keyword hit; a chunking
    collection's hits carry their vector hit's best chunk."""
    vector = _chunked_vector()
    keyword_documents = [common_pb2.Document(id=i, text=f"kw {i}") for i in ("c", "d", "a")]
    keyword = _columns(["c", "d", "a"], [5.0, 4.0, 1.0], keyword_documents)
    options = HybridOptions()
    public = {
        hit.id: hit_to_proto(hit)
        for hit in fuse(vector, keyword, 10, options, documents=True, chunks=True)
    }
    assert set(public) == {"a", "b", "c", "d"}
    assert (public["a"].chunk, public["a"].chunk_text, public["a"].document.text) == (
        2,
        "chunk two",
        "text of a",
    )
    assert (public["c"].chunk, public["c"].chunk_span.end, public["c"].document.text) == (
        0,
        5,
        "text of c",
    )
    assert not public["b"].HasField("chunk") and public["b"].document.text == "text of b"
    assert not public["d"].HasField("chunk") and public["d"].document.text == "kw d"
    # Chunks without stored fields.
    bare = {hit.id: hit_to_proto(hit) for hit in fuse(vector, keyword, 10, options, chunks=True)}
    assert bare["a"].chunk == 2 and not bare["a"].document.text
    assert not bare["d"].HasField("chunk")


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


@pytest.mark.parametrize(
    ("include", "asked"),
    [(NO_FIELDS, Include()), (TEXT, Include(text=True, metadata=True))],
    ids=["no fields", "stored fields"],
)
def test_packed_and_per_hit_hybrid_replies_read_as_the_same_columns(
    include: common_pb2.Include, asked: Include
) -> None:
    packed = hybrid_answer(_reply(True, include), 2, 1, asked)
    assert packed.vector.counts.tolist() == [2, 0] and packed.keyword.counts.tolist() == [3]
    assert packed.statistics == TermStatistics(4, 12, [2, 1])
    per_hit = hybrid_answer(_reply(False, include), 2, 1, asked)  # no packing
    assert per_hit.statistics == packed.statistics
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
    answer = hybrid_answer(reply, 0, 0, Include())
    assert (list(answer.vector), list(answer.keyword)) == ([], [])
