"""Immutable versioned Secrets (``spec.target.immutable``), the pure parts: the versioned name, the model's rules and
their CEL twins, the desired Secret and its patch, which Secrets a pod template reads and how its references are
renamed, the names of a VaultSecret's versions, the plan that moves workloads to a new version (only when a key they
use differs), the planner joining two versions in one window, and the registry's view of drift on versions.

The I/O around the plan (reading old versions, deleting those beyond ``keepVersions``) is in
``test_immutable_rollout_core.py``; the running operator in tests/integration/test_operator_immutable.py.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from typing import Any

import celpy
import pytest
from celpy import celtypes
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from test_registry import CONN, ready_status, vs

from scaivault_operator._cogs.api import (
    IMMUTABLE_NAME_MESSAGE,
    IMMUTABLE_NAME_RULE,
    IMMUTABLE_POLICY_MESSAGE,
    IMMUTABLE_POLICY_RULE,
    MAX_VERSIONED_BASE,
    Target,
    VaultSecretSpec,
)
from scaivault_operator._logic.manifests import (
    ANNOTATION_VERSION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Owner,
    data_hash,
    desired_secret,
    needs_recreate,
    secret_patch,
)
from scaivault_operator._logic.registry import Priority, Registry
from scaivault_operator._logic.rollout import (
    RELOAD_ANNOTATION,
    ROLLOUT_ANNOTATION,
    Change,
    Planner,
    Restart,
    changed_keys,
    key_digests,
    parse_stamps,
    plan,
    restart_patch,
    version_of,
    versioned_names,
)
from scaivault_operator._logic.workloads import pod_spec_of, referenced_secrets, renamed_references

KEY = b"k" * 32
NS = "team-a"
UID = "uid-vs-db"
OWNER = Owner(api_version="scaivault.scailabs.ai/v1alpha1", kind="VaultSecret", name="db", namespace=NS, uid=UID)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def data(**values: str) -> dict[str, str]:
    return {key: b64(value) for key, value in values.items()}


def spec(**target: Any) -> VaultSecretSpec:
    return VaultSecretSpec.model_validate({"path": "apps/web/db", "target": target})


def dns_name(length: int) -> str:
    """A valid DNS subdomain of exactly ``length`` characters (labels of at most 63, joined by dots)."""
    labels, left = [], length
    while left > 0:
        size = min(63, left)
        labels.append("a" * size)
        left -= size + 1
    name = ".".join(labels)
    if len(name) < length:  # the last label was cut by the dot's place
        name = name[:-1] + "ab"
    name = name[:length]
    assert len(name) == length
    assert not name.endswith(".")
    return name


def cel_holds(rule: str, value: Mapping[str, Any]) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    result = program.evaluate({"self": celpy.json_to_cel(dict(value))})
    return isinstance(result, celtypes.BoolType) and bool(result)


# -- the versioned name and the model ----------------------------------------------------------------------------


def test_secret_name_is_versioned_only_with_immutable() -> None:
    mutable, immutable = spec(), spec(immutable=True)
    assert mutable.secret_name("db", 7) == "db"
    assert mutable.secret_name("db", None) == "db"
    assert immutable.secret_name("db", 7) == "db-v7"
    assert immutable.secret_name("db", None) == "db", "no version yet: the base"
    assert immutable.target_name("db") == "db", "the base, not a version"
    named = spec(immutable=True, name="payments")
    assert named.secret_name("db", 12) == "payments-v12"
    assert named.target_name("db") == "payments"


def test_immutable_defaults() -> None:
    target = Target()
    assert (target.immutable, target.keepVersions) == (False, 2)
    assert Target(immutable=True).keepVersions == 2


@pytest.mark.parametrize("keep", [1, 2, 20])
def test_keep_versions_bounds_accepted(keep: int) -> None:
    assert spec(immutable=True, keepVersions=keep).target.keepVersions == keep


@pytest.mark.parametrize("keep", [0, -1, 21, 1000])
def test_keep_versions_bounds_refused(keep: int) -> None:
    with pytest.raises(ValidationError, match="keepVersions"):
        spec(immutable=True, keepVersions=keep)


@pytest.mark.parametrize("policy", ["Merge", "Adopt"])
def test_immutable_needs_creation_policy_owner(policy: str) -> None:
    with pytest.raises(ValidationError) as caught:
        spec(immutable=True, creationPolicy=policy)
    assert IMMUTABLE_POLICY_MESSAGE in str(caught.value)
    assert spec(immutable=False, creationPolicy=policy).target.creationPolicy == policy, "without immutable: fine"
    assert spec(immutable=True, creationPolicy="Owner").target.immutable


def test_the_versioned_base_is_at_most_232_characters() -> None:
    assert MAX_VERSIONED_BASE == 232
    longest = dns_name(232)
    assert spec(immutable=True, name=longest).secret_name("x", 2**63 - 1) == f"{longest}-v{2**63 - 1}"
    assert len(spec(immutable=True, name=longest).secret_name("x", 2**63 - 1)) == 253, "still a Secret name"
    with pytest.raises(ValidationError) as caught:
        spec(immutable=True, name=dns_name(233))
    assert IMMUTABLE_NAME_MESSAGE in str(caught.value)
    assert spec(name=dns_name(233)).target.name == dns_name(233), "a mutable Secret may be longer"


@pytest.mark.parametrize(
    ("target", "policy_ok", "name_ok"),
    [
        ({}, True, True),
        ({"immutable": False, "creationPolicy": "Merge"}, True, True),
        ({"immutable": True}, True, True),
        ({"immutable": True, "creationPolicy": "Owner"}, True, True),
        ({"immutable": True, "creationPolicy": "Adopt"}, False, True),
        ({"immutable": True, "creationPolicy": "Merge"}, False, True),
        ({"immutable": True, "name": dns_name(232)}, True, True),
        ({"immutable": True, "name": dns_name(233)}, True, False),
        ({"immutable": False, "name": dns_name(233)}, True, True),
    ],
)
def test_the_cel_rules_and_the_model_draw_the_same_lines(target: dict[str, Any], policy_ok: bool,
                                                         name_ok: bool) -> None:  # fmt: skip
    assert cel_holds(IMMUTABLE_POLICY_RULE, target) is policy_ok
    assert cel_holds(IMMUTABLE_NAME_RULE, target) is name_ok
    if policy_ok and name_ok:
        Target.model_validate(target)
    else:
        with pytest.raises(ValidationError):
            Target.model_validate(target)


# -- the desired Secret and its patch ----------------------------------------------------------------------------


def test_desired_secret_is_the_versioned_immutable_secret() -> None:
    values = data(password="pw")
    manifest = desired_secret(owner=OWNER, spec=spec(immutable=True), data=values, version=7,
                              connection="ClusterVaultConnection/default")  # fmt: skip
    assert manifest["metadata"]["name"] == "db-v7"
    assert manifest["immutable"] is True
    assert manifest["data"] == values
    assert manifest["metadata"]["annotations"][ANNOTATION_VERSION] == "7"
    assert manifest["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
    [ref] = manifest["metadata"]["ownerReferences"]
    assert (ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (UID, True, True)
    mutable = desired_secret(owner=OWNER, spec=spec(), data=values, version=7, connection="x/y")
    assert mutable["metadata"]["name"] == "db"
    assert "immutable" not in mutable


def test_secret_patch_sets_immutable_and_never_unsets_it() -> None:
    desired = desired_secret(owner=OWNER, spec=spec(immutable=True), data=data(a="1"), version=1, connection="x/y")
    existing = copy.deepcopy(desired)
    del existing["immutable"]
    assert secret_patch(existing, desired) == {"immutable": True}
    assert secret_patch(desired, desired) is None
    mutable = desired_secret(owner=OWNER, spec=spec(), data=data(a="1"), version=1, connection="x/y")
    assert secret_patch(desired, mutable | {"metadata": desired["metadata"]}) is None, "never immutable: false"


def test_changed_data_of_an_immutable_secret_needs_a_recreate() -> None:
    desired = desired_secret(owner=OWNER, spec=spec(immutable=True), data=data(a="2"), version=1, connection="x/y")
    existing = desired_secret(owner=OWNER, spec=spec(immutable=True), data=data(a="1"), version=1, connection="x/y")
    assert needs_recreate(existing, desired)
    assert not needs_recreate(desired, desired)
    relabelled = copy.deepcopy(desired)
    relabelled["metadata"]["labels"]["team"] = "x"
    assert not needs_recreate(existing | {"data": desired["data"]}, relabelled), "metadata is patched in place"
    removed = desired_secret(owner=OWNER, spec=spec(immutable=True), data={}, version=1, connection="x/y")
    assert needs_recreate(existing, removed), "a removed key is a data change too"
    mutable = copy.deepcopy(existing)
    del mutable["immutable"]
    assert not needs_recreate(mutable, desired), "a mutable Secret is patched (and made immutable by the patch)"


# -- which Secrets a pod template reads, and renaming them -------------------------------------------------------


def env_ref(var: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def every_reference(name: str = "db-v1") -> dict[str, Any]:
    """A pod spec naming ``name`` in each place a Secret's data is read, and as a pull secret."""
    return {
        "containers": [
            {"name": "app", "env": [env_ref("A", name, "password"), {"name": "PLAIN", "value": "x"},
                                    {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": name, "key": "k"}}}],
             "envFrom": [{"secretRef": {"name": name}}, {"configMapRef": {"name": name}}]},
            {"name": "side", "env": [env_ref("B", "other", "x")]},
        ],
        "initContainers": [{"name": "init", "env": [env_ref("C", name, "user")]}],
        "volumes": [
            {"name": "direct", "secret": {"secretName": name, "items": [{"key": "password", "path": "p"}]}},
            {"name": "proj", "projected": {"sources": [{"configMap": {"name": name}}, {"secret": {"name": name}}]}},
            {"name": "cm", "configMap": {"name": name}},
            {"name": "empty", "emptyDir": {}},
        ],
        "imagePullSecrets": [{"name": "registry"}, {"name": name}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("pod_spec", "names"),
    [
        ({"containers": [{"name": "a", "env": [env_ref("A", "s-env", "k")]}]}, {"s-env"}),
        ({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "s-from"}}]}]}, {"s-from"}),
        ({"volumes": [{"name": "v", "secret": {"secretName": "s-vol"}}]}, {"s-vol"}),
        ({"volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "s-proj"}}]}}]}, {"s-proj"}),
        ({"initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s-init"}}]}]}, {"s-init"}),
        ({"imagePullSecrets": [{"name": "s-pull"}]}, set()),
        ({}, set()),
    ],
)
def test_referenced_secrets_one_kind_at_a_time(pod_spec: dict[str, Any], names: set[str]) -> None:
    assert referenced_secrets(pod_spec) == names


