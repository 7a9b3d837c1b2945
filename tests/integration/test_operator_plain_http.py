"""Plain HTTP with the real operator on the emulated API and the local ScaiVault over real HTTP.

The dev vault listens on 127.0.0.1. A URL to it that the operator must treat as *not* loopback is
``http://0.0.0.0:PORT``: ``0.0.0.0`` is no loopback name (only localhost, 127.x.y.z and [::1] are), yet on Linux a
connection to it reaches the local host — a non-loopback plain-HTTP URL without any network set-up. The emulator runs
no CEL (like an API server without it, or objects stored before the rules), so the operator's own check is what
stands between such a connection and the token.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from operator_helpers import CONN, POLL_SECONDS, cluster_connection, decoded, ready_condition, vaultsecret, wait_until

DATA = {"password": "from-vault"}


def insecure_condition(body: dict[str, Any] | None) -> dict[str, Any] | None:
    return next((c for c in ((body or {}).get("status") or {}).get("conditions") or [] if c["type"] == "Insecure"),
                None)  # fmt: skip


def unspecified_address_url(url: str) -> str:
    """``url`` (the dev vault on 127.0.0.1) with host 0.0.0.0; skip where that does not reach the local host."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    assert host == "127.0.0.1", url
    try:
        socket.create_connection(("0.0.0.0", int(port)), timeout=2).close()  # noqa: S104 - connecting, not binding
    except OSError as exc:
        pytest.skip(f"a connection to 0.0.0.0 does not reach the local host here: {exc}")
    return f"http://0.0.0.0:{port}"


async def insecure_events(env: Any) -> list[dict[str, Any]]:
    return [e for e in await env.events() if e.get("reason") == "InsecureHTTP"]


async def test_plain_http_is_refused_without_insecure_http_and_nothing_is_sent(bare_env, dev_vault) -> None:
    env = bare_env
    url = unspecified_address_url(dev_vault.url)
    await env.token_secret(dev_vault.ro_token)
    await env.create(cluster_connection(CONN, url))
    await env.start_operator()
    env.vault.write("apps/h/db", DATA)
    env.vault.stats.reset()
    await env.create(vaultsecret("db", "apps/h/db"))

    body = await env.wait_reason("team-a", "db", "InvalidSpec")
    message = ready_condition(body)["message"]
    assert "url must use https://" in message
    assert "set insecureHTTP: true" in message
    assert dev_vault.ro_token not in message
    assert "0.0.0.0" not in message  # noqa: S104 - a string, not a bind
    assert insecure_condition(body) is None
    await asyncio.sleep(3 * POLL_SECONDS)  # polls and retries come and go: still nothing sent
    assert env.vault.stats.snapshot().requests == 0, "the token never went out over plain HTTP"
    assert await env.secret("team-a", "db") is None

    await env.cluster.patch("ClusterVaultConnection", None, CONN, {"spec": {"insecureHTTP": True}})
    _, secret = await env.wait_synced("team-a", "db", 1)
    assert decoded(secret) == DATA
    assert insecure_condition(await env.vs("team-a", "db")) is not None


