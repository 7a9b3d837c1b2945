"""The registry's side of VaultSecrets with ``spec.sources`` / ``spec.dataFrom``: the ``Composite`` work unit and its
indexes, what the version watcher follows, the listings of dataFrom prefixes, who is behind after a poll, the warm
restart from ``status.sources`` and the Secret's revision, drift by revision, and the refresh annotation."""

from __future__ import annotations

from typing import Any

import pytest

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._logic import composite, conditions
from scaivault_operator._logic.composite import Composite, Listed
from scaivault_operator._logic.manifests import (
    ANNOTATION_REFRESH,
    ANNOTATION_REVISION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    data_hash,
)
from scaivault_operator._logic.registry import ConnKey, Priority, Registry

CONN: ConnKey = ("ClusterVaultConnection", "", "default")
LOCAL: ConnKey = ("VaultConnection", "team-a", "local")
UID = "uid-1"
KEY = ("team-a", "app")
SOURCES = [
    {"name": "db", "path": "apps/db"},
    {"name": "pinned", "path": "apps/pinned", "version": 2},
    {"name": "other", "path": "apps/other", "connectionRef": {"kind": "VaultConnection", "name": "local"}},
]
DATA_FROM = [{"prefix": "teams/pay/", "tags": ["prod"]}]


def body(
    name: str = "app",
    *,
    uid: str = UID,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    if not spec:
        spec = {"sources": SOURCES, "dataFrom": DATA_FROM}
    meta: dict[str, Any] = {"name": name, "namespace": "team-a", "uid": uid, "generation": generation}
    if annotations:
        meta["annotations"] = annotations
    found: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "VaultSecret", "metadata": meta, "spec": spec}
    if status is not None:
        found["status"] = status
    return found


VERSIONS = {("db", "apps/db"): 4, ("pinned", "apps/pinned"): 2, ("other", "apps/other"): 1, (None, "teams/pay/a"): 3}


def ready(versions: dict[Any, int] = VERSIONS, *, generation: int = 1, ok: bool = True) -> dict[str, Any]:
    return {
        "conditions": [{"type": "Ready", "status": "True" if ok else "False", "reason": "Synced", "message": ""}],
        "observedGeneration": generation,
        "sources": composite.status_sources(versions),
        "sourceCount": len(versions),
        "secretName": "app",
    }


def secret(name: str = "app", *, owner: str = UID, revision: str | None = None, intact: bool = True) -> dict[str, Any]:
    data = {"password": "cHc="}
    annotations = {"scaivault.scailabs.ai/data-hash": data_hash(data if intact else {"other": "eA=="})}
    if revision is not None:
        annotations[ANNOTATION_REVISION] = revision
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": annotations,
            "ownerReferences": [{"kind": "VaultSecret", "name": "app", "uid": owner, "controller": True}],
        },
        "data": data,
    }


def no_composite_index(registry: Registry) -> bool:
    return not (registry.composites or registry.composite_paths or registry.composite_prefixes)


@pytest.fixture
def registry() -> Registry:
    return Registry()


def synced(registry: Registry, versions: dict[Any, int] = VERSIONS, **kwargs: Any) -> None:
    """Record a composite VaultSecret and pretend a sync wrote ``versions``."""
    registry.upsert(body(**kwargs))
    key = ("team-a", kwargs.get("name", "app"))
    registry.take_dirty(Composite(key))
    entry = registry.entries[key]
    entry.synced_sources, entry.synced_spec = dict(versions), entry.spec


# -- the work unit and its indexes --------------------------------------------------------------------------------


def test_a_composite_is_its_own_work_unit(registry: Registry) -> None:
    unit = registry.upsert(body())
    assert unit == Composite(KEY)
    assert registry.entries[KEY].source == unit
    assert registry.by_source[unit] == {KEY}
    assert registry.dirty == {KEY: Priority.NEW}
    assert registry.by_target == {KEY: KEY}
    assert dict(registry.composites) == {CONN: {KEY}, LOCAL: {KEY}}
    assert dict(registry.composite_paths) == {(CONN, "apps/db"): {KEY}, (LOCAL, "apps/other"): {KEY}}  # unpinned only
    assert dict(registry.composite_prefixes) == {(CONN, "teams/pay/"): {KEY}}
    assert registry.sources_of(CONN) == [unit]
    assert registry.sources_of(LOCAL) == [unit]
    assert registry.members(unit) == [registry.entries[KEY]]
    assert registry.take_dirty(unit) == [(registry.entries[KEY], Priority.NEW)]


