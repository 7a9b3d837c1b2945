"""Connection status (``connstatus``): ``status.breaker`` is written on transitions only — open, close, a new
reason — never per poll or per failed probe; a stale Open left by an earlier run is closed once."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from scaivault_operator._cogs.kube import KubeError
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._core.connections import Connection
from scaivault_operator._core.connstatus import StatusWriter, breaker_status, desired, needs_write
from scaivault_operator._logic import conditions
from scaivault_operator._logic.breaker import Breaker

KEY = ("ClusterVaultConnection", "", "default")
NS_KEY = ("VaultConnection", "team-a", "mine")
OUTAGE = conditions.Failure(conditions.BACKEND_UNAVAILABLE, "ScaiVault is unavailable (HTTP 503)", transient=True)
UNAUTHORIZED = conditions.Failure(conditions.UNAUTHORIZED, "ScaiVault refused the token", transient=False)
NOW = "2026-04-23T14:00:00Z"


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def make_conn(key: tuple[str, str, str] = KEY, status: dict[str, Any] | None = None) -> Connection:
    breaker = Breaker(base=10.0, cap=300.0, outage_base=5.0, clock=Clock(), wall=lambda: 1_776_952_800.0,
                      rng=random.Random(1))  # fmt: skip
    return Connection(key=key, spec=None, error=None, breaker=breaker, generation=4, status=status or {})


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


class Conns:
    def __init__(self, *conns: Connection) -> None:
        self.items = {conn.key: conn for conn in conns}

    def get(self, key: Any) -> Connection | None:
        return self.items.get(key)


def test_a_closed_breaker_that_never_opened_needs_no_status() -> None:
    conn = make_conn()
    assert not needs_write(conn.status, conn.breaker)
    assert not needs_write({"breaker": {"state": "Closed"}}, conn.breaker)
    assert needs_write({"breaker": {"state": "Open", "reason": "BackendUnavailable"}}, conn.breaker)


def test_open_status_says_why_how_often_and_until_when() -> None:
    conn = make_conn()
    conn.breaker.trip(OUTAGE, floor=2.0)
    patch = desired(conn, now=NOW)
    assert patch["observedGeneration"] == 4
    assert patch["breaker"] == {
        "state": "Open",
        "reason": "BackendUnavailable",
        "message": OUTAGE.message,
        "failures": 1,
        "retryAt": conn.breaker.retry_at(),
        "lastTransitionTime": NOW,
    }
    assert needs_write(conn.status, conn.breaker)
    assert not needs_write({"breaker": patch["breaker"]}, conn.breaker)
    conn.breaker.trip(UNAUTHORIZED)
    assert needs_write({"breaker": patch["breaker"]}, conn.breaker)  # a new reason
    # The time of the transition stays while the state does.
    later = breaker_status(conn.breaker, previous=patch["breaker"], now="2026-04-23T15:00:00Z")
    assert later["lastTransitionTime"] == NOW


def test_closed_status_clears_the_fields_of_the_outage() -> None:
    conn = make_conn(status={"breaker": {"state": "Open", "reason": "BackendUnavailable", "failures": 3,
                                         "lastTransitionTime": NOW}})  # fmt: skip
    patch = desired(conn, now="2026-04-23T14:05:00Z")
    assert patch["breaker"] == {"state": "Closed", "reason": None, "message": None, "failures": None,
                                "retryAt": None, "lastTransitionTime": "2026-04-23T14:05:00Z"}  # fmt: skip


async def test_the_writer_writes_once_per_transition() -> None:
    conn = make_conn()
    kube = Kube()
    writer = StatusWriter(kube, Conns(conn), Metrics(), retry_delay=10.0, now=lambda: NOW)  # type: ignore[arg-type]
    writer.soon(conn)  # closed, never opened: nothing
    await asyncio.sleep(0.01)
    assert kube.patches == []
    conn.breaker.trip(OUTAGE)
    writer.soon(conn)
    writer.soon(conn)  # coalesced
    await asyncio.sleep(0.01)
    assert [p[3]["breaker"]["state"] for p in kube.patches] == ["Open"]
    assert kube.patches[0][:3] == ("ClusterVaultConnection", None, "default")
    for _ in range(5):  # failed probes: no news
        conn.breaker.trip(OUTAGE)
        writer.soon(conn)
    await asyncio.sleep(0.01)
    assert len(kube.patches) == 1
    conn.breaker.reset()
    writer.soon(conn)
    await asyncio.sleep(0.01)
    assert [p[3]["breaker"]["state"] for p in kube.patches] == ["Open", "Closed"]
    assert conn.status["breaker"] == {"state": "Closed", "lastTransitionTime": NOW}
    assert writer.writes == 2
    await writer.aclose()


async def test_a_transition_during_a_write_is_written_after_it() -> None:
    conn = make_conn(NS_KEY)
    kube = Kube()
    writer = StatusWriter(kube, Conns(conn), Metrics(), retry_delay=10.0, now=lambda: NOW)  # type: ignore[arg-type]
    conn.breaker.trip(OUTAGE)
    writer.soon(conn)
    conn.breaker.reset()  # closed before the task ran: nothing to write at all
    await asyncio.sleep(0.01)
    assert kube.patches == []
    kube.answer.clear()
    conn.breaker.trip(OUTAGE)
    writer.soon(conn)
    await asyncio.sleep(0.01)
    assert kube.asked == 1  # the Open patch is out; the breaker closes meanwhile
    conn.breaker.reset()
    writer.soon(conn)  # pending: coalesced, the running task writes it next
    kube.answer.set()
    await asyncio.sleep(0.01)
    assert [(p[1], p[3]["breaker"]["state"]) for p in kube.patches] == [("team-a", "Open"), ("team-a", "Closed")]
    await writer.aclose()


async def test_a_failed_write_is_tried_again_later() -> None:
    conn = make_conn()
    kube = Kube(failures=1)
    writer = StatusWriter(kube, Conns(conn), Metrics(), retry_delay=0.05, now=lambda: NOW)  # type: ignore[arg-type]
    conn.breaker.trip(OUTAGE)
    writer.soon(conn)
    await asyncio.sleep(0.01)
    assert kube.patches == []
    await asyncio.sleep(0.1)
    assert [p[3]["breaker"]["state"] for p in kube.patches] == ["Open"]
    await writer.aclose()
