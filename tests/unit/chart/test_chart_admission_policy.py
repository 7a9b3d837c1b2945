"""The chart's ValidatingAdmissionPolicy (templates/admissionpolicy.yaml): rendered only where the cluster serves
admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy, and then the policy and binding of crds/policy/ (the
chart's files/policy/ are byte-identical copies) with the release's names, labels and the values' failurePolicy,
validationActions and, in namespaced mode, namespaces — valid for every Kubernetes that serves the API.

Helm sees the API only through discovery: `helm install` / `upgrade` against a 1.30+ server, or `helm template
--api-versions admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy`. A plain `helm template` knows no kinds, so
it renders no policy: both are checked here.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART,
    FULLNAME,
    REPO,
    VALUE_SETS,
    VALUES_DIR,
    JsonDict,
    find,
    find_all,
    render,
    template_text,
)

VAP_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"
KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
NAME = f"{FULLNAME}-vaultsecret-access"
POLICY_DIR = REPO / "crds" / "policy"
CHART_POLICY = CHART / "files" / "policy"
#: The first Kubernetes that serves admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy, and the newest
#: schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.30", "1.37"]


def _file(name: str) -> JsonDict:
    document: JsonDict = yaml.safe_load((POLICY_DIR / name).read_text(encoding="utf-8"))
    return document


POLICY = _file("vaultsecret-access.yaml")
BINDING = _file("vaultsecret-access-binding.yaml")


def policy_objects(*sets: str, values: str | None = None, api: bool = True) -> dict[str, JsonDict]:
    docs = render(values, *sets, api_versions=(VAP_API,) if api else ())
    return {kind: doc for kind in KINDS for doc in find_all(docs, kind)}


def test_chart_files_are_the_repository_policy_files() -> None:
    """Byte-identical copies of crds/policy/*.yaml; `make crds` refreshes both."""
    ours = {path.name: path.read_bytes() for path in POLICY_DIR.glob("*.yaml")}
    chart = {path.name: path.read_bytes() for path in CHART_POLICY.rglob("*") if path.is_file()}
    assert ours
    assert chart == ours, "run `make crds` to copy crds/policy/*.yaml into the chart's files/policy/"


def test_helm_template_without_the_api_renders_no_policy() -> None:
    """What `helm template` does by default (it knows no kinds), and what `helm install` does on a server older
    than 1.30."""
    assert policy_objects(api=False) == {}
    assert "ValidatingAdmissionPolicy" not in template_text()
    # The group/version alone (what Helm's defaults list, and what 1.28/1.29 with v1beta1 do not prove) is not enough.
    docs = render(None, api_versions=("admissionregistration.k8s.io/v1",))
    assert find_all(docs, "ValidatingAdmissionPolicy") == []


def test_with_the_api_the_policy_and_binding_are_rendered() -> None:
    objects = policy_objects()
    assert set(objects) == set(KINDS)
    policy, binding = objects["ValidatingAdmissionPolicy"], objects["ValidatingAdmissionPolicyBinding"]
    assert policy["metadata"]["name"] == binding["metadata"]["name"] == NAME
    assert binding["spec"]["policyName"] == NAME
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["paramRef"] == {"selector": {}, "parameterNotFoundAction": "Allow"}
    assert "matchResources" not in binding["spec"]  # cluster-wide mode: every namespace
    assert policy["spec"]["failurePolicy"] == "Ignore"
    for obj in objects.values():
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "svo"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert "namespace" not in obj["metadata"]  # cluster-scoped


def test_disabled_renders_no_policy() -> None:
    assert policy_objects("admissionPolicy.enabled=false") == {}


def _without_chart_metadata(obj: JsonDict) -> JsonDict:
    bare = copy.deepcopy(obj)
    bare["metadata"] = {}
    return bare


@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_policy_is_the_repository_policy(values: str) -> None:
    """The CEL and everything else of crds/policy/ reach the cluster unchanged; the chart changes names, labels and
    what the values say."""
    objects = policy_objects(values=values)
    policy, binding = objects["ValidatingAdmissionPolicy"], objects["ValidatingAdmissionPolicyBinding"]
    assert _without_chart_metadata(policy) == _without_chart_metadata(POLICY)
    expected = _without_chart_metadata(BINDING)
    expected["spec"]["policyName"] = NAME
    served = (yaml.safe_load((VALUES_DIR / values).read_text()) or {}).get("watchNamespaces")
    if served:
        expected["spec"]["matchResources"] = {"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": served}]}}  # fmt: skip
    assert _without_chart_metadata(binding) == expected
    assert policy["metadata"]["labels"] | POLICY["metadata"]["labels"] == policy["metadata"]["labels"]


def test_namespaced_mode_checks_only_the_served_namespaces() -> None:
    binding = policy_objects("watchNamespaces={team-a,team-b}")["ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["matchResources"] == {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
            ]
        }
    }


@pytest.mark.parametrize(
    ("sets", "actions", "failure_policy"),
    [
        (("admissionPolicy.validationActions={Warn}",), ["Warn"], "Ignore"),
        (("admissionPolicy.validationActions={Warn,Audit}",), ["Warn", "Audit"], "Ignore"),
        (
            ("admissionPolicy.validationActions={Deny,Audit}", "admissionPolicy.failurePolicy=Fail"),
            ["Deny", "Audit"],
            "Fail",
        ),
    ],
)
def test_values_set_actions_and_failure_policy(sets: tuple[str, ...], actions: list[str], failure_policy: str) -> None:
    objects = policy_objects(*sets)
    assert objects["ValidatingAdmissionPolicyBinding"]["spec"]["validationActions"] == actions
    assert objects["ValidatingAdmissionPolicy"]["spec"]["failurePolicy"] == failure_policy


def test_release_names_keep_two_releases_apart() -> None:
    """Cluster-scoped objects: two releases (e.g. namespaced ones for different teams) must not share them."""
    objects = policy_objects("fullnameOverride=team-a-svo")
    assert {obj["metadata"]["name"] for obj in objects.values()} == {"team-a-svo-vaultsecret-access"}
    assert objects["ValidatingAdmissionPolicyBinding"]["spec"]["policyName"] == "team-a-svo-vaultsecret-access"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_policy_is_valid(values: str, version: str) -> None:
    """kubernetes-validate, strict (unknown fields are errors), like test_chart_validation for the other manifests."""
    objects = policy_objects(values=values)
    assert set(objects) == set(KINDS)
    for obj in [*objects.values(), POLICY, BINDING]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{values}: {obj['kind']} is invalid for Kubernetes {version}: {exc.json_path}: {exc.message}")


def test_the_kind_does_not_exist_before_1_30() -> None:
    """Why the chart asks the server: on 1.29 admissionregistration.k8s.io/v1 has no ValidatingAdmissionPolicy."""
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(POLICY, "1.29", strict=True)


def test_crds_install_false_still_renders_the_policy() -> None:
    """The policy needs the CRDs on the cluster, not in the release (kubectl-managed CRDs are fine)."""
    assert set(policy_objects(values="crds-external.yaml")) == set(KINDS)
    assert find(render("crds-external.yaml", api_versions=(VAP_API,)), "ValidatingAdmissionPolicy")
