"""spec.template with the real operator, kmock and the dev vault: a DATABASE_URL rendered from four keys, re-rendered
at a new version; a template that fails is TemplateError and leaves the previous Secret untouched (no write); the
Secret's type and labels come from the template; no value ever reaches a log line, an Event or the status."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from operator_helpers import (
    POLL_SECONDS,
    OperatorEnv,
    b64,
    decoded,
    ready_condition,
    vaultsecret,
    wait_until,
)
from test_operator_canary import INFRASTRUCTURE_LOGGERS, record_text

NS = "team-a"
PATH = "apps/web/db"
URL = "postgres://{{ data.user }}:{{ data.password | urlquote }}@{{ data.host }}:5432/{{ data.dbname }}"
SECRET_PATH = f"/api/v1/namespaces/{NS}/secrets/db"
CANARY = "CANARY-TPL-INT-4b1e"


def templated(name: str, template: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    body = vaultsecret(name, PATH, **kwargs)
    body["spec"]["template"] = template
    return body


def db(password: str, **extra: str) -> dict[str, str]:
    return {"user": "app", "password": password, "host": "db.internal", "dbname": "main", **extra}


def secret_writes(env: OperatorEnv, since: int) -> list[str]:
    return [w for w in env.operator_writes(since) if "/secrets" in w]


async def test_a_database_url_renders_and_follows_new_versions(cluster):
    cluster.vault.write(PATH, db("pw/1@x"))
    template = {
        "data": {"DATABASE_URL": URL},
        "literals": {"PGSSLMODE": "require"},
        "type": "example.com/database",
        "labels": {"app": "web"},
    }
    await cluster.create(templated("db", template, target={"labels": {"team": "a"}}))
    body, secret = await cluster.wait_synced(NS, "db", 1)
    assert decoded(secret) == {
        "DATABASE_URL": "postgres://app:pw%2F1%40x@db.internal:5432/main",
        "PGSSLMODE": "require",
    }
    assert secret["type"] == "example.com/database"
    assert secret["metadata"]["labels"]["app"] == "web"
    assert secret["metadata"]["labels"]["team"] == "a"
    assert ready_condition(body)["reason"] == "Synced"

    mark = cluster.mark()
    cluster.vault.write(PATH, db("pw-2"))
    _, secret = await cluster.wait_synced(NS, "db", 2, within=5 * POLL_SECONDS)
    assert decoded(secret)["DATABASE_URL"] == "postgres://app:pw-2@db.internal:5432/main"
    assert secret_writes(cluster, mark) == [f"PATCH {SECRET_PATH}"]  # one patch: the re-rendered key

    mark = cluster.mark()
    cluster.vault.write(PATH, db("pw-2", comment="a key the template does not use"))
    await cluster.wait_synced(NS, "db", 3, within=5 * POLL_SECONDS)
    await asyncio.sleep(0.3)
    # Same rendered data: the version annotation moves, nothing else (one patch, no data).
    assert secret_writes(cluster, mark) == [f"PATCH {SECRET_PATH}"]
    assert decoded(await cluster.secret(NS, "db"))["DATABASE_URL"] == "postgres://app:pw-2@db.internal:5432/main"


async def test_merge_policy_keeps_the_synced_keys(cluster):
    cluster.vault.write(PATH, db("pw"))
    template = {"mergePolicy": "Merge", "data": {"DATABASE_URL": URL, "user": "{{ data.user | upper }}"}}
    await cluster.create(templated("db", template))
    _, secret = await cluster.wait_synced(NS, "db", 1)
    assert decoded(secret) == {**db("pw"), "user": "APP", "DATABASE_URL": "postgres://app:pw@db.internal:5432/main"}


async def test_a_failing_template_keeps_the_previous_secret(cluster):
    cluster.vault.write(PATH, db("pw-1"))
    await cluster.create(templated("db", {"data": {"DATABASE_URL": URL}}))
    _, before = await cluster.wait_synced(NS, "db", 1)

    # A spec change whose template names a key that is not there.
    mark = cluster.mark()
    broken = URL.replace("data.host", "data.hostname")
    await cluster.cluster.patch("VaultSecret", NS, "db", {"spec": {"template": {"data": {"DATABASE_URL": broken}}}})
    body = await cluster.wait_reason(NS, "db", "TemplateError")
    message = ready_condition(body)["message"]
    assert message.startswith("spec.template.data['DATABASE_URL'], line 1: data has no key 'hostname' (its keys: ")
    assert message.endswith("the Secret keeps its last data")
    await asyncio.sleep(0.3)
    assert secret_writes(cluster, mark) == []
    after = await cluster.secret(NS, "db")
    assert after is not None
    assert after == before  # data, version annotation, everything
    events = [e for e in await cluster.events() if e.get("reason") == "TemplateError"]
    assert [e["type"] for e in events] == ["Warning"]

    # Fixed: synced again. Then a new version without a key the template uses: TemplateError, the Secret stays.
    await cluster.cluster.patch("VaultSecret", NS, "db", {"spec": {"template": {"data": {"DATABASE_URL": URL}}}})
    await wait_until(lambda: _reason(cluster, "Synced"), 10, what="Synced again")
    _, good = await cluster.wait_synced(NS, "db", 1)
    mark = cluster.mark()
    cluster.vault.write(PATH, {"user": "app", "password": "pw-2", "dbname": "main"})
    body = await cluster.wait_reason(NS, "db", "TemplateError", within=5 * POLL_SECONDS)
    assert "data has no key 'host'" in ready_condition(body)["message"]
    await asyncio.sleep(0.3)
    assert secret_writes(cluster, mark) == []
    kept = await cluster.secret(NS, "db")
    assert kept is not None
    assert kept["data"] == good["data"]
    assert body["status"]["syncedVersion"] == 1  # the version in the Secret

    # The next version that renders is written.
    cluster.vault.write(PATH, db("pw-3"))
    _, secret = await cluster.wait_synced(NS, "db", 3, within=5 * POLL_SECONDS)
    assert decoded(secret)["DATABASE_URL"] == "postgres://app:pw-3@db.internal:5432/main"


async def _reason(env: OperatorEnv, reason: str) -> bool:
    return ready_condition(await env.vs(NS, "db")).get("reason") == reason


async def test_a_first_sync_that_fails_writes_no_secret(cluster):
    cluster.vault.write(PATH, db("pw"))
    mark = cluster.mark()
    await cluster.create(templated("db", {"data": {"K": "{% for i in range(10**9) %}{% endfor %}"}}))
    body = await cluster.wait_reason(NS, "db", "TemplateError")
    assert "range() of more than 10000 numbers" in ready_condition(body)["message"]
    assert secret_writes(cluster, mark) == []
    assert await cluster.secret(NS, "db") is None


async def test_no_value_in_logs_events_or_status(cluster, caplog):
    caplog.set_level(logging.DEBUG)
    secret_data = db(CANARY, json=json.dumps({"token": CANARY}), bundle=f"-----BEGIN X-----\n{CANARY}\n-----END X-----")
    cluster.vault.write(PATH, secret_data)
    failing = {
        "computed": "{{ data[data.password] }}",
        "number": "{{ data.password | int + data.password }}",
        "json": "{{ data.password | fromjson }}",
        "yaml": "{{ (data.password ~ ': [') | fromyaml }}",
        "pem": "{{ data.bundle | pem_private_key }}",
        "attr": "{{ data.password.__class__ }}",
        "slice": "{{ (data.json | fromjson)[data.password] }}",
        "htpasswd": "{{ htpasswd(data.password ~ ':', data.password) }}",
    }
    for name, template in failing.items():
        await cluster.create(templated(f"bad-{name}", {"data": {"K": template}}, target={"name": f"bad-{name}"}))
    good_template = {"data": {"DATABASE_URL": URL, "htpasswd": "{{ htpasswd('u', data.password) }}"}}
    await cluster.create(templated("good", good_template, target={"name": "good"}))
    await cluster.wait_all_reason([(NS, f"bad-{name}") for name in failing], "TemplateError")
    _, good = await cluster.wait_synced(NS, "good", 1)
    assert CANARY in decoded(good)["DATABASE_URL"]  # the positive control: the value is where it belongs
    await cluster.stop_operator()

    found: list[str] = []
    for record in caplog.records:
        if not record.name.startswith(INFRASTRUCTURE_LOGGERS) and CANARY in record_text(record):
            found.append(f"log {record.name}: {record.getMessage()[:200]}")
    for body in await cluster.vaultsecrets():
        if CANARY in json.dumps(body.get("status")):
            found.append(f"status of {body['metadata']['name']}")
    events = await cluster.events()
    assert sum(e.get("reason") == "TemplateError" for e in events) == len(failing)
    for event in events:
        if CANARY in json.dumps(event) or b64(CANARY)[:12] in json.dumps(event):
            found.append(f"Event {event.get('reason')}")
    assert not found, "\n".join(found)
