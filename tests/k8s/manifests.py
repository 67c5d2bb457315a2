"""Questions the manifest tests ask of an overlay rendered by `kubectl kustomize`.

Rendering and the topology an overlay implies are the user-facing tools'
(shoal.tools.kustomize, shoal.tools.topology); this adds the lookups the tests need.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.tools.kustomize import Object, containers, render
from shoal.tools.topology import COMPONENT_LABEL, SHARD_GROUP_LABEL, pod_labels, shard_groups

__all__ = [
    "COMPONENT_LABEL",
    "SHARD_GROUP_LABEL",
    "Manifests",
    "Object",
    "container_port",
    "containers",
    "flag",
    "pod_labels",
    "pod_spec",
    "selects",
]


def flag(container: Object, name: str) -> str:
    """The value of `--name=value` in a container's args (the form our manifests use)."""
    prefix = f"--{name}="
    args: list[str] = container.get("args", [])
    values = [arg[len(prefix) :] for arg in args if arg.startswith(prefix)]
    if len(values) != 1:
        raise KeyError(f"container {container['name']} has {len(values)} {prefix} args")
    return values[0]


def container_port(container: Object, name: str) -> int:
    for port in container.get("ports", []):
        if port.get("name") == name:
            return int(port["containerPort"])
    raise KeyError(f"container {container['name']} has no port named {name}")


def selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    """Whether an equality selector (matchLabels or a Service selector) picks `labels`."""
    return selector is not None and all(labels.get(k) == v for k, v in selector.items())


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


@dataclass
class Manifests:
    """The objects of one rendered overlay."""

    objects: list[Object]

    @classmethod
    def render(cls, path: Path) -> "Manifests":
        return cls(render(path))

    def of_kind(self, kind: str) -> list[Object]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> Object:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} {kind} named {name!r}")
        return found[0]

    @property
    def all_workloads(self) -> list[Object]:
        return [obj for obj in self.objects if obj["kind"] in {"Deployment", "StatefulSet"}]

    @property
    def workloads(self) -> list[Object]:
        """Shoal's own workloads (not etcd, which runs its upstream image)."""
        return [w for w in self.all_workloads if pod_labels(w).get(COMPONENT_LABEL) != "etcd"]

    @property
    def etcd(self) -> Object:
        (etcd,) = [w for w in self.all_workloads if pod_labels(w).get(COMPONENT_LABEL) == "etcd"]
        return etcd

    @property
    def namespace(self) -> str:
        namespaces = {obj["metadata"].get("namespace") for obj in self.workloads}
        if len(namespaces) != 1:
            raise ValueError(f"workloads span namespaces {namespaces}")
        return str(namespaces.pop())

    def pods_selected(self, selector: dict[str, str] | None) -> list[Object]:
        """The workloads (etcd's too) whose pods an equality selector picks."""
        return [w for w in self.all_workloads if selects(selector, pod_labels(w))]

    def component(self, component: str) -> list[Object]:
        return [w for w in self.workloads if pod_labels(w).get(COMPONENT_LABEL) == component]

    def shard_groups(self) -> list[Object]:
        """The shard StatefulSets, ordered by their group number."""
        return shard_groups(self.objects)

    def services_of(self, workload: Object) -> list[Object]:
        """The Services whose selector picks the workload's pods."""
        return [
            service
            for service in self.of_kind("Service")
            if self.pods_selected(service["spec"].get("selector")) == [workload]
        ]

    def topology_config_map(self) -> tuple[Object, str]:
        """The ConfigMap the coordinator reads its topology from, and the key."""
        (coordinator,) = self.component("coordinator")
        (container,) = containers(coordinator)
        path = Path(flag(container, "topology"))
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volume_name = mounts[str(path.parent)]
        volumes = {v["name"]: v for v in coordinator["spec"]["template"]["spec"]["volumes"]}
        config_map_name = volumes[volume_name]["configMap"]["name"]
        return self.get("ConfigMap", config_map_name), path.name

    def topology(self) -> dict[str, Any]:
        config_map, key = self.topology_config_map()
        topology: dict[str, Any] = json.loads(config_map["data"][key])
        return topology
