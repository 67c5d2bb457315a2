"""One real shard server (`python -m shard` on 127.0.0.1:0) with the Debian set.

Recall against exact search, bad input with the right status codes, and a
SIGKILL in the middle of writes followed by a restart on the same data dir.
"""

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from shoal.cli.service_process import ServiceProcess
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.wait import wait_for
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc
from tests import datasets

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

DIM = 384
K = 10
TIMEOUT = 60.0


def start_shard(workdir: Path, **env: str) -> ServiceProcess:
    shard = ServiceProcess(
        "shard", "shard", ["--data-dir", str(workdir / "data"), "--threads", "4"], workdir, env=env
    )
    shard.start()
    try:
        shard.wait_ready(TIMEOUT)
    except BaseException:
        shard.kill()
        raise
    return shard


def stub_for(shard: ServiceProcess) -> tuple[grpc.Channel, shard_pb2_grpc.ShardServiceStub]:
    channel = grpc.insecure_channel(shard.address, options=GRPC_OPTIONS)
    return channel, shard_pb2_grpc.ShardServiceStub(channel)


def create(stub: shard_pb2_grpc.ShardServiceStub, name: str) -> None:
    config = common_pb2.CollectionConfig(name=name, dimension=DIM)
    stub.CreateCollection(shard_pb2.ShardCreateCollectionRequest(config=config), timeout=TIMEOUT)


def upserts(rows: range, version: int = 1) -> list[shard_pb2.ShardWrite]:
    data = datasets.load()
    sections = {row: data.documents[row]["metadata"]["section"] for row in rows}
    return [
        shard_pb2.ShardWrite(
            id=str(row),
            version=version,
            vector_f32=data.document_vectors[row].astype("<f4").tobytes(),
            text=data.documents[row]["text"][:200],
            metadata={"section": common_pb2.Value(string_value=sections[row])},
        )
        for row in rows
    ]


def write(
    stub: shard_pb2_grpc.ShardServiceStub, name: str, writes: list[shard_pb2.ShardWrite]
) -> shard_pb2.ShardWriteResponse:
    request = shard_pb2.ShardWriteRequest(collection=name, writes=writes)
    response: shard_pb2.ShardWriteResponse = stub.Write(request, timeout=TIMEOUT)
    return response


def search_ids(
    stub: shard_pb2_grpc.ShardServiceStub,
    name: str,
    queries: npt.NDArray[np.float32],
    k: int = K,
    ef: int = 0,
) -> list[list[str]]:
    request = shard_pb2.ShardSearchRequest(
        collection=name, queries_f32=queries.astype("<f4").tobytes(), k=k, ef=ef
    )
    response = stub.Search(request, timeout=TIMEOUT)
    return [[hit.id for hit in result.hits] for result in response.results]


def count(stub: shard_pb2_grpc.ShardServiceStub, name: str) -> int:
    response = stub.Count(shard_pb2.ShardCountRequest(collection=name), timeout=TIMEOUT)
    return int(response.count)


# -- one server loaded with the whole set, shared by the recall and bad-input tests ----------


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[shard_pb2_grpc.ShardServiceStub]:
    shard = start_shard(tmp_path_factory.mktemp("shard"))
    channel, stub = stub_for(shard)
    try:
        create(stub, "debian")
        for start in range(0, len(datasets.load().documents), 500):
            write(stub, "debian", upserts(range(start, start + 500)))
        yield stub
    finally:
        channel.close()
        shard.stop()


def _recall(found: list[list[str]], exact: npt.NDArray[np.int64]) -> float:
    hits = sum(
        len(set(ids) & {str(row) for row in rows}) for ids, rows in zip(found, exact, strict=True)
    )
    return hits / exact.size


def test_recall_at_default_ef_against_exact_search(
    loaded: shard_pb2_grpc.ShardServiceStub,
) -> None:
    data = datasets.load()
    assert count(loaded, "debian") == len(data.documents)
    exact = datasets.exact_top_k(data.document_vectors, data.query_vectors, K)
    found = search_ids(loaded, "debian", data.query_vectors)
    assert len(found) == len(data.query_vectors)
    recall = _recall(found, exact)
    print(f"shard recall@{K} at default ef (64, M 16): {recall:.4f}")
    assert recall >= 0.95
    assert _recall(search_ids(loaded, "debian", data.query_vectors, ef=2000), exact) >= 0.999


