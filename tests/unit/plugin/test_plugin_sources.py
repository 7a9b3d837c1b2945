"""VaultSecrets with several sources (``spec.sources``, ``spec.dataFrom``) in each command: ``render`` built as the
operator builds it (a fake cluster and fake ScaiVault clients: which connections are opened, what is listed and read,
what is refused before any read), ``why``'s steps, ``status``' per-source versions, ``versions``' users by source,
and ``refresh``'s words."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from scaivault_operator._cogs import scaivault
from scaivault_operator._cogs.api import API_VERSION, VaultSecretSpec
from scaivault_operator._cogs.scaivault import Secret, SecretPage, SecretSummary
from scaivault_operator._logic import composite
from scaivault_operator._logic.manifests import ANNOTATION_REVISION, ANNOTATION_SOURCES, data_hash
from scaivault_operator._plugin import render as render_module
from scaivault_operator._plugin.output import ExitCode, PluginError, format_report
from scaivault_operator._plugin.render import live_comparison, refresh, render, render_report
from scaivault_operator._plugin.source import connection_keys, parse_connection
from scaivault_operator._plugin.status import held_versions, status_report, vaultsecret_summary
from scaivault_operator._plugin.versions import users_of, versions_report
from scaivault_operator._plugin.why import (
    scaivault_step,
    sources_access_step,
    target_step,
    vaultsecret_step,
)

NS = "shop"
UID = "5d1e-uid"
CANARY = "canary-several-9b2f"  # never printed without --show-values


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def connection_body(
    kind: str = "ClusterVaultConnection",
    name: str = "default",
    *,
    prefixes: tuple[str, ...] = ("apps/",),
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    access = [{"namespaces": [NS], "pathPrefixes": list(prefixes)}] if kind == "ClusterVaultConnection" else None
    meta = {"name": name, **({"namespace": NS} if kind == "VaultConnection" else {})}
    spec: dict[str, Any] = {"url": f"https://{name}.vault.example",
                            "auth": {"tokenSecretRef": {"namespace": "ops", "name": "t"}}}  # fmt: skip
    if access is not None:
        spec["access"] = access
    return {"kind": kind, "metadata": meta, "spec": spec, "status": status or {}}


def connection(kind: str = "ClusterVaultConnection", name: str = "default", **kwargs: Any) -> Any:
    return parse_connection(kind, connection_body(kind, name, **kwargs))


def vaultsecret(name: str = "mix", *, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "VaultSecret",
            "metadata": {"name": name, "namespace": NS, "uid": UID, "generation": 1},
            "spec": spec, "status": status or {}}  # fmt: skip


SPEC: dict[str, Any] = {
    "sources": [
        {"name": "db", "path": "apps/db", "version": 2},
        {"name": "creds", "path": "apps/creds", "keys": [{"from": "password", "to": "DB_PASSWORD"}]},
        {"name": "again", "path": "apps/creds", "keys": [{"from": "user"}]},  # the same read, shared
        {"name": "cache", "path": "apps/cache", "connectionRef": {"kind": "VaultConnection", "name": "own"}},
    ],
    "dataFrom": [{"prefix": "apps/found/", "tags": ["prod"]}],
}
HELD = {("db", "apps/db"): 2, ("creds", "apps/creds"): 5, ("again", "apps/creds"): 5, ("cache", "apps/cache"): 1,
        (None, "apps/found/stripe/api"): 3}  # fmt: skip
SYNCED_STATUS = {
    "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "5 secrets"}],
    "sources": composite.status_sources(HELD),
    "sourceCount": 5,
    "syncedAt": "2026-04-23T14:00:00Z",
    "observedGeneration": 1,
}


# -- a fake cluster and fake ScaiVault ------------------------------------------------------------------------------


@dataclass
class FakeVault:
    """What every connection's ScaiVault holds: ``{path: {version: data}}`` and tags; the calls each client made."""

    secrets: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    calls: list[tuple[str, str, str, int | None]] = field(default_factory=list)  # (connection, call, path, version)
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    fail: dict[tuple[str, str], scaivault.ScaiVaultError] = field(default_factory=dict)  # (call, path) -> error


