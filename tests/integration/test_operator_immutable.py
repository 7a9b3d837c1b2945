"""Immutable versioned Secrets (``spec.target.immutable``) with the real operator on the emulated API server and the
dev vault: each version is a new immutable Secret ``<name>-v<version>``, the workloads of ``spec.rollout`` move to it
by one patch of their pod template when a key they use differs, and versions beyond ``keepVersions`` that nothing
references any more are deleted. Counted in writes (``OperatorEnv.operator_writes``), not in times. The emulator has
neither a garbage collector nor the API server's refusal to change an immutable Secret's data: tests/e2e/
test_e2e_immutable.py shows both."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from operator_helpers import OperatorEnv, b64, decoded, vaultsecret, wait_until, workload
from test_operator_rollout import INFRASTRUCTURE_LOGGERS, canary_forms, events_with, settled

from scaivault_operator._core import rollout as core_rollout
from scaivault_operator._logic.workloads import pod_spec_of, referenced_secrets

NS = "team-a"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"


def immutable(name: str, path: str, *, keep: int | None = None, **spec: Any) -> dict[str, Any]:
    target: dict[str, Any] = {"immutable": True}
    if keep is not None:
        target["keepVersions"] = keep
    body = vaultsecret(name, path, target=target)
    body["spec"]["rollout"] = {"auto": True, "debounce": "0s"}
    body["spec"].update(spec)
    return body


async def references(env: OperatorEnv, name: str) -> set[str]:
    body = await env.cluster.get("Deployment", NS, name)
    return referenced_secrets(pod_spec_of(body or {}, "Deployment"))


async def on(env: OperatorEnv, name: str, *secrets: str) -> None:
    """Wait until Deployment ``name`` references exactly ``secrets``."""

    async def check() -> bool:
        return await references(env, name) == set(secrets)

    await wait_until(check, 15, what=f"Deployment {name} references {secrets}")


async def versions(env: OperatorEnv, base: str = "db") -> list[str]:
    """The Secrets of the namespace named ``base`` or ``base-v<n>``, sorted."""
    names = [s["metadata"]["name"] for s in await env.secrets() if s["metadata"]["namespace"] == NS]
    return sorted(n for n in names if n == base or (n.startswith(f"{base}-v") and n[len(base) + 2 :].isdigit()))


def secret_writes(env: OperatorEnv, since: int) -> list[str]:
    """The operator's writes of Secrets, as ``METHOD name`` (a create names none: ``POST``)."""
    return [w.replace(f"{SECRETS}/", "").replace(SECRETS, "").strip()
            for w in env.operator_writes(since) if SECRETS in w]  # fmt: skip


def workload_writes(env: OperatorEnv, since: int) -> list[str]:
    return sorted(w.replace(f"{DEPLOYMENTS}/", "") for w in env.operator_writes(since) if DEPLOYMENTS in w)


async def synced_version(env: OperatorEnv, name: str, version: int) -> dict[str, Any]:
    """Wait until the VaultSecret is Ready at ``version`` in Secret ``<name>-v<version>`` (status.secretName); that
    Secret."""

    async def check() -> dict[str, Any] | None:
        body, secret = await env.wait_synced(NS, name, version, within=15)
        return secret if body["status"].get("secretName") == f"{name}-v{version}" else None

    secret = await wait_until(check, 15, what=f"status.secretName {name}-v{version}")
    assert secret["metadata"]["name"] == f"{name}-v{version}"
    assert secret["immutable"] is True
    return secret


# -- the smoke scenario, counted -----------------------------------------------------------------------------------


