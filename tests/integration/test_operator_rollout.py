"""Workload restarts on the emulated API server (``spec.rollout``, the reload annotation): counted in patches of the
pod-template annotation, not in times. The emulator has no Deployment controller; tests/e2e/test_e2e_rollout.py shows
the ReplicaSets a real one makes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from typing import Any

import pytest
from operator_helpers import OperatorEnv, b64, cluster_connection, ready_condition, vaultsecret, wait_until, workload

from scaivault_operator._core import rollout as core_rollout
from scaivault_operator._logic.manifests import ANNOTATION_REFRESH
from scaivault_operator._logic.rollout import RELOAD_ANNOTATION, ROLLOUT_ANNOTATION, parse_stamps

NS = "team-a"
PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


def stamps(body: dict[str, Any] | None) -> dict[str, str]:
    template = ((body or {}).get("spec") or {}).get("template") or {}
    return parse_stamps(((template.get("metadata") or {}).get("annotations") or {}).get(ROLLOUT_ANNOTATION))


def workload_patches(env: OperatorEnv, since: int) -> list[str]:
    return [w for w in env.operator_writes(since) if "/deployments/" in w and w.startswith("PATCH")]


async def test_a_changed_used_key_restarts_once_and_an_unused_key_does_not(cluster: OperatorEnv) -> None:
    cluster.vault.write("apps/r/db", {"password": "one", "other": "x"})
    await cluster.create(workload("Deployment", "web", env={"DB_PASSWORD": ("db", "password")}))
    await cluster.create(vaultsecret("db", "apps/r/db") | {})
    body = await cluster.vs(NS, "db")
    assert body is not None
    await cluster.cluster.patch("VaultSecret", NS, "db", {"spec": {"rollout": {"auto": True, "debounce": "0s"}}})
    await cluster.wait_synced(NS, "db", 1)
    mark = cluster.mark()
    cluster.vault.write("apps/r/db", {"password": "two", "other": "x"})
    await cluster.wait_synced(NS, "db", 2, within=15)
    web = await wait_until(lambda: _stamped(cluster), within=10, what="web restarted")
    assert set(stamps(web)) == {"db"}
    await asyncio.sleep(1.5)
    assert len(workload_patches(cluster, mark)) == 1
    mark = cluster.mark()
    cluster.vault.write("apps/r/db", {"password": "two", "other": "y"})  # a key web does not use
    await cluster.wait_synced(NS, "db", 3, within=15)
    await asyncio.sleep(1.5)
    assert workload_patches(cluster, mark) == []


async def _stamped(env: OperatorEnv) -> dict[str, Any] | None:
    body = await env.cluster.get("Deployment", NS, "web")
    return body if stamps(body) else None


# -- helpers -----------------------------------------------------------------------------------------------------


def rolling(name: str, path: str, **rollout: Any) -> dict[str, Any]:
    """A VaultSecret with ``spec.rollout``."""
    body = vaultsecret(name, path)
    body["spec"]["rollout"] = rollout
    return body


def patches_of(env: OperatorEnv, since: int, kind: str = "Deployment", name: str | None = None) -> list[str]:
    """The operator's PATCH requests to workloads of ``kind`` (and ``name``) since ``since``."""
    suffix = f"/{PLURALS[kind]}/{name}" if name else f"/{PLURALS[kind]}/"
    return [w for w in env.operator_writes(since) if w.startswith("PATCH") and (suffix in w)]


def all_workload_patches(env: OperatorEnv, since: int) -> list[str]:
    return [w for w in env.operator_writes(since) if w.startswith("PATCH /apis/apps/v1/")]


async def settled(env: OperatorEnv) -> None:
    """No sync job nor rollout window queued or running (a debounce window waits in the queue)."""
    assert env.runtime is not None
    queue = env.runtime.queue
    await wait_until(lambda: len(queue) == 0 and not queue.running, 15, what="no job queued or running")


async def stamped(env: OperatorEnv, kind: str, name: str, *secrets: str) -> dict[str, Any]:
    """Wait until the workload's rollout annotation names ``secrets``."""

    async def check() -> dict[str, Any] | None:
        body = await env.cluster.get(kind, NS, name)
        return body if set(stamps(body)) >= set(secrets) else None

    return await wait_until(check, 15, what=f"{kind} {name} stamped for {secrets}")