class FakeClient:
    def __init__(self, vault: FakeVault, label: str) -> None:
        self.vault, self.label = vault, label

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.vault.closed.append(self.label)

    async def list_secrets(self, prefix: str, *, page_size: int | None = None) -> AsyncIterator[SecretPage]:
        self.vault.calls.append((self.label, "list", prefix, None))
        if ("list", prefix) in self.vault.fail:
            raise self.vault.fail[("list", prefix)]
        items = [SecretSummary(path=path, version=max(versions), tags=self.vault.tags.get(path, ()))
                 for path, versions in sorted(self.vault.secrets.items())]  # fmt: skip
        yield SecretPage(secrets=tuple(items[:2]), cursor="next", has_more=True)  # the prefix is a plain string:
        yield SecretPage(secrets=tuple(items[2:]))  # the fake lists everything, render keeps what is under it

    async def read(self, path: str, version: int | None = None) -> Secret:
        self.vault.calls.append((self.label, "read", path, version))
        if ("read", path) in self.vault.fail:
            raise self.vault.fail[("read", path)]
        versions = self.vault.secrets[path]
        number = version if version is not None else max(versions)
        return Secret(path=path, version=number, data=versions[number])


@dataclass
class FakeCluster:
    objects: dict[tuple[str, str | None, str], dict[str, Any]]
    may_read_secrets: bool = True
    patches: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return NS

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace if kind not in ("ClusterVaultConnection", "Namespace") else None,
                                 name))  # fmt: skip

    async def can_i(self, verb: str, resource: str, namespace: str | None, name: str | None = None) -> bool:
        return self.may_read_secrets

    async def merge_patch(self, kind: str, name: str, namespace: str | None, patch: Mapping[str, Any]) -> Any:
        self.patches.append(patch)
        return self.objects.get((kind, namespace, name))


@pytest.fixture
def vault(monkeypatch) -> FakeVault:
    fake = FakeVault(
        secrets={
            "apps/db": {1: {"host": "db1"}, 2: {"host": "db2"}, 3: {"host": "db3"}},
            "apps/creds": {5: {"user": "app", "password": CANARY}},
            "apps/cache": {1: {"REDIS": "redis.local"}},
            "apps/found/stripe/api": {3: {"token": "tok"}},
            "apps/found/test": {1: {"token": "dev"}},
            "apps/foundling": {1: {"other": "x"}},  # shares the prefix's characters, not under it
        },
        tags={"apps/found/stripe/api": ("prod", "eu"), "apps/found/test": ("dev",), "apps/foundling": ("prod",)},
    )

    async def open_client(cluster: Any, conn: Any) -> FakeClient:
        fake.opened.append(conn.label)
        return FakeClient(fake, conn.label)

    monkeypatch.setattr(render_module, "open_client", open_client)
    return fake


def cluster_with(spec: dict[str, Any], *, own_prefixes: tuple[str, ...] = (), **kwargs: Any) -> FakeCluster:
    own = connection_body("VaultConnection", "own")
    if own_prefixes:
        own["spec"]["access"] = [{"namespaces": [NS], "pathPrefixes": list(own_prefixes)}]
    objects = {
        ("VaultSecret", NS, "mix"): vaultsecret(spec=spec, status=SYNCED_STATUS),
        ("ClusterVaultConnection", None, "default"): connection_body(),
        ("VaultConnection", NS, "own"): own,
        ("Namespace", None, NS): {"metadata": {"name": NS, "labels": {"team": "shop"}}},
    }
    return FakeCluster(objects, **kwargs)


# -- render ---------------------------------------------------------------------------------------------------------