def test_referenced_secrets_all_places_but_not_pull_secrets_nor_config_maps() -> None:
    assert referenced_secrets(every_reference("db-v1")) == {"db-v1", "other"}
    only_pull = {"containers": [{"name": "a"}], "imagePullSecrets": [{"name": "registry"}]}
    assert referenced_secrets(only_pull) == set()


@pytest.mark.parametrize("pod_spec", [
    {"containers": "x"},
    {"containers": [None, 3, {"env": "x", "envFrom": {"a": 1}}]},
    {"containers": [{"env": [None, {"valueFrom": "x"}, {"valueFrom": {"secretKeyRef": "x"}}]}]},
    {"containers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": 3}}}]}]},
    {"volumes": {"a": 1}},
    {"volumes": [None, {"secret": "x"}, {"projected": "x"}, {"projected": {"sources": "x"}}]},
    {"volumes": [{"projected": {"sources": [None, {"secret": None}, {"secret": {"name": ""}}]}}]},
])  # fmt: skip
def test_referenced_secrets_of_malformed_specs_are_empty(pod_spec: dict[str, Any]) -> None:
    assert referenced_secrets(pod_spec) == set()


def test_renamed_references_renames_every_place_and_returns_whole_lists() -> None:
    pod_spec = every_reference("db-v1")
    original = copy.deepcopy(pod_spec)
    lists = renamed_references(pod_spec, {"db-v1": "db-v2"})
    assert pod_spec == original, "the input is not modified"
    assert set(lists) == {"containers", "initContainers", "volumes"}
    renamed = {**pod_spec, **lists}
    assert referenced_secrets(renamed) == {"db-v2", "other"}
    app, side = lists["containers"]
    assert app["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "db-v2", "key": "password"}
    assert app["env"][1:] == original["containers"][0]["env"][1:], "a ConfigMap of the same name stays"
    assert app["envFrom"] == [{"secretRef": {"name": "db-v2"}}, {"configMapRef": {"name": "db-v1"}}]
    assert side == original["containers"][1], "the untouched container is sent whole (a merge patch replaces lists)"
    assert lists["initContainers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "db-v2"
    direct, proj, config_map, empty = lists["volumes"]
    assert direct["secret"] == {"secretName": "db-v2", "items": [{"key": "password", "path": "p"}]}
    assert proj["projected"]["sources"] == [{"configMap": {"name": "db-v1"}}, {"secret": {"name": "db-v2"}}]
    assert (config_map, empty) == (original["volumes"][2], original["volumes"][3])
    assert "imagePullSecrets" not in lists, "a pull secret is not a data reference"


def test_renamed_references_returns_only_the_lists_that_changed() -> None:
    pod_spec = {"containers": [{"name": "a", "env": [env_ref("A", "db-v1", "k")]}],
                "initContainers": [{"name": "i", "env": [env_ref("B", "other", "k")]}],
                "volumes": [{"name": "v", "secret": {"secretName": "other"}}]}  # fmt: skip
    assert set(renamed_references(pod_spec, {"db-v1": "db-v2"})) == {"containers"}
    vol_only = {"containers": [{"name": "a"}], "volumes": [{"name": "v", "secret": {"secretName": "db"}}]}
    assert set(renamed_references(vol_only, {"db": "db-v3"})) == {"volumes"}
    assert renamed_references(pod_spec, {"nothing": "x"}) == {}
    assert renamed_references(pod_spec, {}) == {}


def test_renamed_references_renames_several_names_at_once() -> None:
    pod_spec = {"containers": [{"name": "a", "env": [env_ref("A", "db-v1", "k")],
                                "envFrom": [{"secretRef": {"name": "db"}}]}]}  # fmt: skip
    lists = renamed_references(pod_spec, {"db-v1": "db-v3", "db": "db-v3"})
    assert referenced_secrets(lists) == {"db-v3"}


@pytest.mark.parametrize("pod_spec", [
    {},
    {"containers": None, "volumes": None},
    {"containers": "x", "initContainers": 3, "volumes": "y"},
    {"containers": [None, 3, "x", {"env": None, "envFrom": None}]},
    {"containers": [{"env": 3, "envFrom": 4}]},
    {"containers": [{"env": "db-v1", "envFrom": "db-v1"}]},
    {"containers": [{"env": {"name": "db-v1"}, "envFrom": {"secretRef": {"name": "db-v1"}}}]},
    {"containers": [{"env": [None, "x", {"valueFrom": None}, {"valueFrom": "x"}, {"valueFrom": ["x"]},
                             {"valueFrom": {"secretKeyRef": None}}, {"valueFrom": {"secretKeyRef": "db-v1"}},
                             {"valueFrom": {"secretKeyRef": {"name": 3}}}]}]},
    {"containers": [{"envFrom": [None, "x", {"secretRef": None}, {"secretRef": "db-v1"}, {"secretRef": ["x"]}]}]},
    {"volumes": [None, "x", {"secret": None}, {"secret": "db-v1"}, {"projected": None}, {"projected": "x"},
                 {"projected": ["x"]}, {"projected": {"sources": None}}, {"projected": {"sources": "x"}},
                 {"projected": {"sources": 3}}, {"projected": {"sources": [None, "x", {"secret": "db-v1"}]}}]},
])  # fmt: skip
def test_renamed_references_tolerates_malformed_input(pod_spec: dict[str, Any]) -> None:
    """Workload bodies come from the API server, but the module's rule holds: a field of the wrong type is read as
    absent, never raised."""
    original = copy.deepcopy(pod_spec)
    assert renamed_references(pod_spec, {"db-v1": "db-v2"}) == {}
    assert pod_spec == original


def test_renamed_references_renames_what_is_well_formed_beside_what_is_not() -> None:
    pod_spec = {"containers": [None, {"name": "a", "env": [{"valueFrom": "x"}, env_ref("A", "db-v1", "k")]}],
                "volumes": [{"projected": "x"}, {"name": "v", "secret": {"secretName": "db-v1"}}]}  # fmt: skip
    lists = renamed_references(pod_spec, {"db-v1": "db-v2"})
    assert lists["containers"][0] is None, "kept as it was"
    assert lists["containers"][1]["env"][1]["valueFrom"]["secretKeyRef"]["name"] == "db-v2"
    assert lists["volumes"][1]["secret"]["secretName"] == "db-v2"


@given(st.lists(st.sampled_from(["db", "db-v1", "db-v2", "other", "db-vx"]), max_size=6))
def test_renamed_then_referenced_is_the_renamed_set(names: list[str]) -> None:
    pod_spec = {"containers": [{"name": "a", "env": [env_ref(f"V{i}", n, "k") for i, n in enumerate(names)]}]}
    renames = {"db": "db-v3", "db-v1": "db-v3", "db-v2": "db-v3"}
    lists = renamed_references(pod_spec, renames)
    assert referenced_secrets({**pod_spec, **lists}) == {renames.get(n, n) for n in names}
    assert bool(lists) == any(n in renames for n in names)


# -- the names of the versions -----------------------------------------------------------------------------------


def test_versioned_names_are_the_base_and_its_numbered_versions() -> None:
    names = ["db", "db-v1", "db-v12", "db-vx", "db-v", "dbx-v1", "db-v1-old", "db-v1x", "other", "d", "db-", "xdb-v1"]
    assert versioned_names("db", names) == ["db", "db-v1", "db-v12"]
    assert versioned_names("db", []) == []
    assert versioned_names("db-v1", ["db-v1", "db-v1-v2", "db-v2"]) == ["db-v1", "db-v1-v2"]


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("db-v2", 2),
        ("db-v12", 12),
        ("db-v0", 0),
        ("db-vx", None),
        ("db-v", None),
        ("db-v-1", None),
        ("dbx-v1", None),
        ("db-v1-old", None),
        ("db", None),
        ("other", None),
        ("xdb-v1", None),
    ],
)
def test_version_of(name: str, version: int | None) -> None:
    assert version_of("db", name) == version


