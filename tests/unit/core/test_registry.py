"""The registry: what needs a sync, from VaultSecret events, listed versions and managed Secret events."""

from __future__ import annotations

from typing import Any

import pytest

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._logic.manifests import (
    ANNOTATION_VERSION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    data_hash,
)
from scaivault_operator._logic.registry import ConnKey, Priority, Registry

CONN: ConnKey = ("ClusterVaultConnection", "", "default")
UID = "uid-1"


def vs(
    name: str = "db",
    path: str = "apps/web/db",
    *,
    namespace: str = "team-a",
    uid: str = UID,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "VaultSecret",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": generation},
        "spec": {"path": path, **spec},
    }
    if status is not None:
        body["status"] = status
    return body


def ready_status(version: int, generation: int = 1, *, ok: bool = True, reason: str = "Synced") -> dict[str, Any]:
    return {
        "conditions": [{"type": "Ready", "status": "True" if ok else "False", "reason": reason, "message": ""}],
        "observedGeneration": generation,
        "syncedVersion": version,
        "secretName": "db",
    }


def managed_secret(
    name: str = "db",
    *,
    namespace: str = "team-a",
    owner: str = UID,
    version: int | None = 1,
    data: dict[str, str] | None = None,
    intact: bool = True,
) -> dict[str, Any]:
    data = data if data is not None else {"password": "cHc="}
    annotations = {"scaivault.scailabs.ai/data-hash": data_hash(data if intact else {"other": "eA=="})}
    if version is not None:
        annotations[ANNOTATION_VERSION] = str(version)
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": annotations,
            "ownerReferences": [{"kind": "VaultSecret", "name": "db", "uid": owner, "controller": True}],
        },
        "data": data,
    }


@pytest.fixture
def registry() -> Registry:
    return Registry()


def synced(registry: Registry, synced_version: int = 1, **kwargs: Any) -> None:
    """Record a VaultSecret and pretend a sync wrote ``synced_version``."""
    registry.upsert(vs(**kwargs))
    key = (kwargs.get("namespace", "team-a"), kwargs.get("name", "db"))
    registry.take_dirty(registry.entries[key].source)  # type: ignore[arg-type]
    entry = registry.entries[key]
    entry.synced_version, entry.synced_spec = synced_version, entry.spec


# -- upsert ------------------------------------------------------------------------------------------------


def test_new_vaultsecret_needs_a_sync(registry):
    source = registry.upsert(vs())
    assert source == (CONN, "apps/web/db", None)
    assert registry.dirty == {("team-a", "db"): Priority.NEW}
    assert registry.by_source[source] == {("team-a", "db")}
    assert registry.by_target[("team-a", "db")] == ("team-a", "db")


def test_pinned_and_namespaced_connection_source(registry):
    source = registry.upsert(vs(version=3, connectionRef={"kind": "VaultConnection", "name": "local"}))
    assert source == (("VaultConnection", "team-a", "local"), "apps/web/db", 3)


def test_same_spec_again_is_nothing_to_do(registry):
    registry.upsert(vs())
    registry.take_dirty((CONN, "apps/web/db", None))
    assert registry.upsert(vs(status=ready_status(1), generation=1)) is None
    assert registry.dirty == {}


def test_generation_is_tracked_without_a_sync(registry):
    registry.upsert(vs())
    registry.take_dirty((CONN, "apps/web/db", None))
    assert registry.upsert(vs(generation=5)) is None
    assert registry.entries[("team-a", "db")].generation == 5


def test_spec_change_moves_the_entry_to_its_new_source(registry):
    synced(registry)
    source = registry.upsert(vs(path="apps/web/other", generation=2))
    assert source == (CONN, "apps/web/other", None)
    assert (CONN, "apps/web/db", None) not in registry.by_source
    entry = registry.entries[("team-a", "db")]
    assert entry.synced_version == 1  # kept: the Secret still holds it
    assert registry.dirty[("team-a", "db")] == Priority.NEW


def test_target_rename_updates_the_target_index(registry):
    registry.upsert(vs())
    registry.upsert(vs(target={"name": "renamed"}, generation=2))
    assert registry.by_target == {("team-a", "renamed"): ("team-a", "db")}


def test_recreated_vaultsecret_starts_over(registry):
    synced(registry)
    registry.upsert(vs(uid="uid-2"))
    entry = registry.entries[("team-a", "db")]
    assert entry.uid == "uid-2"
    assert entry.synced_version is None
    assert registry.dirty[("team-a", "db")] == Priority.NEW


def test_invalid_spec_has_no_source(registry):
    assert registry.upsert(vs(path="a//b")) is None
    entry = registry.entries[("team-a", "db")]
    assert entry.spec is None
    assert entry.spec_error is not None
    assert "path" in entry.spec_error
    assert registry.by_source == {}