async def test_render_reads_each_source_once_through_its_own_connection(vault):
    cluster = cluster_with(SPEC)

    report = await render(cluster, NS, "mix", show_values=False)  # type: ignore[arg-type]

    assert report.code is ExitCode.OK
    assert vault.calls == [
        ("ClusterVaultConnection/default", "list", "apps/found/", None),
        ("ClusterVaultConnection/default", "read", "apps/db", 2),  # pinned
        ("ClusterVaultConnection/default", "read", "apps/creds", None),  # the latest; "again" shares it
        ("VaultConnection/shop/own", "read", "apps/cache", None),
        ("ClusterVaultConnection/default", "read", "apps/found/stripe/api", 3),  # tagged prod; not test, foundling
    ]
    assert vault.opened == ["ClusterVaultConnection/default", "VaultConnection/shop/own"]
    assert sorted(vault.closed) == sorted(vault.opened)
    assert report.data["sources"] == [
        {"name": "again", "path": "apps/creds", "version": 5, "read": "latest",
         "connection": "ClusterVaultConnection/default"},
        {"name": "cache", "path": "apps/cache", "version": 1, "read": "latest",
         "connection": "VaultConnection/shop/own"},
        {"name": "creds", "path": "apps/creds", "version": 5, "read": "latest",
         "connection": "ClusterVaultConnection/default"},
        {"name": "db", "path": "apps/db", "version": 2, "read": "pinned to 2",
         "connection": "ClusterVaultConnection/default"},
        {"name": None, "path": "apps/found/stripe/api", "version": 3, "read": "found under apps/found/",
         "connection": "ClusterVaultConnection/default"},
    ]  # fmt: skip
    assert {k["key"]: k["from"] for k in report.data["keys"]} == {
        "DB_PASSWORD": "source creds",
        "user": "source again",
        "REDIS": "source cache",
        "host": "source db",
        "stripe_api_token": "apps/found/stripe/api",
    }
    annotations = report.data["secret"]["annotations"]
    assert annotations[ANNOTATION_REVISION] == composite.revision(HELD)
    assert annotations[ANNOTATION_SOURCES] == composite.sources_annotation(HELD)
    assert annotations["scaivault.scailabs.ai/connection"] == "ClusterVaultConnection/default"
    assert "template" not in report.data
    assert report.text.splitlines()[0] == (
        f"Secret {NS}/mix (type Opaque): 5 secrets (4 sources, 1 found by dataFrom) through "
        "ClusterVaultConnection/default, VaultConnection/shop/own"
    )
    assert report.data["live"]["same"] is None  # no live Secret
    for fmt in ("table", "json", "yaml"):
        text = format_report(report, fmt)
        assert CANARY not in text
        assert b64(CANARY) not in text


async def test_render_with_a_template_over_named_sources(vault):
    spec = {"sources": SPEC["sources"][:2],
            "template": {"mergePolicy": "Merge", "data": {"URL": "db://{{ sources.db.data.host }}"
                                                                  "?v={{ sources.db.version }}"}}}  # fmt: skip
    report = await render(cluster_with(spec), NS, "mix", show_values=False)  # type: ignore[arg-type]

    rows = {k["key"]: k for k in report.data["keys"]}
    assert rows["URL"]["from"] == "template"
    assert rows["URL"]["sha256"] == hashlib.sha256(b"db://db2?v=2").hexdigest()[:12]
    assert rows["host"]["from"] == "source db"
    assert report.data["template"] == {"mergePolicy": "Merge",
                                       "keys": {"DB_PASSWORD": "source creds", "URL": "template",
                                                "host": "source db"}}  # fmt: skip
    assert "Template: mergePolicy Merge" in report.text


