"""The confused-deputy guards with the real operator on the emulated API and the local ScaiVault.

Credentials opt in: a connection may only read its token or client credentials from a Secret labelled
``scaivault.scailabs.ai/credentials=true``, checked on every read — else a user who may create a VaultConnection but
not read Secrets could make the operator send any Secret of the namespace to a server of their choosing.

Adopt needs consent: ``creationPolicy: Adopt`` takes over an existing Secret only when it is annotated
``scaivault.scailabs.ai/adopt=true``, never one controlled by another controller, never a service-account token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from operator_helpers import (
    CONN,
    OP_NS,
    POLL_SECONDS,
    TOKEN_SECRET,
    b64,
    cluster_connection,
    decoded,
    fast_settings,
    opaque_secret,
    ready_condition,
    vault_connection,
    vaultsecret,
    wait_until,
)

from scaivault_operator._logic.manifests import ADOPT_ANNOTATION, CREDENTIALS_LABEL

CANARY = "CANARY-PASSWORD-5f0b"
READ = "secrets:read"
DATA = {"password": "from-vault"}


@contextlib.asynccontextmanager
async def capturing_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """Someone else's server: records the headers of every request it gets and answers 401."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"error": "unauthorized"}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def label_command(namespace: str, name: str) -> str:
    return f"kubectl label secret -n {namespace} {name} {CREDENTIALS_LABEL}=true"


def annotate_command(namespace: str, name: str) -> str:
    return f"kubectl annotate secret -n {namespace} {name} {ADOPT_ANNOTATION}=true"


async def set_label(env: Any, namespace: str, name: str, value: str | None) -> None:
    await env.cluster.patch("Secret", namespace, name, {"metadata": {"labels": {CREDENTIALS_LABEL: value}}})


# -- credentials opt in --------------------------------------------------------------------------------------


async def test_a_vaultconnection_cannot_send_an_unlabelled_secret_anywhere(cluster) -> None:
    """The reported attack: a VaultConnection to the attacker's URL whose token is the team's database password."""
    await cluster.create(opaque_secret("db-password", "team-a", {"password": CANARY}))
    async with capturing_server() as (url, seen):
        connection = vault_connection("mine", "team-a", url, token_secret="db-password")
        connection["spec"]["auth"]["tokenSecretRef"]["key"] = "password"
        await cluster.create(connection)
        await cluster.create(vaultsecret("steal", "apps/any/thing", connection="mine",
                                         connection_kind="VaultConnection"))  # fmt: skip
        body = await cluster.wait_reason("team-a", "steal", "InvalidSpec")
        message = ready_condition(body)["message"]
        assert "Secret team-a/db-password" in message
        assert label_command("team-a", "db-password") in message
        assert CANARY not in message
        await asyncio.sleep(3 * POLL_SECONDS)  # polls and retries come and go: still nothing sent
        assert not any(CANARY in str(headers) for headers in seen), seen
        assert seen == [], "nothing at all goes out without usable credentials"


async def test_an_unlabelled_token_secret_is_invalid_spec_until_labelled(bare_env, dev_vault) -> None:
    """Labelling takes effect at the connection's next poll, not only at the (slow) retry of an InvalidSpec."""
    env = bare_env
    env.settings = fast_settings(retry_max=60.0)
    await env.token_secret(dev_vault.ro_token, labelled=False)
    await env.create(cluster_connection(CONN, dev_vault.url))
    await env.start_operator()
    env.vault.write("apps/g/db", DATA)
    env.vault.stats.reset()
    await env.create(vaultsecret("db", "apps/g/db"))

    body = await env.wait_reason("team-a", "db", "InvalidSpec")
    message = ready_condition(body)["message"]
    assert f"Secret {OP_NS}/{TOKEN_SECRET}" in message
    assert label_command(OP_NS, TOKEN_SECRET) in message
    assert dev_vault.ro_token not in message
    assert await env.secret("team-a", "db") is None
    assert env.vault.stats.snapshot().requests == 0, "the token was never sent"
    events = [e for e in await env.events() if e.get("reason") == "InvalidSpec"]
    assert events
    assert label_command(OP_NS, TOKEN_SECRET) in events[0]["message"]

    await set_label(env, OP_NS, TOKEN_SECRET, "true")
    _, secret = await env.wait_synced("team-a", "db", 1, within=5 * POLL_SECONDS)
    assert decoded(secret) == DATA


