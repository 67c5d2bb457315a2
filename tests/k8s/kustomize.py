"""The part of kustomize that k8s/ uses, in Python, so the manifest tests need no kubectl.

`build(path)` renders a kustomization the way `kubectl kustomize path` does for
the features our manifests use: resources (files and directories), namespace,
namePrefix/nameSuffix with name references (StatefulSet serviceName, HPA
scaleTargetRef, ConfigMap volumes and env), labels (with includeSelectors),
configMapGenerator (with kustomize's content hash in the name), patches
(strategic merge, optionally with a target), replicas and images. A field it
does not implement raises `Unsupported` instead of being silently ignored, and
`tests/k8s/test_kustomize.py` compares its output with `kubectl kustomize`
wherever kubectl is installed.

Run it to see what an overlay renders to:
    python -m tests.k8s.kustomize k8s/overlays/small
"""

import copy
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "labels",
    "configMapGenerator",
    "generatorOptions",
    "patches",
    "replicas",
    "images",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}
POD_TEMPLATE_SELECTOR_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}

# Strategic merge: the key that identifies an item in these lists (from the
# Kubernetes API's patchMergeKey); any other list is replaced whole.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
}


class Unsupported(Exception):
    """The kustomization uses a feature this renderer does not implement."""


@dataclass
class Resource:
    """One object, with the kind and names it had, for fixing references to it."""

    obj: Object
    generated_hash: bool = False
    renames: list[tuple[str, str]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    def rename(self, new_name: str) -> None:
        if new_name != self.name:
            self.renames.append((self.name, new_name))
            self.obj["metadata"]["name"] = new_name

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.obj["metadata"].get("labels") or {}
        return labels


def _load_yaml_documents(path: Path) -> list[Object]:
    with path.open() as text:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    for document in documents:
        if not isinstance(document, dict) or "kind" not in document:
            raise ValueError(f"{path}: every document must be a Kubernetes object")
    return documents


def _kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no kustomization file in {directory}")


# --- strategic merge -------------------------------------------------------


def _merge_key(field_name: str, items: list[Any]) -> str | None:
    if field_name == "ports":
        # Container ports merge on containerPort, Service ports on port.
        if all(isinstance(item, dict) and "containerPort" in item for item in items):
            return "containerPort"
        if all(isinstance(item, dict) and "port" in item for item in items):
            return "port"
        return None
    return MERGE_KEYS.get(field_name)


def strategic_merge(target: Any, patch: Any, field_name: str = "") -> Any:
    """`patch` merged into `target` (both plain YAML values); returns the result."""
    if isinstance(patch, dict) and isinstance(target, dict):
        if any(key.startswith("$") for key in patch):
            raise Unsupported(f"strategic merge directives {sorted(patch)} are not implemented")
        merged = dict(target)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(patch, list) and isinstance(target, list):
        key = _merge_key(field_name, patch) if patch else None
        if key is None or not all(isinstance(item, dict) and key in item for item in target):
            return copy.deepcopy(patch)
        merged_list = list(target)
        for item in patch:
            if any(k.startswith("$") for k in item):
                raise Unsupported(f"strategic merge directives in {field_name} are not implemented")
            for index, existing in enumerate(merged_list):
                if existing.get(key) == item[key]:
                    merged_list[index] = strategic_merge(existing, item, field_name)
                    break
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


# --- selectors and targets -------------------------------------------------


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selectors: `a=b,c!=d,e` (what patches' targets use here)."""
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if " in " in term or " notin " in term or term.startswith("!"):
            raise Unsupported(f"label selector term {term!r} is not implemented")
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


def _target_matches(target: Object, resource: Resource) -> bool:
    unknown = set(target) - {"group", "version", "kind", "name", "namespace", "labelSelector"}
    if unknown:
        raise Unsupported(f"patch target fields {sorted(unknown)} are not implemented")
    api_version = str(resource.obj.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    checks = [
        ("kind", resource.kind),
        ("name", resource.name),
        ("namespace", resource.obj["metadata"].get("namespace", "")),
        ("group", group),
        ("version", version),
    ]
    for key, actual in checks:
        if key in target and not re.fullmatch(str(target[key]), actual):
            return False
    return "labelSelector" not in target or _selector_matches(
        str(target["labelSelector"]), resource.labels
    )


# --- field paths -----------------------------------------------------------


def _walk(node: Any, path: list[str], create: bool) -> Iterator[Object]:
    """The maps at `path` below `node`, descending into lists as kustomize does."""
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path, create)
        return
    if not isinstance(node, dict):
        return
    if not path:
        yield node
        return
    head, rest = path[0], path[1:]
    is_list = head.endswith("[]")
    head = head.removesuffix("[]")
    if head not in node or node[head] is None:
        if not create or is_list:
            return
        node[head] = {}
    yield from _walk(node[head], rest, create)


def _label_paths(kind: str, include_selectors: bool) -> list[tuple[str, bool]]:
    """Where kustomize's `labels` puts its pairs: (path, create if missing)."""
    paths = [("metadata/labels", True)]
    if kind in POD_TEMPLATE_SELECTOR_KINDS | {"Job"}:
        paths.append(("spec/template/metadata/labels", True))
    if not include_selectors:
        return paths
    if kind == "Service":
        paths.append(("spec/selector", True))
    elif kind in {"Deployment", "StatefulSet"}:
        paths.append(("spec/selector/matchLabels", True))
        affinity = "spec/template/spec/affinity"
        for term in ("podAffinity", "podAntiAffinity"):
            paths += [
                (
                    f"{affinity}/{term}/preferredDuringSchedulingIgnoredDuringExecution"
                    "/podAffinityTerm/labelSelector/matchLabels",
                    False,
                ),
                (
                    f"{affinity}/{term}/requiredDuringSchedulingIgnoredDuringExecution"
                    "/labelSelector/matchLabels",
                    False,
                ),
            ]
        spread = "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels"
        paths.append((spread, False))
        if kind == "StatefulSet":
            paths.append(("spec/volumeClaimTemplates[]/metadata/labels", True))
    elif kind in {"ReplicaSet", "DaemonSet"}:
        paths.append(("spec/selector/matchLabels", True))
    elif kind == "PodDisruptionBudget":
        paths.append(("spec/selector/matchLabels", False))
    elif kind == "NetworkPolicy":
        paths += [
            ("spec/podSelector/matchLabels", False),
            ("spec/ingress/from/podSelector/matchLabels", False),
            ("spec/egress/to/podSelector/matchLabels", False),
        ]
    elif kind not in {"ConfigMap", "Secret", "HorizontalPodAutoscaler", "ServiceAccount"}:
        raise Unsupported(f"labels with includeSelectors on a {kind} are not implemented")
    return paths


def _pod_specs(obj: Object) -> Iterator[Object]:
    if obj["kind"] in WORKLOADS:
        yield from _walk(obj, ["spec", "template", "spec"], create=False)
    elif obj["kind"] == "CronJob":
        yield from _walk(obj, ["spec", "jobTemplate", "spec", "template", "spec"], create=False)
    elif obj["kind"] == "Pod":
        yield from _walk(obj, ["spec"], create=False)


def containers(obj: Object) -> Iterator[Object]:
    """Every container and init container of a workload's pod template."""
    for spec in _pod_specs(obj):
        for key in ("initContainers", "containers"):
            yield from spec.get(key) or []


# --- name references -------------------------------------------------------


def _reference_fixers(old: str, new: str) -> dict[str, list[Callable[[Object], None]]]:
    """For each referenced kind, functions that rewrite `old` to `new` in a referrer."""

    def set_if(node: Object, key: str) -> None:
        if node.get(key) == old:
            node[key] = new

    def config_map_refs(obj: Object) -> None:
        for spec in _pod_specs(obj):
            for volume in spec.get("volumes") or []:
                if "configMap" in volume:
                    set_if(volume["configMap"], "name")
                for source in (volume.get("projected") or {}).get("sources") or []:
                    if "configMap" in source:
                        set_if(source["configMap"], "name")
            for container in [*(spec.get("initContainers") or []), *spec.get("containers", [])]:
                for env in container.get("env") or []:
                    ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
                    if ref:
                        set_if(ref, "name")
                for source in container.get("envFrom") or []:
                    if "configMapRef" in source:
                        set_if(source["configMapRef"], "name")

    def service_refs(obj: Object) -> None:
        if obj["kind"] == "StatefulSet":
            set_if(obj["spec"], "serviceName")

    def scale_target(kind: str) -> Callable[[Object], None]:
        def fix(obj: Object) -> None:
            if obj["kind"] == "HorizontalPodAutoscaler":
                ref = obj["spec"]["scaleTargetRef"]
                if ref.get("kind") == kind:
                    set_if(ref, "name")

        return fix

    return {
        "ConfigMap": [config_map_refs],
        "Service": [service_refs],
        "Deployment": [scale_target("Deployment")],
        "StatefulSet": [scale_target("StatefulSet")],
    }


def _fix_references(resources: list[Resource]) -> None:
    for resource in resources:
        for old, new in resource.renames:
            for fix in _reference_fixers(old, new).get(resource.kind, []):
                for referrer in resources:
                    fix(referrer.obj)
        resource.renames.clear()


# --- generators ------------------------------------------------------------


def config_map_hash(config_map: Object) -> str:
    """kustomize's name suffix for a generated ConfigMap.

    sha256 of the JSON {"data", "kind", "name"} as Go's json.Marshal writes it,
    first 10 hex digits with 0,1,3,a,e swapped for letters. kustomize looks the
    name up with a path it cannot resolve, so "name" is always empty; we do the
    same to get the same suffix.
    """
    encoded: Object = {"data": config_map.get("data") or {}, "kind": "ConfigMap", "name": ""}
    if config_map.get("binaryData"):
        encoded["binaryData"] = config_map["binaryData"]
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _generate_config_map(directory: Path, spec: Object, options: Object) -> Resource:
    unknown = set(spec) - {"name", "files", "literals", "options"}
    if unknown or spec.get("behavior", "create") != "create":
        raise Unsupported(f"configMapGenerator fields {sorted(unknown)} are not implemented")
    data: dict[str, str] = {}
    for entry in spec.get("files") or []:
        key, _, path = str(entry).rpartition("=")
        file_path = directory / path
        data[key or file_path.name] = file_path.read_text()
    for literal in spec.get("literals") or []:
        key, _, value = str(literal).partition("=")
        data[key] = value
    merged_options = {**options, **(spec.get("options") or {})}
    metadata: Object = {"name": spec["name"]}
    if merged_options.get("labels"):
        metadata["labels"] = dict(merged_options["labels"])
    if merged_options.get("annotations"):
        metadata["annotations"] = dict(merged_options["annotations"])
    obj: Object = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
    return Resource(obj, generated_hash=not merged_options.get("disableNameSuffixHash", False))


# --- transformers ----------------------------------------------------------


def _apply_patches(directory: Path, patches: list[Object], resources: list[Resource]) -> None:
    for entry in patches:
        unknown = set(entry) - {"path", "patch", "target"}
        if unknown or "options" in entry:
            raise Unsupported(f"patch fields {sorted(unknown)} are not implemented")
        if "path" in entry:
            documents = _load_yaml_documents(directory / entry["path"])
        else:
            documents = [doc for doc in yaml.safe_load_all(entry["patch"]) if doc is not None]
        for document in documents:
            if not isinstance(document, dict):
                raise Unsupported("JSON 6902 patches are not implemented")
            target = entry.get("target")
            if target is None:
                target = {"kind": document["kind"], "name": re.escape(document["metadata"]["name"])}
            matched = [r for r in resources if _target_matches(target, r)]
            if not matched:
                raise ValueError(f"patch {entry} matches no resource")
            for resource in matched:
                body = copy.deepcopy(document)
                body["metadata"] = {**body.get("metadata", {}), "name": resource.name}
                if "namespace" in resource.obj["metadata"]:
                    body["metadata"]["namespace"] = resource.obj["metadata"]["namespace"]
                resource.obj = strategic_merge(resource.obj, body)


def _apply_labels(entries: list[Object], resources: list[Resource]) -> None:
    for entry in entries:
        unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
        if unknown:
            raise Unsupported(f"labels fields {sorted(unknown)} are not implemented")
        pairs = {str(k): str(v) for k, v in (entry.get("pairs") or {}).items()}
        include_selectors = bool(entry.get("includeSelectors", False))
        include_templates = bool(entry.get("includeTemplates", False)) or include_selectors
        for resource in resources:
            for path, create in _label_paths(resource.kind, include_selectors):
                if path.startswith("spec/template") and not include_templates:
                    continue
                for node in _walk(resource.obj, path.split("/")[:-1], create):
                    leaf = path.split("/")[-1]
                    if leaf not in node or node[leaf] is None:
                        if not create:
                            continue
                        node[leaf] = {}
                    node[leaf].update(pairs)


def _apply_replicas(entries: list[Object], resources: list[Resource]) -> None:
    for entry in entries:
        matched = [r for r in resources if r.kind in SCALABLE and r.name == entry["name"]]
        if not matched:
            raise ValueError(f"replicas: no Deployment or StatefulSet named {entry['name']!r}")
        for resource in matched:
            resource.obj["spec"]["replicas"] = int(entry["count"])


def _split_image(image: str) -> tuple[str, str]:
    """('name', '[:tag][@digest]') of an image reference; a registry port is not a tag."""
    name, at, digest = image.partition("@")
    suffix = at + digest
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, suffix = name[:colon], name[colon:] + suffix
    return name, suffix


def _apply_images(entries: list[Object], resources: list[Resource]) -> None:
    for entry in entries:
        for resource in resources:
            for container in containers(resource.obj):
                name, suffix = _split_image(str(container.get("image", "")))
                if name != entry["name"]:
                    continue
                new_name = entry.get("newName", name)
                if "digest" in entry:
                    suffix = "@" + str(entry["digest"])
                elif "newTag" in entry:
                    suffix = ":" + str(entry["newTag"])
                container["image"] = f"{new_name}{suffix}"


def _apply_namespace(namespace: str, resources: list[Resource]) -> None:
    for resource in resources:
        if resource.kind not in CLUSTER_SCOPED:
            resource.obj["metadata"]["namespace"] = namespace


# --- build -----------------------------------------------------------------


def _build(directory: Path) -> list[Resource]:
    kustomization = yaml.safe_load(_kustomization_file(directory).read_text()) or {}
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise Unsupported(f"{directory}: kustomization fields {sorted(unknown)} not implemented")

    resources: list[Resource] = []
    for entry in kustomization.get("resources") or []:
        path = directory / entry
        if path.is_dir():
            resources += _build(path)
        else:
            resources += [Resource(obj) for obj in _load_yaml_documents(path)]
    options = kustomization.get("generatorOptions") or {}
    for spec in kustomization.get("configMapGenerator") or []:
        resources.append(_generate_config_map(directory, spec, options))

    _apply_patches(directory, kustomization.get("patches") or [], resources)
    if "namespace" in kustomization:
        _apply_namespace(str(kustomization["namespace"]), resources)
    prefix = str(kustomization.get("namePrefix", ""))
    suffix = str(kustomization.get("nameSuffix", ""))
    if prefix or suffix:
        for resource in resources:
            if resource.kind in CLUSTER_SCOPED:
                raise Unsupported(f"a name prefix or suffix on a {resource.kind}")
            resource.rename(f"{prefix}{resource.name}{suffix}")
    _apply_labels(kustomization.get("labels") or [], resources)
    _apply_replicas(kustomization.get("replicas") or [], resources)
    _apply_images(kustomization.get("images") or [], resources)
    for resource in resources:
        if resource.generated_hash:
            resource.rename(f"{resource.name}-{config_map_hash(resource.obj)}")
            resource.generated_hash = False
    _fix_references(resources)
    _check_unique(directory, resources)
    return resources


def _check_unique(directory: Path, resources: list[Resource]) -> None:
    seen: set[tuple[str, str, str]] = set()
    for resource in resources:
        key = (resource.kind, resource.obj["metadata"].get("namespace", ""), resource.name)
        if key in seen:
            raise ValueError(f"{directory}: {key} is defined twice")
        seen.add(key)


def build(path: Path) -> list[Object]:
    """The objects `kubectl kustomize path` renders (for the features listed above)."""
    return [resource.obj for resource in _build(path)]


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m tests.k8s.kustomize KUSTOMIZATION_DIR")
    print(yaml.safe_dump_all(build(Path(argv[0])), sort_keys=True), end="")


if __name__ == "__main__":
    main(sys.argv[1:])