@pytest.mark.parametrize("name", ["db-v\u00b2", "db-v\u0661", "db-v\U0001d7d9"], ids=["superscript", "arabic", "math"])
def test_names_with_non_ascii_digits_are_no_versions(name: str) -> None:
    """``str.isdigit`` is true for a superscript two or an Arabic-Indic one, which ``int`` refuses or reads as a
    number: such a name (never a Secret name, but a pod template's reference is any string) is no version — and never
    raises."""
    assert version_of("db", name) is None
    assert versioned_names("db", [name]) == []


# -- the plan: moving workloads to a new version -------------------------------------------------------------------


V1 = data(password="pw-1", user="app", host="db.local")
V2_HOST = data(password="pw-1", user="app", host="db2.local")
V2_PASSWORD = data(password="pw-2", user="app", host="db.local")


def moved(after: Mapping[str, str], secret: str = "db-v2", *, auto: bool = True, base: str = "db",
          targets: frozenset[tuple[str, str]] = frozenset(), vaultsecret: str = "db") -> Change:  # fmt: skip
    """The change ``Rollouts.note`` makes for a new immutable version (before: None): no key "changed" in it — no
    workload uses it yet; those on older versions move to it."""
    return Change(vaultsecret, secret, frozenset(), key_digests(KEY, after), targets, auto, base)