def test_a_composite_beside_single_path_vaultsecrets(registry: Registry) -> None:
    registry.upsert(body())
    registry.upsert(body("single", uid="uid-2", path="apps/db"))
    assert set(registry.sources_of(CONN)) == {(CONN, "apps/db", None), Composite(KEY)}
    assert registry.followed_paths(CONN) == {"apps/db"}
    assert registry.followed_paths(LOCAL) == {"apps/other"}
    assert registry.followed_prefixes(CONN) == {"teams/pay/"}
    assert registry.followed_prefixes(LOCAL) == set()


def test_a_spec_change_moves_every_index(registry: Registry) -> None:
    registry.upsert(body())
    registry.observe_listing(CONN, "teams/pay/", {"teams/pay/a": Listed(3, frozenset({"prod"}))})
    unit = registry.upsert(body(generation=2, sources=[{"name": "db", "path": "apps/db2"}],
                                dataFrom=[{"prefix": "teams/ops/"}]))  # fmt: skip
    assert unit == Composite(KEY)
    assert dict(registry.composites) == {CONN: {KEY}}
    assert dict(registry.composite_paths) == {(CONN, "apps/db2"): {KEY}}
    assert dict(registry.composite_prefixes) == {(CONN, "teams/ops/"): {KEY}}
    assert registry.listings == {}  # nobody follows teams/pay/ any more
    assert registry.followed_paths(LOCAL) == set()


def test_a_change_to_a_single_path_leaves_no_composite_index(registry: Registry) -> None:
    registry.upsert(body())
    registry.observe_listing(CONN, "teams/pay/", {})
    assert registry.upsert(body(generation=2, path="apps/db")) == (CONN, "apps/db", None)
    assert Composite(KEY) not in registry.by_source
    assert no_composite_index(registry)
    assert registry.listings == {}
    assert registry.sources_of(CONN) == [(CONN, "apps/db", None)]


def test_remove_cleans_every_index(registry: Registry) -> None:
    registry.upsert(body())
    registry.observe_listing(CONN, "teams/pay/", {})
    registry.remove(KEY)
    assert registry.entries == {}
    assert registry.dirty == {}
    assert dict(registry.by_source) == {}
    assert registry.by_target == {}
    assert no_composite_index(registry)
    assert registry.listings == {}
    assert registry.sources_of(CONN) == []
    assert (registry.followed_paths(CONN), registry.followed_prefixes(CONN)) == (set(), set())


def test_a_listing_stays_while_another_vaultsecret_follows_the_prefix(registry: Registry) -> None:
    registry.upsert(body())
    registry.upsert(body("second", uid="uid-2", dataFrom=[{"prefix": "teams/pay/"}]))
    registry.observe_listing(CONN, "teams/pay/", {"teams/pay/a": Listed(1)})
    registry.remove(KEY)
    assert registry.listings == {(CONN, "teams/pay/"): {"teams/pay/a": Listed(1)}}
    assert dict(registry.composite_prefixes) == {(CONN, "teams/pay/"): {("team-a", "second")}}
    registry.remove(("team-a", "second"))
    assert registry.listings == {}


def test_a_spec_change_that_keeps_the_prefix_keeps_its_listing(registry: Registry) -> None:
    registry.upsert(body())
    listing = {"teams/pay/a": Listed(3, frozenset({"prod"}))}
    registry.observe_listing(CONN, "teams/pay/", listing)
    registry.upsert(body(generation=2, sources=SOURCES, dataFrom=DATA_FROM, template={"data": {"K": "v"}}))
    assert registry.listings == {(CONN, "teams/pay/"): listing}


