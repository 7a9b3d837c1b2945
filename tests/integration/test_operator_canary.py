"""Canary: a planted secret value and planted tokens never show up in logs, Events, statuses, or the labels
and annotations of any Secret — only in the managed Secret's data, where they belong.

The operator is driven through success and every failure path (InvalidSpec, also for a token Secret that did not
opt in; InvalidSourceData; SourceNotFound; PolicyDenied; TargetConflict, also for an Adopt without consent;
Forbidden; BackendUnavailable; drift repair; Unauthorized) with every logger at DEBUG. The base64 forms are checked
too: that is how the values travel in Secrets and Kubernetes requests.
"""

from __future__ import annotations

import base64
import json
import logging

from operator_helpers import (
    CONN,
    OP_NS,
    TOKEN_SECRET,
    access_rule,
    b64,
    cluster_connection,
    credentials_secret,
    opaque_secret,
    vault_connection,
    vaultsecret,
    wait_until,
)

CANARY_VALUE = "CANARY-VALUE-3e9f"
CANARY_TOKEN = "CANARY-TOKEN-c41d"
CANARY_NOSCOPE_TOKEN = "CANARY-TOKEN-NOSCOPE-77aa"
READ = "secrets:read"

#: Loggers of the test's own infrastructure (the dev vault server, the emulated API server): not the operator.
INFRASTRUCTURE_LOGGERS = ("scaivault_operator.devvault", "kmock", "aiohttp.access", "aiohttp.server", "aiohttp.web")


def forms(value: str) -> list[str]:
    """The value, and its base64 encodings at each of the three alignments it can have inside a longer text."""
    found = [value, b64(value)]
    for pad in (0, 1, 2):
        encoded = base64.b64encode(b"\0" * pad + value.encode()).decode()
        start = 4 if pad else 0
        found.append(encoded[start : len(encoded) - 4])  # the part that does not depend on the neighbours
    return found


CANARIES = [form for value in (CANARY_VALUE, CANARY_TOKEN, CANARY_NOSCOPE_TOKEN) for form in forms(value)]


def leaks(text: str) -> list[str]:
    return [canary for canary in CANARIES if canary in text]


def record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    return "\n".join(parts)


