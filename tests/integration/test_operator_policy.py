"""Specs the CRD cannot reject, unknown connections, target conflicts and adoption, and the connections' access
rules — each checked before any read at ScaiVault.

``namespaceSelector`` rules are not tested here: the emulator cannot serve Namespace objects by name, so the
operator never learns a namespace's labels. ``tests/unit/core/test_policy.py`` covers them (and ``tests/e2e``
on a real API server).
"""

from __future__ import annotations

import asyncio

from operator_helpers import (
    CONN,
    OP_NS,
    POLL_SECONDS,
    access_rule,
    cluster_connection,
    credentials_secret,
    decoded,
    opaque_secret,
    ready_condition,
    vault_connection,
    vaultsecret,
    wait_until,
)

from scaivault_operator._logic.manifests import ADOPT_ANNOTATION, MANAGED_BY_LABEL


async def test_invalid_path_is_invalid_spec(cluster):
    await cluster.create(vaultsecret("bad", "apps//db"))
    body = await cluster.wait_reason("team-a", "bad", "InvalidSpec")
    assert "path" in ready_condition(body)["message"]
    assert cluster.vault.stats.count("read") == 0
    assert await cluster.secret("team-a", "bad") is None


async def test_unknown_connection_then_created(cluster, dev_vault):
    cluster.vault.write("apps/late/db", {"password": "pw"})
    await cluster.create(vaultsecret("late", "apps/late/db", connection="later"))
    body = await cluster.wait_reason("team-a", "late", "InvalidSpec")
    assert "'later'" in ready_condition(body)["message"]
    assert "does not exist" in ready_condition(body)["message"]

    await cluster.create(cluster_connection("later", dev_vault.url))
    _, secret = await cluster.wait_synced("team-a", "late", 1)
    assert decoded(secret) == {"password": "pw"}


