"""``spec.target.creationPolicy: Merge`` with the real operator on the emulated API server: only the VaultSecret's keys
are written into a Secret someone else made and keeps; its other keys, type, labels, annotations and ownerReferences
stay; a key no longer wanted is removed; an absent Secret is TargetNotFound until it is created; the refusals; the
deletion (our finalizer: Delete removes our keys, Retain keeps them, the Secret stays either way); leaving Merge; a
warm restart that costs nothing; and no value outside the Secret's data. Counted in writes, not times."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from operator_helpers import (
    POLL_SECONDS,
    OperatorEnv,
    b64,
    decoded,
    opaque_secret,
    ready_condition,
    vaultsecret,
    wait_until,
)
from test_operator_canary import INFRASTRUCTURE_LOGGERS, forms, record_text

from scaivault_operator._logic.manifests import (
    ANNOTATION_MERGED_BY,
    ANNOTATION_MERGED_BY_UID,
    ANNOTATION_MERGED_KEYS,
    ANNOTATION_PREFIX,
    MANAGED_BY_LABEL,
    MERGE_LABEL,
    RETAIN_FINALIZER,
    SERVICE_ACCOUNT_TOKEN_TYPE,
    VAULTSECRET_LABEL,
)

NS = "team-a"
NAME = "app-config"
VS_PATH = f"/apis/scaivault.scailabs.ai/v1alpha1/namespaces/{NS}/vaultsecrets/db"
SECRET_PATH = f"/api/v1/namespaces/{NS}/secrets/{NAME}"
MERGE = {"name": NAME, "creationPolicy": "Merge"}
THEIRS = {"LOG_LEVEL": "info", "password": "theirs"}
OTHER_REF = {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "uid": "u-cm"}


def their_secret(data: dict[str, str] | None = None, name: str = NAME) -> dict[str, Any]:
    """A Secret someone else made: their keys, label, annotation and a (non-controller) owner."""
    body = opaque_secret(name, NS, THEIRS if data is None else data, labels={"app": "web"})
    body["metadata"]["annotations"] = {"example.com/owner": "web-team"}
    body["metadata"]["ownerReferences"] = [OTHER_REF]
    return body


def merge_vs(vs_name: str = "db", path: str = "apps/m/db", **target: Any) -> dict[str, Any]:
    return vaultsecret(vs_name, path, target={**MERGE, **target})


def finalizers(body: dict[str, Any] | None) -> list[str]:
    return list(((body or {}).get("metadata") or {}).get("finalizers") or [])


def ours(secret: dict[str, Any] | None) -> list[str]:
    """Our labels and annotations on the Secret."""
    meta = (secret or {}).get("metadata") or {}
    return sorted(key for key in {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
                  if key.startswith(ANNOTATION_PREFIX) or key in (MANAGED_BY_LABEL, VAULTSECRET_LABEL))  # fmt: skip


def secret_writes(env: OperatorEnv, since: int) -> list[str]:
    return [w for w in env.operator_writes(since) if "/secrets" in w]


async def merged(env: OperatorEnv, data: dict[str, str] | None = None, **target: Any) -> dict[str, Any]:
    """Their Secret, then a Merge VaultSecret writing ``data`` into it, synced at version 1."""
    env.vault.write("apps/m/db", data or {"password": "pw", "host": "db.internal"})
    await env.create(their_secret())
    await env.create(merge_vs(**target))
    _, secret = await env.wait_synced(NS, "db", 1)
    await asyncio.sleep(0.3)  # the watch events of the operator's own writes settle
    return secret


# -- writing -----------------------------------------------------------------------------------------------------


async def test_merge_writes_only_our_keys_and_keeps_the_rest_of_the_secret(cluster):
    cluster.vault.write("apps/m/db", {"password": "pw", "host": "db.internal"})
    await cluster.create(their_secret())
    mark = cluster.mark()
    await cluster.create(merge_vs(labels={"team": "payments"}, annotations={"example.com/note": "merged"}))
    body, secret = await cluster.wait_synced(NS, "db", 1)

    assert decoded(secret) == {"LOG_LEVEL": "info", "password": "pw", "host": "db.internal"}  # theirs overwritten
    meta = secret["metadata"]
    assert meta["ownerReferences"] == [OTHER_REF]  # none added
    assert meta["labels"] == {"app": "web", "team": "payments", MERGE_LABEL: "true"}  # no managed-by
    assert meta["annotations"]["example.com/owner"] == "web-team"
    assert meta["annotations"]["example.com/note"] == "merged"
    assert meta["annotations"][ANNOTATION_MERGED_KEYS] == "host,password"
    assert meta["annotations"][ANNOTATION_MERGED_BY] == "db"
    assert meta["annotations"][ANNOTATION_MERGED_BY_UID] == body["metadata"]["uid"]
    assert secret["type"] == "Opaque"
    assert finalizers(body) == [RETAIN_FINALIZER]  # no ownerReference: the operator removes the keys itself
    assert body["status"]["secretName"] == NAME
    # The finalizer, one merge patch, the status: never a create.
    await asyncio.sleep(0.3)
    assert cluster.operator_writes(mark) == [f"PATCH {VS_PATH}", f"PATCH {SECRET_PATH}", f"PATCH {VS_PATH}/status"]

    cluster.vault.write("apps/m/db", {"password": "pw2", "host": "db.internal"})
    mark = cluster.mark()
    _, secret = await cluster.wait_synced(NS, "db", 2, within=5 * POLL_SECONDS)
    assert decoded(secret) == {"LOG_LEVEL": "info", "password": "pw2", "host": "db.internal"}
    assert secret_writes(cluster, mark) == [f"PATCH {SECRET_PATH}"]
    patch = next(r for r in cluster.operator_requests(mark) if r.method.value == "PATCH" and r.url.path == SECRET_PATH)
    assert set(json.loads(patch.body)["data"]) == {"password"}  # only the key that changed


async def test_a_key_no_longer_wanted_is_removed_and_theirs_stay(cluster):
    await merged(cluster)
    mark = cluster.mark()
    await cluster.cluster.patch("VaultSecret", NS, "db", {"spec": {"keys": [{"from": "password"}]}})

    async def host_removed() -> bool:
        secret = await cluster.secret(NS, NAME)
        return secret is not None and "host" not in secret["data"]

    await wait_until(host_removed, what="the key host removed")
    secret = await cluster.secret(NS, NAME)
    assert secret is not None
    assert decoded(secret) == {"LOG_LEVEL": "info", "password": "pw"}
    assert secret["metadata"]["annotations"][ANNOTATION_MERGED_KEYS] == "password"
    await asyncio.sleep(0.3)
    assert secret_writes(cluster, mark) == [f"PATCH {SECRET_PATH}"]

    cluster.vault.write("apps/m/db", {"other": "x"})  # the source lost the key: spec.keys cannot be satisfied
    await cluster.wait_reason(NS, "db", "InvalidSourceData", within=5 * POLL_SECONDS)
    await cluster.cluster.patch("VaultSecret", NS, "db", {"spec": {"keys": None}})
    _, secret = await cluster.wait_synced(NS, "db", 2, within=5 * POLL_SECONDS)
    assert decoded(secret) == {"LOG_LEVEL": "info", "other": "x"}  # password was ours: gone with the source


async def test_an_absent_secret_is_target_not_found_until_it_is_created(cluster):
    cluster.vault.write("apps/m/db", {"password": "pw"})
    mark = cluster.mark()
    await cluster.create(merge_vs())
    body = await cluster.wait_reason(NS, "db", "TargetNotFound")
    message = ready_condition(body)["message"]
    assert message.startswith(f"Secret {NS}/{NAME} does not exist: creationPolicy Merge writes keys only into an")
    assert "spec.target.creationPolicy: Owner" in message
    await asyncio.sleep(1.0)  # a few retries (backoff from 0.2 s): nothing is created
    assert secret_writes(cluster, mark) == []
    assert await cluster.secret(NS, NAME) is None
    warnings = [e for e in await cluster.events() if e.get("reason") == "TargetNotFound"]
    assert len(warnings) == 1  # one Warning on the transition, not one per retry

    await cluster.create(their_secret())
    _, secret = await cluster.wait_synced(NS, "db", 1, within=5)
    assert decoded(secret) == {**THEIRS, "password": "pw"}


# -- refusals ----------------------------------------------------------------------------------------------------


async def test_refusals_leave_the_secret_untouched(cluster):
    cluster.vault.write("apps/m/db", {"password": "pw"})
    token = opaque_secret("sa-token", NS, {"token": "t"})
    token["type"] = SERVICE_ACCOUNT_TOKEN_TYPE
    token["metadata"]["annotations"] = {"kubernetes.io/service-account.name": "default"}
    owned = their_secret(name="owned")
    owned["metadata"]["ownerReferences"] = [{"apiVersion": "scaivault.scailabs.ai/v1alpha1", "kind": "VaultSecret",
                                             "name": "other", "uid": "u-other", "controller": True}]  # fmt: skip
    await cluster.create(token)
    await cluster.create(owned)
    await cluster.create(their_secret(name="shared"))
    mark = cluster.mark()
    await cluster.create(merge_vs("token", name="sa-token"))
    await cluster.create(merge_vs("owned", name="owned"))
    await cluster.create(merge_vs("first", name="shared"))
    await cluster.wait_synced(NS, "first", 1)
    await cluster.create(merge_vs("second", name="shared"))  # another VaultSecret already merges into it

    expected = {
        "token": f"Secret {NS}/sa-token is of type {SERVICE_ACCOUNT_TOKEN_TYPE}",
        "owned": f"Secret {NS}/owned is controlled by VaultSecret/other",
        "second": f"Secret {NS}/shared already receives keys from another VaultSecret",
    }
    for name, start in expected.items():
        body = await cluster.wait_reason(NS, name, "TargetConflict")
        assert ready_condition(body)["message"].startswith(start), ready_condition(body)["message"]
    await asyncio.sleep(0.5)  # retries with backoff: still nothing written
    assert [w for w in secret_writes(cluster, mark) if not w.endswith("/shared")] == []
    assert secret_writes(cluster, mark) == [f"PATCH /api/v1/namespaces/{NS}/secrets/shared"]  # the first merge only
    token_now = await cluster.secret(NS, "sa-token")
    assert token_now is not None
    assert decoded(token_now) == {"token": "t"}
    shared = await cluster.secret(NS, "shared")
    assert shared is not None
    assert shared["metadata"]["annotations"][ANNOTATION_MERGED_BY] == "first"


# -- deletion ----------------------------------------------------------------------------------------------------


async def test_deleting_with_delete_removes_our_keys_and_the_secret_stays(cluster):
    await merged(cluster, labels={"team": "payments"})
    mark = cluster.mark()
    await cluster.cluster.delete("VaultSecret", NS, "db")
    await cluster.wait_gone("VaultSecret", NS, "db")
    secret = await cluster.secret(NS, NAME)
    assert secret is not None, "the Secret is not ours: it stays"
    assert decoded(secret) == {"LOG_LEVEL": "info"}  # "password" was taken over, then removed with our keys
    assert ours(secret) == []
    assert secret["metadata"]["ownerReferences"] == [OTHER_REF]
    assert secret["metadata"]["labels"] == {"app": "web", "team": "payments"}  # spec.target.labels stay
    assert cluster.operator_writes(mark) == [f"PATCH {SECRET_PATH}", f"PATCH {VS_PATH}"]


async def test_deleting_with_retain_keeps_our_keys_and_drops_our_marks(cluster):
    await merged(cluster, deletionPolicy="Retain")
    mark = cluster.mark()
    await cluster.cluster.delete("VaultSecret", NS, "db")
    await cluster.wait_gone("VaultSecret", NS, "db")
    secret = await cluster.secret(NS, NAME)
    assert secret is not None
    assert decoded(secret) == {"LOG_LEVEL": "info", "password": "pw", "host": "db.internal"}
    assert ours(secret) == []
    assert cluster.operator_writes(mark) == [f"PATCH {SECRET_PATH}", f"PATCH {VS_PATH}"]


async def test_deleted_while_the_operator_is_down_waits_then_removes_the_keys(cluster):
    await merged(cluster)
    await cluster.stop_operator()
    await cluster.cluster.delete("VaultSecret", NS, "db")
    await asyncio.sleep(0.3)
    body = await cluster.vs(NS, "db")
    assert body is not None
    assert body["metadata"].get("deletionTimestamp")
    await cluster.start_operator()
    await cluster.wait_gone("VaultSecret", NS, "db")
    secret = await cluster.secret(NS, NAME)
    assert secret is not None
    assert decoded(secret) == {"LOG_LEVEL": "info"}


# -- leaving Merge -----------------------------------------------------------------------------------------------


async def test_another_target_name_takes_our_keys_out_of_the_old_secret(cluster):
    await merged(cluster)
    await cluster.create(their_secret({"x": "1"}, name="next"))
    await cluster.cluster.patch("VaultSecret", NS, "db", {"spec": {"target": {"name": "next"}}})

    async def moved() -> bool:
        old, new = await cluster.secret(NS, NAME), await cluster.secret(NS, "next")
        return bool(old and new and "host" not in old["data"] and "host" in new["data"])

    await wait_until(moved, what="the keys moved to Secret next")
    old = await cluster.secret(NS, NAME)
    assert old is not None
    assert decoded(old) == {"LOG_LEVEL": "info"}
    assert ours(old) == []
    await cluster.wait_synced(NS, "db", 1)


async def test_switching_to_owner_takes_our_keys_out_and_reports_the_conflict(cluster):
    await merged(cluster)
    await cluster.cluster.patch("VaultSecret", NS, "db", {"spec": {"target": {"creationPolicy": "Owner"}}})
    body = await cluster.wait_reason(NS, "db", "TargetConflict")
    assert "is not managed by this VaultSecret" in ready_condition(body)["message"]
    secret = await cluster.secret(NS, NAME)
    assert secret is not None
    assert decoded(secret) == {"LOG_LEVEL": "info"}
    assert ours(secret) == []
    await wait_until(lambda: _no_finalizer(cluster), 5, what="the finalizer removed: Owner, Delete")


async def _no_finalizer(env: OperatorEnv) -> bool:
    return finalizers(await env.vs(NS, "db")) == []


async def test_on_source_deleted_delete_removes_our_keys_and_brings_them_back(cluster):
    cluster.vault.write("apps/m/db", {"host": "db.internal"})
    await cluster.create(their_secret())
    body = merge_vs()
    body["spec"]["onSourceDeleted"] = "Delete"
    await cluster.create(body)
    await cluster.wait_synced(NS, "db", 1)
    cluster.vault.delete("apps/m/db")
    vs = await cluster.wait_reason(NS, "db", "SourceNotFound", within=10)
    assert "the keys of this VaultSecret were removed from Secret app-config" in ready_condition(vs)["message"]
    secret = await cluster.secret(NS, NAME)
    assert secret is not None
    assert decoded(secret) == THEIRS
    cluster.vault.write("apps/m/db", {"host": "again"})
    _, secret = await cluster.wait_synced(NS, "db", 1, within=10)
    assert decoded(secret) == {**THEIRS, "host": "again"}


# -- restarts ----------------------------------------------------------------------------------------------------


async def test_a_warm_restart_costs_no_read_and_no_write(cluster):
    await merged(cluster)
    status = (await cluster.vs(NS, "db"))["status"]
    await cluster.stop_operator()
    cluster.vault.stats.reset()
    mark = cluster.mark()
    runtime = await cluster.start_operator()
    await asyncio.sleep(2.1 * POLL_SECONDS)
    assert cluster.vault.stats.snapshot().calls["read"] == 0
    assert cluster.operator_writes(mark) == []
    assert runtime.syncs == 0
    assert (await cluster.vs(NS, "db"))["status"] == status

    cluster.vault.write("apps/m/db", {"password": "pw2", "host": "db.internal"})  # and it still follows
    _, secret = await cluster.wait_synced(NS, "db", 2, within=5 * POLL_SECONDS)
    assert decoded(secret)["password"] == "pw2"


async def test_a_merged_key_edited_while_the_operator_was_down_is_repaired_at_the_restart(cluster):
    await merged(cluster)
    await cluster.stop_operator()
    await cluster.cluster.patch("Secret", NS, NAME, {"data": {"password": b64("tampered"), "LOG_LEVEL": b64("x")}})
    await cluster.start_operator()

    async def repaired() -> bool:
        secret = await cluster.secret(NS, NAME)
        return secret is not None and decoded(secret)["password"] == "pw"

    await wait_until(repaired, what="the merged key repaired")
    secret = await cluster.secret(NS, NAME)
    assert secret is not None
    assert decoded(secret)["LOG_LEVEL"] == "x"  # not ours: left as edited


# -- canary ------------------------------------------------------------------------------------------------------

CANARY_VALUE = "CANARY-MERGE-VALUE-5d1c"
CANARY_THEIRS = "CANARY-MERGE-THEIRS-90ab"
CANARIES = [form for value in (CANARY_VALUE, CANARY_THEIRS) for form in forms(value)]


def leaks(text: str) -> list[str]:
    return [canary for canary in CANARIES if canary in text]


async def test_no_value_outside_the_secrets_data(cluster, caplog):
    """Through a merge that takes over a key, a new version, TargetNotFound, TargetConflict (another VaultSecret), a
    removed key and the deletion: neither our value nor theirs is in a log line, an Event, a status or the labels and
    annotations of any Secret."""
    caplog.set_level(logging.DEBUG)
    cluster.vault.write("apps/m/db", {"password": CANARY_VALUE, "host": "h"})
    await cluster.create(their_secret({"password": CANARY_THEIRS, "token": CANARY_THEIRS}))
    await cluster.create(merge_vs())
    await cluster.wait_synced(NS, "db", 1)
    await cluster.create(merge_vs("second", name=NAME))
    await cluster.wait_reason(NS, "second", "TargetConflict")
    await cluster.create(merge_vs("missing", name="missing"))
    await cluster.wait_reason(NS, "missing", "TargetNotFound")
    cluster.vault.write("apps/m/db", {"password": CANARY_VALUE + "2"})
    await cluster.wait_synced(NS, "db", 2, within=5 * POLL_SECONDS)
    secret = await cluster.secret(NS, NAME)
    assert secret is not None
    assert leaks(json.dumps(secret["data"])), "the detector sees the values where they are"
    assert any("overwrites a key of Secret app-config" in r.getMessage() and "password" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    for name in ("db", "second", "missing"):
        await cluster.cluster.delete("VaultSecret", NS, name)
        await cluster.wait_gone("VaultSecret", NS, name)
    await cluster.stop_operator()

    found: list[str] = []
    for record in caplog.records:
        if not record.name.startswith(INFRASTRUCTURE_LOGGERS) and (hits := leaks(record_text(record))):
            found.append(f"log {record.name}: {hits}: {record.getMessage()[:300]}")
    for event in await cluster.events():
        if hits := leaks(json.dumps(event)):
            found.append(f"Event {event.get('reason')}: {hits}")
    for secret in await cluster.secrets():
        meta = secret["metadata"]
        if hits := leaks(json.dumps({"labels": meta.get("labels"), "annotations": meta.get("annotations")})):
            found.append(f"Secret {meta['name']} metadata: {hits}")
    assert not found, "\n".join(found)
    secret = await cluster.secret(NS, NAME)
    assert secret is not None
    assert decoded(secret) == {"token": CANARY_THEIRS}  # our keys gone with the VaultSecret
