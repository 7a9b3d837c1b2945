"""The CRDs are templates of the chart (templates/crds.yaml), so that `helm upgrade` upgrades them: Helm installs a
chart's crds/ folder once and never again. What is rendered is the repository's crds/*.yaml plus labels and
annotations only; `crds.install=false` renders none, `crds.keep` decides whether Helm may ever delete them.

Helm maps every object of a release to an API before it creates any. The chart's own custom resources (the
ClusterVaultConnection "default", the Kopf peering objects) therefore become post-install/post-upgrade hooks while
the cluster does not serve their kind yet, and ordinary objects once it does (``--api-versions`` here).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from chart_support import (
    CHART,
    CHART_CRDS,
    NAMESPACE,
    RELEASE,
    REPO,
    JsonDict,
    find,
    find_all,
    helm,
    render,
    template_text,
)

KEEP = {"helm.sh/resource-policy": "keep"}
#: What templates/crds.yaml adds to the labels of every CRD file.
CRD_LABELS = {
    "helm.sh/chart": f"scaivault-operator-{yaml.safe_load((CHART / 'Chart.yaml').read_text())['version']}",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/version": yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"],
    "app.kubernetes.io/part-of": "scaivault-operator",
    "app.kubernetes.io/managed-by": "Helm",
}
OURS = {doc["metadata"]["name"]: doc for path in sorted((REPO / "crds").glob("*.yaml")) for doc in
        yaml.safe_load_all(path.read_text()) if doc}  # fmt: skip
KOPF = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all((CHART_CRDS / "kopf-peerings.yaml").read_text())
        if doc}  # fmt: skip
#: The kinds Helm installs before CustomResourceDefinitions (helm.sh/helm/v4 pkg/release/v1/util InstallOrder).
HELM_KINDS_BEFORE_CRDS = {"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
                          "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
                          "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim"}  # fmt: skip
CONNECTION_API = "scaivault.scailabs.ai/v1alpha1/ClusterVaultConnection"
PEERING_APIS = ("kopf.dev/v1/ClusterKopfPeering", "kopf.dev/v1/KopfPeering")
WITH_CONNECTION = ("scaivault.url=https://scaivault.example.com", "scaivault.auth.token.existingSecret=scaivault-token")


def crds(docs: list[JsonDict]) -> dict[str, JsonDict]:
    return {doc["metadata"]["name"]: doc for doc in find_all(docs, "CustomResourceDefinition")}


def without_added_metadata(crd: JsonDict) -> JsonDict:
    bare = copy.deepcopy(crd)
    bare["metadata"].pop("labels", None)
    bare["metadata"].pop("annotations", None)
    return bare


def assert_file_plus_metadata(rendered: JsonDict, source: JsonDict, annotations: dict[str, str]) -> None:
    name = source["metadata"]["name"]
    assert without_added_metadata(rendered) == without_added_metadata(source), f"{name}: content differs"
    assert rendered["metadata"]["labels"] == (source["metadata"].get("labels") or {}) | CRD_LABELS, name
    assert rendered["metadata"].get("annotations", {}) == annotations, name


def test_rendered_crds_are_the_repository_crds_plus_labels_and_keep() -> None:
    rendered = crds(render())
    assert set(rendered) == set(OURS)  # one replica: no Kopf peering CRDs
    for name, source in OURS.items():
        assert_file_plus_metadata(rendered[name], source, KEEP)
        assert rendered[name]["metadata"]["labels"]["app.kubernetes.io/name"] == "scaivault-operator"  # the file's


def test_several_replicas_also_get_kopfs_peering_crds_unless_managed_elsewhere() -> None:
    rendered = crds(render("ha.yaml"))
    assert set(rendered) == set(OURS) | set(KOPF)
    for name, source in KOPF.items():
        assert_file_plus_metadata(rendered[name], source, KEEP)
    docs = render("ha.yaml", "crds.kopfPeerings=false")
    assert set(crds(docs)) == set(OURS)
    # Its CRD is someone else's: the peering object is an ordinary object of the release (the CRD must exist).
    assert "annotations" not in find(docs, "ClusterKopfPeering")["metadata"]


def test_crds_install_false_renders_no_crd_and_the_custom_resources_are_ordinary_objects() -> None:
    docs = render("crds-external.yaml")
    assert find_all(docs, "CustomResourceDefinition") == []
    for kind in ("ClusterVaultConnection", "ClusterKopfPeering"):
        assert "annotations" not in find(docs, kind)["metadata"], kind


@pytest.mark.parametrize(
    ("sets", "annotations"),
    [
        ((), KEEP),
        (("crds.keep=false",), {}),
        (("crds.annotations.example\\.com/owner=platform",), KEEP | {"example.com/owner": "platform"}),
        (("crds.keep=false", "crds.annotations.example\\.com/owner=platform"), {"example.com/owner": "platform"}),
    ],
)
def test_crds_keep_and_annotations(sets: tuple[str, ...], annotations: dict[str, str]) -> None:
    rendered = crds(render(None, *sets))
    assert set(rendered) == set(OURS)
    for name, source in OURS.items():
        assert_file_plus_metadata(rendered[name], source, annotations)


def test_values_do_not_leak_between_crds() -> None:
    """The annotations are a copy per CRD, not the values' map changed in place."""
    docs = render(None, "crds.annotations.a=b")
    for crd in crds(docs).values():
        assert crd["metadata"]["annotations"] == KEEP | {"a": "b"}


