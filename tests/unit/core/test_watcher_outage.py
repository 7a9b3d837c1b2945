"""The version watcher during an outage: a failed poll opens the breaker and stops at its first failed list; while
open no request goes out until the breaker is due, and then the poll is the single probe; an answer that cannot be
understood backs off the polls without opening the breaker; a pinned-only connection probes with one read."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from scaivault_operator._cogs.api import ConnectionSpec
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import (
    ResponseError,
    ScaiVaultError,
    Secret,
    SecretPage,
    SecretSummary,
    UnavailableError,
)
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Connection
from scaivault_operator._core.watcher import VersionWatcher
from scaivault_operator._logic.breaker import Breaker
from scaivault_operator._logic.conditions import BACKEND_UNAVAILABLE, Failure
from scaivault_operator._logic.registry import Registry

CONN = ("ClusterVaultConnection", "", "default")


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeClient:
    versions: dict[str, int]
    error: ScaiVaultError | None = None
    calls: list[str] = field(default_factory=list)

    async def list_secrets(self, prefix: str, *, page_size: int) -> AsyncIterator[SecretPage]:
        self.calls.append(f"list {prefix}")
        if self.error is not None:
            raise self.error
        items = tuple(
            SecretSummary(path=p, version=v) for p, v in sorted(self.versions.items()) if p.startswith(prefix)
        )
        yield SecretPage(secrets=items, has_more=False)

    async def read(self, path: str, version: int | None = None) -> Secret:
        self.calls.append(f"read {path}@{version}")
        if self.error is not None:
            raise self.error
        return Secret(path=path, version=version or self.versions[path], data={"k": "v"})


@dataclass
class FakeConnections:
    conn: Connection
    client_: FakeClient

    def get(self, key: Any) -> Connection:
        return self.conn

    async def client(self, conn: Connection) -> FakeClient:
        return self.client_


def setup(paths: dict[str, int | None]) -> tuple[VersionWatcher, FakeClient, Connection, Clock, list[bool]]:
    spec = ConnectionSpec.model_validate(
        {"url": "https://vault", "auth": {"tokenSecretRef": {"namespace": "ns", "name": "t"}}, "pollInterval": "2s"}
    )
    clock = Clock()
    conn = Connection(key=CONN, spec=spec, error=None,
                      breaker=Breaker(base=10, cap=300, clock=clock, rng=random.Random(3)))  # fmt: skip
    registry = Registry()
    for i, (path, version) in enumerate(paths.items()):
        body = {"metadata": {"namespace": "ns", "name": f"v{i}", "uid": f"u{i}", "generation": 1},
                "spec": {"path": path, **({"version": version} if version else {})}}  # fmt: skip
        registry.upsert(body)
    client = FakeClient({p: v or 1 for p, v in paths.items()})
    events: list[bool] = []
    watcher = VersionWatcher(CONN, FakeConnections(conn, client), registry,  # type: ignore[arg-type]
                             OperatorSettings(liveness_endpoint=None), lambda s, p: None,
                             lambda c, opened: events.append(opened), Metrics(), clock=clock)  # fmt: skip
    return watcher, client, conn, clock, events


async def test_a_failed_poll_stops_at_its_first_list_and_opens_the_breaker() -> None:
    watcher, client, conn, clock, events = setup({f"t{i}/app/db": None for i in range(5)})
    client.error = UnavailableError("LIST secrets: HTTP 503 unavailable", status_code=503)
    delay = await watcher.poll_once()
    assert client.calls == ["list t0/app/"]  # not the four other prefixes
    assert conn.breaker.is_open
    assert events == [True]
    assert delay == conn.breaker.remaining() >= 2.0 * 0.9  # at least the poll interval (jittered)
    client.calls.clear()
    clock.now += delay / 2
    assert await watcher.poll_once() > 0  # not due: nothing sent
    assert client.calls == []
    clock.now += conn.breaker.remaining()
    await watcher.poll_once()  # the probe fails: one request, a longer delay, no new transition
    assert client.calls == ["list t0/app/"]
    assert events == [True]
    client.error = None
    client.calls.clear()
    clock.now += conn.breaker.remaining()
    await watcher.poll_once()  # the probe succeeds: the whole poll, and closed
    assert len(client.calls) == 5
    assert not conn.breaker.is_open
    assert events == [True, False]


async def test_an_answer_that_cannot_be_understood_backs_off_without_opening_the_breaker() -> None:
    watcher, client, conn, _, events = setup({"a/app/db": None})
    client.error = ResponseError("LIST secrets: HTTP 200 answer is not JSON")
    delays = [await watcher.poll_once() for _ in range(4)]
    assert not conn.breaker.is_open
    assert events == []
    assert delays[0] >= 4.5
    assert delays[3] >= 36  # growing: 5, 10, 20, 40 s nominal, ±10 %
    assert delays == sorted(delays)
    client.error = None
    assert await watcher.poll_once() <= 2.2  # back to the poll interval


async def test_a_pinned_only_connection_probes_with_one_read() -> None:
    watcher, client, conn, clock, events = setup({"a/app/db": 3, "b/app/db": 1})
    assert await watcher.poll_once() <= 1.0  # nothing to list, breaker closed: no request
    assert client.calls == []
    conn.breaker.trip(Failure(BACKEND_UNAVAILABLE, "down", transient=True))  # e.g. three reads failed
    client.error = UnavailableError("GET secret: HTTP 503", status_code=503)
    assert await watcher.poll_once() > 0  # not due yet
    assert client.calls == []
    clock.now += conn.breaker.remaining()
    await watcher.poll_once()
    assert client.calls == ["read a/app/db@3"]  # one GET of a pinned path
    client.error = None
    clock.now += conn.breaker.remaining()
    await watcher.poll_once()
    assert not conn.breaker.is_open
    assert events == [False]
