"""The ghz runner (`shoal loadtest`) and loadtest.generate: configs, templates,
requests, ghz's numbers, a run."""

import argparse
import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from loadtest import generate
from loadtest.calls import Requests, build_request, builtin_method, method_path
from loadtest.command import add_api_key, add_parser, cmd_loadtest
from loadtest.command import main as loadtest_main
from loadtest.config import LoadConfig, LoadTestError, load_config, parse_duration
from loadtest.report import Report, Result, format_duration
from loadtest.runner import go_status_name, run
from loadtest.sample import cut_sample, demo_documents, load_directory, load_sample
from shoal.v1 import common_pb2, shoal_pb2
from tests import datasets

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "loadtest" / "ghz").glob("*.json"))
SEARCH = "shoal.v1.ShoalService.Search"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("1m30s", 90), ("250ms", 0.25), ("1.5h", 5400), ("0", 0), (3, 3)],
)
def test_go_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "ten seconds", "5x", "s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(LoadTestError, match="duration"):
        parse_duration(text)


def test_method_paths() -> None:
    assert method_path(SEARCH) == ("shoal.v1.ShoalService", "Search")
    assert method_path("shoal.v1.ShoalService/Search") == ("shoal.v1.ShoalService", "Search")
    with pytest.raises(LoadTestError):
        method_path("Search")


def test_builtin_descriptors_know_the_public_api() -> None:
    method = builtin_method(SEARCH)
    assert method.input_type.full_name == "shoal.v1.SearchRequest"
    with pytest.raises(LoadTestError, match="no method"):
        builtin_method("shoal.v1.ShoalService.Nope")


def _write_config(tmp_path: Path, **settings: Any) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"call": SEARCH, "host": "127.0.0.1:1", **settings}))
    return path


def test_config_reads_ghz_keys_and_data_file(tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"collection": "a"}, {"collection": "b"}]))
    path = _write_config(
        tmp_path,
        total=7,
        concurrency=3,
        timeout="2s",
        metadata={"k": "v"},
        **{"data-file": str(data)},
    )
    config = load_config(path, {"concurrency": 2, "host": None})
    assert (config.total, config.concurrency, config.timeout_s) == (7, 2, 2.0)
    assert config.host == "127.0.0.1:1"
    assert [item["collection"] for item in config.data] == ["a", "b"]
    assert config.metadata == {"k": "v"}


