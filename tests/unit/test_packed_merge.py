"""The numpy merge of packed shard answers gives the per-hit merge's answer exactly:
higher score first, ties to the lower id, at most k, empty groups and short lists."""

from dataclasses import dataclass

import numpy as np
import pytest

from coordinator.core.merge import merge_top_k
from coordinator.core.packed import ChunkColumns, PackedBatch, PackedHit
from coordinator.core.packed_merge import merge_packed, top_k
from shoal.distance_metric import Metric

Rows = list[list[tuple[str, float]]]


@dataclass(frozen=True)
class Doc:
    """A stored document as a shard returned it (a `DocumentMessage`)."""

    id: str


def batch(rows: Rows, documents: bool = False) -> PackedBatch:
    """A group's answer: per query, (id, score) best first; distance = -score."""
    hits = [hit for row in rows for hit in row]
    scores = np.array([score for _, score in hits], dtype=np.float32)
    return PackedBatch.from_counts(
        [len(row) for row in rows],
        [doc_id for doc_id, _ in hits],
        scores,
        -scores,
        [Doc(doc_id) for doc_id, _ in hits] if documents and hits else None,
    )


def ranked(merged: PackedBatch) -> list[list[tuple[str, float]]]:
    return [list(zip(hits.ids, hits.scores.tolist(), strict=True)) for hits in merged]


def reference(groups: list[Rows], k: int) -> list[list[tuple[str, float]]]:
    """The per-hit merge (merge.merge_top_k) of the same lists, in float32."""
    answer = []
    for query in range(len(groups[0])):
        lists = [
            [PackedHit(doc_id, float(np.float32(score)), 0.0) for doc_id, score in group[query]]
            for group in groups
        ]
        answer.append([(hit.id, hit.score) for hit in merge_top_k(lists, k)])
    return answer


@pytest.mark.parametrize(("groups", "k"), [(2, 10), (3, 1), (5, 7), (4, 100)])
def test_merge_equals_the_per_hit_merge_on_random_answers(groups: int, k: int) -> None:
    rng = np.random.default_rng(groups * 100 + k)
    answers: list[Rows] = []
    for group in range(groups):
        rows: Rows = []
        for _ in range(30):
            count = int(rng.integers(0, k + 1))
            # Coarse scores, so that ties across and within groups are common.
            scores = np.sort(rng.integers(0, 8, count) / 8)[::-1]
            ids = sorted(f"g{group}-{i:03d}" for i in rng.choice(500, count, replace=False))
            row = sorted(zip(ids, scores.tolist(), strict=True), key=lambda h: (-h[1], h[0]))
            rows.append(row)
        answers.append(rows)
    merged = merge_packed([batch(rows) for rows in answers], k)
    assert ranked(merged) == reference(answers, k)


def test_ties_go_to_the_lower_id_whatever_the_group_order() -> None:
    first: Rows = [[("b", 0.5), ("d", 0.5)]]
    second: Rows = [[("a", 0.5), ("c", 0.4)]]
    for order in ([first, second], [second, first]):
        merged = merge_packed([batch(rows) for rows in order], 3)
        assert merged[0].ids == ["a", "b", "d"]


def test_a_tie_at_the_k_th_place_keeps_the_lower_id() -> None:
    merged = merge_packed([batch([[("z", 0.9), ("y", 0.5)]]), batch([[("x", 0.5)]])], 2)
    assert merged[0].ids == ["z", "x"]


def test_fewer_hits_than_k_and_empty_groups() -> None:
    merged = merge_packed(
        [batch([[], [("a", 0.375)], []]), batch([[("b", 0.875)], [], []]), batch([[], [], []])], 5
    )
    assert ranked(merged) == [[("b", 0.875)], [("a", 0.375)], []]
    assert merged.counts.tolist() == [1, 1, 0]


def test_every_group_empty() -> None:
    merged = merge_packed([batch([[], []]), batch([[], []])], 10)
    assert len(merged) == 2 and merged.counts.tolist() == [0, 0] and merged.ids == []


@pytest.mark.parametrize("metric", list(Metric))
def test_higher_score_first_for_every_metric(metric: Metric) -> None:
    """Shards score every metric so that higher is better (l2: -distance); the merge
    orders by score, so the smaller L2 distance comes first too."""
    rng = np.random.default_rng(7)
    query = rng.standard_normal(8).astype(np.float32)
    vectors = rng.standard_normal((40, 8)).astype(np.float32)
    if metric is Metric.L2:
        distances = np.linalg.norm(vectors - query, axis=1)
        scores = -distances
    else:
        if metric is Metric.COSINE:
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        scores = vectors @ query
        distances = 1 - scores
    groups = []
    for group in range(2):
        rows = [i for i in range(40) if i % 2 == group]
        rows.sort(key=lambda i: -scores[i])
        groups.append(
            PackedBatch.from_counts(
                [len(rows)],
                [f"d{i:02d}" for i in rows],
                scores[rows].astype(np.float32),
                distances[rows].astype(np.float32),
            )
        )
    merged = merge_packed(groups, 5)[0]
    best = np.argsort(distances, kind="stable")[:5]
    assert merged.ids == [f"d{i:02d}" for i in best]
    assert (np.diff(merged.scores) <= 0).all() and (np.diff(merged.distances) >= 0).all()