def test_observe_listing_of_a_prefix_nobody_follows_is_ignored(registry: Registry) -> None:
    registry.upsert(body())
    registry.observe_listing(CONN, "teams/ops/", {"teams/ops/x": Listed(1)})
    registry.observe_listing(LOCAL, "teams/pay/", {"teams/pay/x": Listed(1)})
    assert registry.listings == {}
    registry.observe_listing(CONN, "teams/pay/", {"teams/pay/x": Listed(1)})
    assert registry.listings == {(CONN, "teams/pay/"): {"teams/pay/x": Listed(1)}}
    assert registry.listings_of(registry.entries[KEY]) == [((CONN, "teams/pay/"), {"teams/pay/x": Listed(1)})]


def test_policy_denied_composites_are_not_followed(registry: Registry) -> None:
    denied = {"conditions": [{"type": "Ready", "status": "False", "reason": conditions.POLICY_DENIED, "message": ""}]}
    registry.upsert(body(status=denied))
    assert registry.followed_paths(CONN) == set()
    assert registry.followed_paths(LOCAL) == set()
    assert registry.followed_prefixes(CONN) == set()
    # Another VaultSecret that is allowed to read the same path and prefix brings them back.
    registry.upsert(body("second", uid="uid-2", sources=[{"name": "db", "path": "apps/db"}],
                         dataFrom=[{"prefix": "teams/pay/"}]))  # fmt: skip
    assert registry.followed_paths(CONN) == {"apps/db"}
    assert registry.followed_prefixes(CONN) == {"teams/pay/"}
    assert registry.followed_paths(LOCAL) == set()


# -- after a poll: who is behind ----------------------------------------------------------------------------------

LISTING = {"teams/pay/a": Listed(3, frozenset({"prod"})), "teams/pay/dev": Listed(9, frozenset({"dev"}))}


def poll(registry: Registry, db: int | None = 4, listing: dict[str, Listed] | None = None) -> list[Any]:
    registry.observe_versions(LOCAL, {"apps/other": 1})
    return registry.observe_versions(CONN, {"apps/db": db}, listings={"teams/pay/": listing or LISTING})


def test_a_composite_in_sync_is_not_behind(registry: Registry) -> None:
    synced(registry)
    assert poll(registry) == []
    assert registry.dirty == {}
    assert registry.listings[(CONN, "teams/pay/")] == LISTING


def test_a_new_version_of_a_source_puts_it_behind(registry: Registry) -> None:
    synced(registry)
    poll(registry)
    assert poll(registry, db=5) == [Composite(KEY)]
    assert registry.dirty == {KEY: Priority.VERSION}
    assert registry.wanted(registry.entries[KEY]) == VERSIONS | {("db", "apps/db"): 5}


@pytest.mark.parametrize(
    "listing",
    [
        LISTING | {"teams/pay/a": Listed(4, frozenset({"prod"}))},  # changed
        LISTING | {"teams/pay/b": Listed(1, frozenset({"prod", "eu"}))},  # new
        {"teams/pay/dev": Listed(9, frozenset({"dev"}))},  # deleted
        LISTING | {"teams/pay/dev": Listed(9, frozenset({"dev", "prod"}))},  # tagged now
    ],
    ids=["changed", "new", "deleted", "tagged"],
)
def test_a_change_under_a_prefix_puts_it_behind(registry: Registry, listing: dict[str, Listed]) -> None:
    synced(registry)
    poll(registry)
    assert poll(registry, listing=listing) == [Composite(KEY)]
    assert registry.dirty == {KEY: Priority.VERSION}


def test_a_change_of_a_secret_the_tags_leave_out_is_nothing(registry: Registry) -> None:
    synced(registry)
    poll(registry)
    assert poll(registry, listing=LISTING | {"teams/pay/dev": Listed(10, frozenset({"dev"}))}) == []


def test_not_behind_while_a_version_is_unknown(registry: Registry) -> None:
    synced(registry)
    # The prefix is listed but apps/other (another connection) was never listed: nothing is known to be behind.
    assert registry.observe_versions(CONN, {"apps/db": 9}, listings={"teams/pay/": LISTING}) == []
    assert registry.dirty == {}


