"""Immutable versioned Secrets, the I/O of a rollout window (``_core/rollout.Rollouts``) on a fake ``Kube``: each old
version a workload references is read once per window (a 404 or a failed read moves its users), workloads are moved
by one merge patch of their pod template's lists, and afterwards exactly the versions of this VaultSecret beyond
``keepVersions`` that no workload references any more are deleted — never the current one, never another
VaultSecret's, never a name that only looks like a version; a failed delete is logged and the others go on. Counted
in calls."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from typing import Any

import pytest
from rollout_fakes import NS, WINDOW, FakeKube, RolloutHarness, b64, workload
from test_registry import vs

from scaivault_operator._cogs.kube import KubeError
from scaivault_operator._core.rollout import RESTARTED, WORKLOADS_RESTARTED
from scaivault_operator._logic.manifests import ANNOTATION_VERSION, MANAGED_BY, MANAGED_BY_LABEL, data_hash
from scaivault_operator._logic.registry import Entry
from scaivault_operator._logic.rollout import ROLLOUT_ANNOTATION

UID = "uid-vs-db"
CANARY = "CANARY-IMMUTABLE-3f1a"


def data(**values: str) -> dict[str, str]:
    return {key: b64(value) for key, value in values.items()}


V1 = data(password="pw-1", other="x")
V2 = data(password="pw-1", other="y")  # only "other" changed
V3 = data(password=CANARY, other="y")  # the password changed


def versioned(name: str, version: int | None, values: dict[str, str], *, owner: str = UID) -> dict[str, Any]:
    annotations = {"scaivault.scailabs.ai/data-hash": data_hash(values)}
    if version is not None:
        annotations[ANNOTATION_VERSION] = str(version)
    refs = [{"kind": "VaultSecret", "name": "db", "uid": owner, "controller": True}]
    meta = {"name": name, "namespace": NS, "labels": {MANAGED_BY_LABEL: MANAGED_BY}, "annotations": annotations,
            "ownerReferences": refs}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Secret", "immutable": True, "data": dict(values), "metadata": meta}


class Harness(RolloutHarness):
    def vaultsecret(self, name: str = "db", *, uid: str = UID, version: int = 3, keep: int = 2,
                    immutable: bool = True, **target: Any) -> Entry:  # fmt: skip
        old = self.registry.entries.get((NS, name))
        generation = (old.generation or 0) + 1 if old is not None else 1  # a spec change bumps it, as on a server
        body = vs(name, f"apps/web/{name}", uid=uid, rollout={"auto": True, "debounce": "0s"},
                  target={"immutable": immutable, "keepVersions": keep, **target}, generation=generation)  # fmt: skip
        self.registry.upsert(body)
        entry = self.registry.entries[(NS, name)]
        entry.synced_version, entry.synced_spec = version, entry.spec
        return entry

    def secret(self, body: dict[str, Any], *, indexed: bool = True) -> None:
        """A Secret on the (fake) API server and, unless ``indexed`` is False, in the operator's index."""
        self.kube.add_secret(body)
        if indexed:
            self.registry.observe_secret("ADDED", body)

    def versions(self, *values: dict[str, str], current_indexed: bool = True) -> None:
        """``db-v1``... holding ``values`` in order; the last is the current one."""
        for number, value in enumerate(values, start=1):
            self.secret(versioned(f"db-v{number}", number, value),
                        indexed=current_indexed or number < len(values))  # fmt: skip

    def note(self, entry: Entry, secret: str, after: dict[str, str]) -> None:
        """What ``sync._note_rollout`` hands over for a new versioned Secret: before = None."""
        assert entry.spec is not None
        self.rollouts.note(entry, entry.spec, secret, None, after)

    def deleted_metric(self) -> float:
        return self.metrics.value("secret_writes_total", {"operation": "delete"})


# -- reading the old versions ------------------------------------------------------------------------------------


