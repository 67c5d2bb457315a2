"""`python -m coordinator` as a process: a bad topology stops it with a clear message."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_coordinator(tmp_path: Path, topology: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "coordinator",
            "--host", "127.0.0.1", "--port", "0",
            "--port-file", str(tmp_path / "port"),
            "--topology", str(topology), "--embedder", "127.0.0.1:1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def test_missing_topology_file(tmp_path: Path) -> None:
    result = run_coordinator(tmp_path, tmp_path / "nope.json")
    assert result.returncode != 0
    assert "cannot read topology" in result.stderr
    assert not (tmp_path / "port").exists()


def test_malformed_topology(tmp_path: Path) -> None:
    topology = tmp_path / "topology.json"
    topology.write_text('{"version": 1, "groups": [{"replicas": ["no-port"]}]}')
    result = run_coordinator(tmp_path, topology)
    assert result.returncode != 0
    assert "HOST:PORT" in result.stderr
