"""Lifecycle of a synced Secret on the emulated API server: ``spec.target.deletionPolicy`` (Retain: a finalizer of our
own, the Secret released before the VaultSecret goes) and ``spec.onSourceDeleted`` (Delete: the Secret goes when its
path is gone from ScaiVault, and comes back with it). Counted in writes, not times.

The emulator has no garbage collector (the Secret of a deleted VaultSecret with deletionPolicy Delete stays there;
tests/e2e/test_e2e_lifecycle_policies.py shows the collection on a real API server) but it does hold a deleted object
with finalizers (deletionTimestamp set, a MODIFIED event) until they are removed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from operator_helpers import OperatorEnv, decoded, opaque_secret, ready_condition, vaultsecret, wait_until

from scaivault_operator._logic.manifests import (
    ANNOTATION_PREFIX,
    MANAGED_BY_LABEL,
    RETAIN_FINALIZER,
    VAULTSECRET_LABEL,
)

NS = "team-a"
RETAIN = {"deletionPolicy": "Retain", "labels": {"team": "payments"}}
VS_PATH = "/apis/scaivault.scailabs.ai/v1alpha1/namespaces/team-a/vaultsecrets/db"
SECRET_PATH = "/api/v1/namespaces/team-a/secrets/db"


def finalizers(body: dict[str, Any] | None) -> list[str]:
    return list(((body or {}).get("metadata") or {}).get("finalizers") or [])


async def synced_retain(env: OperatorEnv, name: str = "db") -> dict[str, Any]:
    env.vault.write(f"apps/l/{name}", {"password": "pw", "user": "app"})
    await env.create(vaultsecret(name, f"apps/l/{name}", target=RETAIN))
    _, secret = await env.wait_synced(NS, name, 1)
    body = await env.vs(NS, name)
    assert finalizers(body) == [RETAIN_FINALIZER]
    return secret


def assert_released(secret: dict[str, Any] | None) -> None:
    assert secret is not None, "the Secret was retained"
    meta = secret["metadata"]
    assert not meta.get("ownerReferences")
    assert MANAGED_BY_LABEL not in (meta.get("labels") or {})
    assert VAULTSECRET_LABEL not in (meta.get("labels") or {})
    assert meta["labels"]["team"] == "payments"  # the user's label stays
    assert not [key for key in meta.get("annotations") or {} if key.startswith(ANNOTATION_PREFIX)]
    assert decoded(secret) == {"password": "pw", "user": "app"}


async def test_retain_adds_the_finalizer_and_releases_the_secret_before_the_vaultsecret_goes(cluster):
    await synced_retain(cluster)
    await asyncio.sleep(0.3)  # the operator's own writes and their events settle
    mark = cluster.mark()
    await cluster.cluster.delete("VaultSecret", NS, "db")
    await cluster.wait_gone("VaultSecret", NS, "db")
    assert_released(await cluster.secret(NS, "db"))
    # One patch releases the Secret, one removes the finalizer: nothing else is written, no sync runs again.
    assert cluster.operator_writes(mark) == [f"PATCH {SECRET_PATH}", f"PATCH {VS_PATH}"]
    await asyncio.sleep(1.1)  # a negative: the released Secret is not taken back, nor deleted
    assert cluster.operator_writes(mark)[2:] == []
    assert_released(await cluster.secret(NS, "db"))


async def test_delete_policy_never_gets_a_finalizer(cluster):
    cluster.vault.write("apps/l/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "apps/l/db"))
    _, secret = await cluster.wait_synced(NS, "db", 1)
    assert finalizers(await cluster.vs(NS, "db")) == []
    assert secret["metadata"]["ownerReferences"][0]["controller"] is True  # the garbage collector's way
    mark = cluster.mark()
    await cluster.cluster.delete("VaultSecret", NS, "db")
    await cluster.wait_gone("VaultSecret", NS, "db")  # at once: nothing waits for the operator
    await asyncio.sleep(0.5)
    assert cluster.operator_writes(mark) == []  # the emulator has no garbage collector: the Secret is left to it


async def test_switching_the_policy_adds_and_removes_the_finalizer_once(cluster):
    await synced_retain(cluster)
    await asyncio.sleep(0.3)
    mark = cluster.mark()
    await cluster.cluster.patch("VaultSecret", NS, "db", {"spec": {"target": {"deletionPolicy": "Delete"}}})
    await wait_until(lambda: _no_finalizer(cluster), 5, what="finalizer removed")
    await asyncio.sleep(0.5)
    assert cluster.operator_writes(mark).count(f"PATCH {VS_PATH}") == 1
    assert f"PATCH {SECRET_PATH}" not in cluster.operator_writes(mark)  # same data: the Secret is not written
    mark = cluster.mark()
    await cluster.cluster.patch("VaultSecret", NS, "db", {"spec": {"target": {"deletionPolicy": "Retain"}}})
    await wait_until(lambda: _has_finalizer(cluster), 5, what="finalizer added")
    await asyncio.sleep(0.5)
    assert cluster.operator_writes(mark).count(f"PATCH {VS_PATH}") == 1


async def _no_finalizer(env: OperatorEnv) -> bool:
    return finalizers(await env.vs(NS, "db")) == []


async def _has_finalizer(env: OperatorEnv) -> bool:
    return finalizers(await env.vs(NS, "db")) == [RETAIN_FINALIZER]


async def test_a_finalizer_removed_by_hand_is_put_back(cluster):
    await synced_retain(cluster)
    await cluster.cluster.patch("VaultSecret", NS, "db", {"metadata": {"finalizers": None}})
    await wait_until(lambda: _has_finalizer(cluster), 5, what="finalizer put back")


async def test_retain_while_the_operator_is_down_waits_then_releases(cluster):
    await synced_retain(cluster)
    await cluster.stop_operator()
    await cluster.cluster.delete("VaultSecret", NS, "db")
    await asyncio.sleep(0.3)
    body = await cluster.vs(NS, "db")
    assert body is not None
    assert body["metadata"].get("deletionTimestamp")
    mark = cluster.mark()
    await cluster.start_operator()  # the listing shows it with a deletionTimestamp: released, never synced
    await cluster.wait_gone("VaultSecret", NS, "db")
    assert_released(await cluster.secret(NS, "db"))
    writes = cluster.operator_writes(mark)
    assert f"PATCH {SECRET_PATH}" in writes
    assert f"PATCH {VS_PATH}" in writes
    assert not [w for w in writes if w.endswith("/status") and "vaultsecrets" in w]


async def test_retain_leaves_a_secret_that_is_gone_or_not_ours_alone(cluster):
    await synced_retain(cluster)
    await cluster.stop_operator()
    await cluster.cluster.delete("Secret", NS, "db")
    await cluster.create(opaque_secret("db", NS, {"password": "someone-else"}))  # not ours now
    await cluster.cluster.delete("VaultSecret", NS, "db")
    mark = cluster.mark()
    await cluster.start_operator()
    await cluster.wait_gone("VaultSecret", NS, "db")
    assert cluster.operator_writes(mark) == [f"PATCH {VS_PATH}"]  # only the finalizer
    secret = await cluster.secret(NS, "db")
    assert secret is not None
    assert decoded(secret) == {"password": "someone-else"}


async def test_a_failed_release_is_retried_and_the_finalizer_stays_until_it_succeeds(cluster):
    from scaivault_operator.testing import KubeFault

    await synced_retain(cluster)
    refused = KubeFault(kind="answer", method="PATCH", path=SECRET_PATH + "$", status=503, times=2)
    fault = cluster.cluster.inject(refused)
    await cluster.cluster.delete("VaultSecret", NS, "db")
    await cluster.wait_gone("VaultSecret", NS, "db", within=15)
    assert fault.hits == 2
    assert_released(await cluster.secret(NS, "db"))


async def test_on_source_deleted_delete_removes_the_secret_and_brings_it_back(cluster):
    cluster.vault.write("apps/l/db", {"password": "pw"})
    body = vaultsecret("db", "apps/l/db")
    body["spec"]["onSourceDeleted"] = "Delete"
    await cluster.create(body)
    await cluster.wait_synced(NS, "db", 1)
    cluster.vault.delete("apps/l/db")
    vs = await cluster.wait_reason(NS, "db", "SourceNotFound", within=10)
    assert "was deleted (spec.onSourceDeleted: Delete)" in ready_condition(vs)["message"]
    assert await cluster.secret(NS, "db") is None
    await asyncio.sleep(0.3)
    mark = cluster.mark()
    await asyncio.sleep(1.5)  # a poll or two and a retry: the Secret is not re-created, no new write
    assert [w for w in cluster.operator_writes(mark) if "/secrets/" in w] == []
    cluster.vault.write("apps/l/db", {"password": "again"})
    _, secret = await cluster.wait_synced(NS, "db", 1, within=10)
    assert decoded(secret) == {"password": "again"}


async def test_on_source_deleted_retain_keeps_the_last_data(cluster):
    cluster.vault.write("apps/l/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "apps/l/db"))
    await cluster.wait_synced(NS, "db", 1)
    cluster.vault.delete("apps/l/db")
    await cluster.wait_reason(NS, "db", "SourceNotFound", within=10)
    secret = await cluster.secret(NS, "db")
    assert secret is not None
    assert decoded(secret) == {"password": "pw"}


async def test_on_source_deleted_delete_never_deletes_a_secret_that_is_not_ours(cluster):
    await cluster.create(opaque_secret("db", NS, {"password": "theirs"}))
    body = vaultsecret("db", "missing/l/db")
    body["spec"]["onSourceDeleted"] = "Delete"
    await cluster.create(body)
    vs = await cluster.wait_reason(NS, "db", "SourceNotFound", within=10)
    await wait_until(lambda: _not_ours_reported(cluster), 10, what="the poll saw the path gone")
    secret = await cluster.secret(NS, "db")
    assert secret is not None
    assert decoded(secret) == {"password": "theirs"}
    assert vs is not None


async def _not_ours_reported(env: OperatorEnv) -> bool:
    message = ready_condition(await env.vs(NS, "db")).get("message") or ""
    return "is not managed by this VaultSecret and was left alone" in message
