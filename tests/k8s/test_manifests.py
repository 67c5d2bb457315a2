"""Every overlay under k8s/overlays, rendered by `kubectl kustomize`, checked against
the Kubernetes API schemas and against itself: ports, probes, selectors, topology,
policies, scheduling, load balancing and monitoring."""

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from shoal.tools.topology import expected_topology
from tests.k8s.manifests import (
    COMPONENT_LABEL,
    SHARD_GROUP_LABEL,
    Manifests,
    Object,
    container_port,
    containers,
    flag,
    pod_labels,
    pod_spec,
    selects,
)

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(path.parent for path in (REPO / "k8s" / "overlays").glob("*/kustomization.yaml"))
PRODUCTION = REPO / "k8s" / "overlays" / "production"
SMALL = REPO / "k8s" / "overlays" / "small"
MONITORING = REPO / "k8s" / "components" / "monitoring"
TLS = REPO / "k8s" / "components" / "tls"
CERT_MANAGER = REPO / "k8s" / "components" / "cert-manager"
API_KEYS = REPO / "k8s" / "components" / "api-keys"
# Objects of API groups whose schemas kubernetes-validate does not ship (CRDs):
# test_the_service_monitor_scrapes_every_pod_once and the TLS tests check them instead.
CUSTOM_API_GROUPS = {"monitoring.coreos.com", "cert-manager.io"}
#: Where Prometheus runs: the only namespace that may reach the metrics ports.
MONITORING_NAMESPACE = "monitoring"
#: The plaintext port that serves only the health check, where the pods serve TLS.
HEALTH_PORT = 8081
# The oldest Kubernetes the manifests promise to work on (docs/deploy.md), and the newest
# whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.29", kubernetes_validate.latest_version()]
SERVICES = {"coordinator": 50051, "shard": 50061, "embedder": 50071}
METRICS_PORT = 9100
SHARD_STARTUP_BUDGET_SECONDS = 15 * 60


@cache
def _render(path: Path) -> Manifests:
    return Manifests.render(path)


@pytest.fixture(params=OVERLAYS, ids=[path.name for path in OVERLAYS])
def manifests(request: pytest.FixtureRequest) -> Manifests:
    path: Path = request.param
    return _render(path)


def _workload_id(workload: Object) -> str:
    return f"{workload['kind']}/{workload['metadata']['name']}"


def test_there_are_overlays_to_check() -> None:
    assert {path.name for path in OVERLAYS} >= {"small", "production"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_matches_the_api_schema(manifests: Manifests, version: str) -> None:
    for obj in manifests.objects:
        if obj["apiVersion"].split("/")[0] in CUSTOM_API_GROUPS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} (k8s {version}): {error}")