def test_invalid_then_fixed(registry):
    registry.upsert(vs(path="a//b"))
    assert registry.upsert(vs(path="a/b", generation=2)) == (CONN, "a/b", None)


def test_valid_then_invalid_leaves_its_source(registry):
    registry.upsert(vs())
    registry.upsert(vs(path="/bad", generation=2))
    assert registry.by_source == {}
    assert registry.by_target == {}


def test_remove(registry):
    registry.upsert(vs())
    registry.remove(("team-a", "db"))
    assert registry.entries == {}
    assert registry.by_source == {}
    assert registry.dirty == {}
    assert registry.by_target == {}
    registry.remove(("team-a", "db"))  # twice: no error


def test_two_users_of_one_source(registry):
    registry.upsert(vs("a"))
    registry.upsert(vs("b", namespace="team-b", uid="uid-b"))
    source = (CONN, "apps/web/db", None)
    assert registry.by_source[source] == {("team-a", "a"), ("team-b", "b")}
    taken = registry.take_dirty(source)
    assert [(e.key, p) for e, p in taken] == [(("team-a", "a"), Priority.NEW), (("team-b", "b"), Priority.NEW)]
    assert registry.take_dirty(source) == []
    registry.remove(("team-a", "a"))
    assert registry.by_source[source] == {("team-b", "b")}


def test_mark_dirty_keeps_the_most_urgent(registry):
    registry.upsert(vs())
    registry.mark_dirty(("team-a", "db"), Priority.RETRY)
    assert registry.dirty[("team-a", "db")] == Priority.NEW
    registry.take_dirty((CONN, "apps/web/db", None))
    registry.mark_dirty(("team-a", "db"), Priority.RETRY)
    registry.mark_dirty(("team-a", "db"), Priority.DRIFT)
    assert registry.dirty[("team-a", "db")] == Priority.DRIFT
    assert registry.mark_dirty(("nowhere", "x"), Priority.NEW) is None


# -- warm restart ------------------------------------------------------------------------------------------


def test_warm_restart_trusts_a_consistent_status(registry):
    registry.index_secrets([managed_secret()])
    assert registry.upsert(vs(status=ready_status(1))) is None
    assert registry.dirty == {}
    entry = registry.entries[("team-a", "db")]
    assert entry.synced_version == 1
    assert entry.synced_spec == entry.spec


@pytest.mark.parametrize(
    ("secret", "body"),
    [
        (None, vs(status=ready_status(1))),  # the Secret is gone
        (managed_secret(intact=False), vs(status=ready_status(1))),  # edited by hand
        (managed_secret(version=2), vs(status=ready_status(1))),  # another version in the Secret
        (managed_secret(owner="someone"), vs(status=ready_status(1))),  # not ours
        (managed_secret(), vs(status=ready_status(1), generation=2)),  # spec changed while we were away
        (managed_secret(), vs(status=ready_status(1, ok=False, reason="Forbidden"))),  # was failing
        (managed_secret(), vs(status=ready_status(1), version=2)),  # pinned elsewhere
        (managed_secret(), vs(status={"syncedVersion": 1, "observedGeneration": 1})),  # no Ready condition
        (managed_secret(), vs()),  # no status at all
    ],
)
def test_warm_restart_resyncs_when_anything_disagrees(registry, secret, body):
    if secret is not None:
        registry.index_secrets([secret])
    assert registry.upsert(body) == (CONN, "apps/web/db", body["spec"].get("version"))
    assert registry.dirty == {("team-a", "db"): Priority.NEW}


# -- versions ----------------------------------------------------------------------------------------------


def test_followed_paths_leave_out_pinned_and_other_connections(registry):
    registry.upsert(vs("a", "apps/a"))
    registry.upsert(vs("b", "apps/b", version=1))
    registry.upsert(vs("c", "apps/c", connectionRef={"name": "other"}))
    assert registry.followed_paths(CONN) == {"apps/a"}


def test_followed_paths_leave_out_paths_only_denied_users_have(registry):
    registry.upsert(vs("a", "apps/a"))
    registry.upsert(vs("b", "infra/b"))
    registry.upsert(vs("c", "infra/b", namespace="team-c", uid="uid-c"))
    for key in (("team-a", "b"), ("team-c", "c")):
        registry.entries[key].status = ready_status(0, ok=False, reason="PolicyDenied")
    assert registry.followed_paths(CONN) == {"apps/a"}
    registry.entries[("team-c", "c")].status = ready_status(1)  # one user is allowed again
    assert registry.followed_paths(CONN) == {"apps/a", "infra/b"}


