"""Metadata filters on a real shard (`python -m shard`) with the Debian set's real metadata.

Filtered search is checked against exact filtered search (numpy over the same
vectors) at selectivities of about 50%, 10%, 1% and 0.1%: recall@10 >= 0.95
and min(k, matching) hits for every query. The shard runs twice: choosing
by selectivity (auto), and always walking the graph with hnswlib's filter
(graph), so the walk is checked where auto would answer exactly. Count,
Scroll (also with writes going on between pages) and bad filters complete it.
"""

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from shoal.cli.service_process import ServiceProcess
from shoal.runtime.proto_values import metadata_to_proto
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.wait import wait_for
from shoal.sdk.where import where_to_filter
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc
from tests import datasets

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

DIM = 384
K = 10
QUERIES = 100
TIMEOUT = 60.0
NAME = "debian"

Metadata = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    where: dict[str, Any]
    matches: Callable[[Metadata], bool]
    share: tuple[float, float]  # the selectivity band the case stands for


CASES = [
    Case("50% eq", {"architecture": "amd64"}, lambda m: m["architecture"] == "amd64", (0.4, 0.6)),
    Case(
        "10% in",
        {"section": {"$in": ["python", "utils"]}},
        lambda m: m["section"] in ("python", "utils"),
        (0.07, 0.15),
    ),
    Case(
        "10% range and",
        {"$and": [{"installed_size": {"$gte": 1000}}, {"architecture": {"$ne": "amd64"}}]},
        lambda m: m["installed_size"] >= 1000 and m["architecture"] != "amd64",
        (0.07, 0.15),
    ),
    Case("1% eq", {"section": "lisp"}, lambda m: m["section"] == "lisp", (0.007, 0.015)),
    Case(
        "1% range",
        {"installed_size": {"$gt": 50_000.5}},
        lambda m: m["installed_size"] > 50_000.5,
        (0.007, 0.015),
    ),
    Case(
        "0.5% not",
        {"$not": {"priority": "optional"}},
        lambda m: m["priority"] != "optional",
        (0.004, 0.006),
    ),
    Case(
        "0.1% in",
        {"priority": {"$in": ["important", "required"]}},
        lambda m: m["priority"] in ("important", "required"),
        (0.0005, 0.0015),
    ),
    Case(
        "0.7% or exists",
        {"$or": [{"section": "kde"}, {"maintainer_domain": {"$exists": False}}]},
        lambda m: m["section"] == "kde" or "maintainer_domain" not in m,
        (0.004, 0.01),
    ),
]


def start_shard(workdir: Path, strategy: str) -> ServiceProcess:
    args = ["--data-dir", str(workdir / "data"), "--threads", "2", "--filtered-search", strategy]
    shard = ServiceProcess(f"shard-{strategy}", "shard", args, workdir)
    shard.start()
    try:
        shard.wait_ready(TIMEOUT)
    except BaseException:
        shard.kill()
        raise
    return shard


def upserts(rows: range | list[int], version: int = 1) -> list[shard_pb2.ShardWrite]:
    data = datasets.load()
    return [
        shard_pb2.ShardWrite(
            id=data.documents[row]["id"],
            version=version,
            vector_f32=data.document_vectors[row].astype("<f4").tobytes(),
            metadata=metadata_to_proto(data.documents[row]["metadata"]),
        )
        for row in rows
    ]


def write(stub: shard_pb2_grpc.ShardServiceStub, writes: list[shard_pb2.ShardWrite]) -> None:
    stub.Write(shard_pb2.ShardWriteRequest(collection=NAME, writes=writes), timeout=TIMEOUT)


@pytest.fixture(scope="module", params=["auto", "graph"])
def stub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[shard_pb2_grpc.ShardServiceStub]:
    shard = start_shard(tmp_path_factory.mktemp("shard"), request.param)
    channel = grpc.insecure_channel(shard.address, options=GRPC_OPTIONS)
    try:
        stub = shard_pb2_grpc.ShardServiceStub(channel)
        config = common_pb2.CollectionConfig(name=NAME, dimension=DIM)
        stub.CreateCollection(shard_pb2.ShardCreateCollectionRequest(config=config))
        for start in range(0, len(datasets.load().documents), 500):
            write(stub, upserts(range(start, min(start + 500, len(datasets.load().documents)))))
        yield stub
    finally:
        channel.close()
        shard.stop()