def test_behind_only_when_the_lists_move(registry: Registry) -> None:
    synced(registry)
    poll(registry)
    assert poll(registry, db=5) == [Composite(KEY)]
    registry.take_dirty(Composite(KEY))  # its sync failed (e.g. InvalidSourceData): it holds version 4 still
    assert poll(registry, db=5) == []  # the same lists: not read again every poll, only at its own retry
    assert registry.dirty == {}
    assert poll(registry, db=6) == [Composite(KEY)]


def test_a_followed_source_listed_gone_is_behind_once(registry: Registry) -> None:
    synced(registry)
    poll(registry)
    assert poll(registry, db=None) == [Composite(KEY)]
    entry = registry.entries[KEY]
    assert (entry.synced_sources, entry.reread) == (None, True)  # read every source again when it is back
    registry.take_dirty(Composite(KEY))
    assert poll(registry, db=None) == []


def test_a_deleting_composite_leaves_every_index_and_is_never_behind(registry: Registry) -> None:
    synced(registry)
    poll(registry)
    deleting = body()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    registry.mark_deleting(deleting)
    assert registry.entries[KEY].deleting
    assert registry.entries[KEY].source is None
    assert Composite(KEY) not in registry.by_source
    assert no_composite_index(registry)
    assert registry.listings == {}
    assert poll(registry, db=5) == []
    assert registry.observe_secret("DELETED", secret()) is None


def test_a_composite_never_synced_is_behind_once_the_lists_know(registry: Registry) -> None:
    registry.upsert(body())
    registry.take_dirty(Composite(KEY))
    assert poll(registry) == [Composite(KEY)]


def test_composites_come_after_the_sources_of_a_poll(registry: Registry) -> None:
    synced(registry)
    registry.upsert(body("single", uid="uid-2", path="apps/db"))
    registry.take_dirty((CONN, "apps/db", None))
    registry.entries[("team-a", "single")].synced_version = 4
    poll(registry)
    assert poll(registry, db=5) == [(CONN, "apps/db", None), Composite(KEY)]


def test_a_source_recreated_at_the_same_version_puts_it_behind(registry: Registry) -> None:
    synced(registry)
    registry.upsert(body("single", uid="uid-2", path="apps/db"))
    registry.take_dirty((CONN, "apps/db", None))
    registry.entries[("team-a", "single")].synced_version = 4
    registry.observe_versions(LOCAL, {"apps/other": 1})
    listings = {"teams/pay/": LISTING}
    assert registry.observe_versions(CONN, {"apps/db": 4}, {"apps/db": 1000}, listings=listings) == []
    behind = registry.observe_versions(CONN, {"apps/db": 4}, {"apps/db": 2000}, listings=listings)
    assert (CONN, "apps/db", None) in behind  # the single-path VaultSecret is synced again, from a GET
    assert Composite(KEY) in behind


def test_a_composite_has_no_propagation_start(registry: Registry) -> None:
    synced(registry)
    poll(registry)
    poll(registry, db=5)
    assert registry.propagation_start(Composite(KEY), 5) is None


# -- warm restart ------------------------------------------------------------------------------------------------


def test_a_warm_restart_trusts_status_sources_when_the_secret_holds_that_revision(registry: Registry) -> None:
    registry.index_secrets([secret(revision=composite.revision(VERSIONS))])
    assert registry.upsert(body(status=ready())) is None
    entry = registry.entries[KEY]
    assert entry.synced_sources == VERSIONS
    assert entry.synced_spec == entry.spec
    assert registry.dirty == {}
    assert poll(registry) == []  # and the lists agree: nothing to do


