"""Connection status (``connstatus``): the Ready condition and identity from one whoami (or from the open breaker,
with no request), ``status.breaker`` on transitions only, soft fields (``watchedPaths``, ``lastPollAt``) refreshed at
most every ``refresh`` seconds — never a write per poll or per failed probe."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from scaivault_operator._cogs.api import ConnectionSpec
from scaivault_operator._cogs.kube import KubeError
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import (
    ConfigurationError,
    ForbiddenError,
    Identity,
    UnauthenticatedError,
    UnavailableError,
)
from scaivault_operator._core.connections import Connection
from scaivault_operator._core.connstatus import (
    Health,
    StatusWriter,
    breaker_status,
    desired,
    health_from_error,
    health_from_identity,
    needs_write,
)
from scaivault_operator._logic import conditions
from scaivault_operator._logic.breaker import Breaker

KEY = ("ClusterVaultConnection", "", "default")
NS_KEY = ("VaultConnection", "team-a", "mine")
OUTAGE = conditions.Failure(conditions.BACKEND_UNAVAILABLE, "ScaiVault is unavailable (HTTP 503)", transient=True)
UNAUTHORIZED = conditions.Failure(conditions.UNAUTHORIZED, "ScaiVault refused the token", transient=False)
NOW = "2026-04-23T14:00:00Z"
SPEC = ConnectionSpec.model_validate({"url": "https://vault.example", "auth": {"tokenSecretRef": {"name": "t"}}})
READER = Identity(identity_id="ci-reader", identity_type="service_account", tenant_id="t-1", scopes=("secrets:read",))
WRITER_ONLY = Identity(identity_id="ci-writer", scopes=("secrets:write",))
CANARY = "skt_canary_token_value_0042"


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def make_conn(
    key: tuple[str, str, str] = KEY, status: dict[str, Any] | None = None, spec: ConnectionSpec | None = SPEC
) -> Connection:
    breaker = Breaker(base=10.0, cap=300.0, outage_base=5.0, clock=Clock(), wall=lambda: 1_776_952_800.0,
                      rng=random.Random(1))  # fmt: skip
    return Connection(key=key, spec=spec, error=None if spec else "url: bad", breaker=breaker, generation=4,
                      status=status or {})  # fmt: skip


class Kube:
    def __init__(self, failures: int = 0) -> None:
        self.patches: list[tuple[str, str | None, str, dict[str, Any]]] = []
        self.failures = failures
        self.answer = asyncio.Event()
        self.answer.set()
        self.asked = 0

    async def patch_connection_status(self, kind: str, namespace: str | None, name: str, status: dict) -> None:
        self.asked += 1
        await self.answer.wait()
        if self.failures:
            self.failures -= 1
            raise KubeError("patch status: HTTP 503", 503)
        self.patches.append((kind, namespace, name, status))


class Client:
    def __init__(self, answer: Identity | Exception) -> None:
        self.answer = answer
        self.calls = 0

    async def whoami(self) -> Identity:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Conns:
    def __init__(self, *conns: Connection, answer: Identity | Exception = READER) -> None:
        self.items = {conn.key: conn for conn in conns}
        self.whoami = Client(answer)

    def get(self, key: Any) -> Connection | None:
        return self.items.get(key)

    def all(self) -> list[Connection]:
        return list(self.items.values())

    async def client(self, conn: Connection) -> Client:
        return self.whoami


def writer_for(kube: Kube, conns: Conns, **kwargs: Any) -> StatusWriter:
    return StatusWriter(kube, conns, Metrics(), retry_delay=10.0, now=lambda: NOW, **kwargs)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)


# -- health, pure ------------------------------------------------------------------------------------------------


def test_whoami_with_the_read_scope_is_authenticated_and_names_the_identity() -> None:
    health = health_from_identity(READER)
    assert health.ready
    assert health.reason == "Authenticated"
    assert "ci-reader (service_account, tenant t-1)" in health.message
    assert health.identity == {"identityId": "ci-reader", "identityType": "service_account", "tenantId": "t-1",
                               "scopes": ["secrets:read"]}  # fmt: skip


def test_whoami_without_the_read_scope_is_missing_scope() -> None:
    health = health_from_identity(WRITER_ONLY)
    assert not health.ready
    assert health.reason == "MissingScope"
    assert "lacks the scope secrets:read (its scopes: secrets:write)" in health.message
    assert health.identity == {"identityId": "ci-writer", "scopes": ["secrets:write"]}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (UnauthenticatedError("GET whoami: HTTP 401", status_code=401), "Unauthorized"),
        (ForbiddenError("GET whoami: HTTP 403", status_code=403), "MissingScope"),
        (UnavailableError("GET whoami: ConnectError", status_code=None), "Unreachable"),
        (UnavailableError("GET whoami: HTTP 503", status_code=503), "Unreachable"),
        (ConfigurationError("the token Secret scaivault-system/t does not exist"), "InvalidSpec"),
    ],
)
def test_whoami_failures_name_the_connections_problem(error: Exception, reason: str) -> None:
    health = health_from_error(error)  # type: ignore[arg-type]
    assert health.reason == reason
    assert not health.ready
    assert health.identity is None


# -- the status patch --------------------------------------------------------------------------------------------


def test_the_status_has_ready_identity_paths_poll_and_breaker() -> None:
    conn = make_conn()
    patch = desired(conn, health_from_identity(READER), watched=7, polled_at=NOW, now=NOW)
    assert patch["conditions"] == [{"type": "Ready", "status": "True", "reason": "Authenticated",
                                    "message": health_from_identity(READER).message, "lastTransitionTime": NOW,
                                    "observedGeneration": 4}]  # fmt: skip
    assert patch["identity"]["identityId"] == "ci-reader"
    assert (patch["watchedPaths"], patch["lastPollAt"], patch["observedGeneration"]) == (7, NOW, 4)
    assert patch["breaker"]["state"] == "Closed"


def test_open_breaker_status_says_why_how_often_and_until_when() -> None:
    conn = make_conn()
    conn.breaker.trip(OUTAGE, floor=2.0)
    health = Health("Unreachable", OUTAGE.message)
    patch = desired(conn, health, watched=1, polled_at=None, now=NOW)
    assert patch["breaker"] == {
        "state": "Open",
        "reason": "BackendUnavailable",
        "message": OUTAGE.message,
        "failures": 1,
        "retryAt": conn.breaker.retry_at(),
        "lastTransitionTime": NOW,
    }
    assert "lastPollAt" not in patch
    assert needs_write(conn.status, conn, health)
    stored = {**patch, "breaker": patch["breaker"]}
    assert not needs_write(stored, conn, health)
    conn.breaker.trip(UNAUTHORIZED)
    assert needs_write(stored, conn, health)  # a new reason
    later = breaker_status(conn.breaker, previous=patch["breaker"], now="2026-04-23T15:00:00Z")
    assert later["lastTransitionTime"] == NOW  # the time of the transition stays while the state does


def test_closed_status_clears_the_fields_of_the_outage() -> None:
    conn = make_conn(status={"breaker": {"state": "Open", "reason": "BackendUnavailable", "failures": 3,
                                         "lastTransitionTime": NOW}})  # fmt: skip
    patch = desired(conn, health_from_identity(READER), watched=0, polled_at=None, now="2026-04-23T14:05:00Z")
    assert patch["breaker"] == {"state": "Closed", "reason": None, "message": None, "failures": None,
                                "retryAt": None, "lastTransitionTime": "2026-04-23T14:05:00Z"}  # fmt: skip


def test_ready_keeps_its_transition_time_while_its_status_stays() -> None:
    conn = make_conn(status={"conditions": [{"type": "Ready", "status": "False", "reason": "Unreachable",
                                             "lastTransitionTime": "earlier"}]})  # fmt: skip
    patch = desired(conn, Health("Unauthorized", "refused"), watched=0, polled_at=None, now=NOW)
    assert patch["conditions"][0]["lastTransitionTime"] == "earlier"
    patch = desired(conn, health_from_identity(READER), watched=0, polled_at=None, now=NOW)
    assert patch["conditions"][0]["lastTransitionTime"] == NOW


# -- the writer --------------------------------------------------------------------------------------------------


async def test_a_new_connection_is_checked_once_and_written_once() -> None:
    conn = make_conn()
    kube, conns = Kube(), Conns(conn)
    writer = writer_for(kube, conns, watched=lambda _: 3)
    writer.soon(conn)
    writer.soon(conn)  # coalesced
    await settle()
    assert conns.whoami.calls == 1
    assert len(kube.patches) == 1
    status = kube.patches[0][3]
    assert status["conditions"][0]["reason"] == "Authenticated"
    assert status["watchedPaths"] == 3
    for _ in range(3):  # nothing changed: no request, no write
        writer.soon(conn)
        await settle()
    assert conns.whoami.calls == 1
    assert len(kube.patches) == 1
    assert [s for s in writer.ready_samples()] == [({"connection": conn.label, "reason": "Authenticated"}, 1.0)]
    await writer.aclose()


async def test_an_outage_costs_no_request_and_two_writes() -> None:
    conn = make_conn()
    kube, conns = Kube(), Conns(conn)
    writer = writer_for(kube, conns)
    writer.soon(conn)
    await settle()
    conn.breaker.trip(OUTAGE)
    writer.soon(conn)
    await settle()
    for _ in range(5):  # failed probes: no news
        conn.breaker.trip(OUTAGE)
        writer.soon(conn)
        await settle()
    conn.breaker.reset()
    writer.soon(conn)
    await settle()
    assert conns.whoami.calls == 1  # only the first check: the outage and the recovery cost none
    assert [(p[3]["conditions"][0]["reason"], p[3]["breaker"]["state"]) for p in kube.patches] == [
        ("Authenticated", "Closed"), ("Unreachable", "Open"), ("Authenticated", "Closed")
    ]  # fmt: skip
    assert kube.patches[-1][3]["identity"]["identityId"] == "ci-reader"  # kept through the outage
    await writer.aclose()


async def test_a_refused_token_is_checked_again_when_the_breaker_closes() -> None:
    conn = make_conn()
    kube, conns = Kube(), Conns(conn, answer=UnauthenticatedError("GET whoami: HTTP 401", status_code=401))
    writer = writer_for(kube, conns)
    writer.soon(conn)
    await settle()
    assert kube.patches[-1][3]["conditions"][0]["reason"] == "Unauthorized"
    conn.breaker.trip(UNAUTHORIZED)
    writer.soon(conn)
    await settle()
    assert conns.whoami.calls == 1  # open: from the breaker
    conns.whoami.answer = READER  # the token was fixed; the probe closed the breaker
    conn.breaker.reset()
    writer.soon(conn)
    await settle()
    assert conns.whoami.calls == 2
    assert kube.patches[-1][3]["conditions"][0]["reason"] == "Authenticated"
    assert writer.health(conn.key) == health_from_identity(READER)
    await writer.aclose()


async def test_an_invalid_spec_sends_nothing() -> None:
    conn = make_conn(spec=None)
    kube, conns = Kube(), Conns(conn)
    writer = writer_for(kube, conns)
    writer.soon(conn)
    await settle()
    assert conns.whoami.calls == 0
    assert kube.patches[0][3]["conditions"][0]["reason"] == "InvalidSpec"
    assert "url: bad" in kube.patches[0][3]["conditions"][0]["message"]
    await writer.aclose()


async def test_a_warm_restart_trusts_the_stored_health_and_writes_nothing() -> None:
    first = make_conn()
    kube, conns = Kube(), Conns(first)
    writer = writer_for(kube, conns, watched=lambda _: 2)
    writer.soon(first)
    await settle()
    stored = first.status
    restarted = make_conn(status=stored)
    kube2, conns2 = Kube(), Conns(restarted)
    writer2 = writer_for(kube2, conns2, watched=lambda _: 0)  # no VaultSecrets seen yet
    writer2.soon(restarted)
    await settle()
    assert conns2.whoami.calls == 0
    assert kube2.patches == []
    await writer.aclose()
    await writer2.aclose()


async def test_soft_fields_are_refreshed_at_most_every_refresh_seconds() -> None:
    """watchedPaths at most every 30 s (VaultSecrets arriving: a few writes), lastPollAt alone every 5 minutes."""
    conn = make_conn()
    kube, conns = Kube(), Conns(conn)
    clock = Clock()
    watched = {"n": 1}
    polled = {"at": "2026-04-23T14:00:00Z"}
    writer = writer_for(kube, conns, watched=lambda _: watched["n"], polled_at=lambda _: polled["at"], refresh=300.0,
                        paths_refresh=30.0, clock=clock)  # fmt: skip
    writer.soon(conn)
    await settle()
    assert len(kube.patches) == 1
    for second in range(10, 300, 10):  # polls go on every 10 s, paths come for the first minute
        clock.now = float(second)
        polled["at"] = f"poll-{second}"
        if second <= 60:
            watched["n"] += 1
        writer.heartbeat()
        await settle()
    # Paths: written at 30 s and 60 s (and the lastPollAt of those moments rode along); then only polls moved.
    assert [p[3]["watchedPaths"] for p in kube.patches] == [1, 4, 7]
    clock.now = 361.0  # 5 minutes after the last write: lastPollAt alone
    polled["at"] = "poll-361"
    writer.heartbeat()
    await settle()
    assert len(kube.patches) == 4
    assert kube.patches[3][3]["lastPollAt"] == "poll-361"
    clock.now = 700.0  # nothing moved since: no write
    writer.heartbeat()
    await settle()
    assert len(kube.patches) == 4
    conn.breaker.trip(OUTAGE)  # open: the outage is written (a hard change), soft fields wait
    writer.soon(conn)
    await settle()
    watched["n"] += 1
    clock.now = 2000.0
    writer.heartbeat()
    await settle()
    assert len(kube.patches) == 5
    await writer.aclose()


async def test_a_change_during_a_write_is_written_after_it() -> None:
    conn = make_conn(NS_KEY)
    kube, conns = Kube(), Conns(conn)
    writer = writer_for(kube, conns)
    writer.soon(conn)
    await settle()
    kube.answer.clear()
    conn.breaker.trip(OUTAGE)
    writer.soon(conn)
    await settle()
    assert kube.asked == 2  # the Open patch is out; the breaker closes meanwhile
    conn.breaker.reset()
    writer.soon(conn)  # pending: coalesced, the running task writes it next
    kube.answer.set()
    await settle()
    assert [(p[1], p[3]["breaker"]["state"]) for p in kube.patches] == [
        ("team-a", "Closed"), ("team-a", "Open"), ("team-a", "Closed")
    ]  # fmt: skip
    await writer.aclose()


async def test_a_failed_write_is_tried_again_later() -> None:
    conn = make_conn()
    kube, conns = Kube(failures=1), Conns(conn)
    writer = StatusWriter(kube, conns, Metrics(), retry_delay=0.05, now=lambda: NOW)  # type: ignore[arg-type]
    writer.soon(conn)
    await settle()
    assert kube.patches == []
    await asyncio.sleep(0.1)
    assert len(kube.patches) == 1
    await writer.aclose()


async def test_no_token_reaches_the_status() -> None:
    conn = make_conn()
    error = UnauthenticatedError("GET whoami: HTTP 401 authentication_required", status_code=401)
    error.server_message = f"token {CANARY} expired"  # what a server might say: never shown
    kube, conns = Kube(), Conns(conn, answer=error)
    writer = writer_for(kube, conns)
    writer.soon(conn)
    await settle()
    assert CANARY not in repr(kube.patches)
    await writer.aclose()