async def test_render_names_rewritten_keys_by_the_secret_they_come_from(vault):
    rewrite = [{"regexp": {"source": "^stripe_api_(\\w+)$", "target": "STRIPE_${1}"}}]
    spec = {"dataFrom": [{"prefix": "apps/found/", "tags": ["prod"], "rewrite": rewrite}]}

    report = await render(cluster_with(spec), NS, "mix", show_values=False)  # type: ignore[arg-type]

    assert {k["key"]: k["from"] for k in report.data["keys"]} == {"STRIPE_token": "apps/found/stripe/api"}
    assert report.data["sources"] == [
        {"name": None, "path": "apps/found/stripe/api", "version": 3, "read": "found under apps/found/",
         "connection": "ClusterVaultConnection/default"},
    ]  # fmt: skip


async def test_render_shows_values_only_when_asked_and_allowed(vault):
    shown = await render(cluster_with(SPEC), NS, "mix", show_values=True)  # type: ignore[arg-type]
    assert f"  DB_PASSWORD: {CANARY}" in shown.text

    calls = len(vault.calls)
    with pytest.raises(PluginError) as refused:
        await render(cluster_with(SPEC, may_read_secrets=False), NS, "mix", show_values=True)  # type: ignore[arg-type]
    assert refused.value.code is ExitCode.FORBIDDEN
    assert len(vault.calls) == calls  # refused before anything was listed or read


@pytest.mark.parametrize(
    ("spec", "own_prefixes", "words"),
    [
        ({"sources": [{"name": "a", "path": "apps/db"}, {"name": "b", "path": "other/x"}]}, (),
         "PolicyDenied: the operator would not read source b (other/x): ClusterVaultConnection default does not "
         "allow namespace shop to read 'other/x'"),
        ({"sources": [{"name": "c", "path": "apps/cache", "connectionRef": {"kind": "VaultConnection",
                                                                            "name": "own"}}]}, ("elsewhere/",),
         "PolicyDenied: the operator would not read source c (apps/cache): VaultConnection own does not allow"),
    ],
)  # fmt: skip
async def test_render_refuses_a_denied_path_before_any_read(vault, spec, own_prefixes, words):
    with pytest.raises(PluginError) as denied:
        await render(cluster_with(spec, own_prefixes=own_prefixes), NS, "mix", show_values=False)  # type: ignore[arg-type]

    assert denied.value.code is ExitCode.NOT_READY
    assert denied.value.message.startswith(words)
    assert [call for call in vault.calls if call[1] == "read"] == []


async def test_render_refuses_a_prefix_the_rules_allow_only_in_part_before_listing(vault):
    cluster = cluster_with({"dataFrom": [{"prefix": "apps/found"}]})
    cluster.objects[("ClusterVaultConnection", None, "default")] = connection_body(prefixes=("apps/foundling",))

    with pytest.raises(PluginError) as denied:
        await render(cluster, NS, "mix", show_values=False)  # type: ignore[arg-type]

    assert denied.value.message.startswith("PolicyDenied: the operator would not list apps/found: ")
    assert vault.calls == []  # as the operator: nothing outside the rules is listed or read


