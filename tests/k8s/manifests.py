"""Questions the manifest tests ask of a rendered overlay, and the topology it implies.

The topology ConfigMap must name exactly the pods the shard StatefulSets
create. `expected_topology` derives it from the StatefulSets; after changing the
shard groups or replicas of an overlay, regenerate its topology.json with
    python -m tests.k8s.manifests k8s/overlays/production > k8s/overlays/production/topology.json
"""

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s.kustomize import Object, build, containers

SHARD_GROUP_LABEL = "shoal.dev/shard-group"
COMPONENT_LABEL = "app.kubernetes.io/component"
CLUSTER_DOMAIN = "cluster.local"
TOPOLOGY_KEY = "topology.json"


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


@dataclass
class Manifests:
    """The objects of one rendered overlay."""

    objects: list[Object]

    @classmethod
    def render(cls, path: Path) -> "Manifests":
        return cls(build(path))

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
        groups = self.component("shard")
        return sorted(groups, key=lambda sts: int(pod_labels(sts)[SHARD_GROUP_LABEL]))

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


def pod_labels(workload: Object) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def replica_addresses(statefulset: Object, namespace: str) -> Iterator[str]:
    """The stable DNS names of a StatefulSet's pods, with their gRPC port."""
    name = statefulset["metadata"]["name"]
    service = statefulset["spec"]["serviceName"]
    (container,) = containers(statefulset)
    port = container_port(container, "grpc")
    for ordinal in range(int(statefulset["spec"].get("replicas", 1))):
        yield f"{name}-{ordinal}.{service}.{namespace}.svc.{CLUSTER_DOMAIN}:{port}"


def expected_topology(manifests: Manifests) -> dict[str, Any]:
    """The topology the shard StatefulSets imply: group i is shoal.dev/shard-group=i."""
    groups = manifests.shard_groups()
    numbers = [int(pod_labels(sts)[SHARD_GROUP_LABEL]) for sts in groups]
    if numbers != list(range(len(groups))):
        raise ValueError(f"shard groups must be numbered 0..{len(groups) - 1}, not {numbers}")
    return {
        "version": 1,
        "groups": [
            {"replicas": list(replica_addresses(sts, manifests.namespace))} for sts in groups
        ],
    }


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m tests.k8s.manifests OVERLAY_DIR")
    print(json.dumps(expected_topology(Manifests.render(Path(argv[0]))), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
