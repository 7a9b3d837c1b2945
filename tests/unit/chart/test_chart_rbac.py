"""RBAC: exactly the verbs the operator and Kopf use, no more — cluster-wide, namespaced, and with peering.

Where each rule comes from (kube.py, runtime.py, handlers.py and Kopf 1.45's reactor):

- vaultsecrets list/watch: Kopf's watch for ``on.event``; get: ``Kube.get_vaultsecret`` (does the owner of a deleted
  Secret still exist?); list: also ``Kube.list_vaultsecret_uids`` (after a re-list); vaultsecrets/status patch:
  ``Kube.patch_vaultsecret_status``;
  vaultsecrets/finalizers update: the managed Secrets' ownerReference has ``blockOwnerDeletion: true``, which the
  OwnerReferencesPermissionEnforcement admission plugin allows only with update on the owner's finalizers.
- clustervaultconnections, vaultconnections list/watch: ``Kube.list_connections`` at start-up, then Kopf;
  clustervaultconnections/status, vaultconnections/status patch: ``Kube.patch_connection_status`` (status.breaker,
  on the breaker's transitions). The cluster-scoped one is in the ClusterRole in both modes.
- secrets get/create/patch/delete: ``Kube.get_secret`` (also connection credentials), ``create_secret``,
  ``patch_secret``, ``delete_secret``; list: ``Kube.list_secrets`` at start-up; watch: Kopf (label-selected).
- events create: ``Kube.post_event`` and Kopf's warnings. namespaces get: ``Kube.namespace_labels``; list/watch only
  in namespaced mode, where Kopf's namespace observer follows the served namespaces.
- customresourcedefinitions list/watch: Kopf's resource observer.
- apps deployments, statefulsets, daemonsets get/list/patch (``rollout.enabled``, the default): ``Kube.list_workloads``
  (once per debounce window of a namespace whose Secret data changed), ``get_workload`` (a re-read after a 409),
  ``patch_workload`` (the pod-template annotation that restarts it). No watch. ``rollout.enabled=false`` drops the
  rule and sets ``SCAIVAULT_OPERATOR_ROLLOUT_ENABLED=false``.
- kopf.dev peerings: Kopf's peering observer (list/watch) and keep-alives (patch of the named object).
- GET /version (readiness) and SelfSubjectReview (who we run as, logged at start): granted to every authenticated
  user by Kubernetes' default roles, so the chart grants nothing for them.
"""

from __future__ import annotations

import inspect

import pytest
import yaml
from chart_support import (
    FULLNAME,
    GROUP,
    NAMESPACE,
    VALUES_DIR,
    JsonDict,
    Rule,
    container,
    find,
    find_all,
    render,
    rules,
)

from scaivault_operator._cogs.kube import Kube

CLUSTER_READS: set[Rule] = {
    (GROUP, "clustervaultconnections", ("list", "watch"), ()),
    (GROUP, "clustervaultconnections/status", ("patch",), ()),
    ("", "namespaces", ("get",), ()),
    ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch"), ()),
}
#: Workload rollouts (``rollout.enabled``, the default): one rule per resource, as ``rules`` splits them.
WORKLOADS: set[Rule] = {("apps", resource, ("get", "list", "patch"), ()) for resource in
                        ("deployments", "statefulsets", "daemonsets")}  # fmt: skip