def test_the_validator_rejects_an_unknown_field() -> None:
    """The schema check above is real: a misspelt field fails it."""
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"selector": {"a": "b"}, "ports": [{"port": 1, "targetPrt": 1}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


def test_everything_lives_in_one_namespace(manifests: Manifests) -> None:
    namespace = manifests.namespace
    assert manifests.get("Namespace", namespace)
    for obj in manifests.objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, obj["metadata"]["name"]


def test_each_service_runs_from_the_image_with_its_module(manifests: Manifests) -> None:
    images = set()
    for workload in manifests.workloads:
        (container,) = containers(workload)
        module = container["args"][0]
        assert module == pod_labels(workload)[COMPONENT_LABEL]
        assert (REPO / module / "__main__.py").is_file(), f"python -m {module} has no module"
        images.add(container["image"])
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name and tag and tag != "latest", f"pin the image tag, not {image!r}"


def test_selectors_match_their_pod_templates(manifests: Manifests) -> None:
    for workload in manifests.workloads:
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selects(selector, pod_labels(workload)), _workload_id(workload)
        # No two workloads may claim each other's pods.
        assert manifests.pods_selected(selector) == [workload], _workload_id(workload)


def test_grpc_and_metrics_ports_agree_everywhere(manifests: Manifests) -> None:
    for workload in manifests.workloads:
        (container,) = containers(workload)
        service = container["args"][0]
        port = int(flag(container, "port"))
        assert port == SERVICES[service] == container_port(container, "grpc")
        metrics = int(flag(container, "metrics-port"))
        assert metrics == METRICS_PORT == container_port(container, "metrics")
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(metrics)
        assert annotations["prometheus.io/path"] == "/metrics"
        assert flag(container, "host") == "0.0.0.0"


def _env(container: Object) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_probes_are_native_grpc_on_the_serving_port(manifests: Manifests) -> None:
    """The serving port, or where it serves TLS (which the kubelet's gRPC probe
    cannot speak) the plaintext health-only port."""
    for workload in manifests.workloads:
        (container,) = containers(workload)
        port = container_port(container, "grpc")
        if "SHOAL_TLS_CERT" in _env(container):
            port = container_port(container, "health")
            assert _env(container)["SHOAL_HEALTH_PORT"] == str(port) == str(HEALTH_PORT)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, (_workload_id(workload), probe)
            # The overall health ("" service), which NOT_SERVING until loaded.
            assert container[probe]["grpc"].get("service", "") == ""


def test_shards_have_time_to_load_their_index(manifests: Manifests) -> None:
    for shard in manifests.component("shard"):
        (container,) = containers(shard)
        startup = container["startupProbe"]
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        assert budget >= SHARD_STARTUP_BUDGET_SECONDS
        # Shutdown checkpoints the index: give it more than the default 30 s.
        assert pod_spec(shard)["terminationGracePeriodSeconds"] >= 60


def test_services_reach_their_pods(manifests: Manifests) -> None:
    for service in manifests.of_kind("Service"):
        targets = manifests.pods_selected(service["spec"]["selector"])
        assert len(targets) == 1, f"Service {service['metadata']['name']} selects {targets}"
        (container,) = containers(targets[0])
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            number = container_port(container, target) if isinstance(target, str) else target
            assert number == port["port"], service["metadata"]["name"]


def test_shard_groups_are_statefulsets_behind_headless_services(manifests: Manifests) -> None:
    groups = manifests.shard_groups()
    assert groups
    for sts in groups:
        assert sts["kind"] == "StatefulSet"
        service = manifests.get("Service", sts["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["selector"][SHARD_GROUP_LABEL] == pod_labels(sts)[SHARD_GROUP_LABEL]
        assert manifests.pods_selected(service["spec"]["selector"]) == [sts]
        # Each replica keeps its data on its own volume, mounted where --data-dir points.
        (container,) = containers(sts)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        claim = mounts[flag(container, "data-dir")]
        assert claim in {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}


def test_topology_config_map_names_the_statefulset_pods(manifests: Manifests) -> None:
    expected = expected_topology(manifests.objects)
    assert manifests.topology() == expected, (
        "the topology ConfigMap does not match the shard StatefulSets; regenerate it with"
        " `python -m shoal.tools.topology OVERLAY --write`:\n" + json.dumps(expected, indent=2)
    )


def _headless_grpc_services(manifests: Manifests, workload: Object) -> list[Object]:
    return [
        service
        for service in manifests.services_of(workload)
        if service["spec"].get("clusterIP") == "None"
        and "grpc" in {port["name"] for port in service["spec"]["ports"]}
    ]


def test_coordinator_balances_over_the_embedders_headless_service(manifests: Manifests) -> None:
    """Behind a virtual IP the coordinator's one connection would pin every call to
    one embedder; a dns:/// name of a headless Service lists them all, and the
    coordinator's channel goes round robin over them (test_embedder_balancing)."""
    (coordinator,) = manifests.component("coordinator")
    (container,) = containers(coordinator)
    target = flag(container, "embedder")
    assert target.startswith("dns:///"), target
    host, _, port = target.removeprefix("dns:///").rpartition(":")
    service_name, namespace, *rest = host.split(".")
    assert namespace == manifests.namespace and rest == ["svc", "cluster", "local"]
    service = manifests.get("Service", service_name)
    assert service["spec"]["clusterIP"] == "None", "the embedder Service must be headless"
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    (embedder,) = manifests.component("embedder")
    assert manifests.pods_selected(service["spec"]["selector"]) == [embedder]


def test_in_cluster_clients_find_every_coordinator(manifests: Manifests) -> None:
    """A headless Service for per-call balancing, and a virtual IP for port-forward
    and an L7 load balancer in front."""
    (coordinator,) = manifests.component("coordinator")
    (headless,) = _headless_grpc_services(manifests, coordinator)
    assert headless["spec"]["ports"][0]["port"] == SERVICES["coordinator"]
    assert not headless["spec"].get("publishNotReadyAddresses", False)
    assert any(
        service["spec"].get("clusterIP") != "None" for service in manifests.services_of(coordinator)
    )


def test_volume_claim_templates_carry_the_pod_labels(manifests: Manifests) -> None:
    """An overlay patch may size the volumes, but not drop the group label
    (a strategic merge patch of volumeClaimTemplates replaces the whole list)."""
    for sts in manifests.shard_groups():
        labels = sts["spec"]["selector"]["matchLabels"]
        assert SHARD_GROUP_LABEL in labels
        for template in sts["spec"]["volumeClaimTemplates"]:
            claim_labels = template["metadata"].get("labels", {})
            assert selects(labels, claim_labels), (_workload_id(sts), claim_labels)
            assert _quantity(template["spec"]["resources"]["requests"]["storage"]) > 0


def _required_anti_affinity(workload: Object) -> list[Object]:
    affinity = pod_spec(workload).get("affinity", {}).get("podAntiAffinity", {})
    terms: list[Object] = affinity.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    return terms


def _hard_spread(workload: Object, topology_key: str) -> list[Object]:
    return [
        constraint
        for constraint in pod_spec(workload).get("topologySpreadConstraints", [])
        if constraint["topologyKey"] == topology_key
        and constraint["whenUnsatisfiable"] == "DoNotSchedule"
    ]


def test_production_keeps_a_groups_replicas_on_separate_nodes_and_zones() -> None:
    manifests = _render(PRODUCTION)
    groups = manifests.shard_groups()
    assert groups
    for sts in groups:
        # Required anti-affinity among the pods of this group only: one per node.
        (term,) = [
            term
            for term in _required_anti_affinity(sts)
            if term["topologyKey"] == "kubernetes.io/hostname"
        ]
        assert manifests.pods_selected(term["labelSelector"]["matchLabels"]) == [sts]
        # Evenly over zones, as a hard rule too.
        (zones,) = _hard_spread(sts, "topology.kubernetes.io/zone")
        assert zones["maxSkew"] == 1
        assert manifests.pods_selected(zones["labelSelector"]["matchLabels"]) == [sts]


def test_the_small_overlay_fits_one_node() -> None:
    """kind and minikube have one node without a zone label: no hard spreading."""
    manifests = _render(SMALL)
    for workload in manifests.workloads:
        assert not _required_anti_affinity(workload), _workload_id(workload)
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
            assert not _hard_spread(workload, key), (_workload_id(workload), key)
    for sts in manifests.shard_groups():
        # Still preferring separate nodes.
        preferred = [
            c
            for c in pod_spec(sts)["topologySpreadConstraints"]
            if c["topologyKey"] == "kubernetes.io/hostname"
        ]
        assert [manifests.pods_selected(c["labelSelector"]["matchLabels"]) for c in preferred] == [
            [sts]
        ]


def _metrics_services(manifests: Manifests, workload: Object) -> list[Object]:
    return [
        service
        for service in manifests.services_of(workload)
        if "metrics" in {port["name"] for port in service["spec"]["ports"]}
    ]


def test_every_workload_has_one_service_with_a_metrics_port(manifests: Manifests) -> None:
    for workload in manifests.workloads:
        (service,) = _metrics_services(manifests, workload)
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == "metrics"]
        assert port["port"] == METRICS_PORT and port["targetPort"] == "metrics"
        assert service["metadata"]["labels"]["shoal.dev/scrape"] == "true"


def _service_monitor_targets(manifests: Manifests, monitor: Object) -> list[Object]:
    """The workloads whose pods the ServiceMonitor scrapes, once per Service port."""
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == manifests.namespace
    assert "namespaceSelector" not in monitor["spec"]  # its own namespace
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    targets = []
    for service in manifests.of_kind("Service"):
        if not selects(selector, service["metadata"].get("labels", {})):
            continue
        names = {port["name"] for port in service["spec"]["ports"]}
        assert endpoint["port"] in names, f"{service['metadata']['name']} has no metrics port"
        targets += manifests.pods_selected(service["spec"]["selector"])
    return targets


def test_the_service_monitor_scrapes_every_pod_once() -> None:
    manifests = _render(PRODUCTION)
    (monitor,) = manifests.of_kind("ServiceMonitor")
    targets = _service_monitor_targets(manifests, monitor)
    assert sorted(map(_workload_id, targets)) == sorted(map(_workload_id, manifests.workloads))
    assert set(monitor["spec"]["podTargetLabels"]) == {COMPONENT_LABEL, SHARD_GROUP_LABEL}


def test_the_monitoring_component_fits_the_small_overlay(tmp_path: Path) -> None:
    """docs/deploy.md: add the component to any overlay whose cluster runs the operator."""
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: shoal\n"
        f"resources: [{os.path.relpath(SMALL, tmp_path)}]\n"
        f"components: [{os.path.relpath(MONITORING, tmp_path)}]\n"
    )
    manifests = Manifests.render(tmp_path)
    (monitor,) = manifests.of_kind("ServiceMonitor")
    targets = _service_monitor_targets(manifests, monitor)
    assert sorted(map(_workload_id, targets)) == sorted(map(_workload_id, manifests.workloads))


def test_coordinator_scales_with_an_hpa(manifests: Manifests) -> None:
    (hpa,) = manifests.of_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    coordinator = manifests.get(target["kind"], target["name"])
    assert manifests.component("coordinator") == [coordinator]
    # A fixed replica count would fight the HPA on every `kubectl apply`.
    assert "replicas" not in coordinator["spec"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_every_workload_has_a_disruption_budget(manifests: Manifests) -> None:
    budgets = manifests.of_kind("PodDisruptionBudget")
    for workload in manifests.workloads:
        matching = [
            pdb
            for pdb in budgets
            if manifests.pods_selected(pdb["spec"]["selector"]["matchLabels"]) == [workload]
        ]
        assert len(matching) == 1, _workload_id(workload)
    for pdb in budgets:
        assert len(manifests.pods_selected(pdb["spec"]["selector"]["matchLabels"])) == 1


def test_pods_run_as_non_root_with_no_privileges(manifests: Manifests) -> None:
    for workload in manifests.workloads:
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert pod_security["runAsUser"] > 0
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
        for container in containers(workload):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            # A read-only root needs somewhere to write temporary files.
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


def _quantity(value: str | int) -> float:
    """A Kubernetes quantity as a number (enough of the syntax for our manifests)."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_containers_have_requests_within_limits(manifests: Manifests) -> None:
    for workload in manifests.workloads:
        for container in containers(workload):
            resources = container["resources"]
            for resource in ("cpu", "memory"):
                request = _quantity(resources["requests"][resource])
                limit = _quantity(resources["limits"][resource])
                assert 0 < request <= limit, (_workload_id(workload), resource)


def _ingress_sources(manifests: Manifests, workload: Object, port: int) -> list[dict[str, Any]]:
    """The `from` peers allowed to reach `port` on the workload's pods ({} = anyone)."""
    sources: list[dict[str, Any]] = []
    for policy in manifests.of_kind("NetworkPolicy"):
        if not selects(policy["spec"]["podSelector"].get("matchLabels", {}), pod_labels(workload)):
            continue
        assert "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if ports and port not in ports:
                continue
            sources += rule.get("from") or [{}]
    return sources


def test_only_the_coordinator_reaches_shards_and_embedder(manifests: Manifests) -> None:
    """Shards also take their peers' catch-up calls; nothing else reaches them."""
    deny_all = [
        policy
        for policy in manifests.of_kind("NetworkPolicy")
        if policy["spec"]["podSelector"] == {} and not policy["spec"].get("ingress")
    ]
    assert deny_all, "without a default-deny policy every pod is open to everyone"
    (coordinator,) = manifests.component("coordinator")
    shards = manifests.component("shard")
    allowed_callers = {"shard": [coordinator, *shards], "embedder": [coordinator]}
    for component, allowed in allowed_callers.items():
        for workload in manifests.component(component):
            (container,) = containers(workload)
            sources = _ingress_sources(manifests, workload, container_port(container, "grpc"))
            callers = []
            for source in sources:
                # Labels alone can be set by any pod; the namespace's name cannot.
                assert set(source) == {"podSelector", "namespaceSelector"}, source
                assert source["namespaceSelector"] == _own_namespace(manifests), source
                callers += manifests.pods_selected(source["podSelector"]["matchLabels"])
            assert coordinator in callers, _workload_id(workload)
            assert all(pod in allowed for pod in callers), _workload_id(workload)
    # The coordinator serves clients from anywhere.
    (container,) = containers(coordinator)
    assert {} in _ingress_sources(manifests, coordinator, container_port(container, "grpc"))


def test_network_policies_name_real_pods_and_ports(manifests: Manifests) -> None:
    for policy in manifests.of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels")
        if not selector:
            continue
        selected = manifests.pods_selected(selector)
        assert selected, policy["metadata"]["name"]
        open_ports = {
            port["containerPort"]
            for workload in selected
            for container in containers(workload)
            for port in container["ports"]
        }
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                assert port["port"] in open_ports, policy["metadata"]["name"]


def _own_namespace(manifests: Manifests) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": manifests.namespace}}


def test_every_workload_can_be_scraped_from_the_monitoring_namespace_only(
    manifests: Manifests,
) -> None:
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}}
    for workload in [*manifests.workloads, manifests.etcd]:
        sources = _ingress_sources(manifests, workload, METRICS_PORT)
        assert sources == [{"namespaceSelector": monitoring}], _workload_id(workload)


