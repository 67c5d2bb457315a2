"""The Python kustomize renders what kubectl does, for the features k8s/ uses."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.kustomize import Object, Unsupported, build, config_map_hash, strategic_merge

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = sorted(
    path.parent.relative_to(REPO) for path in (REPO / "k8s").rglob("kustomization.yaml")
)


def _key(obj: Object) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=str)
def test_renders_exactly_like_kubectl_kustomize(path: Path) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(REPO / path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    expected = sorted((obj for obj in yaml.safe_load_all(rendered) if obj), key=_key)
    assert sorted(build(REPO / path), key=_key) == expected


def test_kustomizations_were_found() -> None:
    assert Path("k8s/overlays/small") in KUSTOMIZATIONS


def test_config_map_hash_is_kustomizes() -> None:
    # `kubectl kustomize` names this generated ConfigMap settings-24cmmfghk6: the
    # hash covers Go's JSON escaping of <, > and & and non-ASCII text.
    data = {"mode": '<fast> & "quoted"', "ünïcode": "✓"}
    assert config_map_hash({"data": data}) == "24cmmfghk6"


def test_strategic_merge_merges_named_list_items_and_replaces_other_lists() -> None:
    target = {
        "containers": [
            {"name": "a", "args": ["x", "y"], "env": [{"name": "N", "value": "1"}]},
            {"name": "b", "image": "b"},
        ]
    }
    patch = {
        "containers": [
            {"name": "a", "args": ["z"], "env": [{"name": "M", "value": "2"}], "image": None}
        ]
    }
    assert strategic_merge(target, patch) == {
        "containers": [
            {
                "name": "a",
                "args": ["z"],
                "env": [{"name": "N", "value": "1"}, {"name": "M", "value": "2"}],
            },
            {"name": "b", "image": "b"},
        ]
    }


def test_unimplemented_kustomize_features_fail_loudly(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("commonAnnotations: {a: b}\n")
    with pytest.raises(Unsupported, match="commonAnnotations"):
        build(tmp_path)


def test_a_patch_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "patch.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: v}\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\npatches:\n  - path: patch.yaml\n"
    )
    with pytest.raises(ValueError, match="matches no resource"):
        build(tmp_path)