def _kinds_in_order(text: str) -> list[str]:
    return [doc["kind"] for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("values", ["defaults.yaml", "ha-namespaced.yaml", "token.yaml"])
def test_helm_creates_the_crds_before_the_objects_that_use_them(values: str) -> None:
    """Helm sorts a release's objects by kind (its InstallOrder) and creates them kind after kind: only a few
    built-in kinds come before CustomResourceDefinition; RBAC, the Deployment and every custom resource come after."""
    kinds = _kinds_in_order(template_text(values, api_versions=(CONNECTION_API, *PEERING_APIS)))
    first, last = kinds.index("CustomResourceDefinition"), len(kinds) - kinds[::-1].index("CustomResourceDefinition")
    assert set(kinds[:first]) <= HELM_KINDS_BEFORE_CRDS
    assert set(kinds[first:last]) == {"CustomResourceDefinition"}
    assert {"ClusterRole", "Deployment"} <= set(kinds[last:])
    if values != "defaults.yaml":  # a custom resource (the connection or the peering objects) comes after the CRDs
        assert {"ClusterVaultConnection", "KopfPeering"} & set(kinds[last:])


def _dry_run_install(*args: str) -> JsonDict:
    """What `helm install` would create: ``manifest`` (the release's objects) and ``hooks``."""
    output = helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", "-o", "json", *args)
    result: JsonDict = json.loads(output)
    return result


def test_on_a_cluster_without_the_crds_the_custom_resources_are_post_install_hooks() -> None:
    """Helm builds every object of the release (maps its kind to an API) before creating any: a ClusterVaultConnection
    in the manifest of a first install fails ("no matches for kind ... ensure CRDs are installed first"). As hooks,
    they are built after the CRDs were created; the next upgrade, the kind served, takes them over."""
    sets = [arg for item in ("replicaCount=2", *WITH_CONNECTION) for arg in ("--set", item)]
    release = _dry_run_install(*sets)
    manifest_kinds = {doc["kind"] for doc in yaml.safe_load_all(release["manifest"]) if doc}
    assert "CustomResourceDefinition" in manifest_kinds
    assert not manifest_kinds & {"ClusterVaultConnection", "ClusterKopfPeering"}
    hooks = {hook["kind"]: hook for hook in release["hooks"]}
    assert set(hooks) == {"ClusterVaultConnection", "ClusterKopfPeering"}
    for kind, hook in hooks.items():
        assert hook["events"] == ["post-install", "post-upgrade"], kind
        assert hook["delete_policies"] == ["before-hook-creation"], kind
        meta: dict[str, Any] = yaml.safe_load(hook["manifest"])["metadata"]
        # Helm's ownership check (upgrade takes the object over as an ordinary one) needs exactly these.
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["annotations"]["meta.helm.sh/release-name"] == RELEASE
        assert meta["annotations"]["meta.helm.sh/release-namespace"] == NAMESPACE


def test_once_the_cluster_serves_the_kinds_the_custom_resources_are_ordinary_objects() -> None:
    docs = render("ha.yaml", *WITH_CONNECTION, api_versions=(CONNECTION_API, *PEERING_APIS))
    for kind in ("ClusterVaultConnection", "ClusterKopfPeering"):
        assert "annotations" not in find(docs, kind)["metadata"], kind
    # Only the kinds the cluster serves: the connection is ordinary, the peering object still a hook.
    docs = render("ha.yaml", *WITH_CONNECTION, api_versions=(CONNECTION_API,))
    assert "annotations" not in find(docs, "ClusterVaultConnection")["metadata"]
    assert find(docs, "ClusterKopfPeering")["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"


def test_the_documented_upgrade_flags_exist_in_this_helm() -> None:
    """docs/install.md hands CRDs over to Helm with --take-ownership and --force-conflicts (Helm 4)."""
    for command in ("install", "upgrade"):
        text = helm(command, "--help")
        assert "--take-ownership" in text
        assert "--force-conflicts" in text
