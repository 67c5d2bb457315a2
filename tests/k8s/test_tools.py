"""The user-facing tools behind the manifest tests: rendering with the real
`kubectl kustomize`, and `python -m shoal.tools.topology`."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.tools.kustomize import KubectlError, find_kubectl, render
from shoal.tools.topology import TOPOLOGY_FILE

REPO = Path(__file__).resolve().parents[2]
# Every kustomization that renders on its own (a Component only inside an overlay).
KUSTOMIZATIONS = sorted(
    path.parent.relative_to(REPO)
    for path in (REPO / "k8s").rglob("kustomization.yaml")
    if "kind: Component" not in path.read_text()
)


def test_kubectl_is_installed_with_kustomize() -> None:
    result = subprocess.run(
        [find_kubectl(), "version", "--client"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Kustomize Version: v5" in result.stdout, result.stdout


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=str)
def test_every_kustomization_renders(path: Path) -> None:
    objects = render(REPO / path)
    assert objects and all(obj["kind"] and obj["metadata"]["name"] for obj in objects)


def test_a_broken_kustomization_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(KubectlError, match=r"missing\.yaml"):
        render(tmp_path)


def _topology_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.tools.topology", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_the_topology_tool_checks_and_writes_an_overlays_topology(tmp_path: Path) -> None:
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "small"
    path = overlay / TOPOLOGY_FILE
    assert _topology_tool(str(overlay), "--check").returncode == 0

    # One more replica per group: the file no longer lists every pod.
    kustomization = overlay / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("count: 2", "count: 3"))
    checked = _topology_tool(str(overlay), "--check")
    assert checked.returncode == 1 and "--write" in checked.stderr

    assert _topology_tool(str(overlay), "--write").returncode == 0
    groups = json.loads(path.read_text())["groups"]
    assert [len(group["replicas"]) for group in groups] == [3, 3]
    assert groups[1]["replicas"][2] == "shard-g1-2.shard-g1.shoal.svc.cluster.local:50061"
    assert _topology_tool(str(overlay), "--check").returncode == 0
    printed = _topology_tool(str(overlay))
    assert json.loads(printed.stdout) == json.loads(path.read_text())


def test_the_topology_tool_writes_a_new_overlays_first_file(tmp_path: Path) -> None:
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "production"
    (overlay / TOPOLOGY_FILE).unlink()
    assert _topology_tool(str(overlay), "--write").returncode == 0
    assert json.loads((overlay / TOPOLOGY_FILE).read_text()) == json.loads(
        (REPO / "k8s" / "overlays" / "production" / TOPOLOGY_FILE).read_text()
    )