# Read by shoal's logging set-up rather than by a command-line flag.
LOGGING_ENV = {"SHOAL_LOG_LEVEL", "SHOAL_LOG_FORMAT"}


@cache
def _service_help(module: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_container_flags_and_env_are_ones_the_service_accepts(manifests: Manifests) -> None:
    for workload in manifests.workloads:
        (container,) = containers(workload)
        module, *args = container["args"]
        accepted = set(re.findall(r"--[a-z][a-z0-9-]*", _service_help(module)))
        for arg in args:
            assert arg.split("=")[0] in accepted, f"python -m {module} has no {arg.split('=')[0]}"
        for env in container.get("env", []):
            name = env["name"]
            if not name.startswith("SHOAL_") or name in LOGGING_ENV:
                continue
            flag_name = "--" + name.removeprefix("SHOAL_").lower().replace("_", "-")
            assert flag_name in accepted, f"{name}: python -m {module} has no {flag_name}"


def test_etcd_runs_three_members_with_a_budget_that_keeps_a_quorum(manifests: Manifests) -> None:
    etcd = manifests.etcd
    assert etcd["kind"] == "StatefulSet" and etcd["spec"]["replicas"] == 3
    (container,) = containers(etcd)
    name, _, tag = container["image"].rpartition(":")
    version = tuple(int(part) for part in tag.removeprefix("v").split("."))
    # 3.5.0-3.5.5 can lose acknowledged writes on a crash (etcd-io/etcd#13766).
    assert name and (version >= (3, 5, 6) or (3, 4, 22) <= version < (3, 5)), tag
    (budget,) = [
        pdb
        for pdb in manifests.of_kind("PodDisruptionBudget")
        if manifests.pods_selected(pdb["spec"]["selector"]["matchLabels"]) == [etcd]
    ]
    assert budget["spec"]["maxUnavailable"] == 1
    assert "data" in {t["metadata"]["name"] for t in etcd["spec"]["volumeClaimTemplates"]}


def test_coordinator_and_shards_reach_etcd(manifests: Manifests) -> None:
    service = manifests.get("Service", "etcd")
    assert manifests.pods_selected(service["spec"]["selector"]) == [manifests.etcd]
    expected = f"etcd.{manifests.namespace}.svc.cluster.local:2379"
    for workload in [*manifests.component("coordinator"), *manifests.component("shard")]:
        (container,) = containers(workload)
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("SHOAL_ETCD") == expected, _workload_id(workload)
    sources = _ingress_sources(manifests, manifests.etcd, 2379)
    assert all(source["namespaceSelector"] == _own_namespace(manifests) for source in sources)
    callers = [
        pod
        for source in sources
        for pod in manifests.pods_selected(source["podSelector"]["matchLabels"])
    ]
    assert sorted(map(_workload_id, callers)) == sorted(
        map(_workload_id, [*manifests.component("coordinator"), *manifests.component("shard")])
    )


def _with_components(tmp_path: Path, overlay: Path, *components: Path) -> Manifests:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: shoal\n"
        f"resources: [{os.path.relpath(overlay, tmp_path)}]\n"
        f"components: [{', '.join(os.path.relpath(c, tmp_path) for c in components)}]\n"
    )
    return Manifests.render(tmp_path)


