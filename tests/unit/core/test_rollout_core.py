"""Workload rollouts, the I/O around the decisions (``_core/rollout.Rollouts``), on a fake ``Kube``: a note opens
the namespace's window, a run lists, plans and patches — a conflict is read again and planned anew, a failed list
waits (5xx) or is reported and dropped (403), a workload deleted meanwhile is skipped. Counted in calls."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from typing import Any

import pytest
from rollout_fakes import NS, WINDOW, FakeKube, RolloutHarness, b64, workload
from test_registry import vs

from scaivault_operator._cogs.kube import Conflict, KubeError
from scaivault_operator._core.rollout import (
    DEFAULT_DEBOUNCE,
    RESTARTED,
    ROLLOUT_FAILED,
    ROLLOUT_TARGET_NOT_FOUND,
    WORKLOADS_RESTARTED,
)
from scaivault_operator._logic.registry import Entry, Priority
from scaivault_operator._logic.rollout import ROLLOUT_ANNOTATION, parse_stamps

CANARY = "CANARY-ROLLOUT-5b7e"
V1 = {"password": b64("pw-1"), "user": b64("app")}
V2 = {"password": b64(CANARY), "user": b64("app")}


def deployment(name: str = "web", *, secrets: tuple[str, ...] = ("db",), kind: str = "Deployment",
               rv: str = "1") -> dict[str, Any]:  # fmt: skip
    return workload(name, env={f"V{i}": (s, "password") for i, s in enumerate(secrets)}, kind=kind, rv=rv)


def stamps_of(body: dict[str, Any]) -> dict[str, str]:
    annotations = (body["spec"]["template"].get("metadata") or {}).get("annotations") or {}
    return parse_stamps(annotations.get(ROLLOUT_ANNOTATION))


class Harness(RolloutHarness):
    def vaultsecret(self, name: str, *, version: int = 2, **rollout: Any) -> Entry:
        spec: dict[str, Any] = {"rollout": rollout} if rollout else {}
        self.registry.upsert(vs(name, f"apps/web/{name}", uid=f"uid-vs-{name}", **spec))
        entry = self.registry.entries[(NS, name)]
        entry.synced_version = version
        return entry

    def note(self, entry: Entry, secret: str | None = None, before: dict[str, str] = V1,
             after: dict[str, str] = V2) -> None:  # fmt: skip
        assert entry.spec is not None
        self.rollouts.note(entry, entry.spec, secret or entry.name, before, after)


AUTO: dict[str, Any] = {"auto": True, "debounce": "3s"}


async def test_a_note_opens_the_window_and_a_run_patches_once() -> None:
    kube = FakeKube(deployment("web"), deployment("api", secrets=("other",)))
    h = Harness(kube)
    h.note(h.vaultsecret("db", **AUTO))
    assert h.scheduled == [(WINDOW, Priority.VERSION, 3.0)]
    assert await h.rollouts.run(WINDOW) is None
    assert kube.lists == 1
    assert [(k, n) for k, n, _ in kube.patches] == [("Deployment", "web")]
    assert kube.patches[0][2]["metadata"] == {"resourceVersion": "1"}, "guarded by the listed resourceVersion"
    assert set(stamps_of(kube.workloads[("Deployment", "web")])) == {"db"}
    assert kube.reasons() == [("Deployment", "web", RESTARTED), ("VaultSecret", "db", WORKLOADS_RESTARTED)]
    assert kube.events[0]["involved"]["uid"] == "uid-web"
    assert "key password of Secret db" in kube.events[0]["message"]
    assert kube.events[1]["message"] == "restarted Deployment/web (key password of Secret db)"
    [(name, status)] = kube.statuses
    assert name == "db"
    rollout = status["rollout"]
    assert rollout["version"] == 2
    assert rollout["lastRolloutAt"].endswith("Z")
    assert rollout["workloads"] == [{"kind": "Deployment", "name": "web", "keys": ["password"]}]
    assert h.registry.entries[(NS, "db")].status["rollout"] == rollout
    assert h.restarts() == 1
    assert await h.rollouts.run(WINDOW) is None, "nothing pending: nothing listed"
    assert kube.lists == 1


async def test_the_default_debounce_without_spec_rollout() -> None:
    h = Harness(FakeKube())
    h.note(h.vaultsecret("db"))
    assert h.scheduled == [(WINDOW, Priority.VERSION, DEFAULT_DEBOUNCE)]
    assert DEFAULT_DEBOUNCE == 10.0


async def test_unchanged_data_opens_no_window() -> None:
    h = Harness(FakeKube())
    h.note(h.vaultsecret("db", **AUTO), before=V1, after=dict(V1))
    assert h.scheduled == []
    assert h.rollouts.planner.pending == {}


async def test_rollouts_disabled_note_nothing() -> None:
    kube = FakeKube(deployment("web"))
    h = Harness(kube, rollout_enabled=False)
    h.note(h.vaultsecret("db", **AUTO))
    assert h.scheduled == []
    assert await h.rollouts.run(WINDOW) is None
    assert (kube.lists, kube.patches, kube.events) == (0, [], [])


async def test_two_secrets_in_one_window_patch_the_workload_once_with_both_stamps() -> None:
    web = deployment("web")
    web["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "cache-secret", "key": "url"}}})  # fmt: skip
    kube = FakeKube(web)
    h = Harness(kube)
    h.note(h.vaultsecret("db", **AUTO))
    h.note(h.vaultsecret("cache", **AUTO), "cache-secret", {"url": b64("redis://a")}, {"url": b64("redis://b")})
    assert [key for key, _, _ in h.scheduled] == [WINDOW, WINDOW]
    await h.rollouts.run(WINDOW)
    assert len(kube.patches) == 1
    assert set(stamps_of(kube.workloads[("Deployment", "web")])) == {"db", "cache-secret"}
    # Each VaultSecret's status names the keys of its own Secret.
    keys = {name: status["rollout"]["workloads"][0]["keys"] for name, status in kube.statuses}
    assert keys == {"db": ["password"], "cache": ["url"]}
    assert h.restarts() == 1
    [summary] = [e for e in kube.events if e["involved"]["name"] == "cache"]
    assert summary["message"] == "restarted Deployment/web (key url of Secret cache-secret; key password of Secret db)"


async def test_a_conflict_is_read_again_planned_anew_and_patched_once() -> None:
    kube = FakeKube(deployment("web", rv="5"))
    kube.patch_errors = [Conflict("the object has been modified", 409)]
    kube.workloads[("Deployment", "web")]["metadata"]["resourceVersion"] = "5"
    h = Harness(kube)
    h.note(h.vaultsecret("db", **AUTO))
    # Someone else writes it after the list.
    kube.after_list.append(lambda: kube.workloads[("Deployment", "web")]["metadata"].update(resourceVersion="6"))
    await h.rollouts.run(WINDOW)
    assert [p["metadata"]["resourceVersion"] for _, _, p in kube.patches] == ["5", "6"]
    assert kube.workload_gets == ["Deployment/web"]
    assert h.restarts() == 1
    assert h.errors("conflict") == 0
    assert [r for r in kube.reasons() if r[2] == RESTARTED] == [("Deployment", "web", RESTARTED)]


async def test_a_conflict_after_which_the_workload_needs_no_restart_is_not_patched() -> None:
    kube = FakeKube(deployment("web"))
    h = Harness(kube)
    entry = h.vaultsecret("db", **AUTO)
    h.note(entry)
    await h.rollouts.run(WINDOW)
    done = kube.workloads[("Deployment", "web")]
    # The same change again (another replica's view): the workload already carries the stamp.
    stale = copy.deepcopy(done)
    stale["spec"]["template"]["metadata"] = {}
    stale["metadata"]["resourceVersion"] = "1"
    kube.workloads[("Deployment", "web")] = stale
    kube.patch_errors = [Conflict("modified", 409)]
    h.note(entry)

    async def fresh_is_done(kind: str, namespace: str, name: str) -> dict[str, Any]:
        kube.workload_gets.append(f"{kind}/{name}")
        return copy.deepcopy(done)

    kube.get_workload = fresh_is_done  # type: ignore[method-assign]
    await h.rollouts.run(WINDOW)
    assert len(kube.patches) == 2, "the first run's patch and the refused one; none after the re-read"
    assert h.restarts() == 1
    assert h.errors("conflict") == 0


async def test_three_conflicts_give_up_counted(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube(deployment("web"))
    kube.patch_errors = [Conflict("modified", 409) for _ in range(3)]
    h = Harness(kube)
    h.note(h.vaultsecret("db", **AUTO))
    with caplog.at_level(logging.WARNING, "scaivault_operator._core.rollout"):
        assert await h.rollouts.run(WINDOW) is None
    assert len(kube.patches) == 3
    assert kube.workload_gets == ["Deployment/web", "Deployment/web"]
    assert h.errors("conflict") == 1
    assert h.restarts() == 0
    assert kube.events == []
    assert kube.statuses == []
    assert any("changed under every restart attempt" in r.getMessage() for r in caplog.records)


async def test_a_workload_deleted_meanwhile_is_skipped() -> None:
    kube = FakeKube(deployment("web"), deployment("api"))
    h = Harness(kube)
    h.note(h.vaultsecret("db", **AUTO))
    kube.after_list.append(lambda: kube.workloads.pop(("Deployment", "web")))  # deleted after the list
    await h.rollouts.run(WINDOW)
    assert [n for _, n, _ in kube.patches] == ["web", "api"]
    assert h.restarts() == 1
    assert [r for r in kube.reasons() if r[2] == RESTARTED] == [("Deployment", "api", RESTARTED)]
    assert kube.statuses[0][1]["rollout"]["workloads"] == [{"kind": "Deployment", "name": "api", "keys": ["password"]}]


async def test_a_workload_deleted_during_a_conflict_is_skipped() -> None:
    kube = FakeKube(deployment("web"))
    kube.patch_errors = [Conflict("modified", 409)]
    h = Harness(kube)
    h.note(h.vaultsecret("db", **AUTO))

    async def gone(kind: str, namespace: str, name: str) -> None:
        kube.workload_gets.append(f"{kind}/{name}")

    kube.get_workload = gone  # type: ignore[method-assign]
    await h.rollouts.run(WINDOW)
    assert len(kube.patches) == 1
    assert kube.workload_gets == ["Deployment/web"]
    assert h.restarts() == 0
    assert kube.events == []


async def test_a_refused_patch_is_counted_and_the_others_go_on() -> None:
    kube = FakeKube(deployment("web"), deployment("api"))
    kube.patch_errors = [KubeError("forbidden", 403)]
    h = Harness(kube)
    h.note(h.vaultsecret("db", **AUTO))
    await h.rollouts.run(WINDOW)
    assert h.errors("forbidden") == 1
    assert h.restarts() == 1
    assert stamps_of(kube.workloads[("Deployment", "api")])
    assert not stamps_of(kube.workloads[("Deployment", "web")])


async def test_403_on_the_list_warns_each_vaultsecret_once_and_drops_the_changes() -> None:
    kube = FakeKube(deployment("web", secrets=("db", "cache")))
    kube.list_errors = [KubeError("deployments.apps is forbidden", 403)]
    h = Harness(kube)
    h.note(h.vaultsecret("db", **AUTO))
    h.note(h.vaultsecret("db", **AUTO))  # twice in the window: one Event
    h.note(h.vaultsecret("cache", **AUTO))
    assert await h.rollouts.run(WINDOW) is None
    assert sorted(kube.reasons()) == [("VaultSecret", "cache", ROLLOUT_FAILED), ("VaultSecret", "db", ROLLOUT_FAILED)]
    assert all(e["type"] == "Warning" and "rollout.enabled" in e["message"] for e in kube.events)
    assert h.errors("forbidden") == 1
    assert h.rollouts.planner.pending == {}, "dropped"
    assert await h.rollouts.run(WINDOW) is None
    assert kube.lists == 1
    assert kube.patches == []


async def test_503_on_the_list_puts_the_changes_back_and_a_later_run_succeeds() -> None:
    kube = FakeKube(deployment("web", secrets=("db", "cache")))
    kube.list_errors = [KubeError("unavailable", 503), KubeError("unavailable", 503, retry_after=30.0)]
    h = Harness(kube)
    h.note(h.vaultsecret("db", **AUTO))
    delay = await h.rollouts.run(WINDOW)
    assert delay is not None
    assert 0 < delay <= 8.0
    h.note(h.vaultsecret("cache", **AUTO))  # a newer change joins the waiting ones
    assert await h.rollouts.run(WINDOW) == 30.0, "at least Retry-After"
    assert h.errors("unavailable") == 2
    assert kube.events == []
    assert kube.patches == []
    assert await h.rollouts.run(WINDOW) is None
    assert kube.lists == 3
    assert len(kube.patches) == 1
    assert set(stamps_of(kube.workloads[("Deployment", "web")])) == {"db", "cache"}
    assert h.restarts() == 1
    assert h.rollouts._failures == {}


async def test_a_target_not_found_is_reported() -> None:
    kube = FakeKube(deployment("web"))
    h = Harness(kube)
    h.note(
        h.vaultsecret("db", targets=[{"kind": "StatefulSet", "name": "gone"}, {"kind": "Deployment", "name": "web"}])
    )
    await h.rollouts.run(WINDOW)
    missing = [e for e in kube.events if e["reason"] == ROLLOUT_TARGET_NOT_FOUND]
    assert len(missing) == 1
    assert missing[0]["type"] == "Warning"
    assert missing[0]["involved"]["name"] == "db"
    assert "StatefulSet/gone" in missing[0]["message"]
    assert "Deployment/web" not in missing[0]["message"]
    assert [n for _, n, _ in kube.patches] == ["web"]


async def test_no_value_reaches_events_status_logs_or_patches(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube(deployment("web"), deployment("api", kind="StatefulSet"))
    kube.patch_errors = [Conflict("modified", 409)]
    h = Harness(kube)
    with caplog.at_level(logging.DEBUG):
        h.note(h.vaultsecret("db", auto=True, targets=[{"kind": "StatefulSet", "name": "api"}]))
        await h.rollouts.run(WINDOW)
    assert h.restarts() == 1
    assert h.restarts("StatefulSet") == 1
    text = json.dumps([kube.events, kube.statuses, kube.patches, list(kube.workloads.values()),
                       [r.getMessage() for r in caplog.records]]) + h.metrics.render()  # fmt: skip
    for form in (CANARY, b64(CANARY), hashlib.sha256(CANARY.encode()).hexdigest(),
                 hashlib.sha256(b64(CANARY).encode()).hexdigest()):  # fmt: skip
        assert form not in text
        assert form[:16] not in text
    assert "password" in text, "the key names are there"
