"""Lifecycle of a synced Secret, the pure parts: deletionPolicy (the finalizer, the release patch) and onSourceDeleted
(when the registry says a path is gone)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from test_registry import CONN, UID, managed_secret, ready_status, vs

from scaivault_operator._cogs.api import VaultSecretSpec
from scaivault_operator._logic.manifests import (
    ADOPT_ANNOTATION,
    ANNOTATION_DATA_HASH,
    ANNOTATION_PATH,
    CREDENTIALS_LABEL,
    MANAGED_BY_LABEL,
    RETAIN_FINALIZER,
    VAULTSECRET_LABEL,
    merge_patch,
    release_patch,
    wants_finalizer,
    with_finalizer,
)
from scaivault_operator._logic.registry import Priority, Registry, deleting

RETAIN = {"target": {"deletionPolicy": "Retain"}}


def _with_meta(body: dict[str, Any], **meta: Any) -> dict[str, Any]:
    body["metadata"].update(meta)
    return body


# -- the model ---------------------------------------------------------------------------------------------------


def test_defaults_keep_todays_behaviour() -> None:
    spec = VaultSecretSpec.model_validate({"path": "apps/web/db"})
    assert spec.target.deletionPolicy == "Delete"
    assert spec.onSourceDeleted == "Retain"
    assert not wants_finalizer(spec)
    assert wants_finalizer(VaultSecretSpec.model_validate({"path": "apps/web/db", **RETAIN}))


@pytest.mark.parametrize(
    "spec",
    [{"target": {"deletionPolicy": "Orphan"}}, {"onSourceDeleted": "Keep"}, {"target": {"deletionPolicy": None}}],
)
def test_other_policies_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VaultSecretSpec.model_validate({"path": "apps/web/db", **spec})


# -- the finalizer -----------------------------------------------------------------------------------------------


def test_with_finalizer_adds_and_removes_only_ours() -> None:
    assert with_finalizer(None, present=True) == [RETAIN_FINALIZER]
    assert with_finalizer(["other/x"], present=True) == ["other/x", RETAIN_FINALIZER]
    assert with_finalizer(["other/x", RETAIN_FINALIZER], present=True) is None
    assert with_finalizer(["other/x", RETAIN_FINALIZER, "b/y"], present=False) == ["other/x", "b/y"]
    assert with_finalizer([RETAIN_FINALIZER], present=False) == []
    assert with_finalizer(["other/x"], present=False) is None
    assert with_finalizer("not-a-list", present=False) is None


# -- the release patch -------------------------------------------------------------------------------------------


def _owned(**extra_meta: Any) -> dict[str, Any]:
    secret = managed_secret()
    meta = secret["metadata"]
    meta["labels"] |= {VAULTSECRET_LABEL: "db", "team": "payments", CREDENTIALS_LABEL: "true"}
    meta["annotations"] |= {ANNOTATION_PATH: "apps/web/db", "note": "kept", ADOPT_ANNOTATION: "true"}
    meta["resourceVersion"] = "42"
    meta.update(extra_meta)
    secret["type"] = "kubernetes.io/basic-auth"
    return secret


def test_release_patch_leaves_data_type_and_user_metadata() -> None:
    secret = _owned()
    patch = release_patch(secret, UID)
    assert patch is not None
    assert patch["metadata"]["resourceVersion"] == "42"  # a Secret changed since it was read: 409, read again
    released = merge_patch(secret, patch)
    meta = released["metadata"]
    assert "ownerReferences" not in meta
    assert meta["labels"] == {"team": "payments", CREDENTIALS_LABEL: "true"}
    assert meta["annotations"] == {"note": "kept"}
    assert released["data"] == secret["data"]
    assert released["type"] == "kubernetes.io/basic-auth"
    assert "data" not in patch
    assert "type" not in patch


def test_release_patch_keeps_other_owner_references_and_a_foreign_managed_by() -> None:
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "other"}
    secret = _owned()
    secret["metadata"]["ownerReferences"].append(other)
    secret["metadata"]["labels"][MANAGED_BY_LABEL] = "helm"
    patch = release_patch(secret, UID)
    assert patch is not None
    assert patch["metadata"]["ownerReferences"] == [other]
    assert MANAGED_BY_LABEL not in patch["metadata"]["labels"]


def test_release_patch_of_a_released_secret_is_none() -> None:
    secret = _owned()
    patch = release_patch(secret, UID)
    assert patch is not None
    released = merge_patch(secret, patch)
    released["metadata"].pop("resourceVersion")
    assert release_patch(released, UID) is None
    assert ANNOTATION_DATA_HASH not in released["metadata"]["annotations"]


# -- the registry ------------------------------------------------------------------------------------------------


def test_a_retain_vaultsecret_without_our_finalizer_is_dirty_even_when_its_spec_did_not_change() -> None:
    registry = Registry()
    source = registry.upsert(vs(**RETAIN))
    assert source is not None
    registry.take_dirty(source)
    # The operator added it: the MODIFIED event that shows it changes nothing.
    assert registry.upsert(_with_meta(vs(**RETAIN), finalizers=[RETAIN_FINALIZER])) is None
    assert registry.entries[("team-a", "db")].finalized
    # Removed by hand: the next sync puts it back.
    assert registry.upsert(vs(**RETAIN)) == source
    assert registry.dirty[("team-a", "db")] == Priority.NEW


def test_a_delete_vaultsecret_with_our_finalizer_left_is_dirty() -> None:
    registry = Registry()
    source = registry.upsert(_with_meta(vs(), finalizers=[RETAIN_FINALIZER]))  # policy switched back to Delete
    assert source is not None
    assert registry.entries[("team-a", "db")].finalized


def test_warm_restart_trusts_the_status_only_when_the_finalizer_matches_the_policy() -> None:
    registry = Registry()
    registry.index_secrets([managed_secret()])
    assert registry.upsert(_with_meta(vs(status=ready_status(1), **RETAIN), finalizers=[RETAIN_FINALIZER])) is None
    other = Registry()
    other.index_secrets([managed_secret()])
    assert other.upsert(vs(status=ready_status(1), **RETAIN)) is not None  # Retain set while the operator was down


def test_a_vaultsecret_being_deleted_leaves_its_source_and_is_never_synced() -> None:
    registry = Registry()
    registry.index_secrets([managed_secret()])
    source = registry.upsert(_with_meta(vs(**RETAIN), finalizers=[RETAIN_FINALIZER]))
    assert source is not None
    body = _with_meta(vs(**RETAIN), finalizers=[RETAIN_FINALIZER], deletionTimestamp="2026-01-01T00:00:00Z")
    assert deleting(body)
    assert registry.mark_deleting(body) is True
    entry = registry.entries[("team-a", "db")]
    assert entry.deleting
    assert entry.finalized
    assert entry.source is None
    assert source not in registry.by_source
    assert registry.take_dirty(source) == []
    assert registry.followed_paths(CONN) == set()
    # No version, no drift and no later event brings it back to a sync.
    assert registry.observe_versions(CONN, {"apps/web/db": 2}) == []
    assert registry.observe_secret("DELETED", managed_secret()) is None
    assert registry.mark_deleting(body) is True
    assert registry.dirty == {}
    registry.remove(("team-a", "db"))
    assert registry.entries == {}


def test_a_delete_vaultsecret_being_deleted_needs_no_release() -> None:
    registry = Registry()
    registry.upsert(vs())
    assert registry.mark_deleting(_with_meta(vs(), deletionTimestamp="2026-01-01T00:00:00Z")) is False


def test_path_gone_only_after_a_list_showed_it_gone() -> None:
    registry = Registry()
    assert not registry.path_gone(CONN, "apps/web/db")  # not listed yet
    registry.observe_versions(CONN, {"apps/web/db": 1})
    assert not registry.path_gone(CONN, "apps/web/db")
    registry.observe_versions(CONN, {"apps/web/db": None})
    assert registry.path_gone(CONN, "apps/web/db")