async def test_versions_move_the_workloads_that_use_a_changed_key_and_old_ones_go(cluster: OperatorEnv) -> None:
    """web reads password, all reads every key (envFrom); both reference the unversioned name before the first sync.
    keepVersions 1: a version stays only while something references it. Then: an idle poll and a warm restart write
    nothing at all."""
    env = cluster
    env.vault.write("apps/i/db", {"password": "one", "other": "x"})
    await env.create(workload("Deployment", "web", env={"DB_PASSWORD": ("db", "password")}))
    await env.create(workload("Deployment", "all", env_from="db"))
    mark = env.mark()
    await env.create(immutable("db", "apps/i/db", keep=1))
    secret = await synced_version(env, "db", 1)
    assert decoded(secret) == {"password": "one", "other": "x"}
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("VaultSecret", "db", True)
    await on(env, "web", "db-v1")
    await on(env, "all", "db-v1")
    await settled(env)
    assert secret_writes(env, mark) == ["POST"], "one create; nothing deleted (the unversioned db never existed)"
    assert workload_writes(env, mark) == ["PATCH all", "PATCH web"]
    assert await versions(env) == ["db-v1"]

    mark = env.mark()
    env.vault.write("apps/i/db", {"password": "one", "other": "y"})  # web's key is the same
    await synced_version(env, "db", 2)
    await on(env, "all", "db-v2")
    await settled(env)
    assert await references(env, "web") == {"db-v1"}, "its key did not change: it stays"
    assert secret_writes(env, mark) == ["POST"]
    assert workload_writes(env, mark) == ["PATCH all"]
    assert await versions(env) == ["db-v1", "db-v2"], "db-v1 is beyond keepVersions but web references it"

    mark = env.mark()
    env.vault.write("apps/i/db", {"password": "two", "other": "y"})
    await synced_version(env, "db", 3)
    await on(env, "web", "db-v3")
    await on(env, "all", "db-v3")
    await settled(env)
    assert sorted(secret_writes(env, mark)) == ["DELETE db-v1", "DELETE db-v2", "POST"]
    assert workload_writes(env, mark) == ["PATCH all", "PATCH web"]
    assert await versions(env) == ["db-v3"]
    body = await env.vs(NS, "db")
    assert body is not None
    assert body["status"]["secretName"] == "db-v3"
    workloads = sorted(body["status"]["rollout"]["workloads"], key=lambda w: w["name"])
    assert workloads == [{"kind": "Deployment", "name": "all", "keys": ["password"]},
                         {"kind": "Deployment", "name": "web", "keys": ["password"]}]  # fmt: skip
    assert env.runtime is not None
    assert env.runtime.metrics.value("secret_writes_total", {"operation": "delete"}) == 2

    # Idle: two polls find nothing new.
    mark = env.mark()
    lists = env.vault.stats.count("list")
    await wait_until(lambda: env.vault.stats.count("list") >= lists + 2, 10, what="two polls")
    await settled(env)
    assert env.operator_writes(mark) == [], "an idle poll writes nothing"

    # A warm restart: the status and db-v3 agree; nothing is written, nothing read from ScaiVault.
    await env.stop_operator()
    env.vault.stats.reset()
    mark = env.mark()
    await env.start_operator()
    await wait_until(lambda: env.vault.stats.count("list") >= 2, 10, what="two polls after the restart")
    await settled(env)
    assert env.operator_writes(mark) == [], "a warm restart writes nothing"
    assert env.vault.stats.snapshot().reads_of("apps/i/db") == {}
    assert await versions(env) == ["db-v3"]


# -- drift ---------------------------------------------------------------------------------------------------------