def stamped(before: Mapping[str, str], after: Mapping[str, str], secret: str, **kw: Any) -> Change:
    """A mutable Secret's change."""
    return Change(kw.pop("vaultsecret", secret), secret, changed_keys(before, after), key_digests(KEY, after),
                  kw.pop("targets", frozenset()), kw.pop("auto", True))  # fmt: skip


def workload(name: str = "web", kind: str = "Deployment", *, pod: dict[str, Any] | None = None,
             annotations: dict[str, str] | None = None, stamp: str | None = None) -> dict[str, Any]:  # fmt: skip
    template: dict[str, Any] = {"metadata": {"labels": {"app": name}},
                                "spec": pod if pod is not None else {"containers": [{"name": "app"}]}}  # fmt: skip
    if stamp is not None:
        template["metadata"]["annotations"] = {ROLLOUT_ANNOTATION: stamp}
    meta: dict[str, Any] = {"name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": "7"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"kind": kind, "metadata": meta, "spec": {"template": template}}


def env_user(secret: str = "db-v1", key: str = "password", **kw: Any) -> dict[str, Any]:
    return workload(pod={"containers": [{"name": "app", "env": [env_ref("VAR", secret, key)]}]}, **kw)


def env_from_user(secret: str = "db-v1", **kw: Any) -> dict[str, Any]:
    return workload(pod={"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": secret}}]}]}, **kw)