#: The namespaced rules with rollouts off.
NAMESPACED_CORE: set[Rule] = {
    (GROUP, "vaultsecrets", ("get", "list", "patch", "watch"), ()),
    (GROUP, "vaultsecrets/status", ("patch",), ()),
    (GROUP, "vaultsecrets/finalizers", ("update",), ()),
    (GROUP, "vaultconnections", ("list", "watch"), ()),
    (GROUP, "vaultconnections/status", ("patch",), ()),
    ("", "secrets", ("create", "delete", "get", "list", "patch", "watch"), ()),
    ("", "events", ("create",), ()),
}
NAMESPACED: set[Rule] = NAMESPACED_CORE | WORKLOADS
#: Every public call of ``Kube`` and the RBAC rules it needs. A new call must be added here and to the chart.
KUBE_CALLS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "get_secret": (("", "secrets", "get"),),
    "create_secret": (("", "secrets", "create"),),
    "patch_secret": (("", "secrets", "patch"),),
    "delete_secret": (("", "secrets", "delete"),),
    "list_secrets_at": (("", "secrets", "list"),),
    "watch_secrets": (("", "secrets", "watch"),),
    "namespace_labels": (("", "namespaces", "get"),),
    "list_connections": ((GROUP, "clustervaultconnections", "list"), (GROUP, "vaultconnections", "list")),
    "get_vaultsecret": ((GROUP, "vaultsecrets", "get"),),
    "list_vaultsecret_uids": ((GROUP, "vaultsecrets", "list"),),
    "patch_vaultsecret_finalizers": ((GROUP, "vaultsecrets", "patch"),),
    "patch_vaultsecret_status": ((GROUP, "vaultsecrets/status", "patch"),),
    "patch_connection_status": (
        (GROUP, "clustervaultconnections/status", "patch"),
        (GROUP, "vaultconnections/status", "patch"),
    ),
    "post_event": (("", "events", "create"),),
    "list_workloads": tuple(("apps", resource, "list") for resource in ("deployments", "statefulsets", "daemonsets")),
    "get_workload": tuple(("apps", resource, "get") for resource in ("deployments", "statefulsets", "daemonsets")),
    "patch_workload": tuple(("apps", resource, "patch") for resource in ("deployments", "statefulsets", "daemonsets")),
}
#: Calls that Kubernetes' default ClusterRoles grant every authenticated user: nothing for the chart to grant.
#: GET /version: system:public-info-viewer; SelfSubjectReview create: system:basic-user (Kubernetes 1.28+).
BUILT_IN_CALLS: dict[str, str] = {
    "server_version": "system:public-info-viewer (nonResourceURLs /version)",
    "whoami": "system:basic-user (authentication.k8s.io selfsubjectreviews create)",
}


def _peering(resource: str, name: str) -> set[Rule]:
    return {("kopf.dev", resource, ("list", "watch"), ()), ("kopf.dev", resource, ("patch",), (name,))}


def test_cluster_wide_mode_has_one_cluster_role_with_exactly_the_needed_rules() -> None:
    docs = render("token.yaml")
    assert rules(find(docs, "ClusterRole", FULLNAME)) == CLUSTER_READS | NAMESPACED
    assert find_all(docs, "Role") == []
    assert find_all(docs, "RoleBinding") == []


def test_namespaced_mode_grants_secrets_only_through_roles_in_the_watched_namespaces() -> None:
    docs = render("namespaced.yaml")
    cluster_rules = rules(find(docs, "ClusterRole", FULLNAME))
    assert cluster_rules == (CLUSTER_READS - {("", "namespaces", ("get",), ())}) | {
        ("", "namespaces", ("get", "list", "watch"), ())
    }
    assert not any(resource == "secrets" for _, resource, _, _ in cluster_rules)
    for namespace in ("team-a", "team-b"):
        assert rules(find(docs, "Role", FULLNAME, namespace)) == NAMESPACED
        binding = find(docs, "RoleBinding", FULLNAME, namespace)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    # The release namespace is not served: only the named connection credentials (get) and Kopf's Events there.
    credentials = find(docs, "Role", f"{FULLNAME}-credentials", NAMESPACE)
    assert rules(credentials) == {("", "secrets", ("get",), ("scaivault-token",)), ("", "events", ("create",), ())}
    assert find(docs, "RoleBinding", f"{FULLNAME}-credentials", NAMESPACE)["roleRef"]["kind"] == "Role"
    assert {role["metadata"]["namespace"] for role in find_all(docs, "Role")} == {"team-a", "team-b", NAMESPACE}


@pytest.mark.parametrize(
    ("values", "sets", "names"),
    [
        ("namespaced.yaml", (), ("scaivault-token",)),
        ("namespaced.yaml", ("rbac.credentialSecrets={mine,scaivault-token}",), ("mine", "scaivault-token")),
        ("namespaced.yaml", ("scaivault.url=", "rbac.credentialSecrets={mine}"), ("mine",)),
        ("client-credentials-secret.yaml", ("watchNamespaces={team-a}",), None),  # its existingSecret, below
    ],
)
def test_namespaced_credentials_role_reads_only_named_secrets(
    values: str, sets: tuple[str, ...], names: tuple[str, ...] | None
) -> None:
    docs = render(values, *sets)
    secrets = [rule for rule in rules(find(docs, "Role", f"{FULLNAME}-credentials", NAMESPACE)) if rule[1] == "secrets"]
    if names is None:
        [(_, _, verbs, names_found)] = secrets
        assert verbs == ("get",)
        assert len(names_found) == 1
    else:
        assert secrets == [("", "secrets", ("get",), names)]


