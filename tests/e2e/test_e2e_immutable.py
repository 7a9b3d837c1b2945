"""Immutable versioned Secrets (``spec.target.immutable``) on a real API server, with its Deployment controller and
garbage collector: the versioned Secret is stored ``immutable: true`` and the API server refuses to change its data
(so the operator recreates it when a spec change changes the data at the same version); a new version of a key a
Deployment uses moves it to ``<name>-v<version>`` — a new ReplicaSet —, a version of other keys does not, and old
versions nothing references go; the CRD's CEL refuses ``immutable`` without ``creationPolicy: Owner``; deleting the
VaultSecret lets the collector take every version. The operator runs with exactly the chart's RBAC."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import (
    CLUSTER_TIMEOUT,
    E2E,
    ApiFailure,
    decoded_data,
    deployment_manifest,
    vaultsecret_manifest,
    wait_for,
)

from scaivault_operator._cogs.api import IMMUTABLE_NAME_MESSAGE, IMMUTABLE_POLICY_MESSAGE, MAX_VERSIONED_BASE
from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.workloads import pod_spec_of, referenced_secrets

pytestmark = pytest.mark.e2e

#: A valid DNS subdomain one character too long for ``<name>-v<version>``.
TOO_LONG = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 41
#: A VaultSecret name (a valid one) that leaves no room for ``-v1``: 251 + 3 > 253.
NO_ROOM = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 59


async def versions(env: E2E, base: str) -> list[str]:
    names = [s["metadata"]["name"] for s in await env.api.list("Secret", env.namespace)]
    return sorted(n for n in names if n.startswith(f"{base}-v") and n[len(base) + 2 :].isdigit())


async def synced(env: E2E, name: str, version: int, data: dict[str, str]) -> dict[str, Any]:
    """Ready at ``version`` in ``<name>-v<version>`` holding ``data``; that Secret."""
    await env.wait_ready(name, version=version)
    body = await wait_for(lambda: env.vaultsecret(name),
                          lambda vs: (vs or {}).get("status", {}).get("secretName") == f"{name}-v{version}",
                          what=f"status.secretName {name}-v{version}")  # fmt: skip
    assert body is not None
    return await env.wait_secret_data(f"{name}-v{version}", data)


async def test_the_versioned_secret_is_immutable_and_a_data_change_recreates_it(
    env: E2E, operator: Runtime | None
) -> None:
    env.write("e2e/immutable/db", {"password": "one", "user": "app"})
    await env.create_vaultsecret("db", "e2e/immutable/db", target={"immutable": True})
    secret = await synced(env, "db", 1, {"password": "one", "user": "app"})
    assert secret["immutable"] is True
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("VaultSecret", "db", True)
    assert await env.secret("db") is None, "no unversioned Secret"

    # The API server keeps it as it is: the data, and immutable itself.
    with pytest.raises(ApiFailure) as refused:
        await env.api.patch("Secret", "db-v1", {"data": {"password": "dHdv"}}, env.namespace)
    assert refused.value.status == 422
    assert "immutable" in refused.value.message
    with pytest.raises(ApiFailure) as refused:
        await env.api.patch("Secret", "db-v1", {"immutable": False}, env.namespace)
    assert refused.value.status == 422
    labelled = await env.api.patch("Secret", "db-v1", {"metadata": {"labels": {"team": "a"}}}, env.namespace)
    assert labelled["metadata"]["labels"]["team"] == "a", "metadata may still change"

    # Other keys at the same ScaiVault version: the operator cannot patch the data; it deletes and creates db-v1.
    uid = secret["metadata"]["uid"]
    await env.api.patch("VaultSecret", "db", {"spec": {"keys": [{"from": "user", "to": "password"}]}}, env.namespace)
    recreated = await env.wait_secret_data("db-v1", {"password": "app"})
    assert recreated["metadata"]["uid"] != uid, "a new object"
    assert recreated["immutable"] is True
    body = await env.wait_ready("db", version=1)
    assert body["status"]["secretName"] == "db-v1"


@pytest.mark.usefixtures("deployment_controller")
async def test_a_new_version_of_a_used_key_moves_the_deployment_to_a_new_replica_set(
    env: E2E, operator: Runtime | None
) -> None:
    env.write("e2e/immutable/web", {"password": "one", "other": "x"})
    await env.create_vaultsecret("db", "e2e/immutable/web", target={"immutable": True},
                                 rollout={"auto": True, "debounce": "0s"})  # fmt: skip
    await synced(env, "db", 1, {"password": "one", "other": "x"})
    await env.api.create(deployment_manifest("web", env.namespace, "db-v1", "password"))
    await wait_for(lambda: env.replica_sets("web"), lambda found: len(found) == 1, within=CLUSTER_TIMEOUT,
                   what="the Deployment's first ReplicaSet")  # fmt: skip

    env.write("e2e/immutable/web", {"password": "two", "other": "x"})
    await synced(env, "db", 2, {"password": "two", "other": "x"})
    web = await wait_for(lambda: env.api.get("Deployment", "web", env.namespace),
                         lambda body: referenced_secrets(pod_spec_of(body or {}, "Deployment")) == {"db-v2"},
                         what="web moved to db-v2")  # fmt: skip
    assert web is not None
    found = await wait_for(lambda: env.replica_sets("web"), lambda found: len(found) == 2, within=CLUSTER_TIMEOUT,
                           what="a second ReplicaSet after the move")  # fmt: skip
    newest = max(found, key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))
    assert referenced_secrets(pod_spec_of(newest, "ReplicaSet")) == {"db-v2"}
    assert "two" not in str(web)
    generation = web["metadata"]["generation"]
    events = await env.api.list("Event", env.namespace)
    assert [e for e in events if e["involvedObject"]["name"] == "web" and e["reason"] == "SecretChanged"]
    assert await versions(env, "db") == ["db-v1", "db-v2"], "keepVersions 2"

    # A version of another key: web stays on db-v2 (no new ReplicaSet), and db-v1 — now beyond keepVersions and
    # referenced by nothing — is deleted.
    env.write("e2e/immutable/web", {"password": "two", "other": "y"})
    await synced(env, "db", 3, {"password": "two", "other": "y"})
    await wait_for(lambda: versions(env, "db"), lambda names: names == ["db-v2", "db-v3"], within=CLUSTER_TIMEOUT,
                   what="db-v1 deleted")  # fmt: skip
    web = await env.api.get("Deployment", "web", env.namespace)
    assert web is not None
    assert web["metadata"]["generation"] == generation
    assert referenced_secrets(pod_spec_of(web, "Deployment")) == {"db-v2"}
    assert len(await env.replica_sets("web")) == 2


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"immutable": True, "creationPolicy": "Merge"}, IMMUTABLE_POLICY_MESSAGE),
        ({"immutable": True, "creationPolicy": "Adopt"}, IMMUTABLE_POLICY_MESSAGE),
        ({"immutable": True, "name": TOO_LONG}, IMMUTABLE_NAME_MESSAGE),
        ({"immutable": True, "keepVersions": 0}, "spec.target.keepVersions"),
        ({"immutable": True, "keepVersions": 21}, "spec.target.keepVersions"),
    ],
)
async def test_the_api_server_refuses_what_immutable_cannot_do(env: E2E, target: dict[str, Any], message: str) -> None:
    assert len(TOO_LONG) == MAX_VERSIONED_BASE + 1
    body = vaultsecret_manifest("refused", env.namespace, {"path": "e2e/immutable/x", "target": target})
    with pytest.raises(ApiFailure) as refused:
        await env.api.create(body, dry_run=True)
    assert refused.value.status == 422
    assert message in refused.value.message
    # The same without immutable is fine (a mutable Secret may merge, adopt, and have the longer name).
    mutable = {key: value for key, value in target.items() if key not in ("immutable", "keepVersions")}
    accepted = vaultsecret_manifest("accepted", env.namespace, {"path": "e2e/immutable/x", "target": mutable})
    await env.api.create(accepted, dry_run=True)


@pytest.mark.usefixtures("garbage_collector")
async def test_deleting_the_vaultsecret_collects_every_version(env: E2E, operator: Runtime | None) -> None:
    env.write("e2e/immutable/gc", {"token": "t-1"})
    await env.create_vaultsecret("gc", "e2e/immutable/gc", target={"immutable": True, "keepVersions": 3})
    await synced(env, "gc", 1, {"token": "t-1"})
    for version in (2, 3):
        env.write("e2e/immutable/gc", {"token": f"t-{version}"})
        await synced(env, "gc", version, {"token": f"t-{version}"})
    assert await versions(env, "gc") == ["gc-v1", "gc-v2", "gc-v3"]
    secret = await env.secret("gc-v3")
    assert secret is not None
    assert decoded_data(secret) == {"token": "t-3"}

    await env.api.delete("VaultSecret", "gc", env.namespace)
    await env.wait_gone("VaultSecret", "gc")
    await wait_for(lambda: versions(env, "gc"), lambda names: names == [], within=CLUSTER_TIMEOUT,
                   what="every version collected")  # fmt: skip


async def test_a_vaultsecret_name_too_long_for_its_versions_is_reported(env: E2E, operator: Runtime | None) -> None:
    """CEL bounds ``spec.target.name`` (232), but a rule on the spec cannot see the object's own name: a VaultSecret
    without target.name whose name leaves no room for ``-v<version>`` is admitted, and the operator says what to do
    (InvalidSpec naming spec.target.name) instead of failing on every create. (A name of 233 to 250 characters
    works until the version number no longer fits.)"""
    assert len(NO_ROOM) == 251
    env.write("e2e/immutable/x", {"k": "v"})
    await env.api.create(vaultsecret_manifest(NO_ROOM, env.namespace, {"path": "e2e/immutable/x",
                                                                        "connectionRef": env.connection_ref,
                                                                        "target": {"immutable": True}}))  # fmt: skip
    body = await env.wait_ready(NO_ROOM, reason="InvalidSpec")
    message = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")["message"]
    assert "spec.target.name" in message