@pytest.mark.parametrize(
    ("fail", "code", "words"),
    [
        (("list", "apps/found/"), ExitCode.UNREACHABLE,
         "dataFrom prefix apps/found/: cannot reach ScaiVault through ClusterVaultConnection default: "),
        (("read", "apps/creds"), ExitCode.NOT_READY,
         "source creds (apps/creds): ClusterVaultConnection default: ScaiVault has no such secret"),
        (("read", "apps/found/stripe/api"), ExitCode.NOT_READY,
         "apps/found/stripe/api (found under apps/found/): ClusterVaultConnection default: "),
    ],
)  # fmt: skip
async def test_render_names_the_source_a_scaivault_failure_is_about(vault, fail, code, words):
    error: scaivault.ScaiVaultError = (
        scaivault.UnavailableError(f"LIST secrets with prefix {fail[1]!r}: timed out")
        if fail[0] == "list"
        else scaivault.NotFoundError(f"GET secret {fail[1]!r}: HTTP 404 not_found", status_code=404)
    )
    vault.fail[fail] = error

    with pytest.raises(PluginError) as failed:
        await render(cluster_with(SPEC), NS, "mix", show_values=False)  # type: ignore[arg-type]

    assert failed.value.code is code
    assert failed.value.message.startswith(words), failed.value.message
    assert sorted(vault.closed) == sorted(vault.opened)  # every client closed on the way out


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"sources": [{"name": "a", "path": "apps/db", "version": 1},
                      {"name": "b", "path": "apps/db", "version": 3}]},
         "InvalidSourceData: the Secret key 'host' comes from both source a (apps/db) and source b (apps/db)"),
        ({"dataFrom": [{"prefix": "apps/"}], "maxDiscovered": 2}, "TooManySecrets: spec.dataFrom finds 6 secrets"),
        ({"sources": [{"name": "a", "path": "apps/db"}], "template": {"data": {"X": "{{ sources.nope.data.x }}"}}},
         "TemplateError: spec.template.data['X']"),
        ({"sources": [{"name": "c", "path": "apps/cache", "connectionRef": {"name": "nowhere"}}]},
         "InvalidSpec: ClusterVaultConnection nowhere does not exist"),
    ],
)  # fmt: skip
async def test_render_fails_as_the_operator_would(vault, spec, words):
    with pytest.raises(PluginError) as failed:
        await render(cluster_with(spec), NS, "mix", show_values=False)  # type: ignore[arg-type]

    assert failed.value.code is ExitCode.NOT_READY
    assert failed.value.message.startswith(words), failed.value.message
    assert CANARY not in failed.value.message


def test_render_report_of_several_sources_and_its_live_comparison():
    data = {"a": b64(CANARY)}
    manifest = {"metadata": {"name": "mix", "namespace": NS,
                             "annotations": {ANNOTATION_REVISION: "r2", "scaivault.scailabs.ai/data-hash":
                                             data_hash(data)}},
                "type": "Opaque", "data": data}  # fmt: skip
    sources = [{"name": None, "path": "apps/found/x", "version": 1, "read": "found under apps/found/",
                "connection": "C/d"}]  # fmt: skip
    report = render_report(manifest, connection="C/d", live=None, show_values=False, sources=sources,
                           origins={"a": "apps/found/x"})  # fmt: skip
    assert report.text.splitlines()[0] == f"Secret {NS}/mix (type Opaque): 1 secret (1 found by dataFrom) through C/d"
    assert report.data["sources"] == sources
    assert "source" not in report.data
    assert report.data["keys"][0]["from"] == "apps/found/x"
    assert CANARY not in format_report(report, "yaml")

    live = {"metadata": {"name": "mix", "namespace": NS, "annotations": {ANNOTATION_REVISION: "r1",
            "scaivault.scailabs.ai/data-hash": data_hash(data)},
            "ownerReferences": [{"uid": UID, "controller": True, "kind": "VaultSecret", "name": "mix"}],
            "labels": {"app.kubernetes.io/managed-by": "scaivault-operator"}}, "data": data}  # fmt: skip
    same, message = live_comparison(live, manifest, owner_uid=UID, creation_policy="Owner")
    assert (same, message) == (True, "the Secret already holds this data (its revision annotation: r1, this is "
                                     "revision r2)")  # fmt: skip


async def test_refresh_of_several_sources_says_each_is_read_again():
    cluster = cluster_with(SPEC)
    report = await refresh(cluster, NS, "mix", value="2026-04-23T14:00:00.000000Z")  # type: ignore[arg-type]
    assert "the operator reads each of its secrets (sources and those dataFrom found) once" in report.text
    single = FakeCluster({("VaultSecret", NS, "one"): vaultsecret("one", spec={"path": "apps/db"})})
    report = await refresh(single, NS, "one", value="2026-04-23T14:00:00.000000Z")  # type: ignore[arg-type]
    assert "the operator reads its source once" in report.text