async def test_removing_the_label_stops_the_next_read_of_the_token(bare_env, dev_vault) -> None:
    """The token is re-read after a 401: a Secret whose label was removed meanwhile is refused then, and the
    refused token is not sent again. Labelled again, it is used at the connection's next poll."""
    env = bare_env
    env.settings = fast_settings(retry_max=60.0)  # recovery must not wait for the slow retry of an InvalidSpec
    await env.token_secret(dev_vault.ro_token)
    await env.create(cluster_connection(CONN, dev_vault.url))
    await env.start_operator()
    env.vault.write("apps/r/db", {"password": "one"})
    await env.create(vaultsecret("db", "apps/r/db"))
    await env.wait_synced("team-a", "db", 1)

    await set_label(env, OP_NS, TOKEN_SECRET, None)
    secret = await env.secret(OP_NS, TOKEN_SECRET)
    assert secret is not None
    assert CREDENTIALS_LABEL not in (secret["metadata"].get("labels") or {})
    env.vault.add_token("rotated-token", {READ})  # rotated: a valid new token, the old one revoked
    await env.cluster.patch("Secret", OP_NS, TOKEN_SECRET, {"data": {"token": b64("rotated-token")}})
    env.vault.revoke_token(dev_vault.ro_token)
    # A spec change makes the operator read now (a poll that cannot list reports to no VaultSecret).
    await env.cluster.patch("VaultSecret", "team-a", "db", {"spec": {"target": {"labels": {"x": "y"}}}})

    body = await env.wait_reason("team-a", "db", "InvalidSpec")
    assert label_command(OP_NS, TOKEN_SECRET) in ready_condition(body)["message"]
    assert body["status"]["syncedVersion"] == 1
    managed = await env.secret("team-a", "db")
    assert managed is not None
    assert decoded(managed) == {"password": "one"}
    assert "x" not in managed["metadata"]["labels"]

    env.vault.stats.reset()  # neither the refused token nor the rotated one goes out any more
    await asyncio.sleep(3 * POLL_SECONDS)
    assert env.vault.stats.snapshot().requests == 0, env.vault.stats.snapshot().to_json()

    await set_label(env, OP_NS, TOKEN_SECRET, "true")
    _, managed = await env.wait_synced("team-a", "db", 1, within=5 * POLL_SECONDS)
    assert managed["metadata"]["labels"]["x"] == "y"


# -- Adopt needs consent -------------------------------------------------------------------------------------


def foreign_secret(name: str, **meta: Any) -> dict[str, Any]:
    body = opaque_secret(name, "team-a", {"owner": "someone-else"}, labels={"team": "payments"})
    body["metadata"]["annotations"] = {"note": "hand-made", **meta.pop("annotations", {})}
    body["metadata"].update(meta)
    return body


def unchanged(before: dict[str, Any], after: dict[str, Any] | None) -> None:
    assert after is not None
    assert after["data"] == before["data"]
    assert after.get("type") == before.get("type")
    for field in ("labels", "annotations", "ownerReferences"):
        assert after["metadata"].get(field) == before["metadata"].get(field), field


