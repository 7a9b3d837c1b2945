"""Failures: each ScaiVault answer maps to its reason, the Secret keeps its last synced data, and recovery
follows once the cause is gone. A bad token costs a bounded number of requests (the auth breaker)."""

from __future__ import annotations

import asyncio

from operator_helpers import (
    CONN,
    POLL_SECONDS,
    cluster_connection,
    credentials_secret,
    decoded,
    ready_condition,
    vaultsecret,
    wait_until,
)

from scaivault_operator._logic.registry import ConnKey

READ = "secrets:read"
DEFAULT_CONN: ConnKey = ("ClusterVaultConnection", "", CONN)


async def wait_listed(cluster, *paths: str) -> None:
    """Wait until a poll has listed ``paths``: the operator then knows their latest version."""
    assert cluster.runtime is not None
    latest = cluster.runtime.registry.latest
    await wait_until(lambda: all(latest.get((DEFAULT_CONN, p)) is not None for p in paths), 5 * POLL_SECONDS,
                     what=f"a poll listed {paths}")  # fmt: skip


async def synced_secret(cluster, name: str, path: str, data: dict[str, str], **kwargs) -> dict:
    cluster.vault.write(path, data)
    await cluster.create(vaultsecret(name, path, **kwargs))
    _, secret = await cluster.wait_synced("team-a", name, 1)
    return secret


async def assert_intact(cluster, name: str, before: dict, version: int = 1) -> dict:
    secret = await cluster.secret("team-a", name)
    assert secret is not None
    assert secret["data"] == before["data"]
    body = await cluster.vs("team-a", name)
    assert body is not None
    assert body["status"]["syncedVersion"] == version
    return body


async def test_unauthorized_keeps_secret_and_recovers(cluster, dev_vault):
    before = await synced_secret(cluster, "db", "apps/f/db", {"password": "one"})
    await wait_listed(cluster, "apps/f/db")  # in sync and known to be: a revoked token must still show

    cluster.vault.revoke_token(dev_vault.ro_token)
    cluster.vault.write("apps/f/db", {"password": "two"})
    body = await cluster.wait_reason("team-a", "db", "Unauthorized", within=5 * POLL_SECONDS)
    assert "token" in ready_condition(body)["message"]
    await assert_intact(cluster, "db", before)

    cluster.vault.add_token(dev_vault.ro_token, {READ})  # the token works again: the breaker's probe succeeds
    _, secret = await cluster.wait_synced("team-a", "db", 2, within=10)
    assert decoded(secret) == {"password": "two"}


async def test_forbidden_when_the_token_lacks_the_scope(cluster, dev_vault):
    await cluster.create(credentials_secret("noscope-token", "scaivault-system", {"token": dev_vault.noscope_token}))
    await cluster.create(cluster_connection("noscope", dev_vault.url, token_secret="noscope-token"))
    cluster.vault.write("apps/f/api", {"key": "k"})
    await cluster.create(vaultsecret("api", "apps/f/api", connection="noscope"))
    body = await cluster.wait_reason("team-a", "api", "Forbidden")
    assert "secrets:read" in ready_condition(body)["message"]
    assert await cluster.secret("team-a", "api") is None


async def test_forbidden_after_the_scope_is_withdrawn_keeps_secret(cluster, dev_vault):
    before = await synced_secret(cluster, "db", "apps/f/db", {"password": "one"})
    await wait_listed(cluster, "apps/f/db")

    cluster.vault.add_token(dev_vault.ro_token, set())  # same token, no scopes any more: 403
    cluster.vault.write("apps/f/db", {"password": "two"})
    await cluster.wait_reason("team-a", "db", "Forbidden", within=5 * POLL_SECONDS)
    await assert_intact(cluster, "db", before)


async def test_source_not_found(cluster):
    cluster.vault.write("apps/f/exists", {"a": "1"})
    await cluster.create(vaultsecret("nopath", "missing/nothing/here"))
    await cluster.create(vaultsecret("noversion", "apps/f/exists", version=99))
    body = await cluster.wait_reason("team-a", "nopath", "SourceNotFound")
    assert "spec.path" in ready_condition(body)["message"]
    await cluster.wait_reason("team-a", "noversion", "SourceNotFound")
    assert await cluster.secret("team-a", "nopath") is None
    assert await cluster.secret("team-a", "noversion") is None

    cluster.vault.write("missing/nothing/here", {"a": "now"})  # the next poll finds it
    _, secret = await cluster.wait_synced("team-a", "nopath", 1, within=5 * POLL_SECONDS)
    assert decoded(secret) == {"a": "now"}


async def test_pin_to_a_missing_version_keeps_secret(cluster):
    before = await synced_secret(cluster, "db", "apps/f/db", {"password": "one"}, version=1)
    await cluster.cluster.patch("VaultSecret", "team-a", "db", {"spec": {"version": 99}})
    body = await cluster.wait_reason("team-a", "db", "SourceNotFound")
    assert body["status"]["observedGeneration"] == 2
    await assert_intact(cluster, "db", before)


async def test_backend_unavailable_keeps_secret_and_recovers(cluster):
    before = await synced_secret(cluster, "db", "apps/f/db", {"password": "one"})

    cluster.vault.faults.error_rate = 1.0
    cluster.vault.write("apps/f/db", {"password": "two"})
    # A spec change makes the operator read at once (a poll would fail to list, and wait for the next one).
    await cluster.cluster.patch("VaultSecret", "team-a", "db", {"spec": {"target": {"labels": {"x": "y"}}}})
    body = await cluster.wait_reason("team-a", "db", "BackendUnavailable")
    assert "retrying" in ready_condition(body)["message"]
    await assert_intact(cluster, "db", before)

    cluster.vault.reset_faults()
    _, secret = await cluster.wait_synced("team-a", "db", 2, within=10)
    assert decoded(secret) == {"password": "two"}
    assert secret["metadata"]["labels"]["x"] == "y"


async def test_auth_breaker_bounds_requests(cluster, dev_vault):
    count = 20
    for i in range(count):
        cluster.vault.write(f"apps/b{i}/db", {"n": str(i)})
    for i in range(count):
        await cluster.create(vaultsecret(f"s{i}", f"apps/b{i}/db"))
    keys = [("team-a", f"s{i}") for i in range(count)]
    await cluster.wait_all_synced(keys, 1)
    await wait_listed(cluster, *(f"apps/b{i}/db" for i in range(count)))

    loop = asyncio.get_running_loop()
    started = loop.time()
    cluster.vault.stats.reset()
    cluster.vault.revoke_token(dev_vault.ro_token)
    for i in range(count):
        cluster.vault.write(f"apps/b{i}/db", {"n": f"{i}-2"})
    await cluster.wait_all_reason(keys, "Unauthorized", within=5 * POLL_SECONDS)
    await asyncio.sleep(max(0.0, started + 3.0 - loop.time()))

    stats = cluster.vault.stats.snapshot()
    # Without the breaker: a read per VaultSecret (each with a token renewal) on every retry, plus the lists.
    assert stats.requests <= 6, stats.to_json()
    assert stats.reads == {}, stats.to_json()  # (a probe may be a read or a list: whoever comes first)
    assert stats.statuses.get(401, 0) == stats.requests
    for i in range(count):  # all still hold version 1
        secret = await cluster.secret("team-a", f"s{i}")
        assert secret is not None
        assert decoded(secret) == {"n": str(i)}