def _tls_volume_secret(workload: Object) -> str:
    (container,) = containers(workload)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert mount["readOnly"] and "subPath" not in mount  # subPath mounts never update
    env = _env(container)
    for name in ("SHOAL_TLS_CERT", "SHOAL_TLS_KEY"):
        assert str(env[name]).startswith(mount["mountPath"] + "/"), name
    (volume,) = [v for v in pod_spec(workload)["volumes"] if v["name"] == "tls"]
    return str(volume["secret"]["secretName"])


def test_production_serves_tls_and_requires_cluster_certificates_inside() -> None:
    manifests = _render(PRODUCTION)
    (coordinator,) = manifests.component("coordinator")
    (container,) = containers(coordinator)
    env = _env(container)
    # Public TLS without client certificates (API keys are the public gate); it
    # checks the shards and the embedder against the cluster CA.
    assert "SHOAL_TLS_CLIENT_CA" not in env and env["SHOAL_CLUSTER_CA"]
    assert _tls_volume_secret(coordinator) == "coordinator-tls"
    for component, secret in (("shard", "shard-tls"), ("embedder", "embedder-tls")):
        for workload in manifests.component(component):
            assert _tls_volume_secret(workload) == secret
            (container,) = containers(workload)
            assert _env(container)["SHOAL_TLS_CLIENT_CA"], _workload_id(workload)