async def test_no_canary_outside_the_managed_secret(bare_env, dev_vault, caplog):
    env = bare_env
    caplog.set_level(logging.DEBUG)
    vault = env.vault
    vault.add_token(CANARY_TOKEN, {READ})
    vault.add_token(CANARY_NOSCOPE_TOKEN, set())
    vault.write("apps/canary/db", {"password": CANARY_VALUE, "user": "app"})
    vault.write("infra/canary/db", {"password": CANARY_VALUE})

    await env.token_secret(CANARY_TOKEN)
    await env.create(credentials_secret("noscope-token", OP_NS, {"token": CANARY_NOSCOPE_TOKEN}))
    await env.create(cluster_connection(CONN, dev_vault.url))
    await env.create(cluster_connection("noscope", dev_vault.url, token_secret="noscope-token"))
    await env.create(cluster_connection("narrow", dev_vault.url, access=[access_rule(["apps/"], ["team-a"])]))
    await env.start_operator()

    # Success, then the failure paths.
    await env.create(vaultsecret("app", "apps/canary/db"))
    await env.wait_synced("team-a", "app", 1)
    await env.create(vaultsecret("invalid", "apps//canary"))
    await env.wait_reason("team-a", "invalid", "InvalidSpec")
    await env.create(vaultsecret("badkeys", "apps/canary/db", keys=[{"from": "nope"}]))
    await env.wait_reason("team-a", "badkeys", "InvalidSourceData")
    await env.create(vaultsecret("badname", "apps/canary/db", keys=[{"from": "password", "to": "has space"}]))
    await env.wait_reason("team-a", "badname", "InvalidSpec")
    await env.create(vaultsecret("missing", "missing/canary/db"))
    await env.wait_reason("team-a", "missing", "SourceNotFound")
    await env.create(vaultsecret("pinned", "apps/canary/db", version=99))
    await env.wait_reason("team-a", "pinned", "SourceNotFound")
    await env.create(vaultsecret("denied", "infra/canary/db", connection="narrow"))
    await env.wait_reason("team-a", "denied", "PolicyDenied")
    await env.create(vaultsecret("other-ns", "apps/canary/db", namespace="team-b", connection="narrow"))
    await env.wait_reason("team-b", "other-ns", "PolicyDenied")
    await env.create(opaque_secret("taken", "team-a", {"v": "hand-made"}))
    await env.create(vaultsecret("taken", "apps/canary/db"))
    await env.wait_reason("team-a", "taken", "TargetConflict")
    await env.create(vaultsecret("forbidden", "apps/canary/db", connection="noscope"))
    await env.wait_reason("team-a", "forbidden", "Forbidden")
    # A Secret that did not opt in as credentials (the value as a "token"), and an Adopt the Secret did not consent to.
    await env.create(opaque_secret("db-password", "team-a", {"token": CANARY_VALUE}))
    await env.create(vault_connection("thief", "team-a", dev_vault.url, token_secret="db-password"))
    await env.create(vaultsecret("steal", "apps/canary/db", connection="thief", connection_kind="VaultConnection"))
    await env.wait_reason("team-a", "steal", "InvalidSpec")
    await env.create(opaque_secret("adopt-me", "team-a", {"v": CANARY_VALUE}))
    await env.create(vaultsecret("adopt", "apps/canary/db", target={"name": "adopt-me", "creationPolicy": "Adopt"}))
    await env.wait_reason("team-a", "adopt", "TargetConflict")

    vault.faults.error_rate = 1.0
    await env.create(vaultsecret("flaky", "apps/canary/db", target={"name": "flaky"}))
    await env.wait_reason("team-a", "flaky", "BackendUnavailable")
    vault.reset_faults()
    await env.wait_synced("team-a", "flaky", 1)

    await env.cluster.patch("Secret", "team-a", "app", {"data": {"password": b64("tampered")}})

    async def repaired() -> bool:
        managed = await env.secret("team-a", "app")
        return managed is not None and managed["data"]["password"] == b64(CANARY_VALUE)

    await wait_until(repaired, what="the drift repair")

    vault.revoke_token(CANARY_TOKEN)
    vault.write("apps/canary/db", {"password": CANARY_VALUE, "user": "app2"})
    await env.wait_reason("team-a", "app", "Unauthorized", within=5)
    await env.stop_operator()

    # The positive control: the value is where it belongs.
    managed = await env.secret("team-a", "app")
    assert managed is not None
    assert managed["data"]["password"] == b64(CANARY_VALUE)

    assert leaks(json.dumps(managed["data"])), "the detector sees the value where it is"
    assert any(r.name.startswith("kopf") and r.levelno == logging.DEBUG for r in caplog.records)
    assert any(r.name.startswith("scaivault_operator._core.sync") for r in caplog.records)

    found: list[str] = []
    for record in caplog.records:
        if record.name.startswith(INFRASTRUCTURE_LOGGERS):
            continue
        if hits := leaks(record_text(record)):
            found.append(f"log {record.name} {record.levelname}: {hits}: {record.getMessage()[:300]}")
    for body in await env.vaultsecrets():
        if hits := leaks(json.dumps(body)):
            found.append(f"VaultSecret {body['metadata']['name']}: {hits}")
    events = await env.events()
    assert {e["reason"] for e in events} >= {"Synced", "InvalidSpec", "SourceNotFound", "PolicyDenied",
                                              "TargetConflict", "Forbidden", "BackendUnavailable",
                                              "InvalidSourceData", "Unauthorized"}  # fmt: skip
    for event in events:
        if hits := leaks(json.dumps(event)):
            found.append(f"Event {event['metadata']['name']} ({event.get('reason')}): {hits}")
    for secret in await env.secrets():
        meta = secret["metadata"]
        if hits := leaks(json.dumps({"labels": meta.get("labels"), "annotations": meta.get("annotations")})):
            found.append(f"Secret {meta['namespace']}/{meta['name']} metadata: {hits}")
    for connection in (CONN, "noscope", "narrow"):
        body = await env.cluster.get("ClusterVaultConnection", None, connection)
        if hits := leaks(json.dumps(body)):
            found.append(f"ClusterVaultConnection {connection}: {hits}")
    adopt_me = await env.secret("team-a", "adopt-me")
    assert adopt_me is not None
    assert adopt_me["data"] == {"v": b64(CANARY_VALUE)}, "not adopted: left as it was"
    assert not found, "\n".join(found)
    assert (await env.secret(OP_NS, TOKEN_SECRET)) is not None
