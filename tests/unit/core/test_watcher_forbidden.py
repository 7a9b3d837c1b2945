"""The version watcher's handling of a 403 on part of the tree versus on all of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import ForbiddenError, SecretPage, SecretSummary
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Breaker, Connection
from scaivault_operator._core.watcher import VersionWatcher
from scaivault_operator._logic.registry import Priority, Registry

CONN = ("ClusterVaultConnection", "", "default")


@dataclass
class FakeClient:
    versions: dict[str, int]
    refused: set[str]
    calls: list[str] = field(default_factory=list)

    async def list_secrets(self, prefix: str, *, page_size: int) -> AsyncIterator[SecretPage]:
        self.calls.append(prefix)
        if prefix in self.refused:
            raise ForbiddenError(f"LIST secrets with prefix {prefix!r}: HTTP 403 access_denied", status_code=403)
        listed = sorted((p, v) for p, v in self.versions.items() if p.startswith(prefix))
        items = tuple(SecretSummary(path=p, version=v) for p, v in listed)
        yield SecretPage(secrets=items, has_more=False)


@dataclass
class FakeConnections:
    conn: Connection
    client_: FakeClient

    def get(self, key: Any) -> Connection:
        return self.conn

    async def client(self, conn: Connection) -> FakeClient:
        return self.client_


def vaultsecret(name: str, path: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {"path": path},
    }


def make_watcher(refused: set[str]) -> tuple[VersionWatcher, Registry, FakeClient, list[Any], Connection]:
    from scaivault_operator._cogs.api import ConnectionSpec

    spec = ConnectionSpec.model_validate(
        {"url": "https://vault", "auth": {"tokenSecretRef": {"namespace": "ns", "name": "t"}}, "pollInterval": "1s"}
    )
    conn = Connection(key=CONN, spec=spec, error=None, breaker=Breaker(base=10, cap=300))
    registry = Registry()
    registry.upsert(vaultsecret("a", "team-a/app/db"))
    registry.upsert(vaultsecret("b", "team-b/app/db"))
    for key in list(registry.dirty):
        registry.dirty.pop(key)
    registry.entries[("ns", "a")].synced_version = 1
    registry.entries[("ns", "b")].synced_version = 1
    client = FakeClient({"team-a/app/db": 2, "team-b/app/db": 1}, refused)
    scheduled: list[Any] = []
    watcher = VersionWatcher(
        CONN,
        FakeConnections(conn, client),  # type: ignore[arg-type]
        registry,
        OperatorSettings(max_list_prefixes=16),
        lambda source, priority: scheduled.append((source, priority)),
        lambda conn, opened: None,
        Metrics(),
    )
    return watcher, registry, client, scheduled, conn


async def test_a_403_on_one_prefix_pauses_that_prefix_only() -> None:
    watcher, registry, client, scheduled, conn = make_watcher(refused={"team-b/app/"})
    await watcher.poll_once()
    assert not conn.breaker.is_open
    # team-a moved to version 2: scheduled as a version change; team-b handed to its own read once.
    assert ((CONN, "team-a/app/db", None), Priority.VERSION) in scheduled
    assert ((CONN, "team-b/app/db", None), Priority.RETRY) in scheduled
    assert registry.dirty[("ns", "b")] == Priority.RETRY
    # The refused prefix is not listed again until forbidden_retry passed, nor handed over twice.
    scheduled.clear()
    client.calls.clear()
    await watcher.poll_once()
    assert client.calls == ["team-a/app/"]
    assert scheduled == []


async def test_a_403_on_every_prefix_trips_the_breaker() -> None:
    watcher, _, _, _, conn = make_watcher(refused={"team-a/app/", "team-b/app/"})
    await watcher.poll_once()
    assert conn.breaker.is_open
    assert conn.breaker.failure is not None
    assert conn.breaker.failure.reason == "Forbidden"


@pytest.mark.parametrize("refused", [set(), {"team-b/app/"}])
async def test_listed_versions_reach_the_registry(refused: set[str]) -> None:
    watcher, registry, _, _, _ = make_watcher(refused=refused)
    await watcher.poll_once()
    assert registry.latest[(CONN, "team-a/app/db")] == 2
    assert ((CONN, "team-b/app/db") in registry.latest) is (not refused)