async def events_with(env: OperatorEnv, reason: str) -> list[dict[str, Any]]:
    return [e for e in await env.events() if e.get("reason") == reason]


async def synced_with(env: OperatorEnv, body: dict[str, Any], path: str, values: dict[str, str]) -> None:
    env.vault.write(path, values)
    await env.create(body)
    await env.wait_synced(NS, body["metadata"]["name"], 1)


# -- who is restarted --------------------------------------------------------------------------------------------


async def test_explicit_targets_restart_once_and_a_missing_target_is_reported(cluster: OperatorEnv) -> None:
    env = cluster
    await env.create(workload("Deployment", "api"))  # reads the Secret through the API: no reference
    await env.create(workload("Deployment", "web", env={"DB": ("db", "password")}))  # a user, not a target
    targets = [{"kind": "Deployment", "name": "api"}, {"kind": "StatefulSet", "name": "missing"}]
    await synced_with(env, rolling("db", "apps/t/db", targets=targets, debounce="0s"), "apps/t/db",
                      {"password": "one", "user": "app"})  # fmt: skip
    mark = env.mark()
    env.vault.write("apps/t/db", {"password": "one", "user": "root"})  # a key no template references
    await env.wait_synced(NS, "db", 2)
    await stamped(env, "Deployment", "api", "db")
    await settled(env)
    assert all_workload_patches(env, mark) == [f"PATCH /apis/apps/v1/namespaces/{NS}/deployments/api"]
    [missing] = await events_with(env, core_rollout.ROLLOUT_TARGET_NOT_FOUND)
    assert missing["type"] == "Warning"
    assert missing["involvedObject"]["kind"] == "VaultSecret"
    assert missing["involvedObject"]["name"] == "db"
    assert "StatefulSet/missing" in missing["message"]
    assert "Deployment/api" not in missing["message"]
    [restarted] = await events_with(env, core_rollout.WORKLOADS_RESTARTED)
    assert restarted["message"] == "restarted Deployment/api (key user of Secret db)"