# -- source.connection_keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"path": "apps/db"}, [("ClusterVaultConnection", None, "default")]),
        ({"path": "apps/db", "connectionRef": {"kind": "VaultConnection", "name": "own"}},
         [("VaultConnection", NS, "own")]),
        (SPEC, [("ClusterVaultConnection", None, "default"), ("VaultConnection", NS, "own")]),
        ({"sources": [{"name": "a", "path": "x", "connectionRef": {"name": "b"}}]},
         [("ClusterVaultConnection", None, "b")]),  # spec.connectionRef's is not read through at all
        ({"sources": [{"name": "a", "path": "x", "connectionRef": {"name": "b"}}], "dataFrom": [{"prefix": "p/"}]},
         [("ClusterVaultConnection", None, "default"), ("ClusterVaultConnection", None, "b")]),
    ],
)  # fmt: skip
def test_connection_keys(spec, expected):
    assert connection_keys(VaultSecretSpec.model_validate(spec), NS) == expected


# -- why ------------------------------------------------------------------------------------------------------------


def test_vaultsecret_step_of_several_sources():
    spec = VaultSecretSpec.model_validate(SPEC)
    step = vaultsecret_step(vaultsecret(spec=SPEC, status=SYNCED_STATUS), spec, None)

    assert (step.state, step.summary) == ("ok", f"{NS}/mix: Ready (Synced), 5 secrets in the Secret")
    assert step.details == [
        ("info", "source db: apps/db, pinned to version 2"),
        ("info", "source creds: apps/creds, follows the latest version"),
        ("info", "source again: apps/creds, follows the latest version"),
        ("info", "source cache: apps/cache, follows the latest version, through VaultConnection own"),
        ("info", "dataFrom: every secret under apps/found/ tagged prod"),
        ("info", "at most 100 secrets found by dataFrom (maxDiscovered)"),
    ]
    failing = {"conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSourceData", "message": "m"}]}
    none_yet = vaultsecret_step(vaultsecret(spec=SPEC, status=failing), spec, None)
    assert none_yet.summary == f"{NS}/mix: not Ready (InvalidSourceData), nothing in the Secret yet"


def test_sources_access_step_checks_every_path():
    spec = VaultSecretSpec.model_validate({**SPEC, "dataFrom": [{"prefix": "apps/found/"}]})
    conns = {("ClusterVaultConnection", None, "default"): connection(),
             ("VaultConnection", NS, "own"): connection("VaultConnection", "own")}  # fmt: skip

    step = sources_access_step(spec, conns, NS, {"team": "shop"}, None, SYNCED_STATUS)

    assert (step.state, step.summary) == ("ok", "every path checked may be read (5)")
    lines = [line for _, line in step.details]
    assert lines[0] == ("source db: ClusterVaultConnection default allows namespace shop to read 'apps/db' "
                        "(prefix 'apps/')")  # fmt: skip
    assert lines[3] == "source cache: VaultConnection own has no access rules: every path may be read in namespace shop"
    assert lines[4] == "dataFrom apps/found/: every secret under it may be read (rule #1 of spec.access)"
    assert lines[5].startswith("apps/found/stripe/api (found by dataFrom at the last sync): ")

    # As the operator: a prefix the rules allow only in part ('apps' also lists 'appsec/') is not listed at all.
    wide = VaultSecretSpec.model_validate({**SPEC, "dataFrom": [{"prefix": "apps"}]})
    refused = sources_access_step(wide, conns, NS, {"team": "shop"}, None, SYNCED_STATUS)
    assert refused.state == "fail"
    assert ("fail", "dataFrom apps: not listed — ClusterVaultConnection default does not allow namespace shop to "
            "read 'apps': this namespace may read only paths starting with 'apps/'; change spec.dataFrom or the "
            "connection's spec.access") in refused.details  # fmt: skip

    narrow = {**conns, ("ClusterVaultConnection", None, "default"): connection(prefixes=("apps/db",))}
    denied = sources_access_step(spec, narrow, NS, {}, None, SYNCED_STATUS)
    assert denied.state == "fail"
    assert denied.summary.startswith("ClusterVaultConnection default does not allow namespace shop to read "
                                     "'apps/creds'")  # fmt: skip
    # creds, again, the prefix and the found secret
    assert [state for state, _ in denied.details].count("fail") == 4

    unreadable = sources_access_step(spec, {}, NS, None, "forbidden", SYNCED_STATUS)
    assert unreadable.state == "unknown"
    assert unreadable.summary.startswith("0 path(s) may be read; ")


