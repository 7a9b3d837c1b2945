"""``spec.target.deletionPolicy`` and ``spec.onSourceDeleted`` on a real API server, with its garbage collector: Retain
keeps the Secret, unmanaged, after the VaultSecret is gone; Delete lets the collector take it; onSourceDeleted: Delete
removes the Secret while its path is gone from ScaiVault and writes it again when the path comes back."""

from __future__ import annotations

import pytest
from e2e_support import CLUSTER_TIMEOUT, E2E, decoded_data

from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import (
    ANNOTATION_PREFIX,
    MANAGED_BY_LABEL,
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