@pytest.mark.parametrize(
    ("secrets", "status", "why"),
    [
        ([secret(revision=composite.revision(VERSIONS | {("db", "apps/db"): 3}))], ready(), "another revision"),
        ([secret()], ready(), "no revision"),
        ([], ready(), "no Secret"),
        ([secret(revision=composite.revision(VERSIONS), intact=False)], ready(), "edited"),
        ([secret(revision=composite.revision(VERSIONS), owner="uid-other")], ready(), "not ours"),
        ([secret(revision=composite.revision(VERSIONS))], ready(generation=0), "an older generation"),
        ([secret(revision=composite.revision(VERSIONS))], ready(ok=False), "not Ready"),
        ([secret(revision=composite.revision(VERSIONS))], {**ready(), "sources": "apps/db@4"}, "malformed"),
        ([secret(revision=composite.revision(VERSIONS))], {**ready(), "sources": []}, "no sources"),
        ([secret(revision=composite.revision(VERSIONS))], {k: v for k, v in ready().items() if k != "sources"},
         "a single-path status"),
    ],
)  # fmt: skip
def test_a_warm_restart_syncs_unless_everything_agrees(
    registry: Registry, secrets: list[dict[str, Any]], status: dict[str, Any], why: str
) -> None:
    registry.index_secrets(secrets)
    assert registry.upsert(body(status=status)) == Composite(KEY), why
    assert registry.entries[KEY].synced_sources is None
    assert registry.dirty == {KEY: Priority.NEW}


def test_a_warm_restart_with_retain_needs_the_finalizer(registry: Registry) -> None:
    registry.index_secrets([secret(revision=composite.revision(VERSIONS))])
    spec = {"sources": SOURCES, "dataFrom": DATA_FROM, "target": {"deletionPolicy": "Retain"}}
    assert registry.upsert(body(status=ready(), **spec)) == Composite(KEY)


# -- drift -------------------------------------------------------------------------------------------------------


def test_our_own_write_is_no_drift(registry: Registry) -> None:
    synced(registry)
    assert registry.observe_secret("MODIFIED", secret(revision=composite.revision(VERSIONS))) is None
    assert registry.dirty == {}
    assert registry.secrets[KEY].revision == composite.revision(VERSIONS)


@pytest.mark.parametrize(
    ("event", "manifest"),
    [
        ("MODIFIED", secret(revision=composite.revision(VERSIONS | {("db", "apps/db"): 3}))),
        ("MODIFIED", secret(revision=composite.revision(VERSIONS), intact=False)),
        ("MODIFIED", secret()),
        ("DELETED", secret(revision=composite.revision(VERSIONS))),
    ],
    ids=["another revision", "edited", "annotation removed", "deleted"],
)
def test_a_secret_event_that_does_not_hold_the_revision_is_drift(
    registry: Registry, event: str, manifest: dict[str, Any]
) -> None:
    synced(registry)
    assert registry.observe_secret(event, manifest) == Composite(KEY)
    assert registry.dirty == {KEY: Priority.DRIFT}


def test_no_drift_before_the_first_sync(registry: Registry) -> None:
    registry.upsert(body())
    registry.take_dirty(Composite(KEY))
    assert registry.observe_secret("MODIFIED", secret(intact=False)) is None
    assert registry.dirty == {}


def test_another_secret_is_no_drift(registry: Registry) -> None:
    synced(registry)
    assert registry.observe_secret("DELETED", secret("unrelated")) is None


# -- refresh -----------------------------------------------------------------------------------------------------


def test_the_refresh_annotation_rereads_every_source(registry: Registry) -> None:
    synced(registry)
    assert registry.upsert(body()) is None  # the same again: nothing
    unit = registry.upsert(body(annotations={ANNOTATION_REFRESH: "2026-01-01T00:00:00Z"}))
    assert unit == Composite(KEY)
    entry = registry.entries[KEY]
    assert entry.synced_sources is None
    assert entry.reread is True
    assert registry.dirty == {KEY: Priority.NEW}
    # The same value again is nothing new.
    registry.take_dirty(Composite(KEY))
    assert registry.upsert(body(annotations={ANNOTATION_REFRESH: "2026-01-01T00:00:00Z"})) is None


def test_a_spec_change_keeps_what_the_secret_holds(registry: Registry) -> None:
    synced(registry)
    assert registry.upsert(body(generation=2, sources=SOURCES, dataFrom=DATA_FROM, maxDiscovered=5)) == Composite(KEY)
    assert registry.entries[KEY].synced_sources == VERSIONS