@pytest.mark.parametrize("operator_settings", [fast_settings(retry_max=60.0)])
async def test_adopt_needs_the_consent_annotation(cluster) -> None:
    """The consent is an annotation the operator does not watch: a TargetConflict is retried with a backoff from
    ``retry_base``, so a consent given soon after the refusal is seen soon (not only after ``retry_max``)."""
    before = await cluster.create(foreign_secret("shared"))
    cluster.vault.write("apps/a/db", DATA)
    await cluster.create(vaultsecret("db", "apps/a/db", target={"name": "shared", "creationPolicy": "Adopt"}))

    body = await cluster.wait_reason("team-a", "db", "TargetConflict")
    assert ready_condition(body)["message"] == (
        "Secret team-a/shared exists and is not ours; to let this VaultSecret take it over, annotate it: "
        + annotate_command("team-a", "shared")
    )
    await asyncio.sleep(3 * POLL_SECONDS)  # retried meanwhile (the first poll of the path, too): still refused
    unchanged(before, await cluster.secret("team-a", "shared"))
    assert ready_condition(await cluster.vs("team-a", "db"))["reason"] == "TargetConflict"

    await cluster.cluster.patch("Secret", "team-a", "shared", {"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}})
    vs, adopted = await cluster.wait_synced("team-a", "db", 1, within=10)
    assert decoded(adopted) == DATA
    [ref] = [r for r in adopted["metadata"]["ownerReferences"] if r.get("controller")]
    assert (ref["kind"], ref["uid"]) == ("VaultSecret", vs["metadata"]["uid"])
    assert adopted["metadata"]["labels"]["team"] == "payments", "labels set by others are kept"
    assert adopted["metadata"]["annotations"]["note"] == "hand-made"
    assert ADOPT_ANNOTATION not in adopted["metadata"]["annotations"], "the consent is used up"


async def test_owner_policy_never_adopts_and_names_both_steps(cluster) -> None:
    before = await cluster.create(foreign_secret("taken"))
    cluster.vault.write("apps/a/db", DATA)
    await cluster.create(vaultsecret("taken", "apps/a/db"))
    body = await cluster.wait_reason("team-a", "taken", "TargetConflict")
    message = ready_condition(body)["message"]
    assert "creationPolicy: Adopt" in message
    assert annotate_command("team-a", "taken") in message
    unchanged(before, await cluster.secret("team-a", "taken"))

    # Consent alone is not enough: the VaultSecret must ask (Adopt) too.
    consent = {"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}}
    before = await cluster.cluster.patch("Secret", "team-a", "taken", consent)

    async def says_it_consents() -> bool:
        return "already consents" in ready_condition(await cluster.vs("team-a", "taken")).get("message", "")

    await wait_until(says_it_consents, what="the message says the Secret already consents")
    unchanged(before, await cluster.secret("team-a", "taken"))


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid",
                               "controller": True}]},
         "Secret team-a/shared exists and is controlled by Deployment/web"),
        ({"type": "kubernetes.io/service-account-token",
          "annotations": {"kubernetes.io/service-account.name": "default"}},
         "service-account-token Secrets are never adopted"),
    ],
    ids=["controller-owned", "service-account-token"],
)  # fmt: skip
async def test_adopt_never_takes_what_is_not_adoptable(cluster, meta: dict[str, Any], expected: str) -> None:
    meta = dict(meta)
    type_ = meta.pop("type", None)
    annotations = {ADOPT_ANNOTATION: "true", **meta.pop("annotations", {})}
    body = foreign_secret("shared", annotations=annotations, **meta)
    if type_:
        body["type"] = type_
    before = await cluster.create(body)
    cluster.vault.write("apps/a/db", DATA)
    await cluster.create(vaultsecret("db", "apps/a/db", target={"name": "shared", "creationPolicy": "Adopt"}))

    vs = await cluster.wait_reason("team-a", "db", "TargetConflict")
    assert expected in ready_condition(vs)["message"]
    await asyncio.sleep(3 * cluster.settings.retry_max)  # retried, and still refused
    unchanged(before, await cluster.secret("team-a", "shared"))
    assert ready_condition(await cluster.vs("team-a", "db"))["reason"] == "TargetConflict"


async def test_two_vaultsecrets_never_fight_over_one_secret(cluster) -> None:
    cluster.vault.write("apps/a/db", DATA)
    cluster.vault.write("apps/b/db", {"password": "other"})
    await cluster.create(vaultsecret("first", "apps/a/db", target={"name": "shared"}))
    first, _ = await cluster.wait_synced("team-a", "first", 1)
    await cluster.cluster.patch("Secret", "team-a", "shared", {"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}})
    await cluster.create(vaultsecret("second", "apps/b/db", target={"name": "shared", "creationPolicy": "Adopt"}))

    body = await cluster.wait_reason("team-a", "second", "TargetConflict")
    assert "is controlled by VaultSecret/first" in ready_condition(body)["message"]
    secret = await cluster.secret("team-a", "shared")
    assert secret is not None
    assert decoded(secret) == DATA
    [ref] = [r for r in secret["metadata"]["ownerReferences"] if r.get("controller")]
    assert ref["uid"] == first["metadata"]["uid"]