def test_observe_versions_marks_the_users_behind(registry):
    synced(registry, 1, name="a", path="apps/x")
    synced(registry, 2, name="b", path="apps/x", namespace="team-b")
    changed = registry.observe_versions(CONN, {"apps/x": 2})
    assert changed == [(CONN, "apps/x", None)]
    assert registry.dirty == {("team-a", "a"): Priority.VERSION}
    assert registry.latest[(CONN, "apps/x")] == 2


def test_observe_versions_ignores_what_did_not_move(registry):
    synced(registry, 1)
    assert registry.observe_versions(CONN, {"apps/web/db": 1}) == []  # first sighting: already in sync
    registry.entries[("team-a", "db")].synced_version = 0  # (a failed sync retries on its own schedule)
    assert registry.observe_versions(CONN, {"apps/web/db": 1}) == []
    assert registry.dirty == {}


def test_observe_versions_of_a_vanished_path(registry):
    synced(registry, 1)
    assert registry.observe_versions(CONN, {"apps/web/db": None}) == [(CONN, "apps/web/db", None)]
    assert registry.latest[(CONN, "apps/web/db")] is None


def test_observe_versions_never_marks_pinned_users(registry):
    synced(registry, 1, version=1)
    assert registry.observe_versions(CONN, {"apps/web/db": 5}) == []
    assert registry.dirty == {}


def test_same_version_with_another_stamp_is_a_recreated_secret(registry):
    synced(registry, 1)
    assert registry.observe_versions(CONN, {"apps/web/db": 1}, {"apps/web/db": 1000}) == []
    assert registry.observe_versions(CONN, {"apps/web/db": 1}, {"apps/web/db": 1000}) == []  # same: nothing
    assert registry.observe_versions(CONN, {"apps/web/db": 1}, {"apps/web/db": 1007}) == [(CONN, "apps/web/db", None)]
    entry = registry.entries[("team-a", "db")]
    assert entry.synced_version is None  # confirmed only by a GET now
    assert registry.dirty == {("team-a", "db"): Priority.VERSION}


def test_a_missing_stamp_neither_triggers_nor_is_remembered(registry):
    synced(registry, 1)
    registry.observe_versions(CONN, {"apps/web/db": 1}, {"apps/web/db": 1000})
    assert registry.observe_versions(CONN, {"apps/web/db": 1}, {}) == []
    assert (CONN, "apps/web/db") not in registry.stamps
    assert registry.observe_versions(CONN, {"apps/web/db": 1}, {"apps/web/db": 2000}) == []  # no stamp to compare


def test_a_poll_that_lists_fine_brings_a_failed_read_forward(registry):
    synced(registry, 1)
    registry.observe_versions(CONN, {"apps/web/db": 2})
    registry.take_dirty((CONN, "apps/web/db", None))
    entry = registry.entries[("team-a", "db")]
    # the read of version 2 failed transiently: dirty again, waiting for its own backoff
    entry.status = ready_status(1, ok=False, reason="BackendUnavailable")
    registry.mark_dirty(entry.key, Priority.RETRY)
    assert registry.observe_versions(CONN, {"apps/web/db": 2}) == [(CONN, "apps/web/db", None)]
    # a permanent failure (or one not waiting for a retry) is not brought forward
    entry.status = ready_status(1, ok=False, reason="SourceNotFound")
    assert registry.observe_versions(CONN, {"apps/web/db": 2}) == []
    registry.take_dirty((CONN, "apps/web/db", None))
    entry.status = ready_status(1, ok=False, reason="BackendUnavailable")
    assert registry.observe_versions(CONN, {"apps/web/db": 2}) == []


# -- re-lists of the VaultSecret watch ---------------------------------------------------------------------


def test_a_relist_holds_the_entries_not_seen_again_and_forgets_the_deleted(registry):
    synced(registry, 1, name="kept", path="apps/k")
    synced(registry, 1, name="gone", path="apps/g")
    synced(registry, 1, name="other", path="apps/o", uid="uid-old")
    registry.begin_relist()
    registry.upsert(vs("kept", "apps/k"))  # listed again by Kopf
    registry.mark_dirty(("team-a", "gone"), Priority.VERSION)
    registry.mark_dirty(("team-a", "other"), Priority.VERSION)
    assert registry.take_dirty((CONN, "apps/g", None)) == []  # held: maybe deleted
    assert registry.pending((CONN, "apps/g", None)) is None
    assert ("team-a", "gone") in registry.dirty

    gone, runnable = registry.end_relist({("team-a", "kept"): UID, ("team-a", "other"): "uid-old"})
    assert gone == [("team-a", "gone")]
    assert ("team-a", "gone") not in registry.entries
    assert ("team-a", "gone") not in registry.dirty
    assert runnable == [((CONN, "apps/o", None), Priority.VERSION)]
    assert registry.unconfirmed == set()