def previous(**versions: Mapping[str, str] | None) -> dict[str, Mapping[str, str] | None]:
    return {name.replace("_", "-"): (key_digests(KEY, d) if d is not None else None) for name, d in versions.items()}


def only(restarts: list[Restart]) -> Restart:
    assert len(restarts) == 1, restarts
    return restarts[0]


def test_a_workload_moves_only_when_a_key_it_uses_differs() -> None:
    old = previous(db_v1=V1)
    assert plan([env_user(key="password")], [moved(V2_HOST)], old) == [], "its key is the same in both versions"
    restart = only(plan([env_user(key="host")], [moved(V2_HOST)], old))
    assert restart.renames == (("db-v1", "db-v2"),)
    assert restart.value is None, "a move needs no stamp: the new reference changes the pod template"
    assert restart.secrets == (("db-v2", ("host",)),)
    assert restart.vaultsecrets == ("db",)
    assert restart.lists["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "db-v2", "key": "host"}
    assert only(plan([env_from_user()], [moved(V2_HOST)], old)).secrets == (("db-v2", ("host",)),), "envFrom: every key"


def test_a_removed_or_added_key_counts_for_env_from() -> None:
    added = data(password="pw-1", user="app", host="db.local", port="5432")
    assert only(plan([env_from_user()], [moved(added)], previous(db_v1=V1))).secrets == (("db-v2", ("port",)),)
    removed = data(password="pw-1", user="app")
    assert only(plan([env_from_user()], [moved(removed)], previous(db_v1=V1))).secrets == (("db-v2", ("host",)),)


def test_an_unknown_previous_version_moves_every_user() -> None:
    for old in (previous(db_v1=None), {}, None):
        restart = only(plan([env_user(key="password")], [moved(V2_HOST)], old))
        assert restart.renames == (("db-v1", "db-v2"),)
        assert restart.secrets == (("db-v2", ("password",)),), "every used key counts when the old data is unknown"


def test_the_unversioned_secret_counts_as_an_old_version() -> None:
    """A VaultSecret made immutable, or workloads that waited for the first version under ``<name>``."""
    restart = only(plan([env_user("db")], [moved(V1, "db-v1")], previous(db=None)))
    assert restart.renames == (("db", "db-v1"),)
    assert plan([env_user("db")], [moved(V1, "db-v1")], previous(db=V1)) == [], "the same data: it stays"


def test_a_workload_on_the_current_version_or_on_other_secrets_stays() -> None:
    assert plan([env_user("db-v2")], [moved(V2_PASSWORD)], previous()) == []
    assert plan([env_user("dbx-v1"), env_user("db-vx"), env_user("other")], [moved(V2_PASSWORD)], previous()) == []


def test_selection_by_auto_targets_or_the_reload_annotation() -> None:
    old = previous(db_v1=V1)
    change = moved(V2_PASSWORD, auto=False)
    assert plan([env_user()], [change], old) == [], "not selected"
    targeted = moved(V2_PASSWORD, auto=False, targets=frozenset({("Deployment", "web")}))
    assert only(plan([env_user()], [targeted], old)).renames == (("db-v1", "db-v2"),)
    assert plan([env_user(kind="StatefulSet")], [targeted], old) == [], "a target is a kind and a name"
    reload = env_user(annotations={RELOAD_ANNOTATION: "true"})
    assert only(plan([reload], [change], old)).renames == (("db-v1", "db-v2"),)
    assert plan([env_user(annotations={RELOAD_ANNOTATION: "yes"})], [change], old) == []


def test_a_target_that_references_no_version_is_not_moved() -> None:
    """Nothing to rename: a target reading the Secret through the API finds the new name in status.secretName."""
    targeted = moved(V2_PASSWORD, auto=False, targets=frozenset({("Deployment", "web")}))
    assert plan([workload()], [targeted], previous()) == []


def test_a_workload_referencing_two_versions_moves_both_references() -> None:
    user_volume = {"name": "u", "secret": {"secretName": "db", "items": [{"key": "user", "path": "u"}]}}
    pod = {"containers": [{"name": "app", "env": [env_ref("P", "db-v1", "password")],
                           "envFrom": [{"secretRef": {"name": "db-v2"}}]}], "volumes": [user_volume]}  # fmt: skip
    v3 = data(password="pw-3", user="app", host="db.local")
    restart = only(plan([workload(pod=pod)], [moved(v3, "db-v3")], previous(db_v1=V1, db_v2=V2_PASSWORD, db=V1)))
    assert restart.renames == (("db-v1", "db-v3"), ("db-v2", "db-v3")), "db (same user) stays"
    assert restart.secrets == (("db-v3", ("password",)),), "the keys each reference uses that differ, once"
    assert referenced_secrets({**pod, **restart.lists}) == {"db-v3", "db"}


def test_one_restart_stamps_a_mutable_secret_and_moves_an_immutable_one() -> None:
    pod = {"containers": [{"name": "app", "env": [env_ref("P", "db-v1", "password"), env_ref("U", "cache", "url")]}]}
    body = workload(pod=pod, stamp="other=abc")
    changes = [moved(V2_PASSWORD), stamped(data(url="a"), data(url="b"), "cache")]
    restart = only(plan([body], changes, previous(db_v1=V1)))
    assert restart.renames == (("db-v1", "db-v2"),)
    assert restart.value is not None
    assert set(parse_stamps(restart.value)) == {"cache", "other"}, "the other stamps are kept"
    assert restart.secrets == (("cache", ("url",)), ("db-v2", ("password",)))
    assert restart.vaultsecrets == ("cache", "db")
    patch = restart_patch(restart)
    assert patch["metadata"] == {"resourceVersion": "7"}
    template = patch["spec"]["template"]
    assert template["metadata"] == {"annotations": {ROLLOUT_ANNOTATION: restart.value}}
    assert referenced_secrets(template["spec"]) == {"db-v2", "cache"}


def test_restart_patch_of_a_move_carries_the_lists_and_no_annotation() -> None:
    body = env_user(stamp="cache=abc")
    restart = only(plan([body], [moved(V2_PASSWORD)], previous(db_v1=V1)))
    assert restart.value is None, "the stamps did not change"
    patch = restart_patch(restart)
    assert patch == {
        "metadata": {"resourceVersion": "7"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "app", "env": [env_ref("VAR", "db-v2", "password")]}]}}},
    }  # fmt: skip
    assert body["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "db-v1"


def test_two_vaultsecrets_moving_one_workload_make_one_restart() -> None:
    pod = {"containers": [{"name": "app", "env": [env_ref("P", "db-v1", "password"), env_ref("T", "api-v4", "t")]}]}
    api_old, api_new = data(t="1"), data(t="2")
    changes = [moved(V2_PASSWORD), moved(api_new, "api-v5", base="api", vaultsecret="api")]
    restart = only(plan([workload(pod=pod)], changes, {**previous(db_v1=V1), "api-v4": key_digests(KEY, api_old)}))
    assert restart.renames == (("api-v4", "api-v5"), ("db-v1", "db-v2"))
    assert restart.vaultsecrets == ("api", "db")
    assert referenced_secrets(restart.lists) == {"db-v2", "api-v5"}


def test_a_base_that_is_a_prefix_of_another_base_moves_only_its_own() -> None:
    pod = {"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "db-v1"}},
                                                      {"secretRef": {"name": "db-v1-v1"}}]}]}  # fmt: skip
    restart = only(plan([workload(pod=pod)], [moved(V2_PASSWORD)], previous(db_v1=V1)))
    assert restart.renames == (("db-v1", "db-v2"),)
    assert referenced_secrets(restart.lists) == {"db-v2", "db-v1-v1"}