def test_no_credential_secret_no_secret_rule_in_the_release_namespace() -> None:
    docs = render("namespaced.yaml", "scaivault.url=")
    credentials = find(docs, "Role", f"{FULLNAME}-credentials", NAMESPACE)
    assert rules(credentials) == {("", "events", ("create",), ())}


def test_a_served_release_namespace_needs_no_extra_role() -> None:
    docs = render("namespaced.yaml", f"watchNamespaces={{team-a,{NAMESPACE}}}")
    assert {role["metadata"]["name"] for role in find_all(docs, "Role")} == {FULLNAME}
    assert rules(find(docs, "Role", FULLNAME, NAMESPACE)) == NAMESPACED


def test_peering_rules_only_with_several_replicas_and_patch_only_our_peering_object() -> None:
    assert not any(group == "kopf.dev" for group, *_ in rules(find(render("token.yaml"), "ClusterRole")))
    ha = rules(find(render("ha.yaml"), "ClusterRole", FULLNAME))
    assert ha == CLUSTER_READS | NAMESPACED | _peering("clusterkopfpeerings", "scaivault-peering")
    docs = render("ha-namespaced.yaml")
    assert not any(group == "kopf.dev" for group, *_ in rules(find(docs, "ClusterRole")))
    for namespace in ("team-a", "team-b"):
        assert rules(find(docs, "Role", FULLNAME, namespace)) == NAMESPACED | _peering("kopfpeerings", FULLNAME)


@pytest.mark.parametrize("values", ["token.yaml", "namespaced.yaml", "ha.yaml", "client-credentials-secret.yaml"])
def test_no_wildcards_and_bindings_name_our_service_account(values: str) -> None:
    docs = render(values)
    account = find_all(docs, "ServiceAccount")
    name = account[0]["metadata"]["name"] if account else "scaivault-operator"  # serviceAccount.create: false
    for role in find_all(docs, "ClusterRole") + find_all(docs, "Role"):
        for group, resource, verbs, _ in rules(role):
            assert "*" not in (group, resource, *verbs)
    for binding in find_all(docs, "ClusterRoleBinding") + find_all(docs, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]


def test_rbac_off_renders_no_rbac() -> None:
    docs = render("token.yaml", "rbac.create=false")
    assert not [d for d in docs if d["apiVersion"].startswith("rbac.authorization.k8s.io/")]


def test_every_kube_call_is_covered_by_the_chart() -> None:
    """Guards the RBAC against new API calls: every public ``Kube`` method is mapped to a granted rule."""
    public = {
        name
        for name, member in inspect.getmembers(Kube, inspect.isfunction)
        if not name.startswith("_") and name not in ("aclose",)
    }
    added_or_removed = "a Kube call was added or removed: update KUBE_CALLS (and templates/rbac.yaml) or BUILT_IN_CALLS"
    assert public == set(KUBE_CALLS) | set(BUILT_IN_CALLS), added_or_removed
    granted = CLUSTER_READS | NAMESPACED
    for call, needed in KUBE_CALLS.items():
        for group, resource, verb in needed:
            assert any(g == group and r == resource and verb in verbs for g, r, verbs, _ in granted), (call, resource)


def test_connection_status_patch_is_granted_where_each_kind_lives() -> None:
    """A ClusterVaultConnection's status needs the ClusterRole in both modes; a VaultConnection's the Role of its
    namespace in namespaced mode."""
    cluster_status = (GROUP, "clustervaultconnections/status", ("patch",), ())
    namespaced_status = (GROUP, "vaultconnections/status", ("patch",), ())
    assert cluster_status in rules(find(render("token.yaml"), "ClusterRole", FULLNAME))
    docs = render("namespaced.yaml")
    assert cluster_status in rules(find(docs, "ClusterRole", FULLNAME))
    assert namespaced_status not in rules(find(docs, "ClusterRole", FULLNAME))
    for namespace in ("team-a", "team-b"):
        assert namespaced_status in rules(find(docs, "Role", FULLNAME, namespace))


