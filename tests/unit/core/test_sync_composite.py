"""``Syncer`` on a VaultSecret with ``spec.sources`` / ``spec.dataFrom`` (``_sync_composite``), with an in-memory
Kubernetes and a fake ScaiVault client: what is read (shared, listed once), what is written (the union, the
annotations, ``status.sources``), and how each failure is reported — a missing connection, an access rule on a
discovered path, a 404 of a named source, the breaker, too many secrets, a collision. No value in any status, event
or log line."""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from scaivault_operator._cogs.api import API_VERSION, ConnectionSpec
from scaivault_operator._cogs.kube import Conflict
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import NotFoundError, Secret, SecretPage, SecretSummary, UnavailableError
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Breaker, Connection
from scaivault_operator._core.sync import Syncer
from scaivault_operator._logic import composite, conditions
from scaivault_operator._logic.composite import Composite, Listed
from scaivault_operator._logic.manifests import ANNOTATION_REVISION, ANNOTATION_SOURCES, merge_patch
from scaivault_operator._logic.registry import ConnKey, Priority, Registry

CONN: ConnKey = ("ClusterVaultConnection", "", "default")
NS = "team-a"
KEY = (NS, "app")
CANARY = "CANARY-SYNC-COMPOSITE-3c8d"
ACCESS = [{"namespaces": [NS], "pathPrefixes": ["apps/", "teams/pay/"]}]


# -- fakes -------------------------------------------------------------------------------------------------------