async def test_each_referenced_old_version_is_read_once_per_window() -> None:
    kube = FakeKube(
        workload("a", env={"P": ("db-v1", "password")}),
        workload("b", env_from="db-v1"),
        workload("c", volume="db-v1", kind="StatefulSet"),
        workload("d", env={"P": ("db-v2", "password"), "O": ("db-v1", "other")}),
        workload("e", env_from="db-v3"),  # already on the current version
        workload("f", env_from="db-vx"),  # not a version
        workload("g", env_from="dbx-v1"),  # not a version of db
        workload("h", env_from="db"),  # the unversioned Secret: the oldest version
    )
    h = Harness(kube)
    entry = h.vaultsecret(version=3, keep=20)
    h.versions(V1, V2, V3)
    h.secret(versioned("db", None, V1))
    h.note(entry, "db-v3", V3)
    assert await h.rollouts.run(WINDOW) is None
    assert kube.secret_gets == Counter({"db-v1": 1, "db-v2": 1, "db": 1}), "once each; never the current"
    # Every user of the password moved (it changed); "d" read "other" of v1 too: moved both references.
    for kind, name in (("Deployment", "a"), ("Deployment", "b"), ("StatefulSet", "c"), ("Deployment", "h")):
        assert kube.references(kind, name) == {"db-v3"}, name
    assert kube.references("Deployment", "d") == {"db-v3"}
    assert sorted(n for _, n, _ in kube.patches) == ["a", "b", "c", "d", "h"], "one patch per workload"
    assert kube.deletes == [], "keepVersions 20: nothing deleted"


async def test_two_vaultsecrets_in_one_window_read_each_old_version_once() -> None:
    kube = FakeKube(workload("a", env={"P": ("db-v1", "password"), "T": ("api-v7", "t")}),
                    workload("b", env={"T": ("api-v7", "t")}))  # fmt: skip
    h = Harness(kube)
    db = h.vaultsecret(version=2, keep=20)
    api = h.vaultsecret("api", uid="uid-vs-api", version=8, keep=20)
    h.versions(V1, V2)
    h.secret(versioned("api-v7", 7, data(t="1"), owner="uid-vs-api"))
    h.note(db, "db-v2", V2)
    h.note(api, "api-v8", data(t="2"))
    await h.rollouts.run(WINDOW)
    assert kube.secret_gets == Counter({"db-v1": 1, "api-v7": 1})
    assert kube.references("Deployment", "a") == {"db-v1", "api-v8"}, "password unchanged: stays on db-v1"
    assert kube.references("Deployment", "b") == {"api-v8"}
    assert len(kube.patches) == 2