def test_the_planner_joins_two_versions_of_one_immutable_secret_later_wins() -> None:
    planner = Planner()
    first = moved(V2_HOST, "db-v2", auto=False)
    later = moved(data(password="pw-3", user="app", host="db2.local"), "db-v3", auto=True)
    planner.note(NS, first)
    planner.note(NS, later)
    planner.note(NS, stamped(data(u="1"), data(u="2"), "cache"))
    assert set(planner.pending[NS]) == {"db", "cache"}, "one slot per immutable VaultSecret: its base"
    [joined] = [c for c in planner.take(NS) if c.base == "db"]
    assert joined.secret == "db-v3"
    assert joined.digests == later.digests
    assert joined.auto is True
    assert joined.changed == first.changed | later.changed
    assert first.slot == "db"
    assert stamped(data(u="1"), data(u="2"), "cache").slot == "cache"
    # Joined, workloads on v1 move straight to v3.
    restart = only(plan([env_user()], [joined], previous(db_v1=V1)))
    assert restart.renames == (("db-v1", "db-v3"),)


def test_put_back_keeps_the_newer_version() -> None:
    planner = Planner()
    planner.note(NS, moved(V2_HOST, "db-v3"))
    planner.put_back(NS, [moved(V2_HOST, "db-v2")])
    [change] = planner.take(NS)
    assert change.secret == "db-v3"


