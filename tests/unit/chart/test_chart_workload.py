"""The Deployment and what surrounds it: restricted PodSecurity, probes, the command line, peering and the PDB,
metrics Service and ServiceMonitor."""

from __future__ import annotations

from typing import Any

import pytest
from chart_support import FULLNAME, NAMESPACE, VALUE_SETS, JsonDict, container, find, find_all, render

#: Volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}  # fmt: skip


def restricted_violations(pod: JsonDict) -> list[str]:
    """What the Kubernetes "restricted" Pod Security Standard (latest) would reject in a pod spec."""
    problems: list[str] = []
    pod_ctx = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{flag} is set")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} is {kinds}")
    for box in (pod.get("initContainers") or []) + pod["containers"]:
        ctx: dict[str, Any] = box.get("securityContext") or {}
        name = box["name"]
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot must be true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as UID 0")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        for port in box.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort")
    return problems


def pod_spec(docs: list[JsonDict]) -> JsonDict:
    spec: JsonDict = find(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("values", VALUE_SETS)
def test_restricted_pod_security(values: str) -> None:
    deployments = find_all(render(values), "Deployment")  # one per shard (values/shards*.yaml: several)
    assert deployments
    for deployment in deployments:
        assert restricted_violations(deployment["spec"]["template"]["spec"]) == []


def test_hardening_beyond_restricted() -> None:
    docs = render()
    ctx = container(docs)["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert pod_spec(docs)["securityContext"]["runAsUser"] == 65532  # the image's user (Dockerfile)
    mounts = {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}
    assert mounts == {"/tmp": "tmp"}
    [tmp] = pod_spec(docs)["volumes"]
    assert "emptyDir" in tmp


def test_resources_are_set() -> None:
    resources = container(render())["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


@pytest.mark.parametrize("values", ["defaults.yaml", "client-credentials.yaml"])
def test_liveness_is_kopfs_health_and_readiness_our_readyz(values: str) -> None:
    box = container(render(values))
    ports = {p["name"]: p["containerPort"] for p in box["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert box["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert box["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for probe in ("livenessProbe", "readinessProbe"):
        assert box[probe]["periodSeconds"] >= 5
    assert f"--liveness=http://0.0.0.0:{ports['health']}/healthz" in box["args"]
    assert f"--metrics-port={ports['metrics']}" in box["args"]


def test_default_command_line_is_one_cluster_wide_standalone_operator() -> None:
    docs = render()
    box = container(docs)
    assert box["args"][0] == "run"
    assert not [a for a in box["args"] if a.startswith(("--namespace", "--peering"))]
    assert "--log-format=json" in box["args"]
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in box["env"]
    deployment = find(docs, "Deployment", FULLNAME, NAMESPACE)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two standalone operators at once
    assert box["image"] == "ghcr.io/scailabs/scaivault-operator:0.1.0"
    assert find_all(docs, "PodDisruptionBudget") == []
    assert [d for d in docs if d["apiVersion"].startswith("kopf.dev/")] == []


def test_namespaced_mode_passes_each_namespace() -> None:
    args = container(render("namespaced.yaml"))["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]


def test_several_replicas_peer_through_a_pre_created_peering_object() -> None:
    docs = render("ha.yaml")
    deployment = find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--peering=scaivault-peering" in container(docs)["args"]
    # Kopf with a peering name keeps every replica paused until it sees this object; it never creates it.
    peering = find(docs, "ClusterKopfPeering", "scaivault-peering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    pdb = find(docs, "PodDisruptionBudget", FULLNAME, NAMESPACE)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    anti = pod_spec(docs)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_namespaced_peering_has_a_peering_object_per_namespace() -> None:
    docs = render("ha-namespaced.yaml")
    assert f"--peering={FULLNAME}" in container(docs)["args"]
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in find_all(docs, "KopfPeering")} == {
        ("team-a", FULLNAME),
        ("team-b", FULLNAME),
    }
    assert find_all(docs, "ClusterKopfPeering") == []


def test_metrics_service_and_service_monitor() -> None:
    docs = render("ha.yaml")
    service = find(docs, "Service", f"{FULLNAME}-metrics", NAMESPACE)
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"] == find(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    monitor = find(docs, "ServiceMonitor", FULLNAME, NAMESPACE)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0] | {"port": "metrics", "path": "/metrics"} == monitor["spec"]["endpoints"][0]
    assert find_all(render(), "ServiceMonitor") == []


def test_values_reach_the_pod() -> None:
    docs = render("client-credentials.yaml")
    box = container(docs)
    assert box["image"].endswith("@sha256:" + "0123456789abcdef" * 4)
    assert "--workers=16" in box["args"]
    assert "--log-format=plain" in box["args"]
    assert {"name": "SCAIVAULT_OPERATOR_PAGE_SIZE", "value": "200"} in box["env"]
    pod = pod_spec(docs)
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert find(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"] == {"example.com/team": "platform"}


def test_an_existing_service_account_is_used_and_not_created() -> None:
    docs = render("client-credentials-secret.yaml")
    assert find_all(docs, "ServiceAccount") == []
    assert pod_spec(docs)["serviceAccountName"] == "scaivault-operator"