def _certificates(manifests: Manifests) -> dict[str, Object]:
    return {c["spec"]["secretName"]: c for c in manifests.of_kind("Certificate")}


def test_cert_manager_makes_every_secret_the_pods_mount_with_the_roles_identity() -> None:
    manifests = _render(PRODUCTION)
    certificates = _certificates(manifests)
    identities = {
        "coordinator-tls": "shoal-coordinator",
        "shard-tls": "shoal-shard",
        "embedder-tls": "shoal-embedder",
    }
    mounted = {_tls_volume_secret(w) for w in manifests.workloads}
    assert mounted == set(identities)
    issuers = {i["metadata"]["name"]: i for i in manifests.of_kind("Issuer")}
    for secret, identity in identities.items():
        spec = certificates[secret]["spec"]
        assert spec["commonName"] == identity and identity in spec["dnsNames"]
        assert set(spec["usages"]) == {"server auth", "client auth"}
        issuer = issuers[spec["issuerRef"]["name"]]
        assert certificates[issuer["spec"]["ca"]["secretName"]]["spec"]["isCA"] is True
    # Each shard is called at <pod>.shard-gN.<namespace>.svc.cluster.local.
    shard_names = certificates["shard-tls"]["spec"]["dnsNames"]
    for group in manifests.shard_groups():
        name = f"*.{group['metadata']['name']}.{manifests.namespace}.svc.cluster.local"
        assert name in shard_names
    embedder_target = flag(containers(manifests.component("coordinator")[0])[0], "embedder")
    embedder_host = embedder_target.removeprefix("dns:///").rsplit(":", 1)[0]
    assert embedder_host in certificates["embedder-tls"]["spec"]["dnsNames"]