async def test_existing_unmanaged_secret_is_a_conflict_until_adopted(cluster):
    cluster.vault.write("apps/c/db", {"password": "from-vault"})
    await cluster.create(opaque_secret("db", "team-a", {"password": "hand-made", "other": "x"}))
    before = await cluster.secret("team-a", "db")
    await cluster.create(vaultsecret("db", "apps/c/db"))

    body = await cluster.wait_reason("team-a", "db", "TargetConflict")
    assert "creationPolicy: Adopt" in ready_condition(body)["message"]
    assert await cluster.secret("team-a", "db") == before  # untouched

    # Adopting takes both: the VaultSecret asks (Adopt), the Secret consents (the annotation).
    await cluster.cluster.patch("Secret", "team-a", "db", {"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}})
    vs = await cluster.cluster.patch("VaultSecret", "team-a", "db", {"spec": {"target": {"creationPolicy": "Adopt"}}})
    _, secret = await cluster.wait_synced("team-a", "db", 1)
    assert decoded(secret) == {"password": "from-vault"}  # data replaced, the extra key removed
    refs = secret["metadata"]["ownerReferences"]
    assert [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in refs] == [
        ("VaultSecret", "db", vs["metadata"]["uid"], True)
    ]
    assert secret["metadata"]["labels"][MANAGED_BY_LABEL] == "scaivault-operator"


async def test_secret_of_another_vaultsecret_is_a_conflict(cluster):
    cluster.vault.write("apps/c/one", {"a": "1"})
    cluster.vault.write("apps/c/two", {"b": "2"})
    await cluster.create(vaultsecret("one", "apps/c/one", target={"name": "shared-name"}))
    _, first = await cluster.wait_synced("team-a", "one", 1)
    await cluster.create(vaultsecret("two", "apps/c/two", target={"name": "shared-name"}))
    await cluster.wait_reason("team-a", "two", "TargetConflict")
    assert await cluster.secret("team-a", "shared-name") == first


async def restricted(cluster, dev_vault, rules) -> None:
    await cluster.create(cluster_connection("restricted", dev_vault.url, access=rules))


async def test_namespace_not_in_the_rule_is_denied_without_a_read(cluster, dev_vault):
    await restricted(cluster, dev_vault, [access_rule(["apps/"], namespaces=["team-a"])])
    cluster.vault.write("apps/p/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "apps/p/db", namespace="team-b", connection="restricted"))
    body = await cluster.wait_reason("team-b", "db", "PolicyDenied")
    message = ready_condition(body)["message"]
    assert "team-b" in message
    assert "restricted" in message
    await cluster.create(vaultsecret("db", "apps/p/db", namespace="team-a", connection="restricted"))
    await cluster.wait_synced("team-a", "db", 1)

    assert cluster.vault.stats.count_reads("apps/p/db") == 1  # team-a's only
    assert await cluster.secret("team-b", "db") is None


async def test_path_outside_the_prefixes_is_denied(cluster, dev_vault):
    await restricted(cluster, dev_vault, [access_rule(["apps/"], namespaces=["team-a"])])
    cluster.vault.write("infra/root/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "infra/root/db", connection="restricted"))
    body = await cluster.wait_reason("team-a", "db", "PolicyDenied")
    assert "'apps/'" in ready_condition(body)["message"]
    assert cluster.vault.stats.count("read") == 0
    assert await cluster.secret("team-a", "db") is None

    # Nor does the version watcher list a prefix only denied VaultSecrets use.
    cluster.vault.stats.reset()
    await asyncio.sleep(2.1 * POLL_SECONDS)
    assert cluster.vault.stats.snapshot().requests == 0, cluster.vault.stats.snapshot().to_json()


async def test_allowing_a_denied_path_syncs_it(cluster, dev_vault):
    await restricted(cluster, dev_vault, [access_rule(["apps/"], namespaces=["team-a"])])
    cluster.vault.write("infra/root/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "infra/root/db", connection="restricted"))
    await cluster.wait_reason("team-a", "db", "PolicyDenied")

    await cluster.cluster.patch("ClusterVaultConnection", None, "restricted", {"spec": {"access": [
        access_rule(["apps/", "infra/"], namespaces=["team-a"])]}})  # fmt: skip
    await cluster.wait_synced("team-a", "db", 1)
    cluster.vault.write("infra/root/db", {"password": "pw-2"})  # and it is followed again
    _, secret = await cluster.wait_synced("team-a", "db", 2, within=5 * POLL_SECONDS)
    assert decoded(secret) == {"password": "pw-2"}


async def test_cluster_connection_without_rules_serves_nobody(cluster, dev_vault):
    await restricted(cluster, dev_vault, [])
    cluster.vault.write("apps/p/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "apps/p/db", connection="restricted"))
    await cluster.wait_reason("team-a", "db", "PolicyDenied")
    assert cluster.vault.stats.count("read") == 0


async def test_namespace_placeholder_allows_own_paths_only(cluster, dev_vault):
    await restricted(cluster, dev_vault, [access_rule(["tenants/{namespace}/"], namespaces=["team-a", "team-b"])])
    cluster.vault.write("tenants/team-a/db", {"password": "a"})
    await cluster.create(vaultsecret("own", "tenants/team-a/db", namespace="team-a", connection="restricted"))
    await cluster.create(vaultsecret("theirs", "tenants/team-a/db", namespace="team-b", connection="restricted"))

    _, secret = await cluster.wait_synced("team-a", "own", 1)
    assert decoded(secret) == {"password": "a"}
    body = await cluster.wait_reason("team-b", "theirs", "PolicyDenied")
    assert "'tenants/team-b/'" in ready_condition(body)["message"]
    assert await cluster.secret("team-b", "theirs") is None
    assert cluster.vault.stats.count_reads("tenants/team-a/db") == 1


async def test_namespaced_connection_serves_its_own_namespace(cluster, dev_vault):
    await cluster.create(credentials_secret("vault-token", "team-a", {"token": dev_vault.ro_token}))
    await cluster.create(vault_connection("local", "team-a", dev_vault.url, token_secret="vault-token"))
    cluster.vault.write("anything/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "anything/db", connection="local", connection_kind="VaultConnection"))
    _, secret = await cluster.wait_synced("team-a", "db", 1)
    assert decoded(secret) == {"password": "pw"}
    assert secret["metadata"]["annotations"]["scaivault.scailabs.ai/connection"] == "VaultConnection/local"


async def test_namespaced_connection_cannot_be_used_from_another_namespace(cluster, dev_vault):
    # spec.connectionRef has no namespace: a VaultConnection is looked up in the VaultSecret's own namespace, so
    # another namespace's connection is simply not there (check_access's cross-namespace denial is the second
    # line of defence, unit-tested in test_policy.py).
    await cluster.create(credentials_secret("vault-token", "team-a", {"token": dev_vault.ro_token}))
    await cluster.create(vault_connection("local", "team-a", dev_vault.url, token_secret="vault-token"))
    cluster.vault.write("anything/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "anything/db", namespace="team-b", connection="local",
                                     connection_kind="VaultConnection"))  # fmt: skip
    body = await cluster.wait_reason("team-b", "db", "InvalidSpec")
    assert "VaultConnection 'local' in namespace team-b does not exist" in ready_condition(body)["message"]
    assert cluster.vault.stats.count("read") == 0
    assert await cluster.secret("team-b", "db") is None


async def test_namespaced_connection_rules_narrow_paths(cluster, dev_vault):
    await cluster.create(credentials_secret("vault-token", "team-a", {"token": dev_vault.ro_token}))
    await cluster.create(vault_connection("local", "team-a", dev_vault.url, token_secret="vault-token",
                                          access=[access_rule(["apps/"], namespaces=["team-a"])]))  # fmt: skip
    cluster.vault.write("infra/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "infra/db", connection="local", connection_kind="VaultConnection"))
    await cluster.wait_reason("team-a", "db", "PolicyDenied")
    assert cluster.vault.stats.count("read") == 0


async def test_token_secret_missing_is_invalid_spec(cluster, dev_vault):
    assert cluster.runtime is not None
    status = cluster.runtime.connection_status
    await wait_until(lambda: status.health(("ClusterVaultConnection", "", CONN)) is not None, 10,
                     what="the default connection's health check (one whoami) is done")  # fmt: skip
    cluster.vault.stats.reset()
    await cluster.create(cluster_connection("tokenless", dev_vault.url, token_secret="nope"))
    cluster.vault.write("apps/t/db", {"password": "pw"})
    await cluster.create(vaultsecret("db", "apps/t/db", connection="tokenless"))
    body = await cluster.wait_reason("team-a", "db", "InvalidSpec")
    assert f"{OP_NS}/nope" in ready_condition(body)["message"]
    assert cluster.vault.stats.snapshot().requests == 0