# -- rollout.enabled ---------------------------------------------------------------------------------------------

ROLLOUT_OFF = {"name": "SCAIVAULT_OPERATOR_ROLLOUT_ENABLED", "value": "false"}


def _env(docs: list[JsonDict]) -> list[JsonDict]:
    env: list[JsonDict] = container(docs)["env"]
    return env


@pytest.mark.parametrize("values", ["token.yaml", "namespaced.yaml", "ha-namespaced.yaml"])
def test_rollouts_on_by_default_grant_get_list_patch_on_workloads_where_secrets_are_served(values: str) -> None:
    """The default: the workloads of every served namespace, with exactly the verbs the rollout calls (no watch,
    update or delete), and the operator keeps its default (rollouts on)."""
    docs = render(values)
    namespaces = yaml.safe_load((VALUES_DIR / values).read_text()).get("watchNamespaces")
    roles = [find(docs, "Role", FULLNAME, namespace) for namespace in namespaces] if namespaces else [
        find(docs, "ClusterRole", FULLNAME)]  # fmt: skip
    for role in roles:
        assert {rule for rule in rules(role) if rule[0] == "apps"} == WORKLOADS
    if namespaces:  # never cluster-wide in namespaced mode, nor in the release namespace it does not serve
        assert not any(group == "apps" for group, *_ in rules(find(docs, "ClusterRole", FULLNAME)))
        assert not any(group == "apps" for group, *_ in rules(find(docs, "Role", f"{FULLNAME}-credentials", NAMESPACE)))
    assert not any(item["name"] == ROLLOUT_OFF["name"] for item in _env(docs))


@pytest.mark.parametrize(
    ("values", "sets"),
    [
        ("token.yaml", ("rollout.enabled=false",)),
        ("ha.yaml", ("rollout.enabled=false",)),
        ("rollout-disabled.yaml", ()),
        ("ha-namespaced.yaml", ("rollout.enabled=false",)),
    ],
)
def test_rollouts_off_grant_nothing_on_workloads_and_tell_the_operator(values: str, sets: tuple[str, ...]) -> None:
    docs = render(values, *sets)
    for role in find_all(docs, "ClusterRole") + find_all(docs, "Role"):
        assert not any(group == "apps" for group, *_ in rules(role)), role["metadata"]["name"]
    for namespace in yaml.safe_load((VALUES_DIR / values).read_text()).get("watchNamespaces") or ():
        assert rules(find(docs, "Role", FULLNAME, namespace)) - _peering("kopfpeerings", FULLNAME) == NAMESPACED_CORE
    if not find_all(docs, "Role"):
        cluster = rules(find(docs, "ClusterRole", FULLNAME)) - _peering("clusterkopfpeerings", "scaivault-peering")
        assert cluster == CLUSTER_READS | NAMESPACED_CORE
    env = _env(docs)
    assert ROLLOUT_OFF in env
    assert env[0]["name"] == "POD_ID"
    assert [item["name"] for item in env].count(ROLLOUT_OFF["name"]) == 1


def test_rollouts_off_keeps_the_users_extra_settings_after_it() -> None:
    """operator.env comes after the chart's own variables, so a user's value is the last word."""
    names = [item["name"] for item in _env(render("rollout-disabled.yaml"))]
    assert names == ["POD_ID", ROLLOUT_OFF["name"], "SCAIVAULT_OPERATOR_PAGE_SIZE"]


def test_rollouts_off_without_rbac_renders_only_the_setting() -> None:
    docs = render("token.yaml", "rollout.enabled=false", "rbac.create=false")
    assert not [d for d in docs if d["apiVersion"].startswith("rbac.authorization.k8s.io/")]
    assert ROLLOUT_OFF in _env(docs)


def test_the_setting_the_chart_sets_is_the_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable the chart sets when rollout.enabled=false is the one that turns the operator's rollouts off."""
    from scaivault_operator._cogs.settings import OperatorSettings

    monkeypatch.delenv(ROLLOUT_OFF["name"], raising=False)
    assert OperatorSettings().rollout_enabled is True
    monkeypatch.setenv(ROLLOUT_OFF["name"], ROLLOUT_OFF["value"])
    assert OperatorSettings().rollout_enabled is False
