"""The happy paths on a real cluster: a VaultSecret becomes a Secret, follows new versions, or stays pinned."""

from __future__ import annotations

import pytest
from e2e_support import E2E, annotations_of, decoded_data, labels_of, ready_condition, wait_for

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import (
    ANNOTATION_CONNECTION,
    ANNOTATION_DATA_HASH,
    ANNOTATION_PATH,
    ANNOTATION_VERSION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    VAULTSECRET_LABEL,
)

pytestmark = pytest.mark.e2e

PATH = "e2e/billing/salesforce"
DATA = {"client_id": "client-1", "client_secret": "s3cr3t-1"}
ROTATED = {"client_id": "client-1", "client_secret": "s3cr3t-2"}


async def test_create_materializes_the_secret(env: E2E, operator: Runtime | None) -> None:
    """Secret data, owner reference, labels and annotations; status; `kubectl get` columns; no Event (a first sync)."""
    env.write(PATH, DATA)
    created = await env.create_vaultsecret("salesforce", PATH)
    uid = created["metadata"]["uid"]

    vs = await env.wait_ready("salesforce", version=1)
    secret = await env.wait_secret_data("salesforce", DATA)

    assert secret.get("type") == "Opaque"
    refs = secret["metadata"].get("ownerReferences") or []
    assert [
        (r["apiVersion"], r["kind"], r["name"], r["uid"], r.get("controller"), r.get("blockOwnerDeletion"))
        for r in refs
    ] == [(API_VERSION, "VaultSecret", "salesforce", uid, True, True)], refs
    labels = labels_of(secret)
    assert labels.get(MANAGED_BY_LABEL) == MANAGED_BY, labels
    assert labels.get(VAULTSECRET_LABEL) == "salesforce", labels
    annotations = annotations_of(secret)
    assert annotations.get(ANNOTATION_PATH) == PATH, annotations
    assert annotations.get(ANNOTATION_VERSION) == "1", annotations
    assert annotations.get(ANNOTATION_CONNECTION) == "VaultConnection/vault", annotations
    assert annotations.get(ANNOTATION_DATA_HASH, "").startswith("sha256:"), annotations

    status = vs["status"]
    ready = ready_condition(vs)
    assert ready is not None
    assert ready["status"] == "True", ready
    assert ready["reason"] == "Synced", ready
    assert PATH in ready["message"], ready
    assert ready.get("lastTransitionTime"), ready
    assert ready.get("observedGeneration") == vs["metadata"]["generation"], ready
    assert status.get("syncedVersion") == 1, status
    assert status.get("secretName") == "salesforce", status
    assert status.get("syncedAt"), status

    # What `kubectl get vaultsecret -o wide` shows: the API server evaluates the CRD's printer columns.
    columns = await env.api.printer_columns(env.namespace, "salesforce")
    assert columns.get("Name") == "salesforce", columns
    assert columns.get("Path") == PATH, columns
    assert columns.get("Version") == 1, columns
    assert columns.get("Ready") == "True", columns
    assert columns.get("Reason") == "Synced", columns
    assert columns.get("Secret") == "salesforce", columns
    assert columns.get("Pinned") in (None, ""), columns
    assert columns.get("Age"), columns

    # The first sync posts no Event (its status says it: two writes per new VaultSecret, not three).
    first = await env.api.list("Event", env.namespace, fields={"involvedObject.name": "salesforce"})
    assert [e for e in first if e.get("type") == "Normal"] == []


async def test_a_new_version_posts_one_normal_event(env: E2E, operator: Runtime | None) -> None:
    await env.create_synced("evt", PATH, DATA)
    vaultsecret = await env.vaultsecret("evt")
    assert vaultsecret is not None
    uid = vaultsecret["metadata"]["uid"]
    version = env.write(PATH, ROTATED)
    await env.wait_ready("evt", version=version)
    events = await wait_for(
        lambda: env.api.list("Event", env.namespace, fields={"involvedObject.name": "evt"}),
        lambda items: any(
            e.get("reason") == "Synced"
            and (e.get("involvedObject") or {}).get("uid") == uid
            and e.get("type") == "Normal"
            and f"version {version} " in e.get("message", "")
            for e in items
        ),
        what="a Normal Event with reason Synced naming the new version on the VaultSecret",
    )
    assert len([e for e in events if e.get("type") == "Normal"]) == 1


async def test_new_version_updates_the_secret(env: E2E, operator: Runtime | None) -> None:
    await env.create_synced("app", PATH, DATA)

    assert env.write(PATH, ROTATED) == 2
    secret = await env.wait_secret_data("app", ROTATED)
    await env.wait_ready("app", version=2)
    assert annotations_of(secret).get(ANNOTATION_VERSION) == "2"