async def test_only_the_current_version_is_repaired(cluster: OperatorEnv) -> None:
    env = cluster
    env.vault.write("apps/d/db", {"password": "one", "other": "x"})
    await env.create(workload("Deployment", "web", env={"P": ("db", "password")}))
    await env.create(immutable("db", "apps/d/db", keep=1))
    await synced_version(env, "db", 1)
    await on(env, "web", "db-v1")
    env.vault.write("apps/d/db", {"password": "one", "other": "y"})  # web stays on db-v1: kept
    await synced_version(env, "db", 2)
    await settled(env)
    assert await versions(env) == ["db-v1", "db-v2"]

    mark = env.mark()
    await env.cluster.delete("Secret", NS, "db-v2")  # the current version: drift
    await wait_until(lambda: env.secret(NS, "db-v2"), 10, what="db-v2 re-created")
    await settled(env)
    assert secret_writes(env, mark) == ["POST"], "re-created once"
    assert workload_writes(env, mark) == [], "a drift repair moves no workload"
    secret = await env.secret(NS, "db-v2")
    assert secret is not None
    assert decoded(secret) == {"password": "one", "other": "y"}
    assert secret["immutable"] is True

    mark = env.mark()
    await env.cluster.delete("Secret", NS, "db-v1")  # an old version: not drift, even though web references it
    lists = env.vault.stats.count("list")
    await wait_until(lambda: env.vault.stats.count("list") >= lists + 2, 10, what="two polls")
    await settled(env)
    assert env.operator_writes(mark) == [], "an old version is not re-created"
    assert await versions(env) == ["db-v2"]
    body = await env.vs(NS, "db")
    assert body is not None
    assert body["status"]["secretName"] == "db-v2"


# -- a spec change at the same version ------------------------------------------------------------------------------


async def test_a_spec_change_of_the_data_recreates_the_current_version(cluster: OperatorEnv) -> None:
    """Other ``keys`` at the same ScaiVault version: db-v1's data changes, and an immutable Secret cannot be patched
    so: deleted and created again. A workload that still references an older version moves to it."""
    env = cluster
    env.vault.write("apps/k/db", {"password": "one", "user": "app"})
    await env.create(workload("Deployment", "web", env={"P": ("db", "password")}))
    await env.create(immutable("db", "apps/k/db", keep=2))
    await synced_version(env, "db", 1)
    await on(env, "web", "db-v1")
    # Came after: still on the unversioned name.
    await env.create(workload("Deployment", "late", env={"P": ("db", "password")}))
    await settled(env)

    mark = env.mark()
    keys = [{"from": "user", "to": "password"}]  # password now holds the user: every password reader is concerned
    await env.cluster.patch("VaultSecret", NS, "db", {"spec": {"keys": keys}})

    async def rewritten() -> bool:
        secret = await env.secret(NS, "db-v1")
        return secret is not None and decoded(secret) == {"password": "app"}

    await wait_until(rewritten, 10, what="db-v1 holds the new keys")
    await on(env, "late", "db-v1")
    await settled(env)
    assert secret_writes(env, mark) == ["DELETE db-v1", "POST"], "recreated: an immutable Secret is never patched"
    assert "PATCH late" in workload_writes(env, mark)
    secret = await env.secret(NS, "db-v1")
    assert secret is not None
    assert secret["immutable"] is True
    body = await env.vs(NS, "db")
    assert body is not None
    assert body["status"]["secretName"] == "db-v1"


async def test_a_spec_change_of_the_data_restarts_the_workloads_on_the_current_version(cluster: OperatorEnv) -> None:
    """web reads password from db-v1; other ``keys`` put another value there at the same version: its pods run with
    the old value, and only a restart brings the new one (as for a mutable Secret, docs/rollout.md)."""
    env = cluster
    env.vault.write("apps/s/db", {"password": "one", "user": "app"})
    await env.create(workload("Deployment", "web", env={"P": ("db", "password")}))
    await env.create(immutable("db", "apps/s/db"))
    await synced_version(env, "db", 1)
    await on(env, "web", "db-v1")
    await settled(env)
    mark = env.mark()
    await env.cluster.patch("VaultSecret", NS, "db", {"spec": {"keys": [{"from": "user", "to": "password"}]}})

    async def rewritten() -> bool:
        secret = await env.secret(NS, "db-v1")
        return secret is not None and decoded(secret) == {"password": "app"}

    await wait_until(rewritten, 10, what="db-v1 holds the new keys")
    await settled(env)
    assert workload_writes(env, mark) == ["PATCH web"]


# -- from mutable to immutable -------------------------------------------------------------------------------------