class FakeKube:
    """What ``sync`` uses of ``Kube``: Secrets, the VaultSecret's status and finalizers, Events."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.writes: list[str] = []

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def create_secret(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        if key in self.secrets:
            raise Conflict("exists", 409)
        self.secrets[key] = copy.deepcopy(dict(manifest))
        self.writes.append(f"create {key[1]}")
        return copy.deepcopy(self.secrets[key])

    async def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self.secrets[(namespace, name)] = merge_patch(self.secrets[(namespace, name)], patch)
        self.writes.append(f"patch {name}")
        return copy.deepcopy(self.secrets[(namespace, name)])

    async def delete_secret(self, namespace: str, name: str) -> None:
        self.secrets.pop((namespace, name), None)
        self.writes.append(f"delete {name}")

    async def patch_vaultsecret_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        self.statuses.append(copy.deepcopy(dict(status)))
        return True

    async def get_vaultsecret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    async def patch_vaultsecret_finalizers(self, *args: Any) -> dict[str, Any] | None:
        return None

    async def post_event(self, involved: Any, *, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


@dataclass
class FakeVault:
    """A ScaiVault client: ``secrets`` is ``{path: [data of version 1, version 2, ...]}`` with tags per path."""

    secrets: dict[str, list[dict[str, Any]]]
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reads: list[tuple[str, int | None]] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)

    async def read(self, path: str, version: int | None = None) -> Secret:
        self.reads.append((path, version))
        versions = self.secrets.get(path)
        if not versions or (version is not None and version > len(versions)):
            raise NotFoundError(f"GET secret {path!r}: HTTP 404 not_found", status_code=404)
        number = version or len(versions)
        return Secret(path=path, version=number, data=copy.deepcopy(versions[number - 1]))

    async def list_secrets(self, prefix: str, *, page_size: int) -> AsyncIterator[SecretPage]:
        self.lists.append(prefix)
        items = tuple(SecretSummary(path=path, version=len(versions), tags=self.tags.get(path, ()))
                      for path, versions in sorted(self.secrets.items()) if path.startswith(prefix))  # fmt: skip
        yield SecretPage(secrets=items, has_more=False)


@dataclass
class FakeConnections:
    items: dict[ConnKey, Connection]
    vault: FakeVault

    def get(self, key: ConnKey) -> Connection | None:
        return self.items.get(key)

    async def client(self, conn: Connection) -> FakeVault:
        return self.vault


def connection(key: ConnKey = CONN, access: list[dict[str, Any]] | None = None) -> Connection:
    spec = ConnectionSpec.model_validate({"url": "https://vault", "pollInterval": "1s",
                                          "auth": {"tokenSecretRef": {"namespace": "ops", "name": "t"}},
                                          "access": ACCESS if access is None else access})  # fmt: skip
    return Connection(key=key, spec=spec, error=None, breaker=Breaker(base=10, cap=300))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    kube: FakeKube
    registry: Registry
    vault: FakeVault
    conn: Connection
    syncer: Syncer
    metrics: Metrics
    clock: Clock

    def vaultsecret(self, name: str = "app", **spec: Any) -> Composite:
        unit = self.registry.upsert({"apiVersion": API_VERSION, "kind": "VaultSecret",
                                     "metadata": {"namespace": NS, "name": name, "uid": f"uid-{name}",
                                                  "generation": 1}, "spec": spec})  # fmt: skip
        assert isinstance(unit, Composite)
        return unit

    async def sync(self, unit: Composite) -> float | None:
        delay = await self.syncer.sync_source(unit)
        for secret in list(self.kube.secrets.values()):  # the Secret watch's events
            self.registry.observe_secret("MODIFIED", secret)
        return delay

    def status(self, name: str = "app") -> dict[str, Any]:
        return self.registry.entries[(NS, name)].status

    def ready(self, name: str = "app") -> dict[str, Any]:
        return conditions.ready_of(self.status(name))

    def data(self, name: str = "app") -> dict[str, str]:
        secret = self.kube.secrets[(NS, name)]
        return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    def requests(self, call: str = "read") -> float:
        return self.metrics.value("backend_requests_total", {"connection": self.conn.label, "call": call})


@pytest.fixture
def world() -> World:
    vault = FakeVault(
        secrets={
            "apps/db": [{"password": f"{CANARY}-db-1"}, {"password": f"{CANARY}-db-2"}],
            "apps/cache": [{"host": "redis"}],
            "teams/pay/stripe": [{"token": f"{CANARY}-stripe"}],
            "teams/pay/paypal/api": [{"key": f"{CANARY}-paypal"}],
            "teams/pay/test": [{"token": "dev"}],
        },
        tags={"teams/pay/stripe": ("prod",), "teams/pay/paypal/api": ("prod", "eu"), "teams/pay/test": ("dev",)},
    )
    kube, registry, metrics, clock = FakeKube(), Registry(), Metrics(), Clock()
    conn = connection()

    async def no_labels(_: str) -> None:
        return None

    syncer = Syncer(kube=kube, registry=registry, connections=FakeConnections({CONN: conn}, vault),  # type: ignore[arg-type]
                    settings=OperatorSettings(liveness_endpoint=None), namespace_labels=no_labels,
                    on_breaker=lambda conn, opened: None, metrics=metrics, clock=clock)  # fmt: skip
    return World(kube, registry, vault, conn, syncer, metrics, clock)


def no_canary(world: World, caplog: pytest.LogCaptureFixture | None = None) -> None:
    shown = str(world.kube.statuses) + str(world.kube.events) + str(world.registry.entries[KEY].status)
    if caplog is not None:
        shown += "\n".join(record.getMessage() for record in caplog.records)
    assert CANARY not in shown


SPEC: dict[str, Any] = {
    "sources": [{"name": "db", "path": "apps/db"}, {"name": "cache", "path": "apps/cache", "version": 1}],
    "dataFrom": [{"prefix": "teams/pay/", "tags": ["prod"]}],
}


# -- a sync ------------------------------------------------------------------------------------------------------


async def test_a_composite_writes_the_union_with_its_sources_and_revision(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    unit = world.vaultsecret(**SPEC)
    assert await world.sync(unit) is None
    assert world.data() == {"password": f"{CANARY}-db-2", "host": "redis", "stripe_token": f"{CANARY}-stripe",
                            "paypal_api_key": f"{CANARY}-paypal"}  # fmt: skip
    versions = {("db", "apps/db"): 2, ("cache", "apps/cache"): 1, (None, "teams/pay/stripe"): 1,
                (None, "teams/pay/paypal/api"): 1}  # fmt: skip
    annotations = world.kube.secrets[KEY]["metadata"]["annotations"]
    assert annotations[ANNOTATION_REVISION] == composite.revision(versions)
    assert annotations[ANNOTATION_SOURCES] == composite.sources_annotation(versions)
    assert "scaivault.scailabs.ai/version" not in annotations
    status = world.status()
    assert status["sources"] == composite.status_sources(versions)
    assert status["sourceCount"] == 4
    assert "syncedVersion" not in status
    assert status["secretName"] == "app"
    assert world.ready()["status"] == "True"
    assert world.ready()["message"] == composite.ready_message(world.registry.entries[KEY].spec, versions, "app")  # type: ignore[arg-type]
    # The first sync listed the prefix once (and recorded it for the others), then one GET per secret: the latest
    # of the unpinned source (no list has shown it yet), the pinned version, each found secret at its version.
    assert world.vault.lists == ["teams/pay/"]
    assert world.registry.listings[(CONN, "teams/pay/")]["teams/pay/test"].tags == frozenset({"dev"})
    assert sorted(world.vault.reads) == [("apps/cache", 1), ("apps/db", None), ("teams/pay/paypal/api", 1),
                                         ("teams/pay/stripe", 1)]  # fmt: skip
    assert (world.requests("read"), world.requests("list")) == (4, 1)
    assert world.registry.entries[KEY].synced_sources == versions
    no_canary(world, caplog)


async def test_a_composite_in_sync_confirms_without_a_request(world: World) -> None:
    unit = world.vaultsecret(**SPEC)
    await world.sync(unit)
    world.registry.observe_versions(CONN, {"apps/db": 2})
    world.vault.reads.clear()
    world.vault.lists.clear()
    writes = len(world.kube.writes)
    world.registry.mark_dirty(KEY, Priority.VERSION)
    await world.sync(unit)
    assert (world.vault.reads, world.vault.lists) == ([], [])
    assert len(world.kube.writes) == writes
    assert world.ready()["status"] == "True"


def new_version_of_db(world: World, unit: Composite) -> None:
    """What the next poll shows: version 3 of apps/db, the same secrets under teams/pay/."""
    listing = world.registry.listings[(CONN, "teams/pay/")]
    world.registry.observe_versions(CONN, {"apps/db": 2}, listings={"teams/pay/": listing})
    world.vault.secrets["apps/db"].append({"password": "three"})
    world.vault.reads.clear()
    assert world.registry.observe_versions(CONN, {"apps/db": 3}, listings={"teams/pay/": listing}) == [unit]


async def test_a_new_version_of_one_source_reads_only_that_version(world: World) -> None:
    unit = world.vaultsecret(**SPEC)
    await world.sync(unit)
    world.clock.now += 1.0  # within the 10 s of the cache of recent versions
    new_version_of_db(world, unit)
    await world.sync(unit)
    assert world.vault.reads == [("apps/db", 3)]  # the others come from the cache of recent versions
    assert world.data()["password"] == "three"
    assert world.status()["sources"][1] == {"name": "db", "path": "apps/db", "version": 3}


async def test_a_new_version_of_one_source_reads_only_that_version_at_the_default_poll_interval(world: World) -> None:
    unit = world.vaultsecret(**SPEC)
    await world.sync(unit)
    world.clock.now += 30.0  # the default pollInterval: the next poll that sees the new version
    new_version_of_db(world, unit)
    await world.sync(unit)
    assert world.vault.reads == [("apps/db", 3)]


async def test_two_composites_share_one_get(world: World) -> None:
    spec = {"sources": [{"name": "db", "path": "apps/db", "version": 1}]}
    first, second = world.vaultsecret("one", **spec), world.vaultsecret("two", **spec)
    await world.sync(first)
    await world.sync(second)
    assert world.vault.reads == [("apps/db", 1)]
    assert world.syncer.reads.shared == 1
    assert world.requests("read") == 1


# -- failures ----------------------------------------------------------------------------------------------------


async def test_a_missing_connection_is_invalid_spec(world: World) -> None:
    other = {"kind": "VaultConnection", "name": "nowhere"}
    unit = world.vaultsecret(sources=[{"name": "db", "path": "apps/db"},
                                      {"name": "x", "path": "apps/x", "connectionRef": other}])  # fmt: skip
    assert await world.sync(unit) is None
    ready = world.ready()
    assert (ready["status"], ready["reason"]) == ("False", conditions.INVALID_SPEC)
    assert "VaultConnection 'nowhere' in namespace team-a does not exist" in ready["message"]
    assert (world.vault.reads, world.vault.lists, world.kube.secrets) == ([], [], {})


async def test_a_prefix_the_rules_allow_only_in_part_is_policy_denied_and_not_listed(world: World) -> None:
    # The rules allow teams/pay/stripe but not all of teams/pay/: the prefix itself is refused, before any list, so
    # nothing under it (allowed or not) is revealed.
    world.conn.spec = connection(access=[{"namespaces": [NS], "pathPrefixes": ["apps/", "teams/pay/stripe"]}]).spec
    unit = world.vaultsecret(**SPEC)
    assert await world.sync(unit) is None
    ready = world.ready()
    assert (ready["status"], ready["reason"]) == ("False", conditions.POLICY_DENIED)
    assert "'teams/pay/'" in ready["message"]
    assert "change spec.dataFrom" in ready["message"]
    assert "paypal" not in ready["message"]
    assert (world.vault.lists, world.vault.reads) == ([], [])  # nothing is listed or read
    assert world.kube.secrets == {}
    no_canary(world)


async def test_a_denied_named_source_is_policy_denied_naming_it(world: World) -> None:
    unit = world.vaultsecret(sources=[{"name": "db", "path": "apps/db"}, {"name": "x", "path": "other/x"}])
    await world.sync(unit)
    assert world.ready()["reason"] == conditions.POLICY_DENIED
    assert "'other/x'" in world.ready()["message"]
    assert world.vault.reads == []


async def test_a_404_of_a_named_source_is_source_not_found_prefixed_with_the_source(world: World) -> None:
    unit = world.vaultsecret(sources=[{"name": "db", "path": "apps/db"}, {"name": "gone", "path": "apps/gone"}])
    delay = await world.sync(unit)
    ready = world.ready()
    assert (ready["status"], ready["reason"]) == ("False", conditions.SOURCE_NOT_FOUND)
    assert ready["message"].startswith("source gone (apps/gone): ")
    assert delay is not None
    assert world.registry.dirty == {KEY: Priority.RETRY}  # retried later
    assert world.kube.secrets == {}
    no_canary(world)


async def test_a_404_of_a_pinned_version_names_the_source(world: World) -> None:
    unit = world.vaultsecret(sources=[{"name": "db", "path": "apps/db", "version": 9}])
    await world.sync(unit)
    assert world.ready()["reason"] == conditions.SOURCE_NOT_FOUND
    assert world.ready()["message"].startswith("source db (apps/db): ")


async def test_an_open_breaker_holds_the_composite_without_a_request(world: World) -> None:
    failure = conditions.classify(UnavailableError("HTTP 503"))
    world.conn.breaker.trip(failure, floor=1.0)
    unit = world.vaultsecret(sources=[{"name": "db", "path": "apps/db"}])
    delay = await world.sync(unit)
    assert delay is not None
    assert delay > 0
    ready = world.ready()
    assert (ready["status"], ready["reason"]) == ("False", conditions.BACKEND_UNAVAILABLE)
    assert world.vault.reads == []
    assert world.metrics.value("backend_requests_suppressed_total", {"connection": world.conn.label,
                                                                     "call": "read"}) == 1  # fmt: skip


async def test_an_open_breaker_holds_the_first_list_of_a_prefix(world: World) -> None:
    world.conn.breaker.trip(conditions.classify(UnavailableError("HTTP 503")), floor=1.0)
    unit = world.vaultsecret(dataFrom=[{"prefix": "teams/pay/"}])
    assert await world.sync(unit) is not None
    assert world.ready()["reason"] == conditions.BACKEND_UNAVAILABLE
    assert (world.vault.reads, world.vault.lists) == ([], [])
    assert world.metrics.value("backend_requests_suppressed_total", {"connection": world.conn.label,
                                                                     "call": "list"}) == 1  # fmt: skip


async def test_too_many_secrets_keeps_the_last_data(world: World) -> None:
    unit = world.vaultsecret(dataFrom=[{"prefix": "teams/pay/"}], maxDiscovered=3)
    await world.sync(unit)
    assert world.status()["sourceCount"] == 3
    world.vault.secrets["teams/pay/new"] = [{"n": CANARY}]
    # What the next poll shows: four secrets under the prefix.
    world.registry.observe_versions(CONN, {}, listings={"teams/pay/": {path: Listed(1) for path in world.vault.secrets
                                                                       if path.startswith("teams/pay/")}})  # fmt: skip
    before = copy.deepcopy(world.kube.secrets)
    world.registry.mark_dirty(KEY, Priority.VERSION)
    await world.sync(unit)
    ready = world.ready()
    assert (ready["status"], ready["reason"]) == ("False", conditions.TOO_MANY_SECRETS)
    assert "finds 4 secrets under teams/pay/" in ready["message"]
    assert world.kube.secrets == before
    assert world.status()["sourceCount"] == 3  # what the Secret still holds
    no_canary(world)


async def test_a_collision_is_invalid_source_data_and_writes_nothing(world: World) -> None:
    world.vault.secrets["apps/other"] = [{"password": f"{CANARY}-other"}]
    unit = world.vaultsecret(sources=[{"name": "db", "path": "apps/db"}, {"name": "other", "path": "apps/other"}])
    assert await world.sync(unit) is None
    ready = world.ready()
    assert (ready["status"], ready["reason"]) == ("False", conditions.INVALID_SOURCE_DATA)
    assert "'password'" in ready["message"]
    assert "source db (apps/db)" in ready["message"]
    assert "source other (apps/other)" in ready["message"]
    assert world.kube.secrets == {}
    assert world.registry.entries[KEY].synced_sources is None
    no_canary(world)


async def test_a_refresh_reads_every_source_again(world: World) -> None:
    spec = {"sources": [{"name": "db", "path": "apps/db", "version": 1}]}
    unit = world.vaultsecret(**spec)
    await world.sync(unit)
    world.registry.upsert({"apiVersion": API_VERSION, "kind": "VaultSecret",
                           "metadata": {"namespace": NS, "name": "app", "uid": "uid-app", "generation": 1,
                                        "annotations": {"scaivault.scailabs.ai/refresh": "now"}},
                           "spec": spec})  # fmt: skip
    await world.sync(unit)
    assert world.vault.reads == [("apps/db", 1), ("apps/db", 1)]  # not from the cache of recent versions
    assert world.registry.entries[KEY].reread is False
    assert world.registry.entries[KEY].synced_sources == {("db", "apps/db"): 1}


async def test_a_prefix_outside_the_access_rules_is_not_listed(world: World) -> None:
    world.vault.secrets["secrets/prod/root"] = [{"token": CANARY}]
    unit = world.vaultsecret(dataFrom=[{"prefix": "secrets/"}])
    await world.sync(unit)
    assert world.ready()["reason"] == conditions.POLICY_DENIED
    assert world.vault.lists == []
    assert "secrets/prod/root" not in str(world.status())
