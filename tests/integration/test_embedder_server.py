"""A real `python -m embedder` process on 127.0.0.1:0, called over gRPC."""

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from embedder.encoders.hashing import HashEncoder
from shoal.cli.service_process import ServiceProcess
from shoal.v1 import embedder_pb2, embedder_pb2_grpc
from tests import datasets

MAX_TEXTS = 32
MAX_INPUT_CHARS = 100


def start_embedder(workdir: Path, *args: str, ready_timeout: float = 60.0) -> ServiceProcess:
    service = ServiceProcess("embedder", "embedder", list(args), workdir)
    service.start()
    try:
        service.wait_ready(ready_timeout)
    except BaseException:
        service.stop()
        raise
    return service


@pytest.fixture(scope="module")
def stub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[embedder_pb2_grpc.EmbedderServiceStub]:
    service = start_embedder(
        tmp_path_factory.mktemp("embedder"),
        "--model", "hash-384",
        "--max-batch", "8",
        "--max-texts", str(MAX_TEXTS),
        "--max-input-chars", str(MAX_INPUT_CHARS),
    )  # fmt: skip
    try:
        with grpc.insecure_channel(service.address) as channel:
            yield embedder_pb2_grpc.EmbedderServiceStub(channel)
    finally:
        service.stop()


def vectors(reply: embedder_pb2.EmbedResponse) -> npt.NDArray[np.float32]:
    return np.frombuffer(reply.vectors_f32, dtype="<f4").reshape(-1, reply.dimension)


def embed_error(
    stub: embedder_pb2_grpc.EmbedderServiceStub, texts: list[str], model: str = ""
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Embed(embedder_pb2.EmbedRequest(texts=texts, model=model), timeout=10)
    return caught.value


def test_get_info_reports_the_model_and_limits(
    stub: embedder_pb2_grpc.EmbedderServiceStub,
) -> None:
    info = stub.GetInfo(embedder_pb2.GetInfoRequest(), timeout=10)
    assert info.model == "hash-384"
    assert info.dimension == 384
    assert info.max_batch == MAX_TEXTS
    assert info.max_input_chars == MAX_INPUT_CHARS
    assert info.max_seq_tokens == 256


def test_embed_returns_one_unit_row_per_text(stub: embedder_pb2_grpc.EmbedderServiceStub) -> None:
    texts = ["a fast vector search library", "photo editor", "", "a fast vector search library"]
    reply = stub.Embed(embedder_pb2.EmbedRequest(texts=texts), timeout=10)
    assert (reply.model, reply.dimension) == ("hash-384", 384)
    rows = vectors(reply)
    assert rows.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(rows, HashEncoder(384).encode(texts))


def test_embed_accepts_the_served_model_by_name(
    stub: embedder_pb2_grpc.EmbedderServiceStub,
) -> None:
    reply = stub.Embed(embedder_pb2.EmbedRequest(texts=["x"], model="hash-384"), timeout=10)
    assert vectors(reply).shape == (1, 384)


def test_concurrent_calls_each_get_their_own_rows(
    stub: embedder_pb2_grpc.EmbedderServiceStub,
) -> None:
    requests = [[f"request {i} text {j}" for j in range(1 + i % 5)] for i in range(40)]
    calls = [stub.Embed.future(embedder_pb2.EmbedRequest(texts=t), timeout=30) for t in requests]
    encoder = HashEncoder(384)
    for texts, call in zip(requests, calls, strict=True):
        np.testing.assert_array_equal(vectors(call.result()), encoder.encode(texts))


def test_a_call_at_the_limits_is_served(stub: embedder_pb2_grpc.EmbedderServiceStub) -> None:
    texts = ["w" * MAX_INPUT_CHARS] * MAX_TEXTS  # more than --max-batch: split across batches
    reply = stub.Embed(embedder_pb2.EmbedRequest(texts=texts), timeout=10)
    assert vectors(reply).shape == (MAX_TEXTS, 384)


def test_an_empty_call_is_invalid(stub: embedder_pb2_grpc.EmbedderServiceStub) -> None:
    error = embed_error(stub, [])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty" in (error.details() or "")


def test_too_many_texts_are_refused(stub: embedder_pb2_grpc.EmbedderServiceStub) -> None:
    error = embed_error(stub, ["x"] * (MAX_TEXTS + 1))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (
        error.details() == f"{MAX_TEXTS + 1} texts in one call; the limit is {MAX_TEXTS} per call"
    )


def test_a_too_long_text_is_invalid(stub: embedder_pb2_grpc.EmbedderServiceStub) -> None:
    error = embed_error(stub, ["short", "x" * (MAX_INPUT_CHARS + 1)])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        f"texts[1] has {MAX_INPUT_CHARS + 1} characters; the limit is {MAX_INPUT_CHARS}"
    )


def test_another_model_is_not_found(stub: embedder_pb2_grpc.EmbedderServiceStub) -> None:
    error = embed_error(stub, ["x"], model="all-MiniLM-L6-v2")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == (
        "model all-MiniLM-L6-v2 is not served; this embedder serves hash-384"
    )


@pytest.mark.model
@pytest.mark.skipif(not datasets.available(), reason="the shared test data is not present")
def test_the_real_model_matches_the_reference_embeddings(tmp_path: Path) -> None:
    data = datasets.load()
    rows = [0, 1, 2, 100, 500, len(data.queries) - 1]
    texts = [data.queries[row]["text"] for row in rows]
    service = start_embedder(tmp_path, "--model", "all-MiniLM-L6-v2", ready_timeout=300)
    try:
        with grpc.insecure_channel(service.address) as channel:
            stub = embedder_pb2_grpc.EmbedderServiceStub(channel)
            info = stub.GetInfo(embedder_pb2.GetInfoRequest(), timeout=10)
            assert (info.model, info.dimension) == ("all-MiniLM-L6-v2", 384)
            reply = stub.Embed(embedder_pb2.EmbedRequest(texts=texts), timeout=60)
    finally:
        service.stop()
    got = vectors(reply)
    cosines = np.sum(got * data.query_vectors[rows], axis=1)
    assert cosines.min() > 0.999, f"cosines to the reference rows: {cosines}"
