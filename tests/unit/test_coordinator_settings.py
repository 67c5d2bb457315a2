"""The coordinator's command line and its SHOAL_* environment defaults."""

import logging
from pathlib import Path

import pytest

from coordinator.__main__ import api_key_interceptors
from coordinator.settings import parse_args
from shoal.limits import RequestLimits


def test_flags() -> None:
    settings = parse_args(
        [
            "--host", "0.0.0.0", "--port", "0", "--port-file", "p",
            "--topology", "t.json", "--embedder", "127.0.0.1:9", "--coordinator-id", "7",
        ]
    )  # fmt: skip
    server = settings.server
    assert (server.host, server.port, server.port_file) == ("0.0.0.0", 0, Path("p"))
    assert (settings.topology, settings.embedder) == (Path("t.json"), "127.0.0.1:9")
    assert settings.coordinator_id == 7
    assert settings.write_timeout_s == 10.0 and settings.read_timeout_s == 30.0


def test_environment_gives_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_TOPOLOGY", "/etc/shoal/topology.json")
    monkeypatch.setenv("SHOAL_EMBEDDER", "embedder:50052")
    monkeypatch.setenv("SHOAL_COORDINATOR_ID", "3")
    monkeypatch.setenv("SHOAL_WRITE_TIMEOUT_S", "2.5")
    settings = parse_args([])
    assert settings.topology == Path("/etc/shoal/topology.json")
    assert (settings.embedder, settings.coordinator_id) == ("embedder:50052", 3)
    assert settings.write_timeout_s == 2.5
    assert parse_args(["--coordinator-id", "4"]).coordinator_id == 4


@pytest.mark.parametrize(
    "flags",
    [
        ["--embedder", "e:1"],  # no topology
        ["--topology", "t", "--embedder", "e:1", "--coordinator-id", "256"],
        ["--topology", "t", "--embedder", "e:1", "--read-timeout-s", "0"],
    ],
)
def test_bad_flags_are_refused(flags: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_TOPOLOGY", raising=False)
    with pytest.raises(SystemExit):
        parse_args(flags)


def test_keys_file_limits_and_metrics_host_from_flags_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ["--topology", "t", "--embedder", "e:1"]
    defaults = parse_args(base)
    assert defaults.api_keys_file is None and defaults.limits == RequestLimits()
    assert defaults.server.metrics_host == ""
    settings = parse_args(
        [*base, "--api-keys-file", "k.json", "--max-search-work", "1000",
         "--max-metadata-bytes", "2048", "--metrics-host", "10.0.0.5"]
    )  # fmt: skip
    assert settings.api_keys_file == Path("k.json")
    assert settings.limits.max_search_work == 1000
    assert settings.limits.max_metadata_bytes == 2048
    assert settings.server.metrics_host == "10.0.0.5"
    monkeypatch.setenv("SHOAL_API_KEYS_FILE", "/var/run/secrets/shoal/keys.json")
    monkeypatch.setenv("SHOAL_MAX_REPLY_BYTES", "4096")
    settings = parse_args(base)
    assert settings.api_keys_file == Path("/var/run/secrets/shoal/keys.json")
    assert settings.limits.max_reply_bytes == 4096


def test_without_a_keys_file_the_coordinator_warns_that_anyone_may_do_anything(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.WARNING, logger="coordinator"):
        assert api_key_interceptors(parse_args(["--topology", "t", "--embedder", "e:1"])) == []
    assert "without API keys" in caplog.text
    keys = tmp_path / "keys.json"
    keys.write_text('{"keys": []}')
    settings = parse_args(["--topology", "t", "--embedder", "e:1", "--api-keys-file", str(keys)])
    assert len(api_key_interceptors(settings)) == 1
    keys.write_text("{")
    with pytest.raises(SystemExit, match="not JSON"):
        api_key_interceptors(settings)