def test_a_move_and_the_pod_spec_of() -> None:
    """Moves apply to the pod template of each workload kind."""
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        body = env_user(kind=kind)
        restart = only(plan([body], [moved(V2_PASSWORD)], previous(db_v1=V1)))
        assert restart.kind == kind
        assert referenced_secrets({**pod_spec_of(body), **restart.lists}) == {"db-v2"}


# -- the registry: drift of versions, warm restart ------------------------------------------------------------------


def versioned(name: str, version: int, *, owner: str = UID, values: dict[str, str] | None = None) -> dict[str, Any]:
    values = values if values is not None else {"password": "cHc="}
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": {ANNOTATION_VERSION: str(version), "scaivault.scailabs.ai/data-hash": data_hash(values)},
            "ownerReferences": [{"kind": "VaultSecret", "name": "db", "uid": owner, "controller": True}],
        },
        "data": values,
        "immutable": True,
    }


def immutable_registry(version: int = 3, **target: Any) -> Registry:
    registry = Registry()
    registry.upsert(vs("db", "apps/web/db", uid=UID, target={"immutable": True, **target}))
    entry = registry.entries[(NS, "db")]
    registry.take_dirty(entry.source)  # type: ignore[arg-type]
    entry.synced_version, entry.synced_spec = version, entry.spec
    for v in range(1, version + 1):
        registry.observe_secret("ADDED", versioned(f"db-v{v}", v))
    return registry


