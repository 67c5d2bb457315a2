"""The coordinator's command line and its SHOAL_* environment defaults."""

from pathlib import Path

import pytest

from coordinator.settings import parse_args


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