def test_hits_are_best_first_with_cosine_scores_and_asked_fields(
    loaded: shard_pb2_grpc.ShardServiceStub,
) -> None:
    data = datasets.load()
    query = data.query_vectors[0]
    request = shard_pb2.ShardSearchRequest(
        collection="debian",
        queries_f32=query.astype("<f4").tobytes(),
        k=5,
        include=common_pb2.Include(metadata=True, text=True),
    )
    [result] = loaded.Search(request, timeout=TIMEOUT).results
    distances = [hit.distance for hit in result.hits]
    assert distances == sorted(distances)
    for hit in result.hits:
        row = int(hit.id)
        vector = data.document_vectors[row]
        cosine = float(vector @ query / (np.linalg.norm(vector) * np.linalg.norm(query)))
        assert hit.score == pytest.approx(cosine, abs=1e-4)
        assert hit.distance == pytest.approx(1 - cosine, abs=1e-4)
        assert hit.document.id == hit.id
        assert hit.document.text == data.documents[row]["text"][:200]
        assert hit.document.metadata["section"].string_value
        assert not hit.document.vector_f32


def _code(call: Callable[..., object], request: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as failure:
        call(request, timeout=TIMEOUT)
    assert isinstance(failure.value, grpc.Call)
    return failure.value.code()


def _bad_write(**fields: object) -> shard_pb2.ShardWriteRequest:
    base: dict[str, object] = {
        "id": "bad",
        "version": 1,
        "vector_f32": np.ones(DIM, "<f4").tobytes(),
    }
    return shard_pb2.ShardWriteRequest(
        collection="debian",
        writes=[*upserts(range(1)), shard_pb2.ShardWrite(**{**base, **fields})],  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"vector_f32": np.ones(DIM - 1, "<f4").tobytes()},
        {"vector_f32": np.full(DIM, np.nan, "<f4").tobytes()},
        {"vector_f32": np.full(DIM, np.inf, "<f4").tobytes()},
        {"id": ""},
        {"id": "x" * 600},
    ],
    ids=["dimension", "nan", "inf", "empty-id", "oversize-id"],
)
def test_bad_writes_are_invalid_and_store_nothing(
    loaded: shard_pb2_grpc.ShardServiceStub, fields: dict[str, object]
) -> None:
    # Built here, not at collection: without the shared data the module is skipped.
    request_ = _bad_write(**fields)
    before = count(loaded, "debian")
    assert _code(loaded.Write, request_) == grpc.StatusCode.INVALID_ARGUMENT
    assert count(loaded, "debian") == before
    got = loaded.Get(shard_pb2.ShardGetRequest(collection="debian", ids=["bad"]), timeout=TIMEOUT)
    assert not got.documents