def test_sources_access_step_lists_few_found_secrets_one_by_one():
    held = {(None, f"apps/found/s{i:02}"): 1 for i in range(13)}
    spec = VaultSecretSpec.model_validate({"dataFrom": [{"prefix": "apps/found/"}]})
    step = sources_access_step(spec, {("ClusterVaultConnection", None, "default"): connection()}, NS, {}, None,
                               {"sources": composite.status_sources(held)})  # fmt: skip
    assert step.summary == "every path checked may be read (13)"
    assert sum(1 for _, line in step.details if "(found by dataFrom at the last sync)" in line) == 10
    assert step.details[-1] == ("ok", "3 more secret(s) found by dataFrom at the last sync may be read")


def test_scaivault_step_of_several_sources():
    step = scaivault_step(SYNCED_STATUS, [connection(), connection("VaultConnection", "own")])
    assert (step.state, step.summary) == ("ok", "last sync read 5 secrets (written 2026-04-23T14:00:00Z)")
    assert step.details == [
        ("info", "source again: apps/creds version 5"),
        ("info", "source cache: apps/cache version 1"),
        ("info", "source creds: apps/creds version 5"),
        ("info", "source db: apps/db version 2"),
        ("info", "apps/found/stripe/api version 3 (found by dataFrom)"),
    ]
    broken = connection("VaultConnection", "own", status={"breaker": {"state": "Open", "retryAt": "T"}})
    failing = {**SYNCED_STATUS, "conditions": [{"type": "Ready", "status": "False", "reason": "BackendUnavailable",
                                                "message": "down"}]}  # fmt: skip
    held = scaivault_step(failing, [connection(), broken])
    assert held.state == "fail"
    assert held.details == [
        ("fail", "next request not before T: VaultConnection shop/own's breaker is open"),
        ("info", "the Secret still holds the 5 secret(s) of the last successful sync"),
    ]
    too_many = {"conditions": [{"type": "Ready", "status": "False", "reason": "TooManySecrets", "message": "m"}]}
    assert scaivault_step(too_many, []).summary == "answered; the sync stopped after it (TooManySecrets)"


def composite_secret(revision: str | None, *, path: str | None = None) -> dict[str, Any]:
    data = {"host": b64("db2")}
    annotations = {"scaivault.scailabs.ai/data-hash": data_hash(data)}
    if revision is not None:
        annotations[ANNOTATION_REVISION] = revision
    if path is not None:
        annotations["scaivault.scailabs.ai/path"] = path
    return {"metadata": {"name": "mix", "namespace": NS, "annotations": annotations,
                         "labels": {"app.kubernetes.io/managed-by": "scaivault-operator"},
                         "ownerReferences": [{"uid": UID, "controller": True, "kind": "VaultSecret", "name": "mix"}]},
            "type": "Opaque", "data": data}  # fmt: skip


@pytest.mark.parametrize(
    ("secret", "sources", "state", "line"),
    [
        (composite_secret(composite.revision(HELD)), HELD, "ok",
         f"revision annotation {composite.revision(HELD)}, status.sources 5 secret(s), revision "
         f"{composite.revision(HELD)}"),
        (composite_secret("0123"), HELD, "fail", "revision annotation 0123, status.sources 5 secret(s)"),
        (composite_secret(None), None, "fail", "revision annotation missing, status.sources unset"),
        (composite_secret(composite.revision(HELD), path="apps/db"), HELD, "fail",
         "holds path apps/db alone, the spec has several sources (the next sync rewrites it)"),
    ],
)  # fmt: skip
def test_target_step_of_several_sources(secret, sources, state, line):
    step = target_step(secret, namespace=NS, name="mix", vaultsecret_uid=UID, synced_version=None, path=None,
                       error=None, sources=sources, several=True)  # fmt: skip
    assert step.state == state
    assert any(line in text for _, text in step.details), step.details
    assert all("version annotation" not in text for _, text in step.details)


