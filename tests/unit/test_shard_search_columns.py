"""`Collection.search_columns` answers what `Collection.search` does, to the bit: the
same ids in the same order (ties by id), the same float32 scores and distances,
the same cut by score threshold; plain, filtered (graph and exact) and with ties;
and the packed reply built from it is the one `packed_response` built. A batch of
queries is searched on as many threads as the process has CPUs."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from shard.api.packed_hits import columns_response, packed_response
from shard.core.collection import Collection
from shard.core.collection.search import Neighbours
from shard.core.collection.search_columns import HitColumns, rank_columns
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import Include, QueryHits, WriteOp
from shard.core.filters import AllOf, AnyOf, Condition, Op, validated
from shard.core.search_plan import Strategy
from shard.storage.hnsw_index import HnswIndex
from shard.storage.layout import DataDir
from shoal.distance_metric import Metric
from shoal.runtime.cpus import available_cpus
from shoal.v1 import common_pb2

DIM = 8
N = 400


def _registry(root: Path, strategy: Strategy) -> Collections:
    registry = Collections(DataDir(root), read_metadata=json.loads, filtered_search=strategy)
    registry.load()
    return registry


@pytest.fixture(params=[Strategy.AUTO, Strategy.EXACT, Strategy.GRAPH])
def registry(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Collections]:
    registry = _registry(tmp_path / "data", request.param)
    yield registry
    registry.close()


def _loaded(registry: Collections, metric: Metric) -> tuple[Collection, npt.NDArray[np.float32]]:
    registry.create(CollectionConfig("c", DIM, metric=metric))
    collection = registry.get("c")
    v = np.random.default_rng(3).standard_normal((N, DIM)).astype(np.float32)
    v[N // 2 :] = v[: N // 2]  # every vector twice: equal distances, ranked by id
    collection.write(
        [
            WriteOp(f"d{row:04d}", 1, False, v[row].tobytes(), json.dumps({"n": row}).encode())
            for row in range(N)
        ]
    )
    return collection, v


def _as_columns(results: list[QueryHits]) -> HitColumns:
    return HitColumns(
        [len(hits.ids) for hits in results],
        [doc_id for hits in results for doc_id in hits.ids],
        np.asarray([s for hits in results for s in hits.scores], dtype="<f4"),
        np.asarray([d for hits in results for d in hits.distances], dtype="<f4"),
    )


def _assert_same(found: HitColumns, expected: HitColumns) -> None:
    assert found.counts == expected.counts
    assert found.ids == expected.ids
    assert found.scores.dtype == found.distances.dtype == np.dtype("<f4")
    assert found.scores.tobytes() == expected.scores.tobytes()
    assert found.distances.tobytes() == expected.distances.tobytes()


@pytest.mark.parametrize("metric", [Metric.COSINE, Metric.L2, Metric.INNER_PRODUCT])
@pytest.mark.parametrize("cut", [False, True])
@pytest.mark.parametrize("filtered", [False, True])
def test_columns_answer_what_the_per_query_hits_do(
    registry: Collections, metric: Metric, cut: bool, filtered: bool
) -> None:
    collection, v = _loaded(registry, metric)
    queries = np.concatenate([v[:20], v[:5] + 0.01]).astype(np.float32)  # exact hits: ties
    # Rows 0-99 and their copies 200-299: the filtered answers have ties too.
    copies = AllOf((Condition("n", Op.GTE, 200), Condition("n", Op.LT, 300)))
    root = validated(AnyOf((Condition("n", Op.LT, 100), copies))) if filtered else None
    threshold = None
    if cut:  # a threshold that keeps about half the hits
        every = collection.search(queries, 10, 0, Include(), root)
        threshold = float(np.median([score for hits in every for score in hits.scores]))
    expected = collection.search(queries, 10, 0, Include(), root, threshold)
    found = collection.search_columns(queries, 10, 0, root, threshold)
    _assert_same(found, _as_columns(expected))
    assert sum(found.counts) > 0
    tied = [hits.ids for hits in expected if len(set(np.round(hits.distances, 6))) < len(hits)]
    assert tied  # the duplicated vectors made ties, ranked by id in both


def test_columns_of_an_empty_collection(registry: Collections) -> None:
    registry.create(CollectionConfig("c", DIM))
    queries = np.ones((3, DIM), dtype=np.float32)
    found = registry.get("c").search_columns(queries, 5, 0)
    assert found.counts == [0, 0, 0]
    assert found.ids == [] and len(found.scores) == len(found.distances) == 0


def test_rows_out_of_order_are_sorted_by_distance_then_id() -> None:
    """The exact scan's rows come unsorted; equal distances go to the lower id."""
    neighbours = Neighbours(
        [["c", "a", "b"], ["x", "y", "z"]],
        np.array([[0.5, 0.5, 0.1], [0.1, 0.2, 0.3]], dtype=np.float32),
    )
    found = rank_columns(Metric.COSINE, neighbours, None)
    assert found.ids == ["b", "a", "c", "x", "y", "z"]
    assert found.counts == [3, 3]
    np.testing.assert_array_equal(
        found.distances, np.array([0.1, 0.5, 0.5, 0.1, 0.2, 0.3], dtype=np.float32)
    )
    cut = rank_columns(Metric.COSINE, neighbours, 0.75)
    assert cut.counts == [1, 2] and cut.ids == ["b", "x", "y"]


@pytest.mark.parametrize("threshold", [None, 0.3])
def test_the_packed_reply_from_columns_is_the_one_built_from_hits(
    registry: Collections, threshold: float | None
) -> None:
    collection, v = _loaded(registry, Metric.COSINE)
    queries = v[:30]
    hits = collection.search(queries, 10, 0, Include(), None, threshold)
    columns = collection.search_columns(queries, 10, 0, None, threshold)
    expected = packed_response(hits, common_pb2.Include())
    assert columns_response(columns).SerializeToString() == expected.SerializeToString()


class _RecordingIndex:
    """Stands in for hnswlib.Index: answers every query with label 0, noting the threads."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def knn_query(
        self, queries: npt.NDArray[np.float32], k: int, num_threads: int = -1
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
        self.threads.append(num_threads)
        return np.zeros((len(queries), k), np.uint64), np.zeros((len(queries), k), np.float32)


def test_a_batch_is_searched_on_the_cpus_this_process_may_use() -> None:
    """Not hnswlib's default (every CPU of the machine, and one thread for batches of
    up to 4 x that many queries): what `available_cpus` grants, quota and affinity."""
    fake = _RecordingIndex()
    index = HnswIndex(fake, "cosine", deleted=0)
    index.search(np.ones((100, DIM), np.float32), 10)
    assert fake.threads == [available_cpus()]
    pinned = HnswIndex(fake, "cosine", deleted=0, threads=3)
    pinned.search(np.ones((100, DIM), np.float32), 10)
    assert fake.threads[-1] == 3
