"""The pure parts of each command: ``status`` (grouping, connection health with and without the new status fields),
``why``'s steps, ``versions``' states, ``render``'s keys and hashes, ``refresh``'s value."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._cogs.scaivault import SecretSummary
from scaivault_operator._logic.manifests import data_hash
from scaivault_operator._plugin.output import ExitCode, format_report, marks_for
from scaivault_operator._plugin.render import key_rows, live_comparison, refresh_value, render_report
from scaivault_operator._plugin.source import parse_connection
from scaivault_operator._plugin.status import connection_health, status_report, vaultsecret_summary
from scaivault_operator._plugin.versions import users_of, versions_report
from scaivault_operator._plugin.why import (
    Step,
    access_step,
    health_step,
    scaivault_step,
    target_step,
    vaultsecret_step,
    why_report,
)

UID = "0b5a8c9e-uid"
VALUE = "planted-value-7c1d"  # never printed without --show-values


def vaultsecret(
    name: str,
    *,
    reason: str | None = "Synced",
    ready: bool | None = None,
    synced: int | None = 1,
    namespace: str = "shop",
    spec: dict[str, Any] | None = None,
    message: str = "",
    generation: int = 1,
    observed: int = 1,
) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": observed}
    if reason is not None:
        ok = reason == "Synced" if ready is None else ready
        status["conditions"] = [
            {"type": "Ready", "status": "True" if ok else "False", "reason": reason, "message": message}
        ]
    if synced is not None:
        status["syncedVersion"] = synced
    return {
        "apiVersion": API_VERSION,
        "kind": "VaultSecret",
        "metadata": {"name": name, "namespace": namespace, "uid": UID, "generation": generation},
        "spec": spec or {"path": "apps/db"},
        "status": status,
    }


def connection(
    kind: str = "ClusterVaultConnection",
    name: str = "default",
    *,
    status: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
    namespace: str | None = None,
) -> Any:
    body = {
        "kind": kind,
        "metadata": {"name": name, "generation": 2, **({"namespace": namespace} if namespace else {})},
        "spec": spec
        or {
            "url": "https://vault.example",
            "auth": {"tokenSecretRef": {"namespace": "ops", "name": "t"}},
            "access": [
                {"namespaces": ["other"], "pathPrefixes": ["x/"]},
                {"namespaceSelector": {"matchLabels": {"team": "shop"}}, "pathPrefixes": ["apps/"]},
            ],
        },
        "status": status or {},
    }
    return parse_connection(kind, body)


# -- status ---------------------------------------------------------------------------------------------------------


def test_vaultsecret_summary_without_status_is_pending():
    summary = vaultsecret_summary({"metadata": {"name": "a", "namespace": "n"}, "spec": {"path": "p", "version": 2}})
    assert summary == {
        "namespace": "n",
        "name": "a",
        "ready": False,
        "reason": "Pending",
        "message": None,
        "syncedVersion": None,
        "path": "p",
        "pinnedVersion": 2,
        "sources": None,
        "sourceCount": None,
        "current": True,
    }


def test_status_groups_by_reason_synced_first_then_by_count():
    report = status_report(
        [
            vaultsecret("a"),
            vaultsecret("b", reason="Forbidden", message="ScaiVault denied access " + "x" * 200),
            vaultsecret("c", reason="SourceNotFound", synced=None),
            vaultsecret("d", reason="SourceNotFound"),
            vaultsecret("e", reason=None, synced=None),
            vaultsecret("f", generation=3, observed=2, reason="PolicyDenied"),
        ],
        [],
        scope="namespace shop",
    )

    data = report.data["vaultSecrets"]
    assert data["byReason"] == {"Synced": 1, "SourceNotFound": 2, "Forbidden": 1, "Pending": 1, "PolicyDenied": 1}
    assert (data["total"], data["ready"]) == (6, 1)
    assert [v["name"] for v in data["notReady"]] == ["b", "c", "d", "e", "f"]
    assert report.code is ExitCode.NOT_READY
    text = report.text
    assert text.startswith("VaultSecrets in namespace shop: 6, 1 Ready\n")
    assert "PolicyDenied (older spec)" in text
    assert "ScaiVault denied access xxx" in text
    assert "x" * 200 not in text
    assert "x" * 200 in json.dumps(report.data)  # whole in JSON


def test_status_all_ready_exits_0():
    report = status_report([vaultsecret("a")], [connection(status={"breaker": {"state": "Closed"}})], scope="x")
    assert report.code is ExitCode.OK


def test_connection_health_reads_the_new_status_fields():
    conn = connection(
        status={
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "MissingScope", "message": "no secrets:read"}
            ],
            "identity": {"identityId": "svc:op", "identityType": "service", "tenantId": "t1", "scopes": ["a", 3]},
            "watchedPaths": 12,
            "lastPollAt": "2026-01-01T00:05:00Z",
            "breaker": {"state": "Closed", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            "observedGeneration": 2,
        }
    )

    health = connection_health(conn)

    assert health == {
        "kind": "ClusterVaultConnection",
        "namespace": None,
        "name": "default",
        "ready": "False",
        "reason": "MissingScope",
        "message": "no secrets:read",
        "breaker": {"state": "Closed", "reason": None, "retryAt": None},
        "identity": {"identityId": "svc:op", "identityType": "service", "tenantId": "t1", "scopes": ["a"]},
        "watchedPaths": 12,
        "lastPollAt": "2026-01-01T00:05:00Z",
        "observedGeneration": 2,
        "generation": 2,
    }
    assert ("info", "12 path(s) watched for new versions, last poll 2026-01-01T00:05:00Z") in health_step(conn).details
    report = status_report([], [conn], scope="all namespaces")
    assert report.code is ExitCode.NOT_READY
    assert "MissingScope" in report.text
    assert "svc:op" in report.text
    assert "12" in report.text


@pytest.mark.parametrize(
    ("status", "spec", "ready", "reason", "healthy"),
    [
        ({}, None, "Unknown", None, True),  # today's operator, a breaker that never opened
        ({"breaker": {"state": "Closed"}}, None, "Unknown", None, True),
        (
            {
                "breaker": {
                    "state": "Open",
                    "reason": "BackendUnavailable",
                    "message": "HTTP 503",
                    "retryAt": "2026-01-01T00:00:05Z",
                }
            },
            None,
            "False",
            "BackendUnavailable",
            False,
        ),
        ({}, {"url": "ftp://x", "auth": {}}, "False", "InvalidSpec", False),
        (
            {
                "conditions": [{"type": "Ready", "status": "True", "reason": "Authenticated"}],
                "breaker": {"state": "Open", "reason": "Unauthorized"},
            },
            None,
            "True",
            "Authenticated",
            False,
        ),
    ],
)
def test_connection_health_degrades_gracefully(status, spec, ready, reason, healthy):
    conn = connection(status=status, spec=spec)
    health = connection_health(conn)

    assert (health["ready"], health["reason"]) == (ready, reason)
    assert health["identity"] is None
    assert health["watchedPaths"] is None
    report = status_report([], [conn], scope="x")
    assert (report.code is ExitCode.OK) == healthy
    if health["breaker"] and health["breaker"]["state"] == "Open" and health["breaker"]["retryAt"]:
        assert "2026-01-01T00:00:05Z" in report.text


# -- why ------------------------------------------------------------------------------------------------------------


def managed_secret(
    version: str = "1", *, uid: str = UID, data: dict[str, str] | None = None, tamper: bool = False
) -> dict[str, Any]:
    data = data or {"password": base64.b64encode(VALUE.encode()).decode()}
    stored = {**data, "password": base64.b64encode(b"edited").decode()} if tamper else data
    return {
        "metadata": {
            "name": "app",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/managed-by": "scaivault-operator"},
            "annotations": {
                "scaivault.scailabs.ai/version": version,
                "scaivault.scailabs.ai/path": "apps/db",
                "scaivault.scailabs.ai/data-hash": data_hash(data),
            },
            "ownerReferences": [{"uid": uid, "controller": True, "kind": "VaultSecret", "name": "app"}],
        },
        "type": "Opaque",
        "data": stored,
    }


def target(secret, **overrides):
    kwargs = {
        "namespace": "shop",
        "name": "app",
        "vaultsecret_uid": UID,
        "synced_version": 1,
        "path": "apps/db",
        "error": None,
        **overrides,
    }
    return target_step(secret, **kwargs)


def test_target_step_of_a_healthy_secret():
    step = target(managed_secret())
    assert step.state == "ok"
    assert [s for s, _ in step.details] == ["ok", "ok", "ok", "ok", "info"]
    assert step.details[-1] == ("info", "type Opaque, 1 key(s)")
    assert VALUE not in repr(step.as_data())


@pytest.mark.parametrize(
    ("secret", "overrides", "failing"),
    [
        (managed_secret("2"), {}, "version annotation 2, status.syncedVersion 1"),
        (managed_secret(uid="someone-else"), {}, "not controlled by this VaultSecret"),
        (managed_secret(tamper=True), {}, "data changed since the operator wrote it"),
        (managed_secret(), {"path": "apps/other"}, "holds path apps/db, the spec says apps/other"),
        ({"metadata": {"name": "app"}, "data": {"k": "dg=="}}, {}, "missing: not managed by the operator"),
    ],
)
def test_target_step_failures(secret, overrides, failing):
    step = target(secret, **overrides)
    assert step.state == "fail"
    assert any(state == "fail" and failing in line for state, line in step.details), step.details


def test_target_step_missing_or_unreadable():
    assert target(None).state == "fail"
    unreadable = target(None, error="get Secret shop/app: forbidden (HTTP 403)")
    assert (unreadable.state, unreadable.details) == (
        "unknown",
        [("unknown", "get Secret shop/app: forbidden (HTTP 403)")],
    )


def test_vaultsecret_step_states():
    ok = vaultsecret_step(vaultsecret("app", synced=3), None, None)
    assert (ok.state, ok.summary) == ("ok", "shop/app: Ready (Synced), version 3 in the Secret")
    pending = vaultsecret_step(vaultsecret("app", reason=None, synced=None), None, None)
    assert pending.state == "unknown"
    denied = vaultsecret_step(vaultsecret("app", reason="PolicyDenied", message="not allowed"), None, None)
    assert denied.state == "fail"
    assert denied.details[0] == ("fail", "not allowed")
    # a ScaiVault reason: the message goes to the ScaiVault step, not twice
    missing = vaultsecret_step(vaultsecret("app", reason="SourceNotFound", message="no such secret"), None, None)
    assert all("no such secret" not in line for _, line in missing.details)
    shown_elsewhere = vaultsecret_step(
        vaultsecret("app", reason="PolicyDenied", message="not allowed"), None, None, access_shown=True
    )
    assert all("not allowed" not in line for _, line in shown_elsewhere.details)
    stale = vaultsecret_step(vaultsecret("app", generation=4, observed=3), None, None)
    assert (
        "unknown",
        "the operator has not acted on the latest spec yet (generation 4, status for 3)",
    ) in stale.details


def test_access_step_names_the_matching_rule_and_unreadable_labels():
    conn = connection()
    allowed = access_step(conn, "shop", {"team": "shop"}, None, "apps/db")
    assert allowed.state == "ok"
    assert allowed.details[0] == ("ok", "rule #2 of spec.access (a namespaceSelector) matches")

    denied = access_step(conn, "shop", {"team": "other"}, None, "apps/db")
    assert denied.state == "fail"
    assert "does not allow namespace shop" in denied.summary

    unknown = access_step(conn, "shop", None, "get Namespace shop: forbidden (HTTP 403)", "apps/db")
    assert unknown.state == "unknown"  # the operator, which can read the labels, may well allow it
    assert "cannot read the labels of namespace shop" in unknown.details[0][1]


def test_scaivault_step_with_the_breaker_open():
    conn = connection(
        status={"breaker": {"state": "Open", "reason": "BackendUnavailable", "retryAt": "2026-01-01T00:00:05Z"}}
    )
    status = vaultsecret("app", reason="BackendUnavailable", message="ScaiVault is unavailable")["status"]

    step = scaivault_step(status, conn)

    assert step.state == "fail"
    assert step.summary == "last answer: BackendUnavailable — ScaiVault is unavailable"
    assert step.details == [("fail", "next request not before 2026-01-01T00:00:05Z: the connection's breaker is open")]
    assert scaivault_step(vaultsecret("app", reason="PolicyDenied")["status"], None).state == "unknown"
    assert scaivault_step(vaultsecret("app", reason="TargetConflict")["status"], None).state == "ok"
    assert "retried slowly" in scaivault_step(vaultsecret("a", reason="SourceNotFound")["status"], None).details[0][1]


def test_health_step_of_an_open_breaker_and_of_a_silent_status():
    conn = connection(status={"breaker": {"state": "Open", "reason": "Unauthorized", "retryAt": "T"}})
    assert health_step(conn).state == "fail"
    assert ("fail", "breaker open (Unauthorized): no request before T") in health_step(conn).details
    assert health_step(connection()).state == "ok"


def test_why_report_marks_and_exit_codes():
    steps = [Step("A", "ok", "fine", [("info", "detail")]), Step("B", "unknown", "cannot tell")]
    ok = why_report("shop", "app", steps, True, marks_for("utf-8"))
    assert ok.text.splitlines() == ["✓ A: fine", "    • detail", "? B: cannot tell"]
    assert ok.code is ExitCode.OK
    assert why_report("shop", "app", steps, False, marks_for("ascii")).code is ExitCode.NOT_READY
    failed = why_report("shop", "app", [*steps, Step("C", "fail", "broken")], True, marks_for("ascii"))
    assert failed.code is ExitCode.NOT_READY
    assert failed.text.splitlines()[-1] == "x C: broken"
    assert json.loads(format_report(failed, "json"))["steps"][2] == {
        "step": "C",
        "state": "fail",
        "summary": "broken",
        "details": [],
    }


# -- versions -------------------------------------------------------------------------------------------------------


def test_versions_report_states_and_users():
    conn = connection()
    bodies = [
        vaultsecret("current", synced=3),
        vaultsecret("behind", synced=2),
        vaultsecret("pinned", synced=1, spec={"path": "apps/db", "version": 1}),
        vaultsecret("bad-pin", synced=None, spec={"path": "apps/db", "version": 9}, reason="SourceNotFound"),
        vaultsecret("new", synced=None, reason=None),
        vaultsecret("other-path", spec={"path": "apps/other"}),
        vaultsecret("other-conn", spec={"path": "apps/db", "connectionRef": {"name": "elsewhere"}}),
        vaultsecret(
            "own-conn", spec={"path": "apps/db", "connectionRef": {"kind": "VaultConnection", "name": "default"}}
        ),
        vaultsecret("invalid", spec={"path": "apps//db"}),
    ]
    users = users_of(bodies, conn, "apps/db")
    assert [u["name"] for u in users] == ["bad-pin", "behind", "current", "new", "pinned"]

    summary = SecretSummary(path="apps/db", version=3, updated_at=datetime(2026, 4, 23, 14, 5, tzinfo=UTC))
    report = versions_report("apps/db", conn, summary, users, scope="all namespaces")

    states = {u["name"]: u["state"] for u in report.data["usedBy"]}
    assert states == {
        "bad-pin": "pinned to 9, which does not exist",
        "behind": "behind (current is 3)",
        "current": "current",
        "new": "not synced",
        "pinned": "pinned to 1",
    }
    assert report.data["current"] == {"version": 3, "updatedAt": "2026-04-23T14:05:00+00:00", "secretType": None}
    assert report.data["versions"] == {"first": 1, "last": 3}
    assert report.data["byVersion"] == {"3": ["shop/current"], "2": ["shop/behind"], "1": ["shop/pinned"]}
    assert report.text.startswith("apps/db through ClusterVaultConnection default: version 3 is current")
    assert report.code is ExitCode.OK

    missing = versions_report("apps/db", conn, None, [], scope="namespace shop")
    assert missing.code is ExitCode.NOT_READY
    assert missing.text.startswith("ScaiVault has no secret at apps/db")


# -- render and refresh ---------------------------------------------------------------------------------------------


def test_key_rows_give_sizes_and_truncated_hashes_and_values_only_on_request():
    data = {"b": base64.b64encode(VALUE.encode()).decode(), "a": base64.b64encode(b"\xff\x00").decode()}

    rows = key_rows(data, show_values=False)

    assert rows == [
        {"key": "a", "size": 2, "sha256": hashlib.sha256(b"\xff\x00").hexdigest()[:12]},
        {"key": "b", "size": len(VALUE), "sha256": hashlib.sha256(VALUE.encode()).hexdigest()[:12]},
    ]
    shown = key_rows(data, show_values=True)
    assert [r["value"] for r in shown] == ["base64:/wA=", VALUE]


def test_render_report_prints_no_value_without_show_values():
    data = {"password": base64.b64encode(VALUE.encode()).decode(), "pem": base64.b64encode(b"l1\nl2").decode()}
    manifest = {
        "metadata": {
            "name": "app",
            "namespace": "shop",
            "labels": {"l": "v"},
            "annotations": {"scaivault.scailabs.ai/data-hash": data_hash(data)},
        },
        "type": "Opaque",
        "data": data,
    }
    encoded = data["password"]
    hidden = render_report(
        manifest, path="apps/db", version=2, connection="C/d", live=(True, "same"), show_values=False
    )
    for fmt in ("table", "json", "yaml"):
        text = format_report(hidden, fmt)
        assert VALUE not in text
        assert encoded not in text
    assert hidden.data["live"] == {"same": True, "message": "same"}

    shown = render_report(manifest, path="apps/db", version=2, connection="C/d", live=None, show_values=True)
    assert f"  password: {VALUE}" in shown.text
    assert "  pem: |\n    l1\n    l2" in shown.text


def test_live_comparison():
    data = {"password": base64.b64encode(VALUE.encode()).decode()}
    desired = {"metadata": {"annotations": {"scaivault.scailabs.ai/data-hash": data_hash(data)}}, "data": data}
    assert live_comparison(None, desired, owner_uid=UID, creation_policy="Owner")[0] is None
    same, message = live_comparison(managed_secret(), desired, owner_uid=UID, creation_policy="Owner")
    assert (same, message) == (True, "the Secret already holds this data (its version annotation: 1)")
    assert live_comparison(managed_secret(tamper=True), desired, owner_uid=UID, creation_policy="Owner")[0] is False
    other = {"x": base64.b64encode(b"other").decode()}
    assert live_comparison(managed_secret(data=other), desired, owner_uid=UID, creation_policy="Owner")[0] is False
    foreign, why = live_comparison(managed_secret(uid="x"), desired, owner_uid=UID, creation_policy="Owner")
    assert foreign is False
    assert why.startswith("the operator would not write it (TargetConflict)")


def test_refresh_value_is_rfc3339_utc_with_microseconds():
    moment = datetime(2026, 4, 23, 16, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert refresh_value(lambda: moment) == "2026-04-23T14:00:00.123456Z"
    assert refresh_value(lambda: datetime(2026, 4, 23, 14, 0, 0)) == "2026-04-23T14:00:00.000000Z"
