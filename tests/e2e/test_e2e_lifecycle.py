"""What happens to the Secret afterwards: drift is repaired, and the cluster's garbage collector removes it."""

from __future__ import annotations

import base64

import pytest
from e2e_support import CLUSTER_TIMEOUT, E2E, decoded_data

from scaivault_operator._core.runtime import Runtime

pytestmark = pytest.mark.e2e

PATH = "e2e/search/api-key"
DATA = {"api_key": "key-1"}


async def test_drift_is_repaired(env: E2E, operator: Runtime | None) -> None:
    """An edit of the Secret's data, then its deletion: both are undone from ScaiVault."""
    original = await env.create_synced("search", PATH, DATA)

    tampered = base64.b64encode(b"tampered").decode("ascii")
    edited = await env.api.patch("Secret", "search", {"data": {"api_key": tampered}}, env.namespace)
    assert decoded_data(edited) == {"api_key": "tampered"}
    await env.wait_secret_data("search", DATA)

    await env.api.delete("Secret", "search", env.namespace)
    restored = await env.wait_secret_data("search", DATA)
    assert restored["metadata"]["uid"] != original["metadata"]["uid"], "the Secret must have been re-created"
    await env.wait_ready("search", version=1)


@pytest.mark.usefixtures("garbage_collector")
async def test_deleting_the_vaultsecret_garbage_collects_the_secret(env: E2E, operator: Runtime | None) -> None:
    """The Secret's ownerReference lets the cluster's garbage collector delete it with its VaultSecret; the
    operator does not bring it back (checked after another VaultSecret synced, so the operator had its turn)."""
    await env.create_synced("search", PATH, DATA)

    await env.api.delete("VaultSecret", "search", env.namespace)
    await env.wait_gone("Secret", "search", within=CLUSTER_TIMEOUT)

    await env.create_synced("barrier", "e2e/search/other", {"token": "t"})
    assert await env.secret("search") is None, "the garbage-collected Secret came back"
    assert await env.vaultsecret("search") is None
