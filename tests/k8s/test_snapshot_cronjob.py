"""The scheduled-snapshot component (k8s/components/snapshots), rendered into the
small overlay by the real `kubectl kustomize` and checked against the API schemas."""

import os
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from shoal.cli.app import build_parser
from tests.k8s.manifests import Manifests, containers, pod_spec

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "k8s" / "overlays" / "small"
SNAPSHOTS = REPO / "k8s" / "components" / "snapshots"


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Manifests:
    root = tmp_path_factory.mktemp("overlay")
    (root / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: shoal\n"
        f"resources: [{os.path.relpath(SMALL, root)}]\n"
        f"components: [{os.path.relpath(SNAPSHOTS, root)}]\n"
        # As in an overlay that lists the component: its image tag reaches the job.
        "images: [{name: shoal, newTag: 0.1.0}]\n"
    )
    return Manifests.render(root)


def test_the_cronjob_matches_the_api_schema(manifests: Manifests) -> None:
    (cronjob,) = manifests.of_kind("CronJob")
    kubernetes_validate.validate(cronjob, kubernetes_validate.latest_version(), strict=True)
    kubernetes_validate.validate(cronjob, "1.29", strict=True)
    assert cronjob["metadata"]["namespace"] == manifests.namespace
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def test_the_cronjob_runs_a_snapshot_command_the_cli_accepts(manifests: Manifests) -> None:
    (cronjob,) = manifests.of_kind("CronJob")
    spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["shoal"]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.snapshot_command) == ("snapshot", "create")
    host, port = args.address.split(":")
    (service,) = [s for s in manifests.of_kind("Service") if s["metadata"]["name"] == "coordinator"]
    assert host == f"coordinator.{manifests.namespace}.svc.cluster.local"
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    (coordinator,) = manifests.component("coordinator")
    assert container["image"] == containers(coordinator)[0]["image"] == "shoal:0.1.0"


def test_the_coordinators_get_a_snapshot_location(manifests: Manifests) -> None:
    (coordinator,) = manifests.component("coordinator")
    (container,) = containers(coordinator)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SHOAL_SNAPSHOT_LOCATION"].startswith("s3://")
    assert "SHOAL_ETCD" in env  # the patch adds to the base's env, replacing nothing
    (source,) = container["envFrom"]
    assert source["secretRef"]["optional"] is True
    assert pod_spec(coordinator)["containers"][0]["name"] == "coordinator"