def matching_rows(case: Case) -> npt.NDArray[np.int64]:
    documents = datasets.load().documents
    return np.array([row for row, d in enumerate(documents) if case.matches(d["metadata"])])


def exact_filtered(rows: npt.NDArray[np.int64], queries: npt.NDArray[np.float32]) -> list[set[str]]:
    data = datasets.load()
    top = datasets.exact_top_k(data.document_vectors[rows], queries, K)
    return [{data.documents[rows[i]]["id"] for i in found} for found in top]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_filtered_search_keeps_recall_and_fills_k(
    stub: shard_pb2_grpc.ShardServiceStub, case: Case
) -> None:
    data = datasets.load()
    rows = matching_rows(case)
    share = len(rows) / len(data.documents)
    assert case.share[0] <= share <= case.share[1], f"{case.name}: selectivity {share:.4f}"
    queries = data.query_vectors[:QUERIES]
    request = shard_pb2.ShardSearchRequest(
        collection=NAME,
        queries_f32=queries.astype("<f4").tobytes(),
        k=K,
        filter=where_to_filter(case.where),
        include=common_pb2.Include(metadata=True),
    )
    response = stub.Search(request, timeout=TIMEOUT)
    expected = exact_filtered(rows, queries)
    found = 0
    for result, truth in zip(response.results, expected, strict=True):
        assert len(result.hits) == min(K, len(rows)), case.name
        for hit in result.hits:
            stored = data.documents[index(hit.id)]["metadata"]
            assert case.matches(stored)
            assert hit.document.metadata["section"].string_value == stored["section"]
        found += len({hit.id for hit in result.hits} & truth)
    recall = found / sum(len(truth) for truth in expected)
    print(f"{case.name}: {len(rows)} matching, recall@{K} {recall:.4f}")
    assert recall >= 0.95, case.name


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_filtered_count_is_exact(stub: shard_pb2_grpc.ShardServiceStub, case: Case) -> None:
    request = shard_pb2.ShardCountRequest(collection=NAME, filter=where_to_filter(case.where))
    assert stub.Count(request, timeout=TIMEOUT).count == len(matching_rows(case))


def test_a_score_threshold_cuts_filtered_hits(stub: shard_pb2_grpc.ShardServiceStub) -> None:
    query = datasets.load().query_vectors[0].astype("<f4").tobytes()
    request = shard_pb2.ShardSearchRequest(
        collection=NAME, queries_f32=query, k=K, filter=where_to_filter(CASES[0].where)
    )
    [full] = stub.Search(request, timeout=TIMEOUT).results
    threshold = full.hits[3].score
    request.score_threshold = threshold
    [cut] = stub.Search(request, timeout=TIMEOUT).results
    assert [hit.id for hit in cut.hits] == [hit.id for hit in full.hits if hit.score >= threshold]


_INDEX: dict[str, int] = {}


def index(doc_id: str) -> int:
    if not _INDEX:
        _INDEX.update({d["id"]: row for row, d in enumerate(datasets.load().documents)})
    return _INDEX[doc_id]


def scroll_ids(
    stub: shard_pb2_grpc.ShardServiceStub,
    where: dict[str, Any] | None,
    limit: int,
    between_pages: Callable[[], None] | None = None,
) -> list[str]:
    seen: list[str] = []
    after = ""
    while True:
        request = shard_pb2.ShardScrollRequest(
            collection=NAME, filter=where_to_filter(where), after_id=after, limit=limit
        )
        response = stub.Scroll(request, timeout=TIMEOUT)
        assert len(response.documents) <= limit
        seen.extend(document.id for document in response.documents)
        if not response.more:
            return seen
        after = response.documents[-1].id
        if between_pages is not None:
            between_pages()


@pytest.mark.parametrize("case", [CASES[0], CASES[3], None], ids=["50%", "1%", "all"])
def test_scroll_lists_every_match_exactly_once(
    stub: shard_pb2_grpc.ShardServiceStub, case: Case | None
) -> None:
    documents = datasets.load().documents
    expected = sorted(d["id"] for d in documents if case is None or case.matches(d["metadata"]))
    assert scroll_ids(stub, None if case is None else case.where, limit=37) == expected