async def test_insecure_http_is_flagged_until_the_connection_is_loopback_again(bare_env, dev_vault) -> None:
    """Allowed plain HTTP: the VaultSecrets carry Insecure (the condition goes with the plain-HTTP URL; Ready keeps
    its time), and the connection gets exactly one Warning Event, not one per sync or poll."""
    env = bare_env
    url = unspecified_address_url(dev_vault.url)
    await env.token_secret(dev_vault.ro_token)
    connection = cluster_connection(CONN, url)
    connection["spec"]["insecureHTTP"] = True
    created = await env.create(connection)
    await env.start_operator()
    env.vault.write("apps/h/db", DATA)
    await env.create(vaultsecret("db", "apps/h/db"))
    await env.create(vaultsecret("web", "apps/h/db", namespace="team-b"))

    body, secret = await env.wait_synced("team-a", "db", 1)
    assert decoded(secret) == DATA, "it works, over plain HTTP"
    condition = insecure_condition(body)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("True", "InsecureHTTP")
    assert condition["message"].startswith(f"ClusterVaultConnection {CONN} allows plain http://")
    assert "spec.url sends the ScaiVault token and the secret data unencrypted" in condition["message"]
    assert dev_vault.ro_token not in condition["message"]
    other, _ = await env.wait_synced("team-b", "web", 1)
    assert insecure_condition(other) is not None

    env.vault.write("apps/h/db", {"password": "v2"})  # more syncs and polls: still one Event
    await env.wait_synced("team-a", "db", 2, within=5 * POLL_SECONDS)
    await asyncio.sleep(2 * POLL_SECONDS)
    [event] = await insecure_events(env)
    assert event["type"] == "Warning"
    involved = event["involvedObject"]
    assert (involved["kind"], involved["name"], involved["uid"]) == ("ClusterVaultConnection", CONN,
                                                                     created["metadata"]["uid"])  # fmt: skip
    assert event["metadata"]["namespace"] == involved["namespace"] == "default"  # the emulator context's namespace
    assert dev_vault.ro_token not in event["message"]
    assert "spec.url" in event["message"]

    ready_since = ready_condition(await env.vs("team-a", "db"))["lastTransitionTime"]
    await env.cluster.patch("ClusterVaultConnection", None, CONN, {"spec": {"url": dev_vault.url,
                                                                            "insecureHTTP": None}})  # fmt: skip

    async def clean() -> dict[str, Any] | None:
        body = await env.vs("team-a", "db")
        return body if insecure_condition(body) is None else None

    body = await wait_until(clean, 5 * POLL_SECONDS, what="the Insecure condition is gone")
    assert ready_condition(body)["status"] == "True"
    assert ready_condition(body)["lastTransitionTime"] == ready_since
    await wait_until(lambda: _clean_vs(env, "team-b", "web"), 5 * POLL_SECONDS, what="team-b/web is clean too")
    assert len(await insecure_events(env)) == 1, "loopback plain HTTP is not flagged"


async def _clean_vs(env: Any, namespace: str, name: str) -> bool:
    return insecure_condition(await env.vs(namespace, name)) is None


async def test_a_warm_restart_updates_a_stale_insecure_condition_without_a_sync(bare_env, dev_vault) -> None:
    """The connection stopped using plain HTTP while the operator was down: at start, the trusted VaultSecret loses
    its Insecure condition with one status write — no ScaiVault read, no sync."""
    env = bare_env
    url = unspecified_address_url(dev_vault.url)
    await env.token_secret(dev_vault.ro_token)
    connection = cluster_connection(CONN, url)
    connection["spec"]["insecureHTTP"] = True
    await env.create(connection)
    await env.start_operator()
    env.vault.write("apps/h/db", DATA)
    await env.create(vaultsecret("db", "apps/h/db"))
    body, _ = await env.wait_synced("team-a", "db", 1)
    assert insecure_condition(body) is not None
    await asyncio.sleep(0.3)  # the watch events of the operator's own writes
    await env.stop_operator()

    await env.cluster.patch("ClusterVaultConnection", None, CONN, {"spec": {"url": dev_vault.url,
                                                                            "insecureHTTP": None}})  # fmt: skip
    env.vault.stats.reset()
    mark = env.mark()
    runtime = await env.start_operator()

    async def clean() -> dict[str, Any] | None:
        body = await env.vs("team-a", "db")
        return body if insecure_condition(body) is None else None

    after = await wait_until(clean, 5 * POLL_SECONDS, what="the stale Insecure condition is removed")
    await asyncio.sleep(POLL_SECONDS)
    assert runtime.syncs == 0
    assert env.vault.stats.snapshot().calls["read"] == 0
    writes = env.operator_writes(mark)
    assert [w for w in writes if "/vaultsecrets/" in w] == [
        "PATCH /apis/scaivault.scailabs.ai/v1alpha1/namespaces/team-a/vaultsecrets/db/status"
    ]
    # The connection's spec changed meanwhile: its own status (a new observedGeneration) is written once.
    assert [w for w in writes if "/vaultsecrets/" not in w] == [
        "PATCH /apis/scaivault.scailabs.ai/v1alpha1/clustervaultconnections/default/status"
    ]
    assert ready_condition(after) == ready_condition(body)
