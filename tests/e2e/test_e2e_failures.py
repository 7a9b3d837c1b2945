"""Failures on a real cluster: each gets its condition reason, and the Secret synced before stays as it was."""

from __future__ import annotations

import base64

import pytest
from e2e_support import (
    E2E,
    TOKEN_KEY,
    TOKEN_SECRET,
    annotations_of,
    connection_manifest,
    decoded_data,
    labels_of,
    ready_condition,
    secret_manifest,
)

from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import ADOPT_ANNOTATION, CREDENTIALS_LABEL, MANAGED_BY, MANAGED_BY_LABEL

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
    """A Secret of the target name that is not ours is left alone (TargetConflict) until the VaultSecret asks for it
    (creationPolicy Adopt) and the Secret consents (the annotation scaivault.scailabs.ai/adopt=true)."""
    foreign = {"owner": "someone-else"}
    await env.api.create(secret_manifest("shared", env.namespace, foreign, labels={"team": "payments"}))
    env.write(PATH, DATA)
    await env.create_vaultsecret("db", PATH, target={"name": "shared"})

    vs = await env.wait_ready("db", reason="TargetConflict")
    annotate = f"kubectl annotate secret -n {env.namespace} shared {ADOPT_ANNOTATION}=true"
    message = (ready_condition(vs) or {}).get("message", "")
    assert "creationPolicy: Adopt" in message, vs["status"]
    assert annotate in message, vs["status"]
    await assert_untouched(env, "shared", foreign, {"team": "payments"})

    # Adopt alone is not enough: the Secret has not consented.
    await env.api.patch("VaultSecret", "db", {"spec": {"target": {"creationPolicy": "Adopt"}}}, env.namespace)
    vs = await env.wait_ready("db", reason="TargetConflict")  # for the new generation
    assert (ready_condition(vs) or {}).get("message") == (
        f"Secret {env.namespace}/shared exists and is not ours; to let this VaultSecret take it over, annotate it: "
        + annotate
    ), vs["status"]
    await assert_untouched(env, "shared", foreign, {"team": "payments"})

    await env.api.patch("Secret", "shared", {"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}}, env.namespace)
    vs = await env.wait_ready("db", version=1)
    adopted = await env.wait_secret_data("shared", DATA)
    controllers = [r for r in adopted["metadata"].get("ownerReferences") or [] if r.get("controller")]
    assert [(r["kind"], r["uid"]) for r in controllers] == [("VaultSecret", vs["metadata"]["uid"])], controllers
    assert labels_of(adopted).get("team") == "payments", "labels set by others are kept"
    assert labels_of(adopted).get(MANAGED_BY_LABEL) == MANAGED_BY
    assert ADOPT_ANNOTATION not in annotations_of(adopted), "the consent is used up"


async def assert_untouched(env: E2E, name: str, data: dict[str, str], labels: dict[str, str]) -> None:
    secret = await env.secret(name)
    assert secret is not None
    assert decoded_data(secret) == data
    assert labels_of(secret) == labels
    assert not any(r.get("kind") == "VaultSecret" for r in secret["metadata"].get("ownerReferences") or [])


@pytest.mark.parametrize("case", ["controlled-by-a-configmap", "service-account-token"])
async def test_adopt_never_takes_a_controlled_secret_or_a_service_account_token(
    env: E2E, operator: Runtime | None, case: str
) -> None:
    """Even with the consent annotation: never a Secret another controller owns, never a service-account token."""
    secret = secret_manifest("shared", env.namespace, {"owner": "someone-else"})
    secret["metadata"]["annotations"] = {ADOPT_ANNOTATION: "true"}
    if case == "controlled-by-a-configmap":
        owner = await env.api.create({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "owner", "namespace": env.namespace}})  # fmt: skip
        secret["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                                  "uid": owner["metadata"]["uid"], "controller": True}]  # fmt: skip
        expected = f"Secret {env.namespace}/shared exists and is controlled by ConfigMap/owner"
    else:
        secret["type"] = "kubernetes.io/service-account-token"
        secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] = "default"
        expected = "service-account-token Secrets are never adopted"
    before = await env.api.create(secret)
    env.write(PATH, DATA)
    await env.create_vaultsecret("db", PATH, target={"name": "shared", "creationPolicy": "Adopt"})

    vs = await env.wait_ready("db", reason="TargetConflict")
    assert expected in (ready_condition(vs) or {}).get("message", ""), vs["status"]
    after = await env.secret("shared")
    assert after is not None
    assert after["metadata"].get("ownerReferences") == before["metadata"].get("ownerReferences")
    assert after.get("type") == before.get("type")
    assert ADOPT_ANNOTATION in annotations_of(after)
    assert MANAGED_BY_LABEL not in labels_of(after)


async def test_unlabelled_credentials_are_refused_until_labelled(env: E2E, operator: Runtime | None) -> None:
    """A VaultConnection whose token Secret did not opt in: nothing is sent, InvalidSpec says how to label it; once
    labelled, the connection's next poll uses it."""
    await env.api.create(secret_manifest("team-token", env.namespace, {TOKEN_KEY: env.vault.ro_token}))
    await env.api.create(connection_manifest("VaultConnection", "team", url=env.vault.url, namespace=env.namespace,
                                             token_secret=(env.namespace, "team-token")))  # fmt: skip
    env.write(PATH, DATA)
    await env.create_vaultsecret("db", PATH, connectionRef={"kind": "VaultConnection", "name": "team"})

    vs = await env.wait_ready("db", reason="InvalidSpec")
    message = (ready_condition(vs) or {}).get("message", "")
    assert f"Secret {env.namespace}/team-token" in message, vs["status"]
    assert f"kubectl label secret -n {env.namespace} team-token {CREDENTIALS_LABEL}=true" in message, vs["status"]
    assert env.vault.ro_token not in message
    assert await env.secret("db") is None

    await env.api.patch("Secret", "team-token", {"metadata": {"labels": {CREDENTIALS_LABEL: "true"}}}, env.namespace)
    await env.wait_ready("db", version=1)
    await env.wait_secret_data("db", DATA)