async def test_pinned_version_is_not_updated(env: E2E, operator: Runtime | None) -> None:
    """A follower of the same path moving to version 2 shows the operator saw it; the pinned one stays at 1
    until its pin moves."""
    await env.create_synced("pinned", PATH, DATA, version=1)
    await env.create_vaultsecret("follower", PATH)
    await env.wait_ready("follower", version=1)

    env.write(PATH, ROTATED)
    await env.wait_ready("follower", version=2)
    await env.wait_secret_data("follower", ROTATED)

    pinned = await env.vaultsecret("pinned")
    assert pinned is not None
    assert pinned["status"].get("syncedVersion") == 1, pinned["status"]
    await env.assert_secret_intact("pinned", DATA, version=1)

    await env.api.patch("VaultSecret", "pinned", {"spec": {"version": 2}}, env.namespace)
    await env.wait_ready("pinned", version=2)
    await env.wait_secret_data("pinned", ROTATED)


async def test_keys_mapping_and_target_shape(env: E2E, operator: Runtime | None) -> None:
    """spec.keys selects and renames keys (non-strings become JSON); spec.target names the Secret and adds
    labels and annotations. Changing spec.keys removes keys no longer selected."""
    env.write(PATH, {"client_id": "client-1", "client_secret": "s3cr3t-1", "port": 5432, "unused": "x"})
    await env.create_vaultsecret(
        "billing",
        PATH,
        keys=[{"from": "client_id", "to": "SALESFORCE_CLIENT_ID"}, {"from": "port"}],
        target={
            "name": "billing-env",
            "labels": {"app.kubernetes.io/part-of": "billing"},
            "annotations": {"scailabs.ai/owner": "billing-team"},
        },
    )

    vs = await env.wait_ready("billing", version=1)
    assert vs["status"].get("secretName") == "billing-env", vs["status"]
    secret = await env.wait_secret_data("billing-env", {"SALESFORCE_CLIENT_ID": "client-1", "port": "5432"})
    assert labels_of(secret).get("app.kubernetes.io/part-of") == "billing"
    assert labels_of(secret).get(MANAGED_BY_LABEL) == MANAGED_BY
    assert annotations_of(secret).get("scailabs.ai/owner") == "billing-team"
    assert await env.secret("billing") is None, "the Secret must be named by spec.target.name"

    await env.api.patch("VaultSecret", "billing", {"spec": {"keys": [{"from": "client_secret"}]}}, env.namespace)
    secret = await env.wait_secret_data("billing-env", {"client_secret": "s3cr3t-1"})
    assert sorted(decoded_data(secret)) == ["client_secret"]
    await env.wait_ready("billing", version=1)


async def test_a_templated_secret_syncs_and_a_failing_template_keeps_it(env: E2E, operator: Runtime | None) -> None:
    """spec.template on a real API server: a kubernetes.io/basic-auth Secret whose DATABASE_URL is rendered from four
    keys and whose labels come from the template; a new version re-renders; a template that breaks is TemplateError
    and the Secret keeps its data."""
    path = "e2e/billing/db"
    url = "postgres://{{ data.user }}:{{ data.password | urlquote }}@{{ data.host }}/{{ data.dbname }}"
    template = {
        "type": "kubernetes.io/basic-auth",
        "labels": {"app.kubernetes.io/name": "billing"},
        "data": {"username": "{{ data.user }}", "password": "{{ data.password }}", "DATABASE_URL": url},
    }
    env.write(path, {"user": "app", "password": "p@ss/1", "host": "db.internal", "dbname": "main"})
    await env.create_vaultsecret("db", path, template=template)
    await env.wait_ready("db", version=1)
    secret = await env.wait_secret_data(
        "db", {"username": "app", "password": "p@ss/1", "DATABASE_URL": "postgres://app:p%40ss%2F1@db.internal/main"}
    )
    assert secret.get("type") == "kubernetes.io/basic-auth"
    assert labels_of(secret).get("app.kubernetes.io/name") == "billing"

    env.write(path, {"user": "app", "password": "pw-2", "host": "db.internal", "dbname": "main"})
    await env.wait_ready("db", version=2)
    good = await env.wait_secret_data(
        "db", {"username": "app", "password": "pw-2", "DATABASE_URL": "postgres://app:pw-2@db.internal/main"}
    )

    env.write(path, {"user": "app", "password": "pw-3", "dbname": "main"})  # no host: the template fails
    vs = await env.wait_ready("db", reason="TemplateError")
    ready = ready_condition(vs) or {}
    assert ready["message"].startswith("spec.template.data['DATABASE_URL'], line 1: data has no key 'host'"), ready
    assert "pw-3" not in ready["message"]
    assert vs["status"]["syncedVersion"] == 2
    kept = await env.secret("db")
    assert kept is not None
    assert kept["data"] == good["data"]
    assert annotations_of(kept).get(ANNOTATION_VERSION) == "2"
