"""Failures on a real cluster: each gets its condition reason, and the Secret synced before stays as it was."""

from __future__ import annotations

import base64

import pytest
from e2e_support import E2E, TOKEN_KEY, TOKEN_SECRET, decoded_data, labels_of, ready_condition, secret_manifest

from scaivault_operator.manifests import MANAGED_BY, MANAGED_BY_LABEL
from scaivault_operator.runtime import Runtime

pytestmark = pytest.mark.e2e

PATH = "e2e/payments/db"
DATA = {"username": "payments", "password": "pw-1"}


async def test_revoked_token_is_unauthorized(env: E2E, operator: Runtime | None) -> None:
    """401: ScaiVault stops accepting the connection's token; the next poll reports it on every VaultSecret."""
    await env.create_synced("db", PATH, DATA)

    assert env.vault.vault.revoke_token(env.vault.ro_token)
    vs = await env.wait_ready("db", reason="Unauthorized")

    assert "token" in (ready_condition(vs) or {}).get("message", ""), vs["status"]
    assert vs["status"].get("syncedVersion") == 1, vs["status"]
    await env.assert_secret_intact("db", DATA, version=1)


async def test_token_without_scope_is_forbidden(env: E2E, operator: Runtime | None) -> None:
    """403: the token Secret is rotated to a token lacking secrets:read and the old token revoked; the operator
    re-reads the Secret after the 401, and ScaiVault then refuses the new token's scope."""
    await env.create_synced("db", PATH, DATA)

    noscope = base64.b64encode(env.vault.noscope_token.encode()).decode("ascii")
    await env.api.patch("Secret", TOKEN_SECRET, {"data": {TOKEN_KEY: noscope}}, env.namespace)
    assert env.vault.vault.revoke_token(env.vault.ro_token)
    vs = await env.wait_ready("db", reason="Forbidden")

    assert "secrets:read" in (ready_condition(vs) or {}).get("message", ""), vs["status"]
    await env.assert_secret_intact("db", DATA, version=1)


async def test_missing_source_is_source_not_found(env: E2E, operator: Runtime | None) -> None:
    """404: spec.path moves to a path ScaiVault does not have; the Secret keeps the data of the old path."""
    await env.create_synced("db", PATH, DATA)

    await env.api.patch("VaultSecret", "db", {"spec": {"path": "e2e/payments/missing"}}, env.namespace)
    vs = await env.wait_ready("db", reason="SourceNotFound")

    assert "spec.path" in (ready_condition(vs) or {}).get("message", ""), vs["status"]
    await env.assert_secret_intact("db", DATA, version=1)


async def test_target_conflict_then_adopt(env: E2E, operator: Runtime | None) -> None:
    """A Secret of the target name that is not ours is left alone (TargetConflict) until creationPolicy Adopt."""
    foreign = {"owner": "someone-else"}
    await env.api.create(secret_manifest("shared", env.namespace, foreign, labels={"team": "payments"}))
    env.write(PATH, DATA)
    await env.create_vaultsecret("db", PATH, target={"name": "shared"})

    vs = await env.wait_ready("db", reason="TargetConflict")
    assert "creationPolicy" in (ready_condition(vs) or {}).get("message", ""), vs["status"]
    untouched = await env.secret("shared")
    assert untouched is not None
    assert decoded_data(untouched) == foreign
    assert not untouched["metadata"].get("ownerReferences"), untouched["metadata"]
    assert labels_of(untouched) == {"team": "payments"}

    await env.api.patch("VaultSecret", "db", {"spec": {"target": {"creationPolicy": "Adopt"}}}, env.namespace)
    vs = await env.wait_ready("db", version=1)
    adopted = await env.wait_secret_data("shared", DATA)
    controllers = [r for r in adopted["metadata"].get("ownerReferences") or [] if r.get("controller")]
    assert [(r["kind"], r["uid"]) for r in controllers] == [("VaultSecret", vs["metadata"]["uid"])], controllers
    assert labels_of(adopted).get("team") == "payments", "labels set by others are kept"
    assert labels_of(adopted).get(MANAGED_BY_LABEL) == MANAGED_BY
