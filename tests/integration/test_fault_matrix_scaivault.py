"""The ScaiVault fault matrix (issue 10): each fault injected by the dev vault, survived by the real operator.

Every test asserts with counts and states, never with wall-clock timings:

- nothing is lost, emptied or half-written: during the fault the managed Secret keeps exactly its last good data and
  version annotation and gets no write at all, and a VaultSecret created during the fault gets no Secret;
- the Ready condition names the cause (its reason, and a message that says what happened) and no planted value
  (secret data, tokens, client secret) shows up in a status, an Event or a log line of the operator;
- recovery within two polls of the fault clearing (the version watcher's ``polls`` counter);
- the ScaiVault requests sent during the fault (dev vault stats) stay within the client's retry bounds.

Each test prints one ``fault-matrix: {...}`` line with what it observed; ``docs/reliability.md`` tabulates them
(``pytest tests/integration/test_fault_matrix_scaivault.py -p no:cacheprovider -s | grep fault-matrix``).
Tests marked ``xfail(strict=True)`` show a bug in a module this matrix may not change; their reason names it.
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import pytest
from operator_helpers import (
    CONN,
    DEFAULT_PREFIXES,
    OP_NS,
    POLL,
    TOKEN_SECRET,
    OperatorEnv,
    access_rule,
    b64,
    credentials_secret,
    decoded,
    fast_settings,
    ready_condition,
    vaultsecret,
    wait_until,
)

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._cogs.scaivault import ScaiVaultClient
from scaivault_operator._core import connections as connections_module
from scaivault_operator._logic.manifests import ANNOTATION_VERSION
from scaivault_operator._logic.registry import ConnKey

NS = "team-a"
PATH = "apps/fm/db"
FRESH_PATH = "apps/fm/fresh"
READ = "secrets:read"
CANARY_V1 = "CANARY-FM-V1-9b7e"
CANARY_V2 = "CANARY-FM-V2-51c3"
CANARY_TOKEN = "CANARY-FM-TOKEN-d20a"
CANARY_CLIENT_SECRET = "CANARY-FM-CLIENT-SECRET-6f1b"
V1 = {"password": CANARY_V1, "user": "app"}
V2 = {"password": CANARY_V2, "user": "app"}
#: A client-credentials connection (ClusterVaultConnection), its credentials Secret and its OAuth client.
CC = "cc"
CC_SECRET = "cc-client"
CC_CLIENT_ID = "fm-client"
#: The client's timeout in the slow-answer test (the real default: read 15 s); the dev vault then waits longer.
SHORT_TIMEOUT = 0.4
SLOW_LATENCY = 1.5
#: Attempts per read request (the client's default RetryPolicy); a 401 adds one repeat after renewing the token.
ATTEMPTS = 4
BACKEND_UNAVAILABLE = "BackendUnavailable"
UNAUTHORIZED = "Unauthorized"
#: Loggers of the test's infrastructure (the dev vault, the emulated API server): not the operator's.
INFRASTRUCTURE_LOGGERS = ("scaivault_operator.devvault", "kmock", "aiohttp.access", "aiohttp.server", "aiohttp.web")


# -- canaries ------------------------------------------------------------------------------------------------


def _forms(value: str) -> list[str]:
    """The value and its base64 encodings at the three alignments it can have inside a longer text."""
    found = [value, b64(value)]
    for pad in (0, 1, 2):
        encoded = base64.b64encode(b"\0" * pad + value.encode()).decode()
        found.append(encoded[4 if pad else 0 : len(encoded) - 4])
    return found


CANARIES = [form for value in (CANARY_V1, CANARY_V2, CANARY_TOKEN, CANARY_CLIENT_SECRET) for form in _forms(value)]


def _leaks(text: str) -> list[str]:
    return [canary for canary in CANARIES if canary in text]


def _record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every operator log line, the ScaiVault client's and httpx's at DEBUG, to look for planted values."""
    caplog.set_level(logging.INFO)
    for name in ("scaivault_operator", "httpx"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def assert_no_leaks(env: OperatorEnv, logs: pytest.LogCaptureFixture) -> None:
    found: list[str] = []
    for record in logs.records:
        if not record.name.startswith(INFRASTRUCTURE_LOGGERS) and (hits := _leaks(_record_text(record))):
            found.append(f"log {record.name} {record.levelname}: {hits}")
    for body in await env.vaultsecrets():
        if hits := _leaks(json.dumps(body)):
            found.append(f"VaultSecret {body['metadata']['name']}: {hits}")
    for event in await env.events():
        if hits := _leaks(json.dumps(event)):
            found.append(f"Event {event.get('reason')}: {hits}")
    assert not found, "\n".join(found)


# -- observations --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """What one fault cost; printed as ``fault-matrix: {...}`` and tabulated in docs/reliability.md."""

    fault: str
    reason: str
    polls_during: int  # polls that sent requests while the fault lasted
    requests_during: int  # ScaiVault requests during the fault (dev vault stats; token endpoint included)
    lists_during: int
    reads_during: int
    tokens_during: int
    injected: int  # answers the dev vault spoiled
    secret_writes_during: int  # the operator's writes to Secrets in the namespace while the fault lasted
    recovery_polls: int  # polls after the fault cleared until everything was back


def report(row: Row) -> None:
    print(f"fault-matrix: {json.dumps(asdict(row))}")


def conn_key(name: str = CONN) -> ConnKey:
    return ("ClusterVaultConnection", "", name)


def polls(env: OperatorEnv, conn: str = CONN) -> int:
    assert env.runtime is not None
    return env.runtime.watchers[conn_key(conn)][0].polls


def syncs(env: OperatorEnv) -> int:
    assert env.runtime is not None
    return env.runtime.syncs


async def wait_polls(env: OperatorEnv, count: int, *, conn: str = CONN, within: float = 30.0) -> None:
    start = polls(env, conn)
    await wait_until(lambda: polls(env, conn) >= start + count, within, what=f"{count} more polls of {conn}")


async def wait_listed(env: OperatorEnv, *paths: str, conn: str = CONN, version: int | None = None) -> None:
    """Wait until a poll has listed ``paths`` (at ``version``): the operator then knows their latest version."""
    assert env.runtime is not None
    latest = env.runtime.registry.latest

    def listed() -> bool:
        found = [latest.get((conn_key(conn), path)) for path in paths]
        return all(v is not None and (version is None or v == version) for v in found)

    await wait_until(listed, 10, what=f"a poll listed {paths} (version {version})")


def secret_writes(env: OperatorEnv, since: int) -> list[str]:
    """The operator's writes to Secrets of the test namespace since ``since`` (creates, patches, deletes)."""
    return [write for write in env.operator_writes(since) if f"/api/v1/namespaces/{NS}/secrets" in write]


async def assert_intact(env: OperatorEnv, name: str, data: dict[str, str], version: int) -> None:
    """The managed Secret holds exactly ``data`` at ``version``, and the status says so."""
    secret = await env.secret(NS, name)
    assert secret is not None, f"Secret {name} was deleted"
    assert decoded(secret) == data, f"Secret {name} lost its last good data"
    assert secret["metadata"]["annotations"][ANNOTATION_VERSION] == str(version)
    body = await env.vs(NS, name)
    assert body is not None
    assert body["status"]["syncedVersion"] == version


async def synced(env: OperatorEnv, name: str, path: str, data: dict[str, str], *, conn: str = CONN) -> None:
    env.vault.write(path, data)
    await env.create(vaultsecret(name, path, connection=conn))
    await env.wait_synced(NS, name, 1)


async def cc_connection(env: OperatorEnv, url: str) -> None:
    """The ClusterVaultConnection ``cc``: OAuth2 client credentials against the dev vault's token endpoint."""
    env.vault.auth.add_client(CC_CLIENT_ID, CANARY_CLIENT_SECRET, [READ])
    await env.create(
        credentials_secret(CC_SECRET, OP_NS, {"client_id": CC_CLIENT_ID, "client_secret": CANARY_CLIENT_SECRET})
    )
    auth = {"clientCredentials": {"tokenUrl": f"{url}/oauth/token", "secretRef": {"name": CC_SECRET,
            "namespace": OP_NS}, "scope": READ}}  # fmt: skip
    await env.create({"apiVersion": API_VERSION, "kind": "ClusterVaultConnection", "metadata": {"name": CC},
                      "spec": {"url": url, "auth": auth, "pollInterval": POLL,
                               "access": [access_rule(DEFAULT_PREFIXES)]}})  # fmt: skip
    assert env.runtime is not None
    await wait_until(lambda: conn_key(CC) in env.runtime.watchers, 10, what="the cc connection is watched")


async def _call(action: Callable[[OperatorEnv], Any], env: OperatorEnv) -> None:
    result = action(env)
    if inspect.isawaitable(result):
        await result


# -- outages: the fault makes reads (and lists) fail until it is switched off ------------------------------------


@dataclass(frozen=True)
class Outage:
    """A fault that makes ScaiVault requests fail: switched ``on``, and ``off`` after two polls."""

    fault: str
    reason: str
    says: tuple[str, ...]  # words the Ready message must contain
    on: Callable[[OperatorEnv], Any]
    off: Callable[[OperatorEnv], Any]
    conn: str = CONN
    client_timeout: float | None = None  # the operator's ScaiVault client gives up after this long (None: default)


def _faults(**changes: Any) -> Callable[[OperatorEnv], Any]:
    return lambda env: env.vault.configure_faults(**changes)


def _reset(env: OperatorEnv) -> None:
    env.vault.reset_faults()


def _revoke_static_token(env: OperatorEnv) -> None:
    assert env.vault.revoke_token("ro-token")  # the ``cluster`` fixture's token (tests/conftest.py RO_TOKEN)


async def _rotate_static_token(env: OperatorEnv) -> None:
    """The fix a user makes: a new token in ScaiVault, put into the connection's token Secret."""
    env.vault.add_token(CANARY_TOKEN, {READ})
    await env.cluster.patch("Secret", OP_NS, TOKEN_SECRET, {"data": {"token": b64(CANARY_TOKEN)}})


OUTAGES = [
    Outage("5xx burst (500, 502, 503, 504 in turn)", BACKEND_UNAVAILABLE, ("ScaiVault is unavailable", "HTTP 50"),
           _faults(fail_next=[500, 502, 503, 504] * 250), _reset),
    # (What follows the cause depends on who met the 429 first: the read's own "retrying in 0.3s", or, when the
    # poll had already opened the breaker, "backing off: no request before ...". Both name the cause.)
    Outage("429 with Retry-After 0.3 s", BACKEND_UNAVAILABLE,
           ("rate limiting", "HTTP 429 rate_limited; retry after 0.3s", "retry"),
           _faults(rate_limit_rate=1.0, retry_after=0.3), _reset),
    Outage("429 without Retry-After", BACKEND_UNAVAILABLE,
           ("rate limiting", "HTTP 429 rate_limited)", "retry"),
           _faults(rate_limit_rate=1.0, retry_after=None), _reset),
    Outage("answers slower than the client timeout", BACKEND_UNAVAILABLE, ("timed out (ReadTimeout)",),
           _faults(latency=SLOW_LATENCY), _reset, client_timeout=SHORT_TIMEOUT),
    Outage("connection reset mid-body", BACKEND_UNAVAILABLE, ("ReadError: Connection reset by peer",),
           _faults(body_fault="reset"), _reset),
    Outage("truncated JSON", BACKEND_UNAVAILABLE, ("answer is not JSON",), _faults(body_fault="truncate"), _reset),
    Outage("malformed JSON", BACKEND_UNAVAILABLE, ("answer is not JSON",), _faults(body_fault="malformed"), _reset),
    Outage("20 MiB body", BACKEND_UNAVAILABLE, ("answer is larger than 4 MiB",), _faults(body_fault="huge"), _reset),
    Outage("HTML page instead of JSON (200, text/html)", BACKEND_UNAVAILABLE, ("answer is not JSON",),
           _faults(body_fault="html"), _reset),
    Outage("static token revoked (fixed by rotating the token Secret)", UNAUTHORIZED,
           ("ScaiVault refused the token", "HTTP 401 authentication_required"), _revoke_static_token,
           _rotate_static_token),
    Outage("client-credentials tokens all refused (token_expired, renewal does not help)", UNAUTHORIZED,
           ("ScaiVault refused the token", "HTTP 401 token_expired"), _faults(expire_tokens=True), _reset, conn=CC),
]  # fmt: skip


async def survive(env: OperatorEnv, outage: Outage, logs: pytest.LogCaptureFixture) -> Row:
    """Sync, break ScaiVault, change things that need reads, check nothing is damaged, fix it, count the recovery."""
    vault = env.vault
    conn = outage.conn
    await synced(env, "db", PATH, V1, conn=conn)
    await wait_listed(env, PATH, conn=conn)
    vault.write(FRESH_PATH, V1)  # exists in ScaiVault; its VaultSecret comes during the fault

    mark, syncs_before, polls_before = env.mark(), syncs(env), polls(env, conn)
    vault.stats.reset()
    await _call(outage.on, env)
    vault.write(PATH, V2)
    # Work that needs a read during the fault: a spec change (a poll could not even list the new version), and a
    # VaultSecret created during the fault, which must get no Secret at all.
    await env.cluster.patch("VaultSecret", NS, "db", {"spec": {"target": {"labels": {"fault": "seen"}}}})
    await env.create(vaultsecret("fresh", FRESH_PATH, connection=conn))

    body = await env.wait_reason(NS, "db", outage.reason, within=20)
    message = ready_condition(body)["message"]
    for words in outage.says:
        assert words in message, message
    await env.wait_reason(NS, "fresh", outage.reason, within=20)
    await assert_intact(env, "db", V1, 1)
    await wait_polls(env, 2, conn=conn)  # the fault lasts two more polls
    await assert_intact(env, "db", V1, 1)
    assert await env.secret(NS, "fresh") is None, "a failed read must not create a Secret"
    writes_during = secret_writes(env, mark)
    assert writes_during == [], writes_during
    during = vault.stats.snapshot()
    polls_during, syncs_during = polls(env, conn) - polls_before, syncs(env) - syncs_before

    await _call(outage.off, env)
    cleared = polls(env, conn)
    _, secret = await env.wait_synced(NS, "db", 2, within=30)
    await env.wait_synced(NS, "fresh", 1, within=30)
    recovery = polls(env, conn) - cleared
    assert decoded(secret) == V2
    assert secret["metadata"]["labels"]["fault"] == "seen"
    assert recovery <= 2, f"recovered only after {recovery} polls"

    refused = during.statuses.get(401, 0) if outage.reason == UNAUTHORIZED else 0  # a revoked token: no injection
    assert sum(during.injected.values()) + refused >= 1, f"the fault never fired: {during.to_json()}"
    # Bounds of the client: a poll lists one page here, a sync reads once; each request makes at most ATTEMPTS
    # attempts, and a 401 one repeat with a renewed token.
    assert during.calls["list"] <= 2 * ATTEMPTS * (polls_during + 1), during.to_json()
    assert during.calls["read"] <= 2 * ATTEMPTS * syncs_during, during.to_json()
    await assert_no_leaks(env, logs)
    row = Row(fault=outage.fault, reason=outage.reason, polls_during=polls_during, requests_during=during.requests,
              lists_during=during.calls["list"], reads_during=during.calls["read"],
              tokens_during=during.calls["token"], injected=sum(during.injected.values()),
              secret_writes_during=len(writes_during), recovery_polls=recovery)  # fmt: skip
    report(row)
    return row


def _slug(text: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())


@pytest.mark.parametrize("outage", OUTAGES, ids=[_slug(outage.fault) for outage in OUTAGES])
async def test_outage(cluster, dev_vault, logs, monkeypatch, outage: Outage):
    if outage.client_timeout is not None:  # clients are built at start (the health check): start again
        short = functools.partial(ScaiVaultClient, timeout=httpx.Timeout(outage.client_timeout))
        monkeypatch.setattr(connections_module, "ScaiVaultClient", short)
        await cluster.stop_operator()
        await cluster.start_operator()
    if outage.conn == CC:
        await cc_connection(cluster, dev_vault.url)
    await survive(cluster, outage, logs)


# -- faults the operator absorbs: no condition changes, the new version still arrives ---------------------------


async def _absorbed(env: OperatorEnv, fault: str, on: Callable[[OperatorEnv], Any], *, conn: str = CONN,
                    path: str = PATH, name: str = "db") -> tuple[Row, Any]:  # fmt: skip
    """With the fault on, a new version arrives within two polls and nothing reports a failure."""
    mark, polls_before = env.mark(), polls(env, conn)
    env.vault.stats.reset()
    await _call(on, env)
    env.vault.write(path, V2)
    _, secret = await env.wait_synced(NS, name, 2, within=20)
    recovery = polls(env, conn) - polls_before
    assert decoded(secret) == V2
    assert recovery <= 2, f"the new version arrived only after {recovery} polls"
    warnings = [e for e in await env.events() if e.get("type") == "Warning"]
    assert warnings == [], [e.get("reason") for e in warnings]
    stats = env.vault.stats.snapshot()
    row = Row(fault=fault, reason="Synced (absorbed)", polls_during=recovery, requests_during=stats.requests,
              lists_during=stats.calls["list"], reads_during=stats.calls["read"], tokens_during=stats.calls["token"],
              injected=sum(stats.injected.values()), secret_writes_during=len(secret_writes(env, mark)),
              recovery_polls=recovery)  # fmt: skip
    report(row)
    return row, stats


async def test_short_5xx_burst_is_absorbed_by_the_client_retries(cluster, logs):
    await synced(cluster, "db", PATH, V1)
    await wait_listed(cluster, PATH)
    row, stats = await _absorbed(cluster, "5xx burst (2 answers)", _faults(fail_next=[503, 502]))
    assert stats.injected == {"503": 1, "502": 1}
    assert row.secret_writes_during == 1  # the new version, once
    await assert_no_leaks(cluster, logs)


async def test_json_labelled_with_a_wrong_content_type_is_accepted(cluster, logs):
    """The client reads JSON whatever its label (the status decides, the body is validated): documented tolerance."""
    await synced(cluster, "db", PATH, V1)
    await wait_listed(cluster, PATH)
    row, stats = await _absorbed(cluster, "wrong content type (JSON labelled text/html)",
                                 _faults(body_fault="content_type"))  # fmt: skip
    assert stats.injected["content_type"] >= 2, stats.to_json()  # the list and the read
    assert row.secret_writes_during == 1
    await assert_no_leaks(cluster, logs)


@pytest.mark.parametrize("operator_settings", [fast_settings(page_size=2)])
async def test_client_credentials_token_expiring_mid_poll_is_renewed_unseen(cluster, dev_vault, logs):
    """The token expires between two pages of one poll: one 401, one renewal, the poll goes on; nobody notices."""
    env = cluster
    await cc_connection(env, dev_vault.url)
    paths = [f"apps/cc/p{i}" for i in range(5)]  # one prefix, three pages of two
    for i, path in enumerate(paths):
        env.vault.write(path, {**V1, "i": str(i)})
        await env.create(vaultsecret(f"p{i}", path, connection=CC))
    await env.wait_all_synced([(NS, f"p{i}") for i in range(5)], 1)
    await wait_listed(env, *paths, conn=CC)

    # The client fetched its token at its first request and keeps it (valid for an hour). Quiet now: the next /v1
    # request is the first page of the next poll, the one after it the second page.
    row, stats = await _absorbed(env, "client-credentials token expiring mid-poll", _faults(expire_issued_after=1),
                                 conn=CC, path=paths[-1], name="p4")  # fmt: skip
    assert stats.injected == {"expire_issued": 1}, stats.to_json()
    assert stats.statuses.get(401) == 1, stats.to_json()  # refused once, mid-poll...
    assert stats.calls["token"] == 1, stats.to_json()  # ...renewed once...
    assert stats.calls["list"] >= 4, stats.to_json()  # ...and the poll went on: 3 pages + the repeated one
    assert stats.calls["read"] == 1, stats.to_json()  # the new version on the last page, once
    assert row.secret_writes_during == 1
    for i in range(4):
        body = await env.vs(NS, f"p{i}")
        assert ready_condition(body)["status"] == "True"
    await assert_no_leaks(env, logs)


# -- semantic faults: versions that go backwards --------------------------------------------------------------


async def _synced_at_three(env: OperatorEnv) -> dict[str, str]:
    for n in (1, 2, 3):
        env.vault.write(PATH, {**V1, "n": str(n)})
    await env.create(vaultsecret("db", PATH))
    await env.wait_synced(NS, "db", 3)
    await wait_listed(env, PATH, version=3)
    return {**V1, "n": "3"}


async def test_a_list_that_goes_backwards_costs_one_read_and_no_write(cluster, logs):
    """A lagging list (a stale replica) says version 1 while the Secret holds 3: the operator asks ScaiVault once
    (a GET of the latest, which serves 3), keeps version 3, writes nothing to Kubernetes, and stays Ready."""
    env = cluster
    v3 = await _synced_at_three(env)
    mark, polls_before = env.mark(), polls(env)
    env.vault.stats.reset()
    env.vault.configure_faults(list_version_lag=2)

    await wait_listed(env, PATH, version=1)  # the operator saw the lower version
    await wait_until(lambda: env.vault.stats.count("read") >= 1, 10, what="the GET the lower version caused")
    await wait_polls(env, 2)  # two more polls of the lagging list
    during = env.vault.stats.snapshot()
    assert during.reads_of(PATH) == {3: 1}, during.to_json()  # one GET, which served version 3
    assert during.calls["read"] == 1, during.to_json()
    assert env.operator_writes(mark) == []  # no Secret write, no status write, no Event
    await assert_intact(env, "db", v3, 3)
    assert ready_condition(await env.vs(NS, "db"))["reason"] == "Synced"
    polls_during = polls(env) - polls_before

    env.vault.reset_faults()
    env.vault.write(PATH, V2)  # version 4
    cleared = polls(env)
    _, secret = await env.wait_synced(NS, "db", 4)
    recovery = polls(env) - cleared
    assert decoded(secret) == V2
    assert recovery <= 2
    await assert_no_leaks(env, logs)
    report(Row(fault="version goes backwards: the list lags (GET still serves the newer version)", reason="Synced",
               polls_during=polls_during, requests_during=during.requests, lists_during=during.calls["list"],
               reads_during=during.calls["read"], tokens_during=0, injected=sum(during.injected.values()),
               secret_writes_during=0, recovery_polls=recovery))  # fmt: skip


async def test_a_version_rolled_back_in_scaivault_is_followed(cluster, logs):
    """ScaiVault itself goes back to version 1 (restored from a backup): list and GET agree. ScaiVault is the
    source of truth for an unpinned VaultSecret, so the Secret follows it — once, with one GET and one write."""
    env = cluster
    await _synced_at_three(env)
    mark, polls_before = env.mark(), polls(env)
    env.vault.stats.reset()
    assert env.vault.roll_back(PATH, 1) == 2

    _, secret = await env.wait_synced(NS, "db", 1)
    recovery = polls(env) - polls_before
    assert decoded(secret) == {**V1, "n": "1"}
    assert recovery <= 2
    await wait_polls(env, 2)  # and it stays there: no flapping
    stats = env.vault.stats.snapshot()
    assert stats.reads_of(PATH) == {1: 1}, stats.to_json()
    writes = secret_writes(env, mark)
    assert len(writes) == 1, writes
    assert writes[0].startswith("PATCH"), writes
    assert ready_condition(await env.vs(NS, "db"))["reason"] == "Synced"
    await assert_no_leaks(env, logs)
    report(Row(fault="version goes backwards: ScaiVault restored to version 1", reason="Synced (follows ScaiVault)",
               polls_during=recovery, requests_during=stats.requests, lists_during=stats.calls["list"],
               reads_during=stats.calls["read"], tokens_during=0, injected=0, secret_writes_during=len(writes),
               recovery_polls=recovery))  # fmt: skip


# -- semantic faults: a secret deleted and re-created --------------------------------------------------------

RECREATED = {"password": CANARY_V2, "user": "app", "recreated": "yes"}


async def _wait_for_recreated(env: OperatorEnv, *, max_polls: int = 2) -> tuple[int, dict[str, str]]:
    """Wait until the Secret holds the re-created data, or ``max_polls`` + 1 polls passed; (polls, its data)."""
    start = polls(env)

    async def done() -> bool:
        secret = await env.secret(NS, "db")
        return (secret is not None and decoded(secret) == RECREATED) or polls(env) > start + max_polls

    await wait_until(done, 30, what="the re-created secret arrives, or the polls run out")
    secret = await env.secret(NS, "db")
    assert secret is not None, "the Secret was deleted"
    return polls(env) - start, decoded(secret)


async def test_a_secret_recreated_at_a_lower_version_reaches_the_secret(cluster, logs):
    """Synced at version 2; deleted and re-created (version 1, new data) between two polls: the new data arrives."""
    env = cluster
    env.vault.write(PATH, V1)
    env.vault.write(PATH, V2)
    await env.create(vaultsecret("db", PATH))
    await env.wait_synced(NS, "db", 2)
    await wait_listed(env, PATH, version=2)
    mark = env.mark()
    env.vault.stats.reset()
    env.vault.delete(PATH)
    env.vault.write(PATH, RECREATED)

    used, data = await _wait_for_recreated(env)
    assert data == RECREATED
    await env.wait_synced(NS, "db", 1)
    assert used <= 2
    stats = env.vault.stats.snapshot()
    assert stats.reads_of(PATH) == {1: 1}, stats.to_json()
    assert len(secret_writes(env, mark)) == 1
    await assert_no_leaks(env, logs)
    report(Row(fault="secret deleted and re-created: version 2 → 1", reason="Synced", polls_during=used,
               requests_during=stats.requests, lists_during=stats.calls["list"], reads_during=stats.calls["read"],
               tokens_during=0, injected=0, secret_writes_during=len(secret_writes(env, mark)),
               recovery_polls=used))  # fmt: skip


async def test_a_secret_recreated_at_version_1_between_polls_reaches_the_secret(cluster, logs):
    """Synced at version 1; deleted and re-created at version 1 with new data before the next poll. The list
    shows the same version number with another ``updated_at``: the operator reads it again (one GET) and writes
    the new data once.

    ``updated_at`` has second precision (as in the quickstart): the vault's clock is moved a few seconds on, as
    for any re-creation made after a poll; one within the same second as the deleted version's write cannot be
    told from it by any listed field (docs/reliability.md)."""
    env = cluster
    await synced(env, "db", PATH, V1)
    await wait_listed(env, PATH, version=1)
    mark = env.mark()
    env.vault.stats.reset()
    env.vault.delete(PATH)
    clock = env.vault.clock
    env.vault.clock = lambda: clock() + 5
    env.vault.write(PATH, RECREATED)

    used, data = await _wait_for_recreated(env)
    ready = ready_condition(await env.vs(NS, "db"))
    assert data == RECREATED, f"after {used} polls the Secret holds the deleted secret's data; Ready: {ready}"
    await env.wait_synced(NS, "db", 1)
    assert used <= 2
    stats = env.vault.stats.snapshot()
    assert stats.reads_of(PATH) == {1: 1}, stats.to_json()
    assert len(secret_writes(env, mark)) == 1
    await assert_no_leaks(env, logs)
    report(Row(fault="secret deleted and re-created at the synced version (1) between two polls", reason="Synced",
               polls_during=used, requests_during=stats.requests, lists_during=stats.calls["list"],
               reads_during=stats.calls["read"], tokens_during=0, injected=0,
               secret_writes_during=len(secret_writes(env, mark)), recovery_polls=used))  # fmt: skip


async def test_a_secret_seen_deleted_then_recreated_at_version_1_reaches_the_secret(cluster, logs):
    """Synced at version 1; deleted (a poll sees it gone: SourceNotFound, the Secret kept), then re-created at
    version 1 with new data."""
    env = cluster
    await synced(env, "db", PATH, V1)
    await wait_listed(env, PATH, version=1)
    env.vault.delete(PATH)
    body = await env.wait_reason(NS, "db", "SourceNotFound", within=10)
    assert "HTTP 404" in ready_condition(body)["message"]
    await assert_intact(env, "db", V1, 1)
    env.vault.write(PATH, RECREATED)

    used, data = await _wait_for_recreated(env)
    ready = ready_condition(await env.vs(NS, "db"))
    assert data == RECREATED, f"after {used} polls the Secret holds the deleted secret's data; Ready: {ready}"
    assert used <= 2


# -- recovery is bound by polls, not by the retry backoff -----------------------------------------------------


@pytest.mark.parametrize("operator_settings", [fast_settings(retry_base=8.0, retry_max=16.0)])
async def test_recovery_from_a_read_outage_within_two_polls(cluster, logs):
    """Reads fail, lists work (the list already showed the new version): once reads work again, the next two polls
    must bring the new version. Here the backoff after the first failure (retry_base 8 s: 4-8 s) exceeds two 1 s
    polls, as in production the backoff (2 s → 5 min) exceeds two 30 s polls after a few failures."""
    env = cluster
    await synced(env, "db", PATH, V1)
    await wait_listed(env, PATH, version=1)
    env.vault.configure_faults(error_rate=1.0, calls=["read"])
    env.vault.write(PATH, V2)
    await env.wait_reason(NS, "db", BACKEND_UNAVAILABLE, within=10)
    await assert_intact(env, "db", V1, 1)

    env.vault.reset_faults()
    cleared = polls(env)
    await env.wait_synced(NS, "db", 2, within=30)
    recovery = polls(env) - cleared
    report(Row(fault="reads fail, lists work (recovery bound)", reason=BACKEND_UNAVAILABLE, polls_during=0,
               requests_during=0, lists_during=0, reads_during=0, tokens_during=0, injected=0,
               secret_writes_during=0, recovery_polls=recovery))  # fmt: skip
    assert recovery <= 2, f"recovered only after {recovery} polls"