def test_a_held_dirty_entry_listed_again_runs(registry):
    """A dirty entry held by a re-list is skipped by its source's job and not queued again; when Kopf's listing
    confirms it, the upsert hands its source back (before: a stranded dirty entry no job ever took — 2,095 of 10,000
    VaultSecrets never synced in a cold sync whose watch expired twice)."""
    synced(registry, 1, name="kept", path="apps/k")
    registry.mark_dirty(("team-a", "kept"), Priority.VERSION)  # a new version seen, its job not run yet
    registry.begin_relist()
    assert registry.take_dirty((CONN, "apps/k", None)) == []  # held
    assert registry.pending((CONN, "apps/k", None)) is None  # so its job does not queue it again
    assert registry.upsert(vs("kept", "apps/k")) == (CONN, "apps/k", None)  # listed again: it runs now
    assert registry.pending((CONN, "apps/k", None)) == Priority.VERSION
    assert registry.upsert(vs("kept", "apps/k")) is None  # an echo of it later: nothing new


def test_a_relist_forgets_an_entry_recreated_under_another_uid(registry):
    synced(registry, 1)
    registry.begin_relist()
    gone, runnable = registry.end_relist({("team-a", "db"): "uid-new"})
    assert gone == [("team-a", "db")]
    assert runnable == []
    registry.upsert(vs(uid="uid-new"))  # the new object's listing event: a new entry, synced afresh
    assert registry.dirty == {("team-a", "db"): Priority.NEW}


# -- managed Secrets (drift) -------------------------------------------------------------------------------


def test_own_write_is_not_drift(registry):
    synced(registry, 1)
    assert registry.observe_secret("ADDED", managed_secret()) is None
    assert registry.observe_secret("MODIFIED", managed_secret()) is None
    assert registry.dirty == {}


def test_deleted_secret_is_drift(registry):
    synced(registry, 1)
    registry.observe_secret("ADDED", managed_secret())
    assert registry.observe_secret("DELETED", managed_secret()) == (CONN, "apps/web/db", None)
    assert registry.dirty == {("team-a", "db"): Priority.DRIFT}
    assert ("team-a", "db") not in registry.secrets


def test_edited_secret_is_drift(registry):
    synced(registry, 1)
    assert registry.observe_secret("MODIFIED", managed_secret(intact=False)) == (CONN, "apps/web/db", None)


def test_secret_of_a_never_synced_vaultsecret_is_only_indexed(registry):
    registry.upsert(vs())
    registry.take_dirty((CONN, "apps/web/db", None))
    assert registry.observe_secret("DELETED", managed_secret()) is None
    assert registry.dirty == {}


def test_secret_nobody_targets_is_only_indexed(registry):
    assert registry.observe_secret("MODIFIED", managed_secret("stray", intact=False)) is None
    info = registry.secrets[("team-a", "stray")]
    assert (info.owner_uid, info.version, info.intact) == (UID, 1, False)


def test_secret_with_garbage_annotations_is_indexed(registry):
    secret = managed_secret()
    secret["metadata"]["annotations"][ANNOTATION_VERSION] = "not-a-number"
    secret["metadata"]["ownerReferences"] = ["junk", {"controller": True}]
    registry.observe_secret("ADDED", secret)
    info = registry.secrets[("team-a", "db")]
    assert (info.owner_uid, info.version) == ("", None)


# -- the refresh annotation ----------------------------------------------------------------------------------


def with_refresh(value: str | None, **kwargs: Any) -> dict[str, Any]:
    body = vs(**kwargs)
    if value is not None:
        body["metadata"]["annotations"] = {"scaivault.scailabs.ai/refresh": value}
    return body


def test_a_new_refresh_value_asks_for_one_reread(registry):
    synced(registry, 3)
    assert registry.upsert(with_refresh("2026-12-01T10:00:00Z")) == (CONN, "apps/web/db", None)
    entry = registry.entries[("team-a", "db")]
    assert entry.synced_version is None  # no confirmation without a GET
    assert registry.dirty == {("team-a", "db"): Priority.NEW}
    registry.take_dirty((CONN, "apps/web/db", None))
    entry.synced_version = 3
    assert registry.upsert(with_refresh("2026-12-01T10:00:00Z")) is None  # the same value again: nothing
    assert registry.upsert(with_refresh(None)) is None  # removed: nothing to do
    assert registry.dirty == {}
    assert entry.synced_version == 3


def test_a_refresh_value_seen_at_start_is_no_request(registry):
    registry.index_secrets([managed_secret(version=2)])
    assert registry.upsert(with_refresh("old", status=ready_status(2))) is None  # warm restart: trusted
    assert registry.entries[("team-a", "db")].refresh == "old"
