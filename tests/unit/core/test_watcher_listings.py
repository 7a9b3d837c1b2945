"""The version watcher lists the ``dataFrom`` prefixes of VaultSecrets with sources beside the followed paths
(``covering_prefixes`` of both), hands each prefix's secrets with their tags to the registry, and — on a 403 of part of
the tree — leaves the refused prefixes out and hands the VaultSecrets that follow them over to their own syncs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from scaivault_operator._cogs.api import ConnectionSpec
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import ForbiddenError, SecretPage, SecretSummary
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Breaker, Connection
from scaivault_operator._core.watcher import VersionWatcher
from scaivault_operator._logic import conditions
from scaivault_operator._logic.composite import Composite, Listed
from scaivault_operator._logic.registry import Priority, Registry

CONN = ("ClusterVaultConnection", "", "default")
PAY = ("ns", "pay")
OPS = ("ns", "ops")

SECRETS = {
    "teams/pay/stripe": (2, ("prod",)),
    "teams/pay/paypal/api": (1, ("prod", "eu")),
    "teams/pay/test": (4, ("dev",)),
    "teams/ops/pager": (3, ()),
    "apps/web/db": (7, ()),
    "apps/web/other": (1, ()),
}


@dataclass
class FakeClient:
    secrets: dict[str, tuple[int, tuple[str, ...]]]
    refused: set[str] = field(default_factory=set)
    page_size: int = 2
    calls: list[str] = field(default_factory=list)

    async def list_secrets(self, prefix: str, *, page_size: int) -> AsyncIterator[SecretPage]:
        self.calls.append(prefix)
        if prefix in self.refused:
            raise ForbiddenError(f"LIST secrets with prefix {prefix!r}: HTTP 403 access_denied", status_code=403)
        listed = sorted((p, v) for p, v in self.secrets.items() if p.startswith(prefix))
        items = [SecretSummary(path=p, version=v, tags=tags) for p, (v, tags) in listed]
        pages = [items[i : i + self.page_size] for i in range(0, len(items), self.page_size)] or [[]]
        for number, page in enumerate(pages):
            yield SecretPage(secrets=tuple(page), has_more=number < len(pages) - 1)


@dataclass
class FakeConnections:
    conn: Connection
    client_: FakeClient

    def get(self, key: Any) -> Connection:
        return self.conn

    async def client(self, conn: Connection) -> FakeClient:
        return self.client_


def composite(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "generation": 1}, "spec": spec}


def make_watcher(
    refused: set[str] | None = None, *bodies: dict[str, Any]
) -> tuple[VersionWatcher, Registry, FakeClient, list[Any], Connection]:
    spec = ConnectionSpec.model_validate(
        {"url": "https://vault", "auth": {"tokenSecretRef": {"namespace": "ns", "name": "t"}}, "pollInterval": "1s"}
    )
    conn = Connection(key=CONN, spec=spec, error=None, breaker=Breaker(base=10, cap=300))
    registry = Registry()
    for item in bodies or (
        composite("pay", dataFrom=[{"prefix": "teams/pay/", "tags": ["prod"]}]),
        composite("ops", sources=[{"name": "db", "path": "apps/web/db"}], dataFrom=[{"prefix": "teams/ops/"}]),
    ):
        registry.upsert(item)
    registry.dirty.clear()
    client = FakeClient(dict(SECRETS), refused or set())
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


async def test_list_returns_each_prefix_with_its_secrets_and_tags() -> None:
    watcher, registry, client, _, conn = make_watcher()
    paths, wholes = registry.followed_paths(CONN), registry.followed_prefixes(CONN)
    assert (paths, wholes) == ({"apps/web/db"}, {"teams/pay/", "teams/ops/"})
    versions, _, listings = await watcher._list(conn, paths, wholes)
    assert versions == {"apps/web/db": 7}
    assert listings == {
        "teams/pay/": {
            "teams/pay/stripe": Listed(2, frozenset({"prod"})),
            "teams/pay/paypal/api": Listed(1, frozenset({"prod", "eu"})),
            "teams/pay/test": Listed(4, frozenset({"dev"})),  # every secret: the tags are the registry's to apply
        },
        "teams/ops/": {"teams/ops/pager": Listed(3)},
    }
    assert sorted(client.calls) == ["apps/web/", "teams/ops/", "teams/pay/"]


async def test_a_prefix_below_a_covering_prefix_gets_only_its_own_secrets() -> None:
    bodies = (
        composite("pay", dataFrom=[{"prefix": "teams/pay/"}]),
        composite("all", dataFrom=[{"prefix": "teams/"}]),
        composite("web", sources=[{"name": "db", "path": "teams/pay/stripe"}]),
    )
    watcher, registry, client, _, conn = make_watcher(None, *bodies)
    versions, _, listings = await watcher._list(conn, registry.followed_paths(CONN), registry.followed_prefixes(CONN))
    assert client.calls == ["teams/"]  # one list covers them all
    assert versions == {"teams/pay/stripe": 2}
    assert set(listings["teams/pay/"]) == {"teams/pay/stripe", "teams/pay/paypal/api", "teams/pay/test"}
    assert set(listings["teams/"]) == set(listings["teams/pay/"]) | {"teams/ops/pager"}


async def test_a_plain_string_prefix_is_listed_as_a_string_prefix() -> None:
    watcher, registry, client, _, conn = make_watcher(None, composite("pay", dataFrom=[{"prefix": "teams/pa"}]))
    _, _, listings = await watcher._list(conn, set(), registry.followed_prefixes(CONN))
    assert set(listings["teams/pa"]) == {"teams/pay/stripe", "teams/pay/paypal/api", "teams/pay/test"}
    assert all(call == "teams/pa" or "teams/pa".startswith(call) for call in client.calls)


async def test_a_poll_hands_the_listings_to_the_registry_and_schedules_who_is_behind() -> None:
    watcher, registry, client, scheduled, _ = make_watcher()
    await watcher.poll_once()
    assert registry.listings[(CONN, "teams/pay/")]["teams/pay/stripe"] == Listed(2, frozenset({"prod"}))
    assert set(registry.listings) == {(CONN, "teams/pay/"), (CONN, "teams/ops/")}
    # Never synced: both are behind once the lists know what they should hold.
    assert scheduled == [(Composite(OPS), Priority.VERSION), (Composite(PAY), Priority.VERSION)]
    assert registry.wanted(registry.entries[PAY]) == {(None, "teams/pay/stripe"): 2, (None, "teams/pay/paypal/api"): 1}
    assert watcher.list_requests == 4  # teams/pay/ has two pages

    # They synced; a new tagged secret under teams/pay/ moves only "pay".
    for key in (PAY, OPS):
        registry.take_dirty(Composite(key))
        registry.entries[key].synced_sources = registry.wanted(registry.entries[key])
    scheduled.clear()
    await watcher.poll_once()
    assert scheduled == []
    client.secrets["teams/pay/new"] = (1, ("prod",))
    await watcher.poll_once()
    assert scheduled == [(Composite(PAY), Priority.VERSION)]


async def test_a_refused_prefix_is_left_out_and_its_composites_handed_over() -> None:
    watcher, registry, client, scheduled, conn = make_watcher(refused={"teams/pay/"})
    await watcher.poll_once()
    assert not conn.breaker.is_open  # part of the tree only
    assert (CONN, "teams/pay/") not in registry.listings
    assert (CONN, "teams/ops/") in registry.listings
    assert (Composite(PAY), Priority.RETRY) in scheduled
    assert registry.dirty[PAY] == Priority.RETRY  # its sync reports the 403 (its own list)
    assert (Composite(OPS), Priority.RETRY) not in scheduled
    # Not listed again until forbidden_retry passed, nor handed over twice.
    scheduled.clear()
    client.calls.clear()
    registry.dirty.clear()
    await watcher.poll_once()
    assert "teams/pay/" not in client.calls
    assert all(unit != Composite(PAY) for unit, _ in scheduled)


async def test_a_composite_following_a_path_under_a_refused_prefix_is_handed_over() -> None:
    watcher, registry, _, scheduled, _ = make_watcher(refused={"apps/web/"})
    await watcher.poll_once()
    assert (Composite(OPS), Priority.RETRY) in scheduled
    assert registry.dirty[OPS] <= Priority.RETRY
    assert (CONN, "apps/web/db") not in registry.latest


async def test_hand_over_schedules_only_units_with_members() -> None:
    watcher, registry, _, scheduled, _ = make_watcher(refused={"teams/pay/", "apps/web/"})
    await watcher.poll_once()
    units = [unit for unit, _ in scheduled]
    assert set(units) >= {Composite(PAY), Composite(OPS)}
    assert_only_real_units(registry, units)


def assert_only_real_units(registry: Registry, units: list[Any]) -> None:
    for unit in units:
        assert isinstance(unit, Composite) or registry.members(unit), f"{unit} has no VaultSecret to sync"


async def test_a_policy_denied_composites_prefix_is_not_listed() -> None:
    denied = {"conditions": [{"type": "Ready", "status": "False", "reason": conditions.POLICY_DENIED}]}
    body = composite("pay", dataFrom=[{"prefix": "teams/pay/"}]) | {"status": denied}
    watcher, registry, client, _, _ = make_watcher(None, body)
    assert registry.followed_prefixes(CONN) == set()
    await watcher.poll_once()
    assert client.calls == []


class LoggingClient(FakeClient):
    """Pages of one item each, every page noted in ``log`` as it is handed out."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(dict(SECRETS), page_size=1)
        self.log = log

    async def list_secrets(self, prefix: str, *, page_size: int) -> AsyncIterator[SecretPage]:
        async for page in super().list_secrets(prefix, page_size=page_size):
            self.log.append(f"page {page.secrets[0].path}")
            yield page