class Writer(threading.Thread):
    """Writes batch after batch until stopped: new matching ids, deletes, non-matching updates."""

    def __init__(self, stub: shard_pb2_grpc.ShardServiceStub, rows: list[int]) -> None:
        super().__init__(name="writer", daemon=True)
        self._stub = stub
        self._rows = rows  # documents that do not match the scrolled filter
        self._stopping = threading.Event()
        self.batches = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        data = datasets.load()
        version = 10
        try:
            while not self._stopping.is_set():
                version += 1
                batch = version % 50
                updated = upserts(self._rows[batch * 8 : batch * 8 + 8], version)
                new = [
                    shard_pb2.ShardWrite(
                        id=f"{prefix}-new-{version}",
                        version=version,
                        vector_f32=data.document_vectors[version % 2000].astype("<f4").tobytes(),
                        metadata={"architecture": common_pb2.Value(string_value="amd64")},
                    )
                    for prefix in ("0", "m", "zzz")
                ]
                gone = [
                    shard_pb2.ShardWrite(id=f"{p}-new-{version - 1}", version=version, deleted=True)
                    for p in ("0", "m")
                ]
                write(self._stub, updated + new + gone)
                self.batches += 1
        except BaseException as error:  # reported by the test
            self.error = error

    def stop(self) -> None:
        self._stopping.set()
        self.join(TIMEOUT)


def test_scroll_pages_stay_exact_while_writes_go_on(
    stub: shard_pb2_grpc.ShardServiceStub,
) -> None:
    case = CASES[0]
    documents = datasets.load().documents
    stable = {d["id"] for d in documents if case.matches(d["metadata"])}
    others = [row for row, d in enumerate(documents) if not case.matches(d["metadata"])]
    writer = Writer(stub, others)
    writer.start()

    def after_a_write() -> None:
        done = writer.batches
        wait_for(lambda: writer.batches > done or writer.error, TIMEOUT, "a write batch")

    try:
        seen = scroll_ids(stub, case.where, limit=50, between_pages=after_a_write)
    finally:
        writer.stop()
    assert writer.error is None, writer.error
    assert writer.batches >= len(stable) // 50
    assert len(seen) == len(set(seen)), "a document was listed twice"
    assert seen == sorted(seen)
    assert stable <= set(seen), "a document that matched throughout was missed"
    assert all(doc_id in stable or "-new-" in doc_id for doc_id in seen)


def _status(call: Callable[..., object], request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failure:
        call(request, timeout=TIMEOUT)
    return failure.value


def _condition(key: str, op: int, **value: Any) -> common_pb2.Filter:
    return common_pb2.Filter(
        condition=common_pb2.Condition(key=key, op=op, value=common_pb2.Value(**value))  # type: ignore[arg-type]
    )


BAD_FILTERS = [
    (
        common_pb2.Filter(
            all_of=common_pb2.FilterList(
                filters=[
                    _condition("section", common_pb2.OPERATOR_EQ, string_value="libs"),
                    _condition(
                        "size", common_pb2.OPERATOR_GT, int_list=common_pb2.IntList(values=[1])
                    ),
                ]
            )
        ),
        "filter.all_of[1].condition: operator GT needs a number or string, got a list",
    ),
    (_condition("section", 77, string_value="x"), "filter.condition: unknown operator 77"),
    (common_pb2.Filter(any_of=common_pb2.FilterList()), "filter.any_of: empty"),
    (
        _condition("section", common_pb2.OPERATOR_IN, string_value="libs"),
        "filter.condition: operator IN needs a list of values, got a string",
    ),
]


@pytest.mark.parametrize(("bad", "message"), BAD_FILTERS)
def test_bad_filters_are_invalid_argument_naming_the_part(
    stub: shard_pb2_grpc.ShardServiceStub, bad: common_pb2.Filter, message: str
) -> None:
    query = datasets.load().query_vectors[0].astype("<f4").tobytes()
    deep = bad
    for _ in range(9):
        deep = common_pb2.Filter(negate=deep)
    search = shard_pb2.ShardSearchRequest(collection=NAME, queries_f32=query, k=K, filter=bad)
    requests: list[tuple[Callable[..., object], object, str]] = [
        (stub.Search, search, message),
        (stub.Count, shard_pb2.ShardCountRequest(collection=NAME, filter=bad), message),
        (stub.Scroll, shard_pb2.ShardScrollRequest(collection=NAME, filter=bad), message),
        (stub.Count, shard_pb2.ShardCountRequest(collection=NAME, filter=deep), "nest deeper"),
    ]
    for call, request, expected in requests:
        error = _status(call, request)
        assert isinstance(error, grpc.Call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert expected in (error.details() or "")
