"""``spec.target.creationPolicy: Merge``, the pure parts: which Secrets a VaultSecret may merge into
(``merge_refusal``), the patch that merges its keys (``merge_secret_patch``) and the one that takes them out again
(``unmerge_patch``), the keys it takes over, drift of merged keys, the finalizer, and the warm restart's index."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_registry import CONN, UID, ready_status, vs

from scaivault_operator._cogs.api import VaultSecretSpec
from scaivault_operator._logic.manifests import (
    ADOPT_ANNOTATION,
    ANNOTATION_CONNECTION,
    ANNOTATION_DATA_HASH,
    ANNOTATION_MERGED_BY,
    ANNOTATION_MERGED_BY_UID,
    ANNOTATION_MERGED_KEYS,
    ANNOTATION_PATH,
    ANNOTATION_PREFIX,
    ANNOTATION_VERSION,
    BOOTSTRAP_TOKEN_TYPE,
    CREDENTIALS_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MERGE_LABEL,
    MERGE_LABEL_VALUE,
    RETAIN_FINALIZER,
    SERVICE_ACCOUNT_TOKEN_TYPE,
    VAULTSECRET_LABEL,
    Owner,
    data_hash,
    data_intact,
    desired_secret,
    merge_patch,
    merge_refusal,
    merge_secret_patch,
    merge_target_missing,
    merged_by_uid,
    overwritten_keys,
    unmerge_patch,
    wants_finalizer,
    written_keys,
)
from scaivault_operator._logic.registry import Priority, Registry
from scaivault_operator._plugin.render import live_comparison
from scaivault_operator._plugin.why import target_step

CANARY = "CANARY-VALUE-7b3e"
OTHER_UID = "uid-other"
OWNER = Owner(api_version="scaivault.scailabs.ai/v1alpha1", kind="VaultSecret", name="db", namespace="team-a",
              uid=UID)  # fmt: skip
MERGE = {"creationPolicy": "Merge"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def spec(**target: Any) -> VaultSecretSpec:
    return VaultSecretSpec.model_validate({"path": "apps/web/db", "target": {"name": "app-config", **MERGE, **target}})


def desired(data: dict[str, str], *, version: int = 1, **target: Any) -> dict[str, Any]:
    return desired_secret(owner=OWNER, spec=spec(**target), data=data, version=version,
                          connection="ClusterVaultConnection/default")  # fmt: skip


def foreign(data: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    """A Secret someone else made: their keys, labels, annotations and owner."""
    metadata: dict[str, Any] = {
        "name": "app-config",
        "namespace": "team-a",
        "resourceVersion": "41",
        "labels": {"app": "web", MANAGED_BY_LABEL: "Helm"},
        "annotations": {"meta.helm.sh/release-name": "web"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "uid": "u-cm"}],
        **meta,
    }
    data = data if data is not None else {"username": b64("admin"), "LOG_LEVEL": b64("info")}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "kubernetes.io/basic-auth",
            "data": dict(data)}  # fmt: skip


def merged(existing: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """``existing`` after the merge patch, as the API server would store it (a new resourceVersion)."""
    patch = merge_secret_patch(existing, want)
    result = merge_patch(existing, patch) if patch is not None else copy.deepcopy(existing)
    result["metadata"]["resourceVersion"] = str(int(existing["metadata"].get("resourceVersion", "0")) + 1)
    return dict(result)


def controller(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "name": name, "uid": uid, "controller": True}


# -- the model and the finalizer ---------------------------------------------------------------------------------


def test_merge_is_a_creation_policy_and_wants_the_finalizer() -> None:
    assert spec().target.creationPolicy == "Merge"
    assert wants_finalizer(spec())  # no ownerReference: nothing else would remove the keys
    assert wants_finalizer(spec(deletionPolicy="Retain"))
    assert not wants_finalizer(VaultSecretSpec.model_validate({"path": "apps/web/db"}))


# -- merge_refusal -----------------------------------------------------------------------------------------------


def test_a_plain_secret_and_one_of_another_operator_may_be_merged_into() -> None:
    assert merge_refusal(foreign(), owner_uid=UID) is None
    # Another controller (not a VaultSecret) does not stand in the way: the External Secrets behaviour.
    assert merge_refusal(foreign(ownerReferences=[controller("Certificate", "web", "u-cert")]), owner_uid=UID) is None
    # Our own Secret (creationPolicy Owner before) is given up and merged into.
    assert merge_refusal(foreign(ownerReferences=[controller("VaultSecret", "db", UID)]), owner_uid=UID) is None
    # A Secret we already merge into.
    assert merge_refusal(foreign(annotations={ANNOTATION_MERGED_BY_UID: UID}), owner_uid=UID) is None
    # Adopt's consent is no concern of Merge.
    assert merge_refusal(foreign(annotations={ADOPT_ANNOTATION: "true"}), owner_uid=UID) is None


@pytest.mark.parametrize("type_", [SERVICE_ACCOUNT_TOKEN_TYPE, BOOTSTRAP_TOKEN_TYPE])
def test_never_into_a_token_secret(type_: str) -> None:
    existing = foreign()
    existing["type"] = type_
    message = merge_refusal(existing, owner_uid=UID)
    assert message == (
        f"Secret team-a/app-config is of type {type_}: creationPolicy Merge never writes into a token Secret; set "
        "spec.target.name to another Secret"
    )


def test_never_into_a_connections_credentials() -> None:
    message = merge_refusal(foreign(labels={CREDENTIALS_LABEL: "true"}), owner_uid=UID)
    assert message is not None
    assert f"Secret team-a/app-config is labelled {CREDENTIALS_LABEL}=true (a connection's credentials)" in message
    assert merge_refusal(foreign(labels={CREDENTIALS_LABEL: "false"}), owner_uid=UID) is None


def test_never_into_an_immutable_secret() -> None:
    existing = foreign()
    existing["immutable"] = True
    message = merge_refusal(existing, owner_uid=UID)
    assert message is not None
    assert "Secret team-a/app-config is immutable (immutable: true)" in message


def test_never_into_a_secret_another_vaultsecret_owns() -> None:
    message = merge_refusal(foreign(ownerReferences=[controller("VaultSecret", "payments", OTHER_UID)]), owner_uid=UID)
    assert message is not None
    assert "Secret team-a/app-config is controlled by VaultSecret/payments" in message
    assert "spec.target.name" in message


def test_never_into_a_secret_another_vaultsecret_merges_into() -> None:
    existing = foreign(annotations={ANNOTATION_MERGED_BY_UID: OTHER_UID, ANNOTATION_MERGED_BY: "payments"})
    message = merge_refusal(existing, owner_uid=UID)
    assert message is not None
    assert "Secret team-a/app-config already receives keys from another VaultSecret" in message
    assert "two VaultSecrets never merge into one Secret" in message
    assert (f"kubectl annotate secret -n team-a app-config {ANNOTATION_MERGED_BY_UID}- {ANNOTATION_MERGED_BY}-"
            in message)  # fmt: skip
    assert "payments" not in message  # an annotation value is never quoted
    assert OTHER_UID not in message


def test_no_value_in_any_merge_refusal_or_message() -> None:
    values = {"password": b64(CANARY)}
    annotations = {"a": CANARY, ANNOTATION_MERGED_BY: CANARY, ANNOTATION_MERGED_BY_UID: CANARY}
    variants = []
    for extra, credentials in (({"type": SERVICE_ACCOUNT_TOKEN_TYPE}, "no"), ({"immutable": True}, "no"),
                               ({}, "true"), ({}, "no")):  # fmt: skip
        existing = foreign(values, labels={"l": CANARY, CREDENTIALS_LABEL: credentials}, annotations=annotations)
        existing.update(extra)
        variants.append(existing)
    vaultsecret = [controller("VaultSecret", "x", OTHER_UID)]
    variants.append(foreign(values, ownerReferences=vaultsecret, annotations={"a": CANARY}))
    for existing in variants:
        message = merge_refusal(existing, owner_uid=UID)
        assert message is not None
        assert CANARY not in message
        assert b64(CANARY) not in message
    assert merge_target_missing("team-a", "app-config") == (
        "Secret team-a/app-config does not exist: creationPolicy Merge writes keys only into an existing Secret and "
        "never creates one; create it (e.g. kubectl create secret generic -n team-a app-config), or set "
        "spec.target.creationPolicy: Owner to have the operator create and own the Secret"
    )


# -- merge_secret_patch ------------------------------------------------------------------------------------------


def test_merge_writes_only_our_keys_and_leaves_everything_else() -> None:
    existing = foreign()
    want = desired({"password": b64("pw"), "host": b64("db")}, labels={"team": "payments"},
                   annotations={"example.com/note": "n"}, type="Opaque")  # fmt: skip
    patch = merge_secret_patch(existing, want)
    assert patch is not None
    assert set(patch) == {"data", "metadata"}  # never type, never immutable
    assert patch["data"] == {"password": b64("pw"), "host": b64("db")}
    assert "ownerReferences" not in patch["metadata"]
    assert patch["metadata"]["labels"] == {"team": "payments", MERGE_LABEL: MERGE_LABEL_VALUE}
    assert patch["metadata"]["resourceVersion"] == "41"  # the first merge claims the Secret as it was checked
    after = merged(existing, want)
    meta = after["metadata"]
    assert after["type"] == "kubernetes.io/basic-auth"
    assert after["data"] == {**existing["data"], "password": b64("pw"), "host": b64("db")}
    assert meta["ownerReferences"] == existing["metadata"]["ownerReferences"]
    assert meta["labels"] == {"app": "web", MANAGED_BY_LABEL: "Helm", "team": "payments", MERGE_LABEL: "true"}
    assert VAULTSECRET_LABEL not in meta["labels"]
    assert meta["annotations"] == {
        "meta.helm.sh/release-name": "web",
        "example.com/note": "n",
        ANNOTATION_PATH: "apps/web/db",
        ANNOTATION_VERSION: "1",
        ANNOTATION_CONNECTION: "ClusterVaultConnection/default",
        ANNOTATION_DATA_HASH: data_hash({"password": b64("pw"), "host": b64("db")}),
        ANNOTATION_MERGED_KEYS: "host,password",
        ANNOTATION_MERGED_BY: "db",
        ANNOTATION_MERGED_BY_UID: UID,
    }
    assert merged_by_uid(after) == UID
    assert written_keys(after, UID) == ["host", "password"]
    assert written_keys(after, OTHER_UID) == []
    assert merge_secret_patch(after, want) is None  # nothing changed: no write
    assert merge_refusal(after, owner_uid=UID) is None
    assert merge_refusal(after, owner_uid=OTHER_UID) is not None


def test_a_new_version_patches_only_the_keys_that_changed_without_resource_version() -> None:
    first = merged(foreign(), desired({"password": b64("pw1"), "host": b64("db")}))
    patch = merge_secret_patch(first, desired({"password": b64("pw2"), "host": b64("db")}, version=2))
    assert patch == {
        "data": {"password": b64("pw2")},
        "metadata": {"annotations": {
            ANNOTATION_VERSION: "2",
            ANNOTATION_DATA_HASH: data_hash({"password": b64("pw2"), "host": b64("db")}),
        }},
    }  # fmt: skip


def test_a_key_we_no_longer_write_is_removed_and_one_we_never_wrote_stays() -> None:
    first = merged(foreign(), desired({"password": b64("pw"), "host": b64("db")}))
    patch = merge_secret_patch(first, desired({"password": b64("pw")}, version=2))
    assert patch is not None
    assert patch["data"] == {"host": None}
    assert patch["metadata"]["annotations"][ANNOTATION_MERGED_KEYS] == "password"
    after = merge_patch(first, patch)
    assert after["data"] == {"username": b64("admin"), "LOG_LEVEL": b64("info"), "password": b64("pw")}


def test_a_key_that_was_there_is_taken_over() -> None:
    existing = foreign({"username": b64("admin"), "password": b64("old")})
    want = desired({"password": b64("new"), "host": b64("db")})
    assert overwritten_keys(existing, want) == ["password"]
    after = merged(existing, want)
    assert after["data"]["password"] == b64("new")
    assert overwritten_keys(after, want) == []  # ours now
    assert overwritten_keys(existing, desired({"password": b64("old")})) == ["password"]  # same value: still taken


def test_giving_up_our_own_secret_removes_our_owner_reference_and_labels() -> None:
    """creationPolicy Owner → Merge on the same Secret: it stops being ours (the garbage collector would delete it
    with the VaultSecret) and every key it had was ours."""
    owned_manifest = desired_secret(owner=OWNER, spec=VaultSecretSpec.model_validate(
        {"path": "apps/web/db", "target": {"name": "app-config"}}), data={"old": b64("o"), "password": b64("pw")},
        version=1, connection="ClusterVaultConnection/default")  # fmt: skip
    owned = copy.deepcopy(owned_manifest)
    owned["metadata"]["resourceVersion"] = "9"
    owned["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u"})
    assert merge_refusal(owned, owner_uid=UID) is None
    want = desired({"password": b64("pw")}, version=2)
    patch = merge_secret_patch(owned, want)
    assert patch is not None
    assert patch["metadata"]["resourceVersion"] == "9"
    after = merge_patch(owned, patch)
    meta = after["metadata"]
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u"}]
    assert MANAGED_BY_LABEL not in meta["labels"]
    assert VAULTSECRET_LABEL not in meta["labels"]
    assert meta["labels"][MERGE_LABEL] == "true"
    assert after["data"] == {"password": b64("pw")}  # "old" was ours and is no longer written
    alone = copy.deepcopy(owned)
    alone["metadata"]["ownerReferences"] = alone["metadata"]["ownerReferences"][:1]
    alone_patch = merge_secret_patch(alone, want)
    assert alone_patch is not None
    assert alone_patch["metadata"]["ownerReferences"] is None  # the field goes


def test_data_intact_of_a_merged_secret_covers_our_keys_only() -> None:
    after = merged(foreign(), desired({"password": b64("pw")}))
    assert data_intact(after)
    other = copy.deepcopy(after)
    other["data"]["LOG_LEVEL"] = b64("debug")  # not ours: no drift
    assert data_intact(other)
    edited = copy.deepcopy(after)
    edited["data"]["password"] = b64("tampered")
    assert not data_intact(edited)
    gone = copy.deepcopy(after)
    del gone["data"]["password"]
    assert not data_intact(gone)


# -- unmerge_patch -----------------------------------------------------------------------------------------------


def test_unmerge_removes_our_keys_label_and_annotations_and_nothing_else() -> None:
    existing = foreign()
    after = merged(existing, desired({"password": b64("pw"), "host": b64("db")}, labels={"team": "payments"},
                                     annotations={"example.com/note": "n"}))  # fmt: skip
    patch = unmerge_patch(after, UID, keep_keys=False)
    assert patch is not None
    assert patch["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
    undone = merge_patch(after, patch)
    assert undone["data"] == existing["data"]
    assert undone["type"] == existing["type"]
    assert undone["metadata"]["ownerReferences"] == existing["metadata"]["ownerReferences"]
    # spec.target.labels and annotations stay: what they were before is not recorded.
    assert undone["metadata"]["labels"] == {**existing["metadata"]["labels"], "team": "payments"}
    assert undone["metadata"]["annotations"] == {**existing["metadata"]["annotations"], "example.com/note": "n"}
    assert not [key for key in undone["metadata"]["annotations"] if key.startswith(ANNOTATION_PREFIX)]
    undone["metadata"].pop("resourceVersion")
    assert unmerge_patch(undone, UID, keep_keys=False) is None


def test_unmerge_keeping_the_keys_removes_only_our_marks() -> None:
    after = merged(foreign(), desired({"password": b64("pw")}))
    patch = unmerge_patch(after, UID, keep_keys=True)
    assert patch is not None
    assert "data" not in patch
    undone = merge_patch(after, patch)
    assert undone["data"]["password"] == b64("pw")
    assert MERGE_LABEL not in undone["metadata"]["labels"]
    assert merged_by_uid(undone) is None


def test_unmerge_is_nothing_on_a_secret_we_do_not_merge_into() -> None:
    assert unmerge_patch(foreign(), UID, keep_keys=False) is None
    other = merged(foreign(), desired({"password": b64("pw")}))
    assert unmerge_patch(other, OTHER_UID, keep_keys=False) is None
    owned = desired_secret(owner=OWNER, spec=VaultSecretSpec.model_validate({"path": "apps/web/db"}),
                           data={"a": b64("a")}, version=1, connection="c")  # fmt: skip
    assert unmerge_patch(owned, UID, keep_keys=False) is None  # release_patch's business


def test_unmerge_of_an_immutable_secret_keeps_its_keys() -> None:
    after = merged(foreign(), desired({"password": b64("pw")}))
    after["immutable"] = True  # made immutable after the merge: its data cannot change any more
    patch = unmerge_patch(after, UID, keep_keys=False)
    assert patch is not None
    assert "data" not in patch
    assert merged_by_uid(merge_patch(after, patch)) is None


# -- property: a merge then an unmerge gives the Secret back -------------------------------------------------------

_key = st.text(alphabet="abcxyz", min_size=1, max_size=3)
_value = st.sampled_from([b64("1"), b64("2"), b64("3")])


@given(
    theirs=st.dictionaries(_key, _value, max_size=4),
    first=st.dictionaries(_key, _value, max_size=4),
    second=st.dictionaries(_key, _value, max_size=4),
)
@settings(max_examples=300)
def test_merges_change_only_our_keys_and_unmerge_removes_them(
    theirs: dict[str, str], first: dict[str, str], second: dict[str, str]
) -> None:
    existing = foreign(theirs)
    one = merged(existing, desired(first))
    assert one["data"] == {**theirs, **first}
    two = merged(one, desired(second, version=2))
    # Keys of the first merge that the second does not write are gone; keys nobody of ours wrote stay.
    assert two["data"] == {**{k: v for k, v in theirs.items() if k not in first}, **second}
    assert merge_secret_patch(two, desired(second, version=2)) is None
    assert data_intact(two)
    patch = unmerge_patch(two, UID, keep_keys=False)
    assert patch is not None
    undone = merge_patch(two, patch)
    assert undone.get("data", {}) == {k: v for k, v in theirs.items() if k not in first and k not in second}
    assert undone["metadata"]["labels"] == existing["metadata"]["labels"]
    assert undone["metadata"]["annotations"] == existing["metadata"]["annotations"]


# -- the registry: a warm restart ----------------------------------------------------------------------------------


def merged_secret(*, uid: str = UID, version: int = 1, edit: str | None = None) -> dict[str, Any]:
    after = merged(foreign(), desired({"password": b64("pw")}, version=version))
    after["metadata"]["annotations"][ANNOTATION_MERGED_BY_UID] = uid
    if edit is not None:
        after["data"][edit] = b64("edited")
    return after


def merge_vs(**kwargs: Any) -> dict[str, Any]:
    body = vs(target={"name": "app-config", **MERGE}, status=ready_status(1), **kwargs)
    body["status"]["secretName"] = "app-config"
    body["metadata"]["finalizers"] = [RETAIN_FINALIZER]
    return body


def test_a_warm_restart_trusts_a_merged_secret_as_it_trusts_its_own() -> None:
    registry = Registry()
    registry.index_secrets([merged_secret(edit="LOG_LEVEL")])  # another key edited: not our drift
    assert registry.upsert(merge_vs()) is None
    assert registry.dirty == {}
    info = registry.secrets[("team-a", "app-config")]
    assert (info.owner_uid, info.version, info.intact) == (UID, 1, True)


@pytest.mark.parametrize(
    ("secret", "finalized"),
    [
        (merged_secret(edit="password"), True),  # our key edited while the operator was down
        (merged_secret(version=2), True),  # another version in it
        (merged_secret(uid=OTHER_UID), True),  # another VaultSecret merges into it
        (None, True),  # gone, or never merged
        (merged_secret(), False),  # the finalizer Merge needs is missing
    ],
)
def test_a_warm_restart_resyncs_a_merge_vaultsecret_when_anything_disagrees(
    secret: dict[str, Any] | None, finalized: bool
) -> None:
    registry = Registry()
    if secret is not None:
        registry.index_secrets([secret])
    body = merge_vs()
    if not finalized:
        body["metadata"].pop("finalizers")
    assert registry.upsert(body) == (CONN, "apps/web/db", None)
    assert registry.dirty == {("team-a", "db"): Priority.NEW}


def test_the_index_prefers_the_merging_vaultsecret_over_another_controller() -> None:
    registry = Registry()
    secret = merged_secret()
    secret["metadata"]["ownerReferences"] = [controller("Certificate", "web", "u-cert")]
    registry.index_secrets([secret])
    assert registry.secrets[("team-a", "app-config")].owner_uid == UID
    plain = foreign()
    plain["metadata"]["labels"][MANAGED_BY_LABEL] = MANAGED_BY
    plain["metadata"]["ownerReferences"] = [controller("VaultSecret", "db", UID)]
    registry.index_secrets([plain])
    assert registry.secrets[("team-a", "app-config")].owner_uid == UID


# -- kubectl scaivault render / why ------------------------------------------------------------------------------


def test_render_compares_only_the_merged_keys_and_names_the_merge_refusals() -> None:
    want = desired({"password": b64("pw")})
    absent, why = live_comparison(None, want, owner_uid=UID, creation_policy="Merge")
    assert absent is None
    assert why.startswith("the operator would not write it (TargetNotFound): Secret team-a/app-config does not")
    same, why = live_comparison(merged(foreign(), want), want, owner_uid=UID, creation_policy="Merge")
    assert (same, why) == (True, "the Secret already holds this data (its version annotation: 1)")
    before, _ = live_comparison(foreign(), want, owner_uid=UID, creation_policy="Merge")
    assert before is False  # not merged yet: the next sync writes it (no refusal)
    token = foreign()
    token["type"] = SERVICE_ACCOUNT_TOKEN_TYPE
    refused, why = live_comparison(token, want, owner_uid=UID, creation_policy="Merge")
    assert refused is False
    assert why.startswith("the operator would not write it (TargetConflict): Secret team-a/app-config is of type")


def test_why_reports_a_merged_secret_as_ours_without_the_managed_by_label() -> None:
    secret = merged(foreign(), desired({"password": b64("pw"), "host": b64("h")}))
    step = target_step(secret, namespace="team-a", name="app-config", vaultsecret_uid=UID, synced_version=1,
                       path="apps/web/db", error=None)  # fmt: skip
    assert step.state == "ok", step.details
    assert ("ok", "merged into by this VaultSecret (creationPolicy Merge; not watched): host,password") in step.details
    secret["data"]["password"] = b64(CANARY)
    edited = target_step(secret, namespace="team-a", name="app-config", vaultsecret_uid=UID, synced_version=1,
                         path="apps/web/db", error=None)  # fmt: skip
    assert edited.state == "fail"
    assert CANARY not in repr(edited.as_data())