# -- status and versions --------------------------------------------------------------------------------------------


def test_status_shows_each_sources_version_where_a_single_path_shows_its_version():
    failing = {**SYNCED_STATUS, "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSourceData",
                                                "message": "the Secret key 'host' comes from both"}]}  # fmt: skip
    summary = vaultsecret_summary(vaultsecret(spec=SPEC, status=failing))
    assert summary["syncedVersion"] is None
    assert summary["sourceCount"] == 5
    assert summary["sources"] == composite.status_sources(HELD)
    assert held_versions(summary) == "again@5, cache@1, creds@5, db@2, apps/found/stripe/api@3"
    assert held_versions({"syncedVersion": 3}) == "3"
    assert held_versions({"syncedVersion": None, "sources": None, "sourceCount": 1}) == "1 secret"
    assert held_versions({"syncedVersion": None, "sources": None, "sourceCount": None}) is None

    report = status_report([vaultsecret(spec=SPEC, status=failing)], [], scope=f"namespace {NS}")
    row = next(line for line in report.text.splitlines() if line.startswith(f"{NS} "))
    assert "again@5, cache@1, creds@5, db@2, apps/f…" in row


def test_versions_shows_a_row_per_source_that_reads_the_path():
    conn = connection()
    bodies = [
        vaultsecret("single", spec={"path": "apps/creds"}, status={"syncedVersion": 5}),
        vaultsecret("mix", spec=SPEC, status=SYNCED_STATUS),
        vaultsecret(
            "elsewhere", spec={"sources": [{"name": "c", "path": "apps/creds", "connectionRef": {"name": "other"}}]}
        ),
    ]
    users = users_of(bodies, conn, "apps/creds")
    assert [(u["name"], u["source"], u["syncedVersion"]) for u in users] == [
        ("mix", "source again", 5), ("mix", "source creds", 5), ("single", None, 5)]  # fmt: skip

    current = SecretSummary(path="apps/found/new", version=2, tags=("prod",))
    found = users_of(bodies, conn, "apps/found/new", current)
    assert [(u["name"], u["source"], u["syncedVersion"]) for u in found] == [("mix", "dataFrom apps/found/", None)]
    untagged = SecretSummary(path="apps/found/new", version=2, tags=("dev",))
    assert users_of(bodies, conn, "apps/found/new", untagged) == []
    held = users_of(bodies, conn, "apps/found/stripe/api", None)  # gone from ScaiVault, still in the Secret
    assert [(u["source"], u["syncedVersion"]) for u in held] == [("dataFrom apps/found/", 3)]
    assert users_of(bodies, connection("VaultConnection", "own"), "apps/cache")[0]["source"] == "source cache"

    report = versions_report("apps/creds", conn, SecretSummary(path="apps/creds", version=6), users,
                             scope="all namespaces")  # fmt: skip
    lines = report.text.splitlines()
    assert lines[3].split() == ["NAMESPACE", "NAME", "SOURCE", "PINNED", "SYNCED", "READY", "STATE"]
    assert lines[4].split() == [NS, "mix", "source", "again", "-", "5", "True", "behind", "(current", "is", "6)"]
    assert report.data["byVersion"] == {"5": [f"{NS}/mix (source again)", f"{NS}/mix (source creds)", f"{NS}/single"]}
    single_only = versions_report("apps/creds", conn, None, users[2:], scope="all namespaces")
    assert "SOURCE" not in single_only.text
