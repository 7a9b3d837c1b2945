"""The real operator against kmock and the dev vault: a VaultSecret becomes a Secret with the right data,
owner, labels, annotations and status; ``keys`` select and rename; target overrides apply."""

from __future__ import annotations

import json

from operator_helpers import (
    b64,
    decoded,
    ready_condition,
    vaultsecret,
    wait_until,
)

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._logic.manifests import (
    ANNOTATION_CONNECTION,
    ANNOTATION_DATA_HASH,
    ANNOTATION_PATH,
    ANNOTATION_VERSION,
    MANAGED_BY_LABEL,
    data_hash,
)


async def test_create_materializes_secret(cluster):
    cluster.vault.write(
        "apps/web/db",
        {
            "user": "admin",
            "password": "s3cr3t",
            "port": 5432,
            "tls": True,
            "opts": {"b": 1, "a": [1, "x"]},
            "nothing": None,
        },
    )
    created = await cluster.create(vaultsecret("db", "apps/web/db"))
    body, secret = await cluster.wait_synced("team-a", "db", 1)

    assert secret["data"] == {
        "user": b64("admin"),
        "password": b64("s3cr3t"),
        "port": b64("5432"),
        "tls": b64("true"),
        "opts": b64(json.dumps({"a": [1, "x"], "b": 1}, separators=(",", ":"))),
        "nothing": b64("null"),
    }
    assert secret["type"] == "Opaque"
    meta = secret["metadata"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": API_VERSION,
            "kind": "VaultSecret",
            "name": "db",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"][MANAGED_BY_LABEL] == "scaivault-operator"
    assert meta["annotations"][ANNOTATION_PATH] == "apps/web/db"
    assert meta["annotations"][ANNOTATION_VERSION] == "1"
    assert meta["annotations"][ANNOTATION_CONNECTION] == "ClusterVaultConnection/default"
    assert meta["annotations"][ANNOTATION_DATA_HASH] == data_hash(secret["data"])

    status = body["status"]
    ready = ready_condition(body)
    assert ready["status"] == "True"
    assert ready["reason"] == "Synced"
    assert status["syncedVersion"] == 1
    assert status["secretName"] == "db"
    assert status["observedGeneration"] == 1
    assert ready["observedGeneration"] == 1
    assert decoded(secret)["password"] == "s3cr3t"


async def test_keys_mapping_and_target_overrides(cluster):
    cluster.vault.write("apps/web/login", {"user": "alice", "password": "pw-1", "unused": "not copied"})
    body = vaultsecret(
        "login",
        "apps/web/login",
        keys=[{"from": "user", "to": "username"}, {"from": "password"}],
        target={
            "name": "web-login",
            "type": "kubernetes.io/basic-auth",
            "labels": {"team": "web", MANAGED_BY_LABEL: "someone-else"},
            "annotations": {"owner": "web-team", ANNOTATION_PATH: "spoofed"},
        },
    )
    await cluster.create(body)
    vs, secret = await cluster.wait_synced("team-a", "login", 1)

    assert vs["status"]["secretName"] == "web-login"
    assert secret["metadata"]["name"] == "web-login"
    assert await cluster.secret("team-a", "login") is None
    assert decoded(secret) == {"username": "alice", "password": "pw-1"}
    assert secret["type"] == "kubernetes.io/basic-auth"
    labels, annotations = secret["metadata"]["labels"], secret["metadata"]["annotations"]
    assert labels["team"] == "web"
    assert labels[MANAGED_BY_LABEL] == "scaivault-operator"  # ours win on a collision
    assert annotations["owner"] == "web-team"
    assert annotations[ANNOTATION_PATH] == "apps/web/login"


async def test_spec_change_resyncs_and_renamed_target_replaces_old_secret(cluster):
    cluster.vault.write("apps/web/api", {"key": "k-1", "extra": "e"})
    await cluster.create(vaultsecret("api", "apps/web/api"))
    await cluster.wait_synced("team-a", "api", 1)

    await cluster.cluster.patch("VaultSecret", "team-a", "api", {"spec": {
        "keys": [{"from": "key", "to": "API_KEY"}], "target": {"name": "api-v2"}}})  # fmt: skip

    async def resynced():
        body = await cluster.vs("team-a", "api")
        status = (body or {}).get("status") or {}
        return status.get("observedGeneration") == 2 and status.get("secretName") == "api-v2"

    await wait_until(resynced, 10, what="status follows the new spec")
    secret = await cluster.secret("team-a", "api-v2")
    assert secret is not None
    assert decoded(secret) == {"API_KEY": "k-1"}
    await cluster.wait_gone("Secret", "team-a", "api")


async def test_invalid_source_data_names_keys(cluster):
    cluster.vault.write("apps/web/odd", {"fine": "x"})
    await cluster.create(vaultsecret("odd", "apps/web/odd", keys=[{"from": "missing-key"}]))
    body = await cluster.wait_reason("team-a", "odd", "InvalidSourceData")
    message = ready_condition(body)["message"]
    assert "'missing-key'" in message
    assert "'fine'" in message
    assert await cluster.secret("team-a", "odd") is None