def test_answers_cut_by_a_score_threshold_merge_to_what_passed_it() -> None:
    """Shards apply the threshold; the merge keeps their cut lists' best k."""
    threshold = 0.5
    one: Rows = [[(doc_id, s) for doc_id, s in [("a", 0.9), ("b", 0.6)] if s >= threshold]]
    two: Rows = [[(doc_id, s) for doc_id, s in [("c", 0.7), ("d", 0.4)] if s >= threshold]]
    merged = merge_packed([batch(one), batch(two)], 10)
    assert merged[0].ids == ["a", "c", "b"]
    assert (merged[0].scores >= threshold).all()


def test_stored_fields_follow_their_hits() -> None:
    merged = merge_packed([batch([[("a", 0.9), ("c", 0.1)]], True), batch([[("b", 0.5)]], True)], 2)
    assert merged[0].documents == [Doc("a"), Doc("b")]
    assert [(hit.id, hit.document) for hit in merged[0].hits] == [("a", Doc("a")), ("b", Doc("b"))]


@pytest.mark.parametrize("empty_first", [True, False])
def test_stored_fields_survive_a_group_that_found_nothing(empty_first: bool) -> None:
    """A group with no hits answers no `Document`s, so its batch reads as one without
    stored fields: the other groups' fields must still follow their hits."""
    empty = batch([[], []], True)
    assert empty.documents is None  # what packed_from_reply makes of no documents
    found = batch([[("a", 0.9), ("b", 0.5)], [("c", 0.7)]], True)
    groups = [empty, found] if empty_first else [found, empty]
    merged = merge_packed(groups, 2)
    assert [hits.documents for hits in merged] == [[Doc("a"), Doc("b")], [Doc("c")]]


def test_a_single_group_is_passed_through_or_cut_to_k() -> None:
    answer = batch([[("a", 0.9)], []])
    assert merge_packed([answer], 1) is answer
    longer = batch([[("a", 0.875), ("b", 0.5), ("c", 0.125)], [("d", 0.375)]])
    cut = top_k(longer, 2)
    assert ranked(cut) == [[("a", 0.875), ("b", 0.5)], [("d", 0.375)]]
    assert cut.distances.tolist() == [-0.875, -0.5, -0.375]


def test_groups_must_answer_every_query() -> None:
    with pytest.raises(ValueError, match="every query"):
        merge_packed([batch([[]]), batch([[], []])], 1)


def test_a_batch_slices_into_batches_and_indexes_into_hits() -> None:
    whole = batch([[("a", 0.9)], [("b", 0.8), ("c", 0.7)], [], [("d", 0.1)]], True)
    part = whole[1:3]
    assert isinstance(part, PackedBatch)
    assert part.counts.tolist() == [2, 0]
    assert part[0].ids == ["b", "c"] and part[0].documents == [Doc("b"), Doc("c")]
    assert whole[-1].ids == ["d"]
    assert [len(hits) for hits in whole] == [1, 2, 0, 1]
    with pytest.raises(IndexError):
        whole[4]


def test_a_batch_refuses_columns_that_disagree() -> None:
    with pytest.raises(ValueError, match="as many ids"):
        PackedBatch.from_counts([2], ["a"], np.zeros(1, np.float32), np.zeros(1, np.float32))


def with_chunks(answer: PackedBatch, texts: bool) -> PackedBatch:
    """`answer` as a chunking collection's: each hit's chunk is its id's length, its
    span (score x 100, + 1), its text the id."""
    lengths = np.array([len(doc_id) for doc_id in answer.ids], dtype=np.int32)
    starts = np.rint(answer.scores * 100).astype(np.int32)
    chunks = ChunkColumns(lengths, starts, starts + 1, list(answer.ids) if texts else None)
    return PackedBatch(
        answer.offsets, answer.ids, answer.scores, answer.distances, answer.documents, chunks
    )


@pytest.mark.parametrize("texts", [False, True], ids=["spans", "spans and texts"])
def test_chunk_columns_follow_their_hits_through_the_merge(texts: bool) -> None:
    groups = [
        with_chunks(batch([[("a", 0.9), ("bb", 0.3)], [("ccc", 0.5)]]), texts),
        with_chunks(batch([[("dddd", 0.7)], []]), texts),
        batch([[], []]),  # a group with no hits sends no chunk columns
    ]
    merged = merge_packed(groups, 2)
    assert [list(hits.ids) for hits in merged] == [["a", "dddd"], ["ccc"]]
    assert merged.chunks is not None
    assert merged.chunks.chunks.tolist() == [1, 4, 3]
    assert merged.chunks.starts.tolist() == [90, 70, 50]
    assert merged.chunks.ends.tolist() == [91, 71, 51]
    assert merged.chunks.texts == (["a", "dddd", "ccc"] if texts else None)
    [first, second] = merged[0].hits
    assert (first.chunk, first.chunk_span) == (1, (90, 91))
    assert second.chunk_text == ("dddd" if texts else None)
    assert top_k(groups[0], 1).chunks is not None
    assert top_k(groups[0], 1).chunks.chunks.tolist() == [1, 3]  # type: ignore[union-attr]
    sliced = merged[1:]
    assert sliced.chunks is not None and sliced.chunks.chunks.tolist() == [3]


def test_hits_without_chunks_read_as_none() -> None:
    missing = ChunkColumns(
        np.array([-1], np.int32), np.array([-1], np.int32), np.array([-1], np.int32)
    )
    answer = batch([[("a", 0.5)]])
    hits = PackedBatch(answer.offsets, answer.ids, answer.scores, answer.distances, None, missing)
    [hit] = hits[0].hits
    assert (hit.chunk, hit.chunk_span, hit.chunk_text) == (None, None, None)