def test_the_tls_components_fit_the_small_overlay(tmp_path: Path) -> None:
    """docs/deploy.md: add tls (and cert-manager) to any overlay."""
    manifests = _with_components(tmp_path, SMALL, TLS, CERT_MANAGER)
    secrets = set(_certificates(manifests)) - {"shoal-ca"}
    assert {_tls_volume_secret(w) for w in manifests.workloads} == secrets
    for workload in manifests.workloads:
        (container,) = containers(workload)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == HEALTH_PORT


def _api_keys_secret(workload: Object) -> tuple[str, str]:
    """The Secret and key the coordinator's SHOAL_API_KEYS_FILE comes from."""
    (container,) = containers(workload)
    path = str(_env(container)["SHOAL_API_KEYS_FILE"])
    mounts = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    mount = max(mounts, key=lambda m: len(m["mountPath"]))  # the innermost holds the file
    # A subPath mount never sees a new version of the Secret, and the coordinator
    # reads the file again only when it changes: rotation needs the whole volume.
    assert mount["readOnly"] and "subPath" not in mount
    (volume,) = [v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"]]
    assert "items" not in volume["secret"], "items would rename the file"
    return str(volume["secret"]["secretName"]), path.removeprefix(mount["mountPath"] + "/")


def test_production_coordinators_take_their_api_keys_from_a_secret() -> None:
    """Issue 14: keys from a Kubernetes Secret, rotated without a restart."""
    manifests = _render(PRODUCTION)
    for coordinator in manifests.component("coordinator"):
        assert _api_keys_secret(coordinator) == ("api-keys", "keys.json")
    # Only the coordinators serve the public API; nothing else mounts the keys.
    for workload in [*manifests.component("shard"), *manifests.component("embedder")]:
        (container,) = containers(workload)
        assert "SHOAL_API_KEYS_FILE" not in _env(container), _workload_id(workload)


def test_the_api_keys_component_fits_the_small_overlay(tmp_path: Path) -> None:
    """docs/deploy.md: add api-keys to any overlay."""
    manifests = _with_components(tmp_path, SMALL, API_KEYS)
    (coordinator,) = manifests.component("coordinator")
    assert _api_keys_secret(coordinator) == ("api-keys", "keys.json")
