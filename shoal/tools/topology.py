"""The topology a Kubernetes overlay's shard StatefulSets imply, for its topology.json.

The coordinator routes by the topology file, and each shard finds its peers in
it, so it must list exactly the pods the shard StatefulSets create:
`shard-gN-R.shard-gN.NAMESPACE.svc.cluster.local:PORT` for group N (the
StatefulSet's shoal.dev/shard-group label) and replica R. After changing an
overlay's shard groups or replicas, regenerate its file:

    python -m shoal.tools.topology k8s/overlays/production --write
    python -m shoal.tools.topology k8s/overlays/production --check   # in CI

Without --write or --check it prints the topology. The overlay is rendered with
`kubectl kustomize` (shoal.tools.kustomize).
"""

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shoal.tools.kustomize import KubectlError, Object, containers, render

SHARD_GROUP_LABEL = "shoal.dev/shard-group"
COMPONENT_LABEL = "app.kubernetes.io/component"
CLUSTER_DOMAIN = "cluster.local"
TOPOLOGY_FILE = "topology.json"


class OverlayError(ValueError):
    """The overlay's shard StatefulSets do not describe a usable topology."""


def pod_labels(workload: Object) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def shard_groups(objects: Sequence[Object]) -> list[Object]:
    """The shard StatefulSets, ordered by their group number."""
    groups = [
        obj
        for obj in objects
        if obj["kind"] == "StatefulSet" and pod_labels(obj).get(COMPONENT_LABEL) == "shard"
    ]
    for sts in groups:
        if SHARD_GROUP_LABEL not in pod_labels(sts):
            raise OverlayError(f"StatefulSet {sts['metadata']['name']} has no {SHARD_GROUP_LABEL}")
    return sorted(groups, key=lambda sts: int(pod_labels(sts)[SHARD_GROUP_LABEL]))


def grpc_port(statefulset: Object) -> int:
    for container in containers(statefulset):
        for port in container.get("ports", []):
            if port.get("name") == "grpc":
                return int(port["containerPort"])
    raise OverlayError(f"StatefulSet {statefulset['metadata']['name']} has no port named grpc")


def replica_addresses(statefulset: Object, cluster_domain: str = CLUSTER_DOMAIN) -> Iterator[str]:
    """The stable DNS names of a StatefulSet's pods, with their gRPC port."""
    name = statefulset["metadata"]["name"]
    service = statefulset["spec"]["serviceName"]
    namespace = statefulset["metadata"].get("namespace", "default")
    port = grpc_port(statefulset)
    for ordinal in range(int(statefulset["spec"].get("replicas", 1))):
        yield f"{name}-{ordinal}.{service}.{namespace}.svc.{cluster_domain}:{port}"


def expected_topology(
    objects: Sequence[Object], cluster_domain: str = CLUSTER_DOMAIN
) -> dict[str, Any]:
    """The topology the shard StatefulSets imply: group i is shoal.dev/shard-group=i."""
    groups = shard_groups(objects)
    numbers = [int(pod_labels(sts)[SHARD_GROUP_LABEL]) for sts in groups]
    if not groups or numbers != list(range(len(groups))):
        raise OverlayError(f"shard groups must be numbered 0..N-1, not {numbers}")
    return {
        "version": 1,
        "groups": [{"replicas": list(replica_addresses(sts, cluster_domain))} for sts in groups],
    }


def to_text(topology: dict[str, Any]) -> str:
    return json.dumps(topology, indent=2) + "\n"


def _read_json(path: Path) -> Any:
    """The file's JSON, or None where it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shoal.tools.topology",
        description="Print, write or check the topology.json a Kubernetes overlay needs.",
    )
    parser.add_argument("overlay", type=Path, help="the overlay directory, e.g. k8s/overlays/small")
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--write", action="store_true", help=f"write OVERLAY/{TOPOLOGY_FILE} (default: print it)"
    )
    action.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 if OVERLAY/{TOPOLOGY_FILE} differs from what the StatefulSets imply",
    )
    parser.add_argument(
        "--cluster-domain",
        default=CLUSTER_DOMAIN,
        help="the cluster's DNS domain (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path: Path = args.overlay / TOPOLOGY_FILE
    if args.write and not path.exists():
        # The overlay's ConfigMap generator reads the file: render with a placeholder.
        path.write_text(to_text({"version": 1, "groups": []}))
    try:
        text = to_text(expected_topology(render(args.overlay), args.cluster_domain))
    except (KubectlError, OverlayError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.write:
        path.write_text(text)
        print(f"wrote {path}", file=sys.stderr)
    elif args.check:
        if _read_json(path) != json.loads(text):
            print(
                f"{path} does not list the shard StatefulSets' pods; regenerate it with\n"
                f"  python -m shoal.tools.topology {args.overlay} --write",
                file=sys.stderr,
            )
            return 1
        print(f"{path} matches the shard StatefulSets", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
