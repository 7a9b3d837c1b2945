"""``spec.target.deletionPolicy`` and ``spec.onSourceDeleted`` on a real API server, with its garbage collector: Retain
keeps the Secret, unmanaged, after the VaultSecret is gone; Delete lets the collector take it; onSourceDeleted: Delete
removes the Secret while its path is gone from ScaiVault and writes it again when the path comes back;
``creationPolicy: Merge`` writes only its keys into a Secret it does not own, and its deletion removes them (Delete)
or keeps them (Retain) while the Secret stays."""

from __future__ import annotations

import pytest
from e2e_support import CLUSTER_TIMEOUT, E2E, annotations_of, decoded_data, labels_of, secret_manifest

from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import (
    ANNOTATION_MERGED_KEYS,
    ANNOTATION_PREFIX,
    MANAGED_BY_LABEL,
    MERGE_LABEL,
    RETAIN_FINALIZER,
    VAULTSECRET_LABEL,
)

pytestmark = pytest.mark.e2e

DATA = {"api_key": "key-1", "region": "eu"}


@pytest.mark.usefixtures("garbage_collector")
async def test_retain_keeps_the_secret_unmanaged_when_the_vaultsecret_is_deleted(
    env: E2E, operator: Runtime | None
) -> None:
    """The finalizer is on the VaultSecret while it lives; deleting it releases the Secret (no ownerReference, no
    labels or annotations of ours; data, type and the user's labels kept) and the VaultSecret goes away. The
    collector, which runs, leaves the Secret: checked again after another VaultSecret was synced and collected."""
    target = {"deletionPolicy": "Retain", "type": "example.com/api", "labels": {"team": "search"}}
    await env.create_synced("kept", "e2e/retain/api", DATA, target=target)
    body = await env.vaultsecret("kept")
    assert body is not None
    assert body["metadata"].get("finalizers") == [RETAIN_FINALIZER]

    await env.api.delete("VaultSecret", "kept", env.namespace)
    await env.wait_gone("VaultSecret", "kept", within=CLUSTER_TIMEOUT)

    # A VaultSecret with deletionPolicy Delete, deleted after: once the collector took its Secret, it has had its
    # chance at ours too.
    await env.create_synced("barrier", "e2e/retain/barrier", {"token": "t"}, target={"deletionPolicy": "Delete"})
    barrier = await env.vaultsecret("barrier")
    assert barrier is not None
    assert not barrier["metadata"].get("finalizers")
    await env.api.delete("VaultSecret", "barrier", env.namespace)
    await env.wait_gone("Secret", "barrier", within=CLUSTER_TIMEOUT)

    secret = await env.secret("kept")
    assert secret is not None, "the Secret of a VaultSecret with deletionPolicy: Retain was deleted"
    meta = secret["metadata"]
    assert not meta.get("ownerReferences")
    assert MANAGED_BY_LABEL not in (meta.get("labels") or {})
    assert VAULTSECRET_LABEL not in (meta.get("labels") or {})
    assert (meta.get("labels") or {}).get("team") == "search"
    assert not [key for key in meta.get("annotations") or {} if key.startswith(ANNOTATION_PREFIX)]
    assert secret["type"] == "example.com/api"
    assert decoded_data(secret) == DATA


@pytest.mark.usefixtures("garbage_collector")
async def test_delete_policy_lets_the_collector_take_the_secret(env: E2E, operator: Runtime | None) -> None:
    """deletionPolicy: Delete (explicit): no finalizer; the VaultSecret goes at once, the collector takes the Secret."""
    await env.create_synced("gone", "e2e/retain/gone", DATA, target={"deletionPolicy": "Delete"})
    body = await env.vaultsecret("gone")
    assert body is not None
    assert not body["metadata"].get("finalizers")
    await env.api.delete("VaultSecret", "gone", env.namespace)
    await env.wait_gone("VaultSecret", "gone")
    await env.wait_gone("Secret", "gone", within=CLUSTER_TIMEOUT)