def single(name: str, path: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {"path": path}}  # fmt: skip


async def test_a_new_version_is_acted_on_when_its_page_arrives_not_after_the_whole_list() -> None:
    log: list[str] = []
    watcher, registry, _, _, conn = make_watcher(None, single("db", "apps/web/db"), single("other", "apps/web/other"))
    watcher._connections = FakeConnections(conn, LoggingClient(log))  # type: ignore[assignment]
    watcher._schedule = lambda source, priority: log.append(f"sync {source[1]}")
    await watcher.poll_once()
    assert log == ["page apps/web/db", "sync apps/web/db", "page apps/web/other", "sync apps/web/other"]
    # Gone since: known only once the whole list is through.
    for key in (("ns", "db"), ("ns", "other")):
        registry.entries[key].synced_version = registry.latest[(CONN, f"apps/web/{key[1]}")]
    log.clear()
    del watcher._connections.client_.secrets["apps/web/db"]  # type: ignore[attr-defined]
    await watcher.poll_once()
    assert log == ["page apps/web/other", "sync apps/web/db"]
    assert registry.latest[(CONN, "apps/web/db")] is None


async def test_a_probe_hands_nothing_over_before_it_has_succeeded() -> None:
    log: list[str] = []
    watcher, _, _, _, conn = make_watcher(None, single("db", "apps/web/db"), single("other", "apps/web/other"))
    watcher._connections = FakeConnections(conn, LoggingClient(log))  # type: ignore[assignment]
    watcher._schedule = lambda source, priority: log.append(f"sync {source[1]}")
    closed: list[bool] = []
    watcher._on_breaker = lambda conn, opened: closed.append(not opened)
    conn.breaker.trip(conditions.Failure(conditions.BACKEND_UNAVAILABLE, "503", transient=True), floor=0.0)
    conn.breaker.until = 0.0  # its retryAt has passed: the next poll is the probe
    await watcher.poll_once()
    assert log[:2] == ["page apps/web/db", "page apps/web/other"]
    assert sorted(log[2:]) == ["sync apps/web/db", "sync apps/web/other"]
    assert closed == [True]


async def test_a_vaultsecret_with_sources_is_judged_on_the_whole_list_not_page_by_page() -> None:
    """A source gone from the list is known only once every page is through: a page that merely does not show it
    yet must not count as what the lists say (found by tests/integration: a VaultSecret with sources, synced by its
    own reads before any poll, never reported SourceNotFound when its pages were judged one by one)."""
    log: list[str] = []
    body = composite("gone", sources=[{"name": "a", "path": "apps/web/db"}, {"name": "b", "path": "apps/web/other"}])
    watcher, registry, _, _, conn = make_watcher(None, body)
    client = LoggingClient(log)
    watcher._connections = FakeConnections(conn, client)  # type: ignore[assignment]
    watcher._schedule = lambda source, priority: log.append(f"sync {source}")
    entry = registry.entries[("ns", "gone")]
    entry.synced_sources = {("a", "apps/web/db"): 7, ("b", "apps/web/other"): 1}  # its first sync read both
    del client.secrets["apps/web/other"]  # gone before the first poll
    await watcher.poll_once()
    assert log == ["page apps/web/db", f"sync {Composite(('ns', 'gone'))}"]
    assert registry.path_gone(CONN, "apps/web/other")