@pytest.mark.parametrize(
    ("k", "floats", "code"),
    [
        (0, DIM, grpc.StatusCode.INVALID_ARGUMENT),
        (1025, DIM, grpc.StatusCode.INVALID_ARGUMENT),
        (K, DIM - 1, grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["k-0", "k-above-limit", "query-dimension"],
)
def test_bad_searches(
    loaded: shard_pb2_grpc.ShardServiceStub, k: int, floats: int, code: grpc.StatusCode
) -> None:
    request = shard_pb2.ShardSearchRequest(
        collection="debian", queries_f32=np.ones(floats, "<f4").tobytes(), k=k
    )
    assert _code(loaded.Search, request) == code


def test_unknown_and_unsafe_collections(loaded: shard_pb2_grpc.ShardServiceStub) -> None:
    assert (
        _code(loaded.Count, shard_pb2.ShardCountRequest(collection="missing"))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        _code(loaded.Count, shard_pb2.ShardCountRequest(collection="../etc"))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    unsafe = common_pb2.CollectionConfig(name="a/b", dimension=DIM)
    assert (
        _code(loaded.CreateCollection, shard_pb2.ShardCreateCollectionRequest(config=unsafe))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_create_again_is_ok_with_the_same_settings_only(
    loaded: shard_pb2_grpc.ShardServiceStub,
) -> None:
    same = common_pb2.CollectionConfig(name="debian", dimension=DIM, hnsw_m=16)
    response = loaded.CreateCollection(
        shard_pb2.ShardCreateCollectionRequest(config=same), timeout=TIMEOUT
    )
    assert not response.created and response.config.hnsw_ef == 64
    other = common_pb2.CollectionConfig(name="debian", dimension=DIM + 1)
    assert (
        _code(loaded.CreateCollection, shard_pb2.ShardCreateCollectionRequest(config=other))
        == grpc.StatusCode.ALREADY_EXISTS
    )


# -- SIGKILL in the middle of writes, restart on the same data dir ---------------------------


class Writer(threading.Thread):
    """Writes batches until stopped or the server goes away; remembers what was acknowledged.

    It goes round the corpus again and again (ids `<round>-<row>`, vectors nudged per
    round so every document has its own), so the kill always lands mid-writes.
    """

    BATCH = 40

    def __init__(self, stub: shard_pb2_grpc.ShardServiceStub) -> None:
        super().__init__(daemon=True)
        self._stub = stub
        self.stopping = threading.Event()
        self.acked_live: dict[str, npt.NDArray[np.float32]] = {}
        self.acked_deleted: set[str] = set()
        self.unacked_deleted: set[str] = set()
        self.acked_batches = 0
        self.failure: grpc.RpcError | None = None

    def _batches(self) -> Iterator[dict[str, npt.NDArray[np.float32]]]:
        vectors = datasets.load().document_vectors
        rng = np.random.default_rng(7)
        for round_ in range(1_000):
            nudged = vectors + rng.normal(0, 0.01, vectors.shape).astype(np.float32)
            for start in range(0, len(vectors), self.BATCH):
                rows = range(start, min(start + self.BATCH, len(vectors)))
                yield {f"{round_}-{row}": nudged[row] for row in rows}

    def run(self) -> None:
        previous: list[str] = []
        for batch in self._batches():
            if self.stopping.is_set():
                return
            writes = [
                shard_pb2.ShardWrite(
                    id=doc_id, version=1, vector_f32=vector.astype("<f4").tobytes()
                )
                for doc_id, vector in batch.items()
            ]
            # Delete the previous batch's first document: tombstones must survive too.
            doomed = previous[:1]
            writes += [
                shard_pb2.ShardWrite(id=doc_id, version=2, deleted=True) for doc_id in doomed
            ]
            try:
                write(self._stub, "crash", writes)
            except grpc.RpcError as error:
                # Not acknowledged, so it may or may not have been stored.
                self.failure = error
                self.unacked_deleted = set(doomed)
                return
            self.acked_live.update(batch)
            for doc_id in doomed:
                del self.acked_live[doc_id]
                self.acked_deleted.add(doc_id)
            previous = list(batch)
            self.acked_batches += 1


def _log_event(shard: ServiceProcess, event: str) -> dict[str, object]:
    """The JSON details of the newest log line for `event`."""
    for line in reversed(shard.log_path.read_text().splitlines()):
        if f'"event": "{event}"' in line:
            details: dict[str, object] = json.loads(line[line.index("{") :])
            return details
    raise AssertionError(f"no load line in the log:\n{shard.log_tail()}")


def test_every_acknowledged_write_survives_sigkill(tmp_path: Path) -> None:
    # Checkpoints come often, so the restart loads one and catches up on what followed.
    shard = start_shard(tmp_path, SHOAL_CHECKPOINT_EVERY_WRITES="200")
    channel, stub = stub_for(shard)
    index_dir = tmp_path / "data" / "collections" / "crash" / "index"
    writer = Writer(stub)
    try:
        create(stub, "crash")
        writer.start()
        wait_for(lambda: any(index_dir.glob("ckpt-*")), TIMEOUT, "a checkpoint")
        acked_at_checkpoint = writer.acked_batches
        wait_for(
            lambda: writer.acked_batches >= acked_at_checkpoint + 3 or not writer.is_alive(),
            TIMEOUT,
            "more writes after the checkpoint",
        )
        shard.kill()
        writer.join(TIMEOUT)
        channel.close()
        assert writer.acked_batches > 3

        shard.start()
        shard.wait_ready(TIMEOUT)
        channel, stub = stub_for(shard)
        loaded_line = _log_event(shard, "shard_loaded")
        # The restart started from a checkpoint and caught up from RocksDB.
        assert _log_event(shard, "collection_loaded")["index_source"] == "checkpoint"
        assert writer.failure is not None  # cut off mid-writes
        acked = sorted(set(writer.acked_live) - writer.unacked_deleted)
        assert loaded_line["collections"] == 1
        documents = loaded_line["documents"]
        assert isinstance(documents, int) and documents >= len(acked)
        # A batch in flight at the kill may or may not have been stored; acked ones must be.
        assert len(acked) <= count(stub, "crash") <= len(acked) + Writer.BATCH
        got = stub.Get(shard_pb2.ShardGetRequest(collection="crash", ids=acked), timeout=TIMEOUT)
        assert sorted(d.id for d in got.documents) == acked
        gone = stub.Get(
            shard_pb2.ShardGetRequest(collection="crash", ids=sorted(writer.acked_deleted)),
            timeout=TIMEOUT,
        )
        assert not gone.documents

        vectors = np.stack([writer.acked_live[doc_id] for doc_id in acked])
        found: list[list[str]] = []
        for start in range(0, len(acked), 500):
            found += search_ids(stub, "crash", vectors[start : start + 500], k=1)
        assert [ids[0] for ids in found] == acked

        # A graceful stop checkpoints everything, so the next start replays nothing.
        stored = count(stub, "crash")
        channel.close()
        shard.stop()
        shard.start()
        shard.wait_ready(TIMEOUT)
        channel, stub = stub_for(shard)
        loaded = _log_event(shard, "collection_loaded")
        assert (loaded["index_source"], loaded["records_applied"]) == ("checkpoint", 0)
        assert count(stub, "crash") == stored
    finally:
        writer.stopping.set()
        channel.close()
        shard.stop()