def test_deleting_an_old_version_is_no_drift_the_current_one_is() -> None:
    registry = immutable_registry(3)
    assert registry.observe_secret("DELETED", versioned("db-v1", 1)) is None
    assert registry.observe_secret("DELETED", versioned("db-v2", 2)) is None
    assert registry.dirty == {}
    assert (NS, "db-v1") not in registry.secrets, "forgotten all the same"
    assert registry.observe_secret("DELETED", versioned("db-v3", 3)) == (CONN, "apps/web/db", None)
    assert registry.dirty == {(NS, "db"): Priority.DRIFT}


def test_an_edited_current_version_is_drift_an_edited_old_one_is_not() -> None:
    registry = immutable_registry(3)
    edited = versioned("db-v2", 2)
    edited["data"] = {"password": "eA=="}
    assert registry.observe_secret("MODIFIED", edited) is None
    current = versioned("db-v3", 3)
    current["data"] = {"password": "eA=="}
    assert registry.observe_secret("MODIFIED", current) == (CONN, "apps/web/db", None)


def test_the_unversioned_secret_is_no_drift_of_an_immutable_vaultsecret() -> None:
    registry = immutable_registry(3)
    registry.observe_secret("ADDED", versioned("db", 1))
    assert registry.observe_secret("DELETED", versioned("db", 1)) is None
    assert registry.dirty == {}


def test_lookalike_names_are_no_versions_of_it() -> None:
    registry = immutable_registry(3)
    for name in ("db-vx", "dbx-v3", "db-v3-old", "db-v"):
        assert registry.observe_secret("DELETED", versioned(name, 3)) is None
    assert registry.dirty == {}


def test_a_mutable_vaultsecret_owns_no_versions() -> None:
    registry = Registry()
    registry.upsert(vs("db", "apps/web/db", uid=UID))
    entry = registry.entries[(NS, "db")]
    registry.take_dirty(entry.source)  # type: ignore[arg-type]
    entry.synced_version, entry.synced_spec = 3, entry.spec
    registry.observe_secret("ADDED", versioned("db-v3", 3))
    assert registry.observe_secret("DELETED", versioned("db-v3", 3)) is None
    assert registry.dirty == {}


def test_another_vaultsecret_named_like_a_version_keeps_its_secret() -> None:
    """VaultSecret ``db-v1`` (mutable) beside the immutable ``db``: Secret ``db-v1`` is its, by its target name."""
    registry = immutable_registry(3)
    registry.upsert(vs("db-v1", "apps/web/other", uid="uid-other"))
    other = registry.entries[(NS, "db-v1")]
    registry.take_dirty(other.source)  # type: ignore[arg-type]
    other.synced_version, other.synced_spec = 1, other.spec
    registry.observe_secret("ADDED", versioned("db-v1", 1, owner="uid-other"))
    assert registry.observe_secret("DELETED", versioned("db-v1", 1, owner="uid-other")) == (CONN, "apps/web/other",
                                                                                            None)  # fmt: skip
    assert registry.dirty == {(NS, "db-v1"): Priority.DRIFT}


def test_warm_restart_looks_for_the_versioned_secret() -> None:
    body = vs("db", "apps/web/db", uid=UID, status=ready_status(3) | {"secretName": "db-v3"},
              target={"immutable": True})  # fmt: skip
    registry = Registry()
    registry.index_secrets([versioned("db-v3", 3)])
    assert registry.upsert(body) is None, "in sync: trusted"
    assert registry.entries[(NS, "db")].synced_version == 3

    for indexed in ([versioned("db", 3)], [versioned("db-v2", 2)], [versioned("db-v3", 3, owner="someone")], []):
        registry = Registry()
        registry.index_secrets(indexed)
        assert registry.upsert(body) == (CONN, "apps/web/db", None), indexed
        assert registry.dirty == {(NS, "db"): Priority.NEW}
