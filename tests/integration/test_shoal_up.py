"""`shoal up` as a real process: it owns its data dir, and nothing it starts outlives it.

Issue 10: a second `shoal up` on a data dir in use started and served no
collections; closing the terminal (SIGHUP), SIGTERM or SIGKILL of `shoal up`
left the embedder, shards and coordinator running.
"""

import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shoal import Client
from shoal.cli.app import main
from shoal.errors import Unauthenticated
from shoal.runtime.wait import wait_for
from tests.integration.shoal_up import TIMEOUT, ShoalUp, free_port_range

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="finds processes in /proc")

StartUp = Callable[..., ShoalUp]


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[StartUp]:
    """Start `shoal up` (on tmp_path/data unless data_dir= says otherwise), cleaned up after."""
    started: list[ShoalUp] = []

    def start(
        *args: str, data_dir: Path | None = None, env: dict[str, str] | None = None
    ) -> ShoalUp:
        ports = [] if "--base-port" in args else ["--port", "0"]
        up = ShoalUp(data_dir or tmp_path / "data", [*ports, *args], tmp_path, env=env or {})
        started.append(up)
        up.start()
        return up

    yield start
    for up in started:
        up.clean_up()


def test_a_second_shoal_up_on_a_data_dir_in_use_fails_naming_the_first(
    start_up: StartUp,
) -> None:
    first = start_up()
    first.wait_serving()
    with Client(first.address()) as client:
        client.create_collection("kept", dimension=4)

    second = start_up()
    assert second.wait() != 0, "a second shoal up on the same data dir must not start"
    assert f"is in use by process {first.pid} (shoal up" in second.output
    assert "Shoal is serving" not in second.output
    # The first one is untouched and still has its collection.
    with Client(first.address()) as client:
        assert [collection.name for collection in client.list_collections()] == ["kept"]


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGKILL], ids=str)
def test_no_process_outlives_shoal_up(start_up: StartUp, sig: signal.Signals) -> None:
    up = start_up()
    up.wait_serving()
    assert len(up.children) == 7, up.children  # etcd, embedder, 4 shards, coordinator

    up.signal(sig)

    up.wait()
    wait_for(
        lambda: not any(child.alive for child in up.children),
        TIMEOUT,
        f"every process of shoal up to end after {sig.name}",
    )
    if sig != signal.SIGKILL:  # stopped cleanly, saying so
        assert up.output.rstrip().endswith("stopped")


def test_shoal_up_after_a_sigkilled_one_serves_its_data(start_up: StartUp) -> None:
    first = start_up()
    first.wait_serving()
    with Client(first.address()) as client:
        client.create_collection("kept", dimension=4)
    first.signal(signal.SIGKILL)
    first.wait()
    # Its shards end (and unlock their data dirs) on their own, within their grace.
    wait_for(lambda: not any(child.alive for child in first.children), TIMEOUT, "children to end")

    second = start_up()
    second.wait_serving()
    with Client(second.address()) as client:
        assert [collection.name for collection in client.list_collections()] == ["kept"]


def test_start_up_on_a_base_port_says_where_the_logs_are_and_what_it_waits_for(
    start_up: StartUp,
) -> None:
    base = free_port_range(6)
    up = start_up("--base-port", str(base))
    up.wait_serving()
    assert up.address() == f"127.0.0.1:{base}"
    output = up.output
    assert f"logs: {(up.data_dir / 'run').resolve()}/<service>.log" in output
    assert "loading embedding model hash-32..." in output
    assert "embedding model ready in" in output


def test_without_etcd_shoal_up_says_how_to_install_it_in_one_line(
    start_up: StartUp, tmp_path: Path
) -> None:
    # Only Python on PATH: no etcd to find.
    up = start_up(env={"PATH": str(Path(sys.executable).parent)})
    assert up.wait() == 1
    output = up.output
    assert "Traceback" not in output, output
    error = output.rstrip().splitlines()[-1]
    assert error.startswith("error: etcd is not installed: run 'make install'"), output
    assert "apt-get install -y etcd-server" in error
    assert not any(child.alive for child in up.children)


def test_shoal_up_secure_prints_an_admin_key_that_sdk_and_cli_use(
    start_up: StartUp, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: `--secure` makes the coordinator require keys and prints an admin key;
    shoal.Client(api_key=), SHOAL_API_KEY and `shoal --api-key` send it."""
    up = start_up("--secure")
    up.wait_serving()
    key_line = wait_for(
        lambda: next(
            (line for line in up.output.splitlines() if "export SHOAL_API_KEY=" in line), None
        ),
        TIMEOUT,
        "the admin key to be printed",
    )
    assert key_line is not None
    key = key_line.split("SHOAL_API_KEY=", 1)[1].split()[0]
    monkeypatch.delenv("SHOAL_API_KEY", raising=False)
    monkeypatch.setenv("SHOAL_CA_FILE", str(up.data_dir / "tls" / "ca.pem"))  # --secure is TLS too
    with Client(up.address()) as client, pytest.raises(Unauthenticated):
        client.list_collections()
    with Client(up.address(), api_key="shoal_wrong") as client, pytest.raises(Unauthenticated):
        client.list_collections()
    with Client(up.address(), api_key=key) as client:
        client.create_collection("secured", dimension=4)
    main(["--address", up.address(), "--api-key", key, "--json", "list"])
    assert '"secured"' in capsys.readouterr().out
    monkeypatch.setenv("SHOAL_API_KEY", key)
    main(["list", "--address", up.address()])
    assert "secured" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["drop", "secured", "--address", up.address(), "--api-key", "shoal_wrong"])
    assert "Unauthenticated" in capsys.readouterr().err