async def test_a_mutable_vaultsecret_made_immutable(cluster: OperatorEnv) -> None:
    """Secret ``db`` becomes the oldest version. The switch writes db-v1 with the same data, so nothing moves (no
    used key differs); the next version that changes a used key moves the workloads off ``db``, which then goes
    (beyond keepVersions 1, referenced by nothing)."""
    env = cluster
    env.vault.write("apps/m/db", {"password": "one", "other": "x"})
    await env.create(workload("Deployment", "web", env={"P": ("db", "password")}))
    await env.create(workload("Deployment", "all", env_from="db"))
    body = vaultsecret("db", "apps/m/db")
    body["spec"]["rollout"] = {"auto": True, "debounce": "0s"}
    await env.create(body)
    await env.wait_synced(NS, "db", 1)
    await settled(env)

    mark = env.mark()
    await env.cluster.patch("VaultSecret", NS, "db", {"spec": {"target": {"immutable": True, "keepVersions": 1}}})
    await synced_version(env, "db", 1)
    await settled(env)
    assert secret_writes(env, mark) == ["POST"]
    assert workload_writes(env, mark) == [], "the same data: nobody moves"
    assert await versions(env) == ["db", "db-v1"], "db is still referenced"
    old = await env.secret(NS, "db")
    assert old is not None
    assert "immutable" not in old or old["immutable"] is not True

    mark = env.mark()
    env.vault.write("apps/m/db", {"password": "one", "other": "y"})
    await synced_version(env, "db", 2)
    await on(env, "all", "db-v2")
    await settled(env)
    assert await references(env, "web") == {"db"}
    assert workload_writes(env, mark) == ["PATCH all"]
    assert sorted(secret_writes(env, mark)) == ["DELETE db-v1", "POST"], "db-v1: beyond keepVersions, unreferenced"

    mark = env.mark()
    env.vault.write("apps/m/db", {"password": "two", "other": "y"})
    await synced_version(env, "db", 3)
    await on(env, "web", "db-v3")
    await on(env, "all", "db-v3")
    await settled(env)
    assert sorted(secret_writes(env, mark)) == ["DELETE db", "DELETE db-v2", "POST"]
    assert await versions(env) == ["db-v3"]


# -- no value anywhere ---------------------------------------------------------------------------------------------

CANARY = "CANARY-IMMUTABLE-VALUE-77e1"


async def test_no_canary_in_workloads_events_status_or_logs(cluster: OperatorEnv,
                                                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    env = cluster
    caplog.set_level(logging.DEBUG)
    env.vault.write("apps/c/canary", {"password": "before", "user": "app"})
    await env.create(workload("Deployment", "web", env={"P": ("canary", "password")}))
    await env.create(workload("Deployment", "all", env_from="canary"))
    await env.create(immutable("canary", "apps/c/canary", keep=1))
    await synced_version(env, "canary", 1)
    env.vault.write("apps/c/canary", {"password": CANARY, "user": "app"})
    secret = await synced_version(env, "canary", 2)
    await on(env, "web", "canary-v2")
    await on(env, "all", "canary-v2")
    await settled(env)
    assert secret["data"]["password"] == b64(CANARY), "the positive control"
    forms = canary_forms(CANARY)
    places: dict[str, str] = {
        "workloads": json.dumps([await env.cluster.get("Deployment", NS, n) for n in ("web", "all")]),
        "Events": json.dumps(await env.events()),
        "VaultSecret": json.dumps(await env.vs(NS, "canary")),
        "logs": "\n".join(
            f"{r.name}: {r.getMessage()} {r.args!r}"
            for r in caplog.records
            if not r.name.startswith(INFRASTRUCTURE_LOGGERS)
        ),
    }
    assert env.runtime is not None
    places["metrics"] = env.runtime.metrics.render()
    assert "deleted Secret canary-v1" in places["logs"]
    assert await events_with(env, core_rollout.WORKLOADS_RESTARTED)
    found = [f"{where}: {form}" for where, text in places.items() for form in forms if form in text]
    assert not found, found