async def test_on_source_deleted_delete_follows_the_path(env: E2E, operator: Runtime | None) -> None:
    """The path deleted from ScaiVault: the Secret is deleted and Ready=False SourceNotFound says so; the path back:
    the Secret is created again."""
    await env.create_synced("follows", "e2e/retain/follows", DATA, onSourceDeleted="Delete")
    env.vault.vault.delete("e2e/retain/follows")
    await env.wait_gone("Secret", "follows")
    body = await env.wait_ready("follows", reason="SourceNotFound")
    message = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")["message"]
    assert "Secret follows was deleted (spec.onSourceDeleted: Delete)" in message
    env.write("e2e/retain/follows", {"api_key": "key-2"})
    await env.wait_secret_data("follows", {"api_key": "key-2"})
    await env.wait_ready("follows")


@pytest.mark.usefixtures("garbage_collector")
async def test_merge_writes_only_its_keys_and_takes_them_out_when_deleted(env: E2E, operator: Runtime | None) -> None:
    """Merge into a Secret someone else made: TargetNotFound until it exists; then only our keys are written (no
    ownerReference, no managed-by label; theirs, their labels and owner stay), a new version changes only ours;
    deleting the VaultSecret (deletionPolicy Delete) removes our keys and marks and leaves the Secret — with the
    collector running. With Retain the keys stay."""
    merge = {"name": "app-config", "creationPolicy": "Merge"}
    env.write("e2e/merge/api", {"api_key": "key-1", "region": "eu"})
    await env.create_vaultsecret("merger", "e2e/merge/api", target=merge)
    body = await env.wait_ready("merger", reason="TargetNotFound")
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert "does not exist: creationPolicy Merge" in ready["message"]
    assert await env.secret("app-config") is None, "Merge never creates the Secret"

    # Their Secret, owned by their ConfigMap (a real owner: the collector would delete a Secret whose owner is gone).
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": env.namespace}}
    owner = (await env.api.create(config))["metadata"]["uid"]
    theirs = secret_manifest("app-config", env.namespace, {"LOG_LEVEL": "info"}, labels={"app": "web"})
    theirs["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "web", "uid": owner}]
    await env.api.create(theirs)
    await env.wait_ready("merger", version=1, within=CLUSTER_TIMEOUT)
    secret = await env.wait_secret_data("app-config", {"LOG_LEVEL": "info", "api_key": "key-1", "region": "eu"})
    assert [ref["kind"] for ref in secret["metadata"]["ownerReferences"]] == ["ConfigMap"]
    assert labels_of(secret) == {"app": "web", MERGE_LABEL: "true"}
    assert annotations_of(secret)[ANNOTATION_MERGED_KEYS] == "api_key,region"
    body = await env.vaultsecret("merger")
    assert body is not None
    assert body["metadata"].get("finalizers") == [RETAIN_FINALIZER]

    env.write("e2e/merge/api", {"api_key": "key-2", "region": "eu"})
    await env.wait_secret_data("app-config", {"LOG_LEVEL": "info", "api_key": "key-2", "region": "eu"})

    await env.api.delete("VaultSecret", "merger", env.namespace)
    await env.wait_gone("VaultSecret", "merger")
    secret = await env.wait_secret_data("app-config", {"LOG_LEVEL": "info"})
    assert labels_of(secret) == {"app": "web"}
    assert not [key for key in annotations_of(secret) if key.startswith(ANNOTATION_PREFIX)]
    assert [ref["kind"] for ref in secret["metadata"]["ownerReferences"]] == ["ConfigMap"]

    # Retain: the keys stay, only our marks go.
    await env.create_vaultsecret("keeper", "e2e/merge/api", target={**merge, "deletionPolicy": "Retain"})
    await env.wait_secret_data("app-config", {"LOG_LEVEL": "info", "api_key": "key-2", "region": "eu"})
    await env.api.delete("VaultSecret", "keeper", env.namespace)
    await env.wait_gone("VaultSecret", "keeper")
    secret = await env.wait_secret("app-config", lambda s: MERGE_LABEL not in labels_of(s), what="our marks removed")
    assert decoded_data(secret) == {"LOG_LEVEL": "info", "api_key": "key-2", "region": "eu"}
    assert not [key for key in annotations_of(secret) if key.startswith(ANNOTATION_PREFIX)]