def test_duration_replaces_total_and_max_duration_caps_it(tmp_path: Path) -> None:
    by_time = load_config(_write_config(tmp_path, data={}, total=5, duration="3s"))
    assert by_time.duration_s == 3 and by_time.total > 10**9
    capped = load_config(_write_config(tmp_path, data={}, total=5, **{"max-duration": "3s"}))
    assert capped.duration_s == 3 and capped.total == 5


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"data": {}, "async": True}, "not supported"),
        ({"data": {}, "skipTLS": True}, "cacert"),
        ({"data": {}, "cert": "client.pem"}, "key"),
        ({"data": [1]}, "objects"),
        ({"data-file": "/nonexistent/data.json"}, "loadtest.generate"),
    ],
)
def test_configs_this_tool_cannot_honour_are_refused(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(LoadTestError, match=message):
        load_config(_write_config(tmp_path, **settings))


def test_untemplated_requests_are_encoded_once() -> None:
    config = LoadConfig(call=SEARCH, host="h", data=[{"collection": "c", "k": 3}, {"k": 4}])
    requests = Requests(config, builtin_method(SEARCH))
    first = shoal_pb2.SearchRequest.FromString(requests.request(0, "w"))
    assert (first.collection, first.k) == ("c", 3)
    assert shoal_pb2.SearchRequest.FromString(requests.request(3, "w")).k == 4  # round-robin
    assert requests.request(2, "w") is requests.request(4, "w")


def test_call_templates_render_per_call() -> None:
    config = LoadConfig(
        call=SEARCH,
        host="h",
        data=[{"collection": "c{{.RequestNumber}}", "query": {"text": "{{ .MethodName }}"}}],
        metadata={"x-request-id": "ghz-{{.RequestNumber}}-{{.WorkerID}}", "plain": "p"},
    )
    requests = Requests(config, builtin_method(SEARCH))
    request = shoal_pb2.SearchRequest.FromString(requests.request(41, "g1c0"))
    assert (request.collection, request.query.text) == ("c41", "Search")
    assert requests.metadata(41, "g1c0") == (("x-request-id", "ghz-41-g1c0"), ("plain", "p"))


def test_unknown_templates_and_bad_data_fail_before_the_run() -> None:
    method = builtin_method(SEARCH)
    with pytest.raises(LoadTestError, match="not supported"):
        Requests(
            LoadConfig(call=SEARCH, host="h", data=[{"collection": "{{randomInt 1 5}}"}]), method
        )
    with pytest.raises(LoadTestError, match="bad request data"):
        Requests(LoadConfig(call=SEARCH, host="h", data=[{"k": "many"}]), method)


def test_go_status_names() -> None:
    assert go_status_name(grpc.StatusCode.OK) == "OK"
    assert go_status_name(grpc.StatusCode.DEADLINE_EXCEEDED) == "DeadlineExceeded"
    assert go_status_name(grpc.StatusCode.CANCELLED) == "Canceled"


def test_durations_print_like_ghz() -> None:
    assert format_duration(0.000_009_5) == "9500 ns"
    assert format_duration(0.012_345) == "12.35 ms"
    assert format_duration(1.5) == "1.50 s"


def _report(latencies_ms: list[float], failures: int = 0) -> Report:
    config = LoadConfig(call=SEARCH, host="h", data=[{}], name="demo")
    results = [Result(0.0, ms / 1000, "OK", "") for ms in latencies_ms]
    results += [
        Result(0.0, 0.5, "Unavailable", "rpc error: code = Unavailable desc = down")
    ] * failures
    return Report.of(config, results, total_s=2.0, timed_out=False)


def test_report_numbers_follow_ghz() -> None:
    report = _report([float(ms) for ms in range(1, 101)], failures=2)
    assert report.count == 102
    assert report.rps == pytest.approx(51)
    # ghz: the latency at rank ceil(p% of n) (1-based), over OK calls only.
    assert dict(report.percentiles()) == pytest.approx(
        {10: 0.010, 25: 0.025, 50: 0.050, 75: 0.075, 90: 0.090, 95: 0.095, 99: 0.099}
    )
    histogram = report.histogram()
    assert len(histogram) == 11 and sum(count for _, count, _ in histogram) == 100
    assert histogram[0][0] == pytest.approx(0.001) and histogram[-1][0] == pytest.approx(0.1)
    assert report.status_codes == {"OK": 100, "Unavailable": 2}


def test_summary_and_json_have_ghz_sections() -> None:
    report = _report([1.0, 2.0, 3.0, 4.0], failures=1)
    summary = report.summary()
    for line in [
        "Summary:",
        "  Name:\t\tdemo",
        "  Count:\t5",
        "  Total:\t2.00 s",
        "  Slowest:\t4.00 ms",
        "  Fastest:\t1.00 ms",
        "  Requests/sec:\t2.50",
        "Response time histogram:",
        "Latency distribution:",
        "  50 % in 2.00 ms ",
        "Status code distribution:",
        "Error distribution:",
    ]:
        assert line in summary.splitlines(), line
    assert "[OK]            4 responses" in summary
    assert "[1]   rpc error: code = Unavailable desc = down" in summary
    report_json = report.to_json()
    assert report_json["count"] == 5 and report_json["total"] == 2_000_000_000
    assert report_json["statusCodeDistribution"] == {"OK": 4, "Unavailable": 1}
    assert report_json["latencyDistribution"][2] == {"percentage": 50, "latency": 2_000_000}
    assert len(report_json["details"]) == 5


# --- a run against a real (in-process) gRPC server -------------------------


class FakeShoal:
    """Answers Search, failing every fifth call; remembers the request ids it saw."""

    def __init__(self) -> None:
        self.request_ids: list[str] = []
        self._lock = threading.Lock()
        self._calls = 0

    def search(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self._calls += 1
            number = self._calls
            request_id = dict(context.invocation_metadata()).get("x-request-id", "")
            self.request_ids.append(str(request_id))
        if number % 5 == 0:
            context.abort(grpc.StatusCode.UNAVAILABLE, "replica down")
        assert shoal_pb2.SearchRequest.FromString(request).collection == "docs"
        return shoal_pb2.SearchResponse(
            hits=[common_pb2.Hit(id="a", score=1.0)]
        ).SerializeToString()


@pytest.fixture
def fake_shoal() -> Iterator[tuple[FakeShoal, str]]:
    fake = FakeShoal()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(fake.search)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("shoal.v1.ShoalService", {"Search": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, f"127.0.0.1:{port}"
    server.stop(None)


def test_a_count_bound_run_reports_every_call(fake_shoal: tuple[FakeShoal, str]) -> None:
    fake, host = fake_shoal
    config = LoadConfig(
        call=SEARCH,
        host=host,
        data=[{"collection": "docs", "k": 3}],
        total=40,
        concurrency=4,
        metadata={"x-request-id": "ghz-{{.RequestNumber}}"},
    )
    report = asyncio.run(run(config, builtin_method(SEARCH)))
    assert report.count == 40 and report.end_reason == "normal"
    assert report.status_codes == {"OK": 32, "Unavailable": 8}
    assert report.errors == {"rpc error: code = Unavailable desc = replica down": 8}
    assert sorted(fake.request_ids) == sorted(f"ghz-{n}" for n in range(40))


def test_a_time_bound_run_stops_by_itself(fake_shoal: tuple[FakeShoal, str]) -> None:
    _, host = fake_shoal
    config = LoadConfig(
        call=SEARCH, host=host, data=[{"collection": "docs"}], total=10**9, concurrency=2
    )
    report = asyncio.run(run(config, builtin_method(SEARCH), max_run_s=0.3))
    assert report.end_reason == "timeout"
    assert 0 < report.count < 10**9


def test_an_unreachable_host_is_reported_not_waited_on() -> None:
    config = LoadConfig(call=SEARCH, host="127.0.0.1:9", data=[{}], connect_timeout_s=0.5)
    with pytest.raises(LoadTestError, match="cannot connect"):
        asyncio.run(run(config, builtin_method(SEARCH)))


def test_the_command_prints_the_summary_and_writes_json(
    fake_shoal: tuple[FakeShoal, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, host = fake_shoal
    config = _write_config(tmp_path, data={"collection": "docs"}, total=10, concurrency=2)
    output = tmp_path / "report.json"
    loadtest_main(["--config", str(config), "--host", host, "-n", "5", "-o", str(output)])
    printed = capsys.readouterr().out
    assert "  Count:\t5" in printed and "Status code distribution:" in printed
    assert json.loads(output.read_text())["count"] == 5


def test_the_command_explains_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path, data={}, stream_interval="1s")
    with pytest.raises(SystemExit) as exit_info:
        loadtest_main(["--config", str(config)])
    assert exit_info.value.code == 2
    assert "not supported" in capsys.readouterr().err


# --- the generator and the shipped configs ---------------------------------


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A dataset in the shared sets' layout: 5 documents, 3 queries, 4-d vectors."""
    root = tmp_path / "tiny"
    root.mkdir()
    rng = np.random.default_rng(7)
    documents = [
        {
            "id": f"pkg{i}",
            "title": f"pkg{i}",
            "text": f"package number {i}",
            "metadata": {"section": "utils", "installed_size": 100 + i, "tags": ["a", "b"]},
        }
        for i in range(5)
    ]
    queries = [{"id": f"q{i}", "text": f"query {i}", "relevant": [f"pkg{i}"]} for i in range(3)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in documents))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    np.save(root / "corpus_emb.npy", rng.random((5, 4), dtype=np.float32))
    np.save(root / "queries_emb.npy", rng.random((3, 4), dtype=np.float32))
    return root


def test_every_shipped_config_sends_requests_its_method_accepts(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generate data, then load each ghz config as `shoal loadtest` would, from the repo root."""
    out = tmp_path / "repo" / "loadtest" / "data"
    args = generate.parse_args(["--data", str(tiny_dataset), "--out", str(out), "--batch", "2"])
    counts = generate.generate(args)
    assert counts["upsert.json"] == 1 and counts["search_batch.json"] == 2
    monkeypatch.chdir(tmp_path / "repo")
    assert {path.stem for path in CONFIGS} == {
        "create_collection", "upsert", "search_vector", "search_text", "search_batch"
    }  # fmt: skip
    for path in CONFIGS:
        config = load_config(path)
        config.check()
        method = builtin_method(config.call)
        requests = Requests(config, method)
        message = method.input_type
        assert requests.request(0, "w"), path.name
        assert config.metadata["x-request-id"].startswith("ghz-"), path.name
        assert message.full_name.startswith("shoal.v1."), path.name


def test_generated_vectors_and_metadata_decode_exactly(tiny_dataset: Path, tmp_path: Path) -> None:
    args = generate.parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "d")])
    generate.generate(args)
    upsert = json.loads((tmp_path / "d" / "upsert.json").read_text())[0]
    request = build_request(builtin_method("shoal.v1.ShoalService.Upsert"), upsert)
    assert isinstance(request, shoal_pb2.UpsertRequest)
    document = request.documents[2]
    vectors = np.load(tiny_dataset / "corpus_emb.npy")
    np.testing.assert_array_equal(np.frombuffer(document.vector_f32, "<f4"), vectors[2])
    assert document.metadata["installed_size"].int_value == 102
    assert list(document.metadata["tags"].string_list.values) == ["a", "b"]
    create = json.loads((tmp_path / "d" / "create_collection.json").read_text())
    assert create["config"] == {
        "name": "debian", "dimension": 4, "metric": "METRIC_COSINE",
        "embedding_model": "all-MiniLM-L6-v2",
    }  # fmt: skip


def test_add_parser_gives_the_shoal_command_a_loadtest_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="shoal")
    parser.add_argument("--address", default="127.0.0.1:50051")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["loadtest", "--config", "c.json", "-n", "5", "--reflection"])
    assert args.run is cmd_loadtest
    assert (args.config, args.total, args.reflection, args.host) == ("c.json", 5, True, None)


# --- the default data: the demo sample kept in the repository --------------


def test_generate_without_data_uses_the_demo_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clone with no shared data beside it: no --data writes every file from the sample."""
    monkeypatch.chdir(tmp_path)  # no ../shared here; --out defaults to ./loadtest/data
    generate.main([])
    out = tmp_path / "loadtest" / "data"
    assert "upsert.json: 10 requests" in capsys.readouterr().out
    upserts = json.loads((out / "upsert.json").read_text())
    sample = load_sample()
    ids = [document["id"] for request in upserts for document in request["documents"]]
    assert ids == [document["id"] for document in sample.documents] and len(ids) == 1000
    request = build_request(builtin_method("shoal.v1.ShoalService.Upsert"), upserts[0])
    assert isinstance(request, shoal_pb2.UpsertRequest)
    vector = np.frombuffer(request.documents[0].vector_f32, "<f4")
    assert vector.shape == (384,) and np.linalg.norm(vector) == pytest.approx(1, abs=1e-3)
    texts = json.loads((out / "search_text.json").read_text())
    assert [q["query"]["text"] for q in texts] == [q["text"] for q in sample.queries]
    assert len(json.loads((out / "search_vector.json").read_text())) == len(sample.queries)


def test_the_sample_holds_the_demo_documents_vectors() -> None:
    """Cut again from the shared set it came from, the sample is what the repository keeps."""
    if not datasets.available():
        pytest.skip("shared test data not found")
    kept = load_sample()
    again = cut_sample(load_directory(datasets.DATA_ROOT / "debian-dev"), demo_documents())
    assert again.queries == kept.queries and len(kept.queries) == 466
    np.testing.assert_allclose(again.document_vectors, kept.document_vectors, atol=1e-3)
    np.testing.assert_allclose(again.query_vectors, kept.query_vectors, atol=1e-3)


@pytest.mark.parametrize("removed", ["corpus.jsonl", "queries_emb.npy"])
def test_a_missing_data_file_is_a_one_line_error(tiny_dataset: Path, removed: str) -> None:
    (tiny_dataset / removed).unlink()
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--data", str(tiny_dataset), "--out", str(tiny_dataset / "out")])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert str(tiny_dataset / removed) in message and "No such file" in message


def test_the_api_key_goes_into_every_calls_metadata_unless_the_config_sets_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metadata: dict[str, str] = {}
    add_api_key(metadata, "flag-key")
    assert metadata == {"authorization": "Bearer flag-key"}
    monkeypatch.setenv("SHOAL_API_KEY", "env-key")
    metadata = {}
    add_api_key(metadata, None)
    assert metadata == {"authorization": "Bearer env-key"}
    metadata = {"api-key": "config-key"}
    add_api_key(metadata, "flag-key")
    assert metadata == {"api-key": "config-key"}
    monkeypatch.delenv("SHOAL_API_KEY")
    metadata = {}
    add_api_key(metadata, None)
    assert metadata == {}


class _RequireKey(grpc.ServerInterceptor):
    """Every call, reflection included, needs `authorization: Bearer KEY` (as
    shoal.runtime.auth does on a coordinator with API keys)."""

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        if ("authorization", "Bearer the-key") in tuple(details.invocation_metadata or ()):
            return continuation(details)

        def deny(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no API key")

        return grpc.stream_stream_rpc_method_handler(deny)


@pytest.fixture
def keyed_shoal() -> Iterator[str]:
    from grpc_reflection.v1alpha import reflection

    server = grpc.server(ThreadPoolExecutor(max_workers=4), interceptors=[_RequireKey()])
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
        FakeShoal().search
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("shoal.v1.ShoalService", {"Search": handler})]
    )
    reflection.enable_server_reflection(["shoal.v1.ShoalService", reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_reflection_sends_the_api_key(
    keyed_shoal: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 14: `shoal loadtest --reflection` against a coordinator with API keys."""
    config = _write_config(tmp_path, data={"collection": "docs"}, total=4, concurrency=1)
    argv = ["--config", str(config), "--host", keyed_shoal, "--reflection", "-n", "4"]
    monkeypatch.delenv("SHOAL_API_KEY", raising=False)
    with pytest.raises(SystemExit):
        loadtest_main(argv)
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    monkeypatch.setenv("SHOAL_API_KEY", "the-key")
    loadtest_main(argv)
    assert "[OK]   4 responses" in capsys.readouterr().out