@pytest.mark.parametrize("failure", [None, KubeError("unavailable", 503)], ids=["404", "503"])
async def test_an_old_version_that_cannot_be_read_moves_its_users(failure: KubeError | None,
                                                                 caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The key is the same in both versions, so a readable v1 would keep ``a`` on it; unreadable, it moves."""
    kube = FakeKube(workload("a", env={"P": ("db-v1", "password")}))
    h = Harness(kube)
    entry = h.vaultsecret(version=2, keep=20)
    h.versions(V1, V2)
    del kube.secrets["db-v1"]  # gone from the API server (the index has not seen it yet)
    if failure is not None:
        kube.secret_get_errors["db-v1"] = failure
    h.note(entry, "db-v2", V2)
    with caplog.at_level(logging.WARNING, "scaivault_operator._core.rollout"):
        await h.rollouts.run(WINDOW)
    assert kube.secret_gets == Counter({"db-v1": 1})
    assert kube.references("Deployment", "a") == {"db-v2"}
    assert next(r for r in kube.events if r["reason"] == RESTARTED)["message"] == (
        "restarted by scaivault-operator: key password of Secret db-v2 changed (VaultSecret db)")  # fmt: skip
    warned = [r.getMessage() for r in caplog.records if "to compare versions" in r.getMessage()]
    assert len(warned) == (1 if failure is not None else 0)


async def test_a_readable_old_version_with_the_same_key_keeps_its_users() -> None:
    kube = FakeKube(workload("a", env={"P": ("db-v1", "password")}), workload("b", env={"O": ("db-v1", "other")}))
    h = Harness(kube)
    entry = h.vaultsecret(version=2, keep=1)
    h.versions(V1, V2)
    h.note(entry, "db-v2", V2)
    await h.rollouts.run(WINDOW)
    assert kube.references("Deployment", "a") == {"db-v1"}
    assert kube.references("Deployment", "b") == {"db-v2"}
    assert [n for _, n, _ in kube.patches] == ["b"]
    patch = kube.patches[0][2]
    assert patch["metadata"] == {"resourceVersion": "1"}
    assert "metadata" not in patch["spec"]["template"], "no stamp: the reference is the change"
    assert kube.deletes == [], "v1 is beyond keepVersions 1 but a still referenced"
    [(name, status)] = kube.statuses
    assert name == "db"
    assert status["rollout"]["workloads"] == [{"kind": "Deployment", "name": "b", "keys": ["other"]}]
    [summary] = [e for e in kube.events if e["reason"] == WORKLOADS_RESTARTED]
    assert summary["message"] == "restarted Deployment/b (key other of Secret db-v2)"


# -- cleaning up the versions beyond keepVersions ---------------------------------------------------------------


async def test_exactly_the_unreferenced_versions_beyond_keep_versions_are_deleted() -> None:
    kube = FakeKube(workload("old", env={"O": ("db-v1", "password")}))  # the password never changed: stays on v1
    h = Harness(kube)
    entry = h.vaultsecret(version=5, keep=2)
    same = data(password="pw-1")
    h.versions(same, same, same, same, same)
    h.note(entry, "db-v5", same)
    await h.rollouts.run(WINDOW)
    assert kube.patches == []
    assert sorted(kube.deletes) == ["db-v2", "db-v3"], "v5 and v4 kept (keepVersions 2), v1 referenced"
    assert h.deleted_metric() == 2
    assert sorted(kube.secrets) == ["db-v1", "db-v4", "db-v5"]
    assert sorted(name for (_, name) in h.registry.secrets) == ["db-v1", "db-v4", "db-v5"]


async def test_versions_left_by_this_windows_moves_are_deleted_in_the_same_window() -> None:
    kube = FakeKube(workload("web", env={"P": ("db-v1", "password")}), workload("all", env_from="db-v2"))
    h = Harness(kube)
    entry = h.vaultsecret(version=3, keep=1)
    h.versions(V1, V2, V3)
    h.note(entry, "db-v3", V3)
    await h.rollouts.run(WINDOW)
    assert kube.references("Deployment", "web") == {"db-v3"}
    assert kube.references("Deployment", "all") == {"db-v3"}
    assert sorted(kube.deletes) == ["db-v1", "db-v2"]
    assert sorted(kube.secrets) == ["db-v3"]


async def test_a_workload_whose_move_failed_still_holds_its_version() -> None:
    kube = FakeKube(workload("web", env={"P": ("db-v1", "password")}))
    kube.patch_errors = [KubeError("forbidden", 403)]
    h = Harness(kube)
    entry = h.vaultsecret(version=3, keep=1)
    h.versions(V1, V2, V3)
    h.note(entry, "db-v3", V3)
    await h.rollouts.run(WINDOW)
    assert kube.references("Deployment", "web") == {"db-v1"}
    assert kube.deletes == ["db-v2"], "v1 is still referenced: kept"
    assert h.metrics.value("rollout_errors_total", {"reason": "forbidden"}) == 1


async def test_a_conflict_on_a_move_is_read_again_and_moved() -> None:
    kube = FakeKube(workload("web", env={"P": ("db-v1", "password")}))
    h = Harness(kube)
    entry = h.vaultsecret(version=2, keep=1)
    h.versions(V1, V3)
    h.note(entry, "db-v2", V3)
    # Someone else writes it after the list.
    kube.after_list.append(lambda: kube.workloads[("Deployment", "web")]["metadata"].update(resourceVersion="2"))
    await h.rollouts.run(WINDOW)
    assert [p["metadata"]["resourceVersion"] for _, _, p in kube.patches] == ["1", "2"]
    assert kube.workload_gets == ["Deployment/web"]
    assert kube.references("Deployment", "web") == {"db-v2"}
    assert kube.deletes == ["db-v1"]


async def test_the_current_version_is_kept_even_before_the_index_knows_it() -> None:
    """With ``debounce: 0s`` the window may run before the watch event of the new Secret reached the index: the
    current version still counts among the newest, so v2 goes now (keepVersions 1), not one window later."""
    kube = FakeKube()
    h = Harness(kube)
    entry = h.vaultsecret(version=3, keep=1)
    h.versions(V1, V2, V3, current_indexed=False)
    assert (NS, "db-v3") not in h.registry.secrets
    h.note(entry, "db-v3", V3)
    await h.rollouts.run(WINDOW)
    assert "db-v3" not in kube.deletes
    assert sorted(kube.deletes) == ["db-v1", "db-v2"]


@pytest.mark.parametrize("keep", [1, 2, 3])
async def test_never_the_current_version_whatever_keep_versions(keep: int) -> None:
    kube = FakeKube()
    h = Harness(kube)
    entry = h.vaultsecret(version=4, keep=keep)
    h.versions(V1, V2, V3, V3)
    h.note(entry, "db-v4", V3)
    await h.rollouts.run(WINDOW)
    assert "db-v4" not in kube.deletes
    assert len(kube.deletes) == 4 - keep
    assert sorted(kube.secrets, key=lambda n: int(n.rsplit("v", 1)[1]))[-keep:] == [f"db-v{v}" for v in
                                                                                     range(5 - keep, 5)]  # fmt: skip


async def test_the_unversioned_secret_of_a_vaultsecret_made_immutable_is_the_oldest() -> None:
    kube = FakeKube(workload("web", env={"O": ("db", "other")}))
    h = Harness(kube)
    entry = h.vaultsecret(version=3, keep=1)
    h.secret(versioned("db", 2, V1))
    h.secret(versioned("db-v3", 3, V3))
    h.note(entry, "db-v3", V3)
    await h.rollouts.run(WINDOW)
    assert kube.references("Deployment", "web") == {"db-v3"}, "other changed from v2 (in db) to v3"
    assert kube.deletes == ["db"]


async def test_never_another_vaultsecrets_secrets_nor_lookalike_names() -> None:
    kube = FakeKube()
    h = Harness(kube)
    entry = h.vaultsecret(version=3, keep=1)
    h.versions(V1, V2, V3)
    h.vaultsecret("db-v1-app", uid="uid-other", immutable=False)
    # Names like ours but not versions of "db" (some even owned by this VaultSecret's uid), and versions of "db"
    # owned by someone else.
    for name in ("db-vx", "dbx-v1", "db-v1-old", "db-v", "xdb-v1"):
        h.secret(versioned(name, 1, V1))
    h.secret(versioned("db-v1-app", 1, V1, owner="uid-other"))
    other = versioned("db-v9", 9, V1, owner="uid-other")
    h.secret(other)
    unowned = versioned("db-v0", 0, V1, owner="")
    unowned["metadata"]["ownerReferences"] = []
    h.secret(unowned)
    h.note(entry, "db-v3", V3)
    await h.rollouts.run(WINDOW)
    assert sorted(kube.deletes) == ["db-v1", "db-v2"]
    assert {"db-vx", "dbx-v1", "db-v1-old", "db-v", "xdb-v1", "db-v1-app", "db-v9", "db-v0", "db-v3"} <= set(
        kube.secrets)  # fmt: skip


async def test_a_failed_delete_is_logged_and_the_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube()
    kube.delete_errors["db-v1"] = KubeError("forbidden", 403)
    h = Harness(kube)
    entry = h.vaultsecret(version=4, keep=1)
    h.versions(V1, V2, V3, V3)
    h.note(entry, "db-v4", V3)
    with caplog.at_level(logging.WARNING, "scaivault_operator._core.rollout"):
        await h.rollouts.run(WINDOW)
    assert sorted(kube.deletes) == ["db-v1", "db-v2", "db-v3"], "every one tried"
    assert sorted(kube.secrets) == ["db-v1", "db-v4"]
    assert h.deleted_metric() == 2
    assert (NS, "db-v1") in h.registry.secrets, "still known: tried again at the next version"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("cannot delete old version Secret team-a/db-v1")


async def test_a_mutable_change_or_a_vaultsecret_no_longer_immutable_cleans_nothing() -> None:
    kube = FakeKube(workload("web", env={"P": ("db", "password")}))
    h = Harness(kube)
    entry = h.vaultsecret(version=3, keep=1)
    h.versions(V1, V2, V3)
    h.note(entry, "db-v3", V3)
    h.vaultsecret(version=3, keep=1, immutable=False)  # made mutable before the window closed
    await h.rollouts.run(WINDOW)
    assert kube.deletes == []
    mutable = h.vaultsecret("cache", uid="uid-cache", immutable=False)
    assert mutable.spec is not None
    h.rollouts.note(mutable, mutable.spec, "cache", data(u="1"), data(u="2"))
    await h.rollouts.run(WINDOW)
    assert kube.deletes == []
    assert kube.secret_gets == Counter({"db": 1}), "read for the (then) immutable change only"


async def test_no_value_in_patches_events_status_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube(workload("web", env={"P": ("db-v1", "password")}), workload("all", env_from="db-v2"))
    h = Harness(kube)
    entry = h.vaultsecret(version=3, keep=1)
    h.versions(V1, V2, V3)
    with caplog.at_level(logging.DEBUG):
        h.note(entry, "db-v3", V3)
        await h.rollouts.run(WINDOW)
    assert len(kube.patches) == 2
    text = json.dumps([kube.events, kube.statuses, kube.patches, list(kube.workloads.values()),
                       [r.getMessage() for r in caplog.records]]) + h.metrics.render()  # fmt: skip
    for form in (CANARY, b64(CANARY), hashlib.sha256(CANARY.encode()).hexdigest()[:16]):
        assert form not in text
    assert "db-v3" in text
    assert all(ROLLOUT_ANNOTATION not in json.dumps(p) for _, _, p in kube.patches), "moves only, no stamps"