async def test_the_reload_annotation_opts_in_without_spec_rollout(
    cluster: OperatorEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``spec.rollout``: the default debounce (10 s, checked in tests/unit/core/test_rollout_core.py) is
    shortened here to keep the test short."""
    monkeypatch.setattr(core_rollout, "DEFAULT_DEBOUNCE", 0.5)
    env = cluster
    await env.create(workload("Deployment", "opted", env={"DB": ("db", "password")},
                              annotations={RELOAD_ANNOTATION: "true"}))  # fmt: skip
    await env.create(workload("Deployment", "plain", env={"DB": ("db", "password")}))
    await env.create(workload("Deployment", "off", env_from="db", annotations={RELOAD_ANNOTATION: "false"}))
    await env.create(workload("StatefulSet", "unused", env={"U": ("db", "user")},
                              annotations={RELOAD_ANNOTATION: "true"}))  # fmt: skip
    await synced_with(env, vaultsecret("db", "apps/o/db"), "apps/o/db", {"password": "one", "user": "app"})
    mark = env.mark()
    env.vault.write("apps/o/db", {"password": "two", "user": "app"})
    await env.wait_synced(NS, "db", 2)
    await stamped(env, "Deployment", "opted", "db")
    await settled(env)
    assert all_workload_patches(env, mark) == [f"PATCH /apis/apps/v1/namespaces/{NS}/deployments/opted"]
    body = await env.vs(NS, "db")
    assert body is not None
    assert body["status"]["rollout"]["workloads"] == [{"kind": "Deployment", "name": "opted", "keys": ["password"]}]


async def test_statefulsets_and_daemonsets_with_status_and_events(cluster: OperatorEnv) -> None:
    env = cluster
    items = [{"key": "password", "path": "password"}]
    store_volume = {"name": "db", "secret": {"secretName": "db", "items": items}}
    await env.create(workload("StatefulSet", "store", volumes=[store_volume]))
    await env.create(workload("DaemonSet", "agent", volumes=[{"name": "all", "projected": {"sources": [
        {"secret": {"name": "db"}}]}}]))  # fmt: skip
    await env.create(workload("Deployment", "puller", pull="db"))  # a pull secret is read at each pull
    await env.create(workload("Deployment", "hosts", volumes=[{"name": "h", "secret": {
        "secretName": "db", "items": [{"key": "host", "path": "host"}]}}]))  # fmt: skip
    await synced_with(env, rolling("db", "apps/k/db", auto=True, debounce="0s"), "apps/k/db",
                      {"password": "one", "host": "db.local"})  # fmt: skip
    # The StatefulSet changes between the operator's list and its patch: refused once with 409, read again.
    from scaivault_operator.testing import KubeFault

    conflict = env.cluster.inject(KubeFault("answer", r"/statefulsets/store$", method="PATCH", status=409))
    mark = env.mark()
    env.vault.write("apps/k/db", {"password": "two", "host": "db.local"})
    await env.wait_synced(NS, "db", 2)
    await stamped(env, "StatefulSet", "store", "db")
    await stamped(env, "DaemonSet", "agent", "db")
    await settled(env)
    assert conflict.hits == 1
    assert patches_of(env, mark, "StatefulSet") == [f"PATCH /apis/apps/v1/namespaces/{NS}/statefulsets/store"] * 2
    assert patches_of(env, mark, "DaemonSet") == [f"PATCH /apis/apps/v1/namespaces/{NS}/daemonsets/agent"]
    assert patches_of(env, mark, "Deployment") == []
    assert env.runtime is not None
    metrics = env.runtime.metrics
    assert metrics.value("workload_restarts_total", {"kind": "StatefulSet"}) == 1
    assert metrics.value("workload_restarts_total", {"kind": "DaemonSet"}) == 1
    assert metrics.value("rollout_errors_total", {"reason": "conflict"}) == 0

    body = await env.vs(NS, "db")
    assert body is not None
    rollout = body["status"]["rollout"]
    assert rollout["version"] == 2
    assert rollout["lastRolloutAt"].endswith("Z")
    assert rollout["workloads"] == [{"kind": "StatefulSet", "name": "store", "keys": ["password"]},
                                    {"kind": "DaemonSet", "name": "agent", "keys": ["password"]}]  # fmt: skip
    assert ready_condition(body)["status"] == "True"
    changed = {e["involvedObject"]["kind"]: e for e in await events_with(env, core_rollout.RESTARTED)}
    assert set(changed) == {"StatefulSet", "DaemonSet"}
    for kind, name in (("StatefulSet", "store"), ("DaemonSet", "agent")):
        event = changed[kind]
        assert event["involvedObject"]["name"] == name
        assert event["type"] == "Normal"
        assert event["message"] == ("restarted by scaivault-operator: key password of Secret db changed "
                                    "(VaultSecret db)")  # fmt: skip
    [summary] = await events_with(env, core_rollout.WORKLOADS_RESTARTED)
    assert summary["involvedObject"]["name"] == "db"
    assert summary["message"] == ("restarted StatefulSet/store (key password of Secret db), DaemonSet/agent "
                                  "(key password of Secret db)")  # fmt: skip


# -- debounce ----------------------------------------------------------------------------------------------------


async def test_two_vaultsecrets_changed_in_one_window_patch_the_deployment_once(cluster: OperatorEnv) -> None:
    env = cluster
    await env.create(workload("Deployment", "web", env={"DB": ("db", "password"), "CACHE": ("cache", "url")}))
    await synced_with(env, rolling("db", "apps/d/db", auto=True, debounce="3s"), "apps/d/db", {"password": "one"})
    await synced_with(env, rolling("cache", "apps/d/cache", auto=True, debounce="3s"), "apps/d/cache",
                      {"url": "redis://one"})  # fmt: skip
    mark = env.mark()
    # Two syncs a poll apart: the first opens the window (3 s), the second joins it.
    env.vault.write("apps/d/db", {"password": "two"})
    await env.wait_synced(NS, "db", 2)
    env.vault.write("apps/d/cache", {"url": "redis://two"})
    await env.wait_synced(NS, "cache", 2)
    assert all_workload_patches(env, mark) == [], "the window is still open"
    web = await stamped(env, "Deployment", "web", "db", "cache")
    await settled(env)
    assert patches_of(env, mark, "Deployment", "web") == [f"PATCH /apis/apps/v1/namespaces/{NS}/deployments/web"]
    assert set(stamps(web)) == {"db", "cache"}
    for name, key in (("db", "password"), ("cache", "url")):
        body = await env.vs(NS, name)
        assert body is not None
        assert body["status"]["rollout"]["workloads"] == [{"kind": "Deployment", "name": "web", "keys": [key]}]
    [event] = await events_with(env, core_rollout.RESTARTED)
    assert event["message"] == ("restarted by scaivault-operator: key url of Secret cache; key password of Secret db "
                                "changed (VaultSecret cache, db)")  # fmt: skip


# -- what restarts nothing ---------------------------------------------------------------------------------------


async def test_nothing_restarts_when_the_used_data_did_not_change(cluster: OperatorEnv) -> None:
    """A drift repair, the refresh annotation, an operator restart and a version that changes only an unused key
    patch no workload; then a changed used key (digested with the new process's key) restarts it once."""
    env = cluster
    web_patch = f"PATCH /apis/apps/v1/namespaces/{NS}/deployments/web"
    await env.create(workload("Deployment", "web", env={"DB": ("db", "password")}))
    await synced_with(env, rolling("db", "apps/n/db", auto=True, debounce="0s"), "apps/n/db",
                      {"password": "one", "other": "x"})  # fmt: skip
    mark = env.mark()
    env.vault.write("apps/n/db", {"password": "two", "other": "x"})
    await env.wait_synced(NS, "db", 2)
    await stamped(env, "Deployment", "web", "db")
    await settled(env)
    assert all_workload_patches(env, mark) == [web_patch], "the positive control"

    # A drift repair: someone edits the Secret's data; the operator writes version 2 back.
    mark = env.mark()
    await env.cluster.patch("Secret", NS, "db", {"data": {"password": b64("tampered")}})

    async def repaired() -> bool:
        secret = await env.secret(NS, "db")
        return secret is not None and secret["data"]["password"] == b64("two")

    await wait_until(repaired, 10, what="the drift repair")
    await settled(env)
    assert any(w.startswith("PATCH /api/v1/namespaces/team-a/secrets/db") for w in env.operator_writes(mark))
    assert all_workload_patches(env, mark) == [], "a drift repair"

    # The refresh annotation: one re-read at the same version.
    env.vault.stats.reset()
    mark = env.mark()
    await env.cluster.patch("VaultSecret", NS, "db", {"metadata": {"annotations": {ANNOTATION_REFRESH: "now"}}})
    await wait_until(lambda: env.vault.stats.snapshot().reads_of("apps/n/db") == {2: 1}, 10, what="the re-read")
    await settled(env)
    assert all_workload_patches(env, mark) == [], "a refresh"

    # An operator restart: nothing is written at all (the warm start trusts the status), and two polls find nothing.
    await env.stop_operator()
    mark = env.mark()
    await env.start_operator()
    lists = env.vault.stats.count("list")
    await wait_until(lambda: env.vault.stats.count("list") >= lists + 2, 10, what="two polls")
    await settled(env)
    assert all_workload_patches(env, mark) == [], "an operator restart"

    # A new version that changes only a key web does not use.
    mark = env.mark()
    env.vault.write("apps/n/db", {"password": "two", "other": "y"})
    await env.wait_synced(NS, "db", 3)
    await settled(env)
    assert all_workload_patches(env, mark) == [], "an unused key"

    # The used key: restarted once.
    mark = env.mark()
    env.vault.write("apps/n/db", {"password": "three", "other": "y"})
    await env.wait_synced(NS, "db", 4)
    await settled(env)
    assert all_workload_patches(env, mark) == [web_patch]


async def test_a_refresh_that_finds_a_new_version_restarts_the_users(cluster: OperatorEnv, dev_vault: Any) -> None:
    """``kubectl scaivault refresh`` right after a write, before the next poll (here: a connection that polls every
    10 minutes), writes the new version into the Secret; its users should restart as for a polled version."""
    env = cluster
    await env.create(cluster_connection("slow", dev_vault.url, poll="10m"))
    await env.create(workload("Deployment", "web", env={"DB": ("db", "password")}))
    body = rolling("db", "apps/f/db", auto=True, debounce="0s")
    body["spec"]["connectionRef"] = {"name": "slow"}
    await synced_with(env, body, "apps/f/db", {"password": "one"})
    mark = env.mark()
    env.vault.write("apps/f/db", {"password": "two"})
    await env.cluster.patch("VaultSecret", NS, "db", {"metadata": {"annotations": {ANNOTATION_REFRESH: "now"}}})
    await env.wait_synced(NS, "db", 2)
    await settled(env)
    assert all_workload_patches(env, mark) == [f"PATCH /apis/apps/v1/namespaces/{NS}/deployments/web"]


# -- no value anywhere -------------------------------------------------------------------------------------------

CANARY = "CANARY-ROLLOUT-VALUE-9c2d"
#: Loggers of the test's own infrastructure (the dev vault server, the emulated API server): not the operator.
INFRASTRUCTURE_LOGGERS = ("scaivault_operator.devvault", "kmock", "aiohttp.access", "aiohttp.server", "aiohttp.web")


def canary_forms(value: str) -> list[str]:
    """The value, its base64 (also the parts of it that do not depend on its neighbours) and its plain sha256 hex
    (whole and as the 16-character prefix a stamp has), also of its base64."""
    found = [value, b64(value)]
    for pad in (1, 2):
        encoded = base64.b64encode(b"\0" * pad + value.encode()).decode()
        found.append(encoded[4:-4])
    for text in (value, b64(value)):
        digest = hashlib.sha256(text.encode()).hexdigest()
        found += [digest, digest[:16]]
    return found


async def test_no_canary_in_workloads_events_status_metrics_or_logs(
    cluster: OperatorEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = cluster
    caplog.set_level(logging.DEBUG)
    await env.create(workload("Deployment", "web", env_from="canary"))
    await env.create(workload("StatefulSet", "store", env={"P": ("canary", "password")},
                              annotations={RELOAD_ANNOTATION: "true"}))  # fmt: skip
    await synced_with(env, rolling("canary", "apps/c/canary", auto=True, debounce="0s"), "apps/c/canary",
                      {"password": "before", "user": "app"})  # fmt: skip
    env.vault.write("apps/c/canary", {"password": CANARY, "user": "app"})
    await env.wait_synced(NS, "canary", 2)
    await stamped(env, "Deployment", "web", "canary")
    await stamped(env, "StatefulSet", "store", "canary")
    await settled(env)

    secret = await env.secret(NS, "canary")
    assert secret is not None
    assert secret["data"]["password"] == b64(CANARY), "the positive control"
    forms = canary_forms(CANARY)
    assert any(form in json.dumps(secret["data"]) for form in forms), "the detector sees the value where it is"

    places: dict[str, str] = {
        "Deployment": json.dumps(await env.cluster.get("Deployment", NS, "web")),
        "StatefulSet": json.dumps(await env.cluster.get("StatefulSet", NS, "store")),
        "Events": json.dumps(await env.events()),
        "VaultSecret": json.dumps(await env.vs(NS, "canary")),
    }
    assert env.runtime is not None
    places["metrics"] = env.runtime.metrics.render()
    assert "workload_restarts_total" in places["metrics"]
    places["logs"] = "\n".join(
        f"{r.name}: {r.getMessage()} {r.args!r}"
        for r in caplog.records
        if not r.name.startswith(INFRASTRUCTURE_LOGGERS)
    )
    assert "restarted Deployment team-a/web" in places["logs"]
    assert "WorkloadsRestarted" in places["Events"]
    assert "SecretChanged" in places["Events"]
    found = [f"{where}: {form}" for where, text in places.items() for form in forms if form in text]
    assert not found, found
