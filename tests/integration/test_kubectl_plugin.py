"""``kubectl scaivault`` against the real operator (in-process), the emulated API server and the local ScaiVault, all
over real HTTP. The plugin reaches the emulator through a kubeconfig written in ``tmp_path`` and runs in a thread
(its own event loop, as the console script has), so the operator and the emulator keep serving meanwhile.

The emulator does not serve Deployments, StatefulSets, DaemonSets or SelfSubjectAccessReviews by itself: the
fixtures here declare the first three (stored objects, listed by namespace) and answer the reviews with what the test
says. Forbidden calls are the emulator's injected 403s (``KubeFault``); the canary test plants a value and a token
and checks that no command prints either without ``--show-values``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import shutil
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from operator_helpers import (
    CONN,
    OP_NS,
    TOKEN_SECRET,
    access_rule,
    cluster_connection,
    credentials_secret,
    opaque_secret,
    vault_connection,
    vaultsecret,
    wait_until,
)

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._logic.manifests import ANNOTATION_REFRESH
from scaivault_operator._plugin.main import main
from scaivault_operator.testing import EmulatedCluster, KubeFault

NS = "team-a"
CANARY_VALUE = "canary-value-4f9d2b7e"
CANARY_TOKEN = "canary-token-8e3c1a55"
APPS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}
REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@pytest.fixture
def dev_vault(start_dev_vault, make_dev_vault_config):
    """The usual dev vault, plus a read-only token for the canary connection."""
    tokens = {**make_dev_vault_config().tokens, CANARY_TOKEN: {"secrets:read"}}
    return start_dev_vault(tokens=tokens)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Plugin = Callable[..., Awaitable[Result]]


def write_kubeconfig(path: Path, server: str, namespace: str = NS) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulated", "cluster": {"server": server}}],
                "users": [{"name": "me", "user": {}}],
                "contexts": [
                    {"name": "emulated", "context": {"cluster": "emulated", "user": "me", "namespace": namespace}}
                ],
                "current-context": "emulated",
            }
        )
    )
    return path


@pytest.fixture
def kubeconfig(tmp_path, emulator: EmulatedCluster) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", emulator.url)


@pytest.fixture
def plugin(kubeconfig) -> Plugin:
    """``await plugin("why", "team-a/app")`` runs the plugin in a thread with the test's kubeconfig."""

    async def run(*argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        args = [*argv, "--kubeconfig", str(kubeconfig)]
        code = await asyncio.to_thread(main, args, stdout=out, stderr=err, environ={})
        return Result(code, out.getvalue(), err.getvalue())

    return run


@dataclass
class Apps:
    """Deployments, StatefulSets and DaemonSets in the emulator."""

    cluster: EmulatedCluster

    async def create(self, kind: str, name: str, pod_spec: dict[str, Any], namespace: str = NS) -> None:
        body = {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
            },
        }
        response = await self.cluster.http.post(f"/apis/apps/v1/namespaces/{namespace}/{APPS[kind]}", json=body)
        response.raise_for_status()


@pytest.fixture
def apps(emulator: EmulatedCluster) -> Apps:
    for kind, plural in APPS.items():
        emulator.emulator.resources[f"apps/v1/{plural}"] = kmock.ResourceInfo(
            kind=kind, namespaced=True, verbs={"list", "get", "create"}
        )
    return Apps(emulator)


@dataclass
class AccessReviews:
    """What the emulated API server answers to SelfSubjectAccessReviews, and the reviews it got."""

    allowed: bool = True
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def access_reviews(emulator: EmulatedCluster) -> AccessReviews:
    reviews = AccessReviews()
    objects = emulator.emulator.objects

    def answer(request: Any) -> dict[str, Any]:
        # The emulator stores whatever is created; a review is a question: forget it, or the next one is a 409.
        del objects["authorization.k8s.io/v1/selfsubjectaccessreviews", None, None]
        reviews.seen.append(request.data)
        return {**request.data, "status": {"allowed": reviews.allowed}}

    emulator.emulator[f"post {REVIEWS}"] << answer
    return reviews


async def synced(cluster, name: str, path: str, data: dict[str, Any], **kwargs: Any) -> None:
    version = cluster.vault.write(path, data).version
    await cluster.create(vaultsecret(name, path, **kwargs))
    await cluster.wait_synced(NS, name, kwargs.get("version") or version)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- status ---------------------------------------------------------------------------------------------------------


async def test_status_groups_vaultsecrets_by_reason_and_shows_the_connections(cluster, plugin, dev_vault):
    await synced(cluster, "app", "apps/status/db", {"password": "pw"})
    await cluster.create(vaultsecret("gone", "missing/status/x"))
    await cluster.create(vault_connection("own", NS, dev_vault.url, token_secret="no-such-secret"))
    await cluster.create(vaultsecret("own", "apps/status/db", connection="own", connection_kind="VaultConnection"))
    await cluster.wait_reason(NS, "gone", "SourceNotFound")
    await cluster.wait_reason(NS, "own", "InvalidSpec")

    result = await plugin("status", "-o", "json")

    assert result.code == 1, result.err
    data = result.json()
    assert data["scope"] == f"namespace {NS}"
    assert data["vaultSecrets"]["byReason"] == {"Synced": 1, "InvalidSpec": 1, "SourceNotFound": 1}
    not_ready = {v["name"]: v for v in data["vaultSecrets"]["notReady"]}
    assert set(not_ready) == {"gone", "own"}
    assert not_ready["gone"]["syncedVersion"] is None
    assert "no such secret" in not_ready["gone"]["message"]
    assert "no-such-secret" in not_ready["own"]["message"]
    connections = {(c["kind"], c["name"]): c for c in data["connections"]}
    assert set(connections) == {("ClusterVaultConnection", "default"), ("VaultConnection", "own")}
    assert connections[("VaultConnection", "own")]["namespace"] == NS

    table = await plugin("status")
    assert table.code == 1
    lines = table.out.splitlines()
    assert lines[0] == f"VaultSecrets in namespace {NS}: 3, 1 Ready"
    assert any(line.split()[:3] == [NS, "gone", "SourceNotFound"] for line in lines)
    assert any(line.startswith("ClusterVaultConnection") and " default " in line for line in lines)

    yaml_out = await plugin("status", "-A", "-o", "yaml")
    assert yaml.safe_load(yaml_out.out)["scope"] == "all namespaces"


async def test_status_exits_0_when_everything_is_ready(cluster, plugin):
    await synced(cluster, "app", "apps/ok/db", {"password": "pw"})

    result = await plugin("status", "-o", "json")

    assert result.code == 0, result.out
    assert result.json()["vaultSecrets"] == {"total": 1, "ready": 1, "byReason": {"Synced": 1}, "notReady": []}


async def test_status_reports_an_open_breaker_with_its_retry_time(cluster, plugin):
    await synced(cluster, "app", "apps/outage/db", {"password": "pw"})
    cluster.vault.faults.error_rate = 1.0  # every request: 503
    try:

        async def opened() -> dict[str, Any] | None:
            conn = await cluster.cluster.get("ClusterVaultConnection", None, "default")
            breaker = ((conn or {}).get("status") or {}).get("breaker") or {}
            return breaker if breaker.get("state") == "Open" else None

        breaker = await wait_until(opened, 15, what="the breaker opens")
        result = await plugin("status", "-o", "json")
    finally:
        cluster.vault.reset_faults()

    assert result.code == 1
    [conn] = result.json()["connections"]
    assert conn["breaker"] == {"state": "Open", "reason": "BackendUnavailable", "retryAt": breaker["retryAt"]}
    assert conn["ready"] == "False"


async def test_status_a_forbidden_list_exits_4(cluster, plugin):
    cluster.cluster.inject(
        KubeFault("answer", path=r"/vaultsecrets$", method="GET", watch=False, status=403, times=None)
    )
    result = await plugin("status")

    assert (result.code, result.out) == (4, "")
    assert result.err.startswith(f"error: list VaultSecrets in {NS}: forbidden (HTTP 403")


async def test_status_with_connections_not_listable_is_a_note(cluster, plugin):
    cluster.cluster.inject(
        KubeFault("answer", path=r"/clustervaultconnections$", method="GET", watch=False, status=403, times=None)
    )
    result = await plugin("status")

    assert result.code == 0
    assert "note: list ClusterVaultConnections: forbidden (HTTP 403" in result.err
    json_result = await plugin("status", "-o", "json")
    assert json_result.json()["notes"][0].endswith("ClusterVaultConnections are not shown")


# -- why ------------------------------------------------------------------------------------------------------------


async def test_why_walks_the_chain_of_a_synced_vaultsecret_to_its_workloads(cluster, plugin, apps):
    await synced(cluster, "payments", "apps/why/payments", {"api_key": "k", "endpoint": "e"})
    await apps.create(
        "Deployment",
        "web",
        {
            "containers": [
                {
                    "name": "app",
                    "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "payments", "key": "api_key"}}}],
                    "volumeMounts": [{"name": "p", "mountPath": "/etc/p"}],
                }
            ],
            "volumes": [{"name": "p", "secret": {"secretName": "payments"}}],
        },
    )
    await apps.create(
        "StatefulSet",
        "files",
        {
            "containers": [{"name": "db", "volumeMounts": [{"name": "all", "mountPath": "/etc/all"}]}],
            "volumes": [{"name": "all", "projected": {"sources": [{"secret": {"name": "payments"}}]}}],
        },
    )
    await apps.create("DaemonSet", "agent", {"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "x"}}]}]})
    await apps.create(
        "Deployment",
        "elsewhere",
        {"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "payments"}}]}]},
        namespace="team-b",
    )

    result = await plugin("why", f"{NS}/payments")

    assert result.code == 0, result.out
    lines = result.out.splitlines()
    heads = [line for line in lines if not line.startswith(" ")]
    assert [h.split(":")[0] for h in heads] == [
        "✓ VaultSecret",
        "✓ Connection",
        "✓ Connection health",
        "✓ Access rules",
        "✓ ScaiVault",
        "✓ Target Secret",
        "• Workloads",
    ]
    assert heads[0] == f"✓ VaultSecret: {NS}/payments: Ready (Synced), version 1 in the Secret"
    assert "allows namespace team-a to read 'apps/why/payments' (prefix 'apps/')" in heads[3]
    assert "    ✓ rule #1 of spec.access (a namespaceSelector) matches" in lines
    assert "    ✓ controlled by this VaultSecret" in lines
    assert "    ✓ data matches its data-hash annotation" in lines
    assert heads[6] == "• Workloads: 2 workload(s) use Secret payments"
    assert ("    • Deployment/web: env API_KEY <- key api_key (container app); volume p: /etc/p in app") in lines
    assert "    • StatefulSet/files: projected volume all: /etc/all in db" in lines
    assert (
        f"    •   its pods see a new version only after a restart: kubectl -n {NS} rollout restart deployment/web"
        in lines
    )
    assert not any("agent" in line or "elsewhere" in line for line in lines)

    data = (await plugin("why", "payments", "-o", "json")).json()
    assert [s["state"] for s in data["steps"]] == ["ok", "ok", "ok", "ok", "ok", "ok", "info"]
    assert [(w["kind"], w["name"], w["needsRestart"]) for w in data["workloads"]] == [
        ("Deployment", "web", True),
        ("StatefulSet", "files", False),
    ]


async def test_why_source_not_found_points_at_scaivault_and_the_missing_secret(cluster, plugin, apps):
    await cluster.create(vaultsecret("lost", "missing/why/x"))
    await cluster.wait_reason(NS, "lost", "SourceNotFound")

    result = await plugin("why", "lost", "-n", NS, "-o", "json")

    assert result.code == 1
    steps = {s["step"]: s for s in result.json()["steps"]}
    assert steps["VaultSecret"]["state"] == "fail"
    assert steps["ScaiVault"]["state"] == "fail"
    assert steps["ScaiVault"]["summary"].startswith("last answer: SourceNotFound — ScaiVault has no such secret")
    assert steps["ScaiVault"]["details"][0]["text"].startswith("next request: retried slowly")
    assert (steps["Target Secret"]["state"], steps["Target Secret"]["summary"]) == ("fail", f"{NS}/lost does not exist")
    assert steps["Workloads"]["state"] == "info"


async def test_why_policy_denied_names_the_rule_problem(cluster, plugin, dev_vault, apps):
    await cluster.create(cluster_connection("narrow", dev_vault.url, access=[access_rule(["apps/"], ["team-z"])]))
    await cluster.create(vaultsecret("denied", "apps/why/denied", connection="narrow"))
    await cluster.wait_reason(NS, "denied", "PolicyDenied")

    result = await plugin("why", f"{NS}/denied", "-o", "json")

    assert result.code == 1
    steps = {s["step"]: s for s in result.json()["steps"]}
    assert steps["Access rules"]["state"] == "fail"
    assert "no access rule of the connection applies to namespace team-a" in steps["Access rules"]["summary"]
    assert steps["ScaiVault"]["state"] == "unknown"
    assert steps["ScaiVault"]["summary"] == "not asked: the sync stops before ScaiVault (PolicyDenied)"


async def test_why_a_missing_connection_and_an_unreadable_secret(cluster, plugin, apps):
    await cluster.create(vaultsecret("orphan", "apps/why/orphan", connection="nowhere"))
    await cluster.wait_reason(NS, "orphan", "InvalidSpec")
    cluster.cluster.inject(
        KubeFault("answer", path=rf"/namespaces/{NS}/secrets/orphan$", method="GET", status=403, times=None)
    )

    result = await plugin("why", f"{NS}/orphan", "-o", "json")

    assert result.code == 1
    steps = {s["step"]: s for s in result.json()["steps"]}
    assert (steps["Connection"]["state"], steps["Connection"]["summary"]) == (
        "fail",
        "ClusterVaultConnection nowhere does not exist",
    )
    assert "Connection health" not in steps
    assert "Access rules" not in steps
    assert steps["Target Secret"]["state"] == "unknown"
    assert "forbidden (HTTP 403" in steps["Target Secret"]["details"][0]["text"]


async def test_why_a_vaultsecret_that_does_not_exist_exits_1(cluster, plugin, apps):
    result = await plugin("why", f"{NS}/nothing")

    assert result.code == 1
    assert result.out.splitlines()[0] == f"✗ VaultSecret: {NS}/nothing does not exist"


# -- versions -------------------------------------------------------------------------------------------------------


async def test_versions_shows_the_current_version_and_who_holds_which(cluster, plugin, dev_vault):
    await synced(cluster, "follow", "apps/v/db", {"password": "one"})
    cluster.vault.write("apps/v/db", {"password": "two"})
    await cluster.wait_synced(NS, "follow", 2)
    await cluster.create(vaultsecret("pinned", "apps/v/db", version=1))
    await cluster.wait_synced(NS, "pinned", 1)
    await cluster.create(vaultsecret("other", "apps/v/db", namespace="team-b"))
    await cluster.wait_synced("team-b", "other", 2)
    cluster.vault.write("apps/v/dbx", {"password": "prefix sibling"})
    reads = cluster.vault.stats.count("read")

    result = await plugin("versions", "apps/v/db", "--connection", "default", "-o", "json")

    assert result.code == 0, result.err
    data = result.json()
    assert data["current"]["version"] == 2
    assert data["versions"] == {"first": 1, "last": 2}
    assert data["scope"] == "all namespaces"
    assert [(u["namespace"], u["name"], u["state"]) for u in data["usedBy"]] == [
        (NS, "follow", "current"),
        (NS, "pinned", "pinned to 1"),
        ("team-b", "other", "current"),
    ]
    assert data["byVersion"] == {"2": [f"{NS}/follow", "team-b/other"], "1": [f"{NS}/pinned"]}
    assert cluster.vault.stats.count("read") == reads  # a list, no GET: no secret data crossed the wire

    table = await plugin("versions", "apps/v/db", "--connection", "ClusterVaultConnection/default", "-n", NS)
    assert table.code == 0
    assert table.out.startswith("apps/v/db through ClusterVaultConnection default: version 2 is current")
    assert f"VaultSecrets using it (namespace {NS}):" in table.out
    assert "team-b" not in table.out

    missing = await plugin("versions", "apps/v/nothing", "--connection", "cvc/default")
    assert missing.code == 1
    assert missing.out.startswith("ScaiVault has no secret at apps/v/nothing")


async def test_versions_through_a_vault_connection(cluster, plugin, dev_vault):
    await cluster.create(credentials_secret("own-token", NS, {"token": dev_vault.ro_token}))
    await cluster.create(vault_connection("own", NS, dev_vault.url, token_secret="own-token"))
    await synced(cluster, "mine", "apps/vc/db", {"a": "1"}, connection="own", connection_kind="VaultConnection")

    result = await plugin("versions", "apps/vc/db", "--connection", "vconn/own", "-o", "json")

    assert result.code == 0, result.err
    assert result.json()["connection"] == f"VaultConnection/{NS}/own"
    assert [u["name"] for u in result.json()["usedBy"]] == ["mine"]


async def test_versions_without_the_right_to_read_the_token_exits_4_and_sends_nothing(cluster, plugin):
    cluster.vault.write("apps/f/db", {"a": "1"})
    await cluster.stop_operator()  # so that every ScaiVault request counted below would be the plugin's
    requests = cluster.vault.stats.snapshot().requests
    cluster.cluster.inject(
        KubeFault("answer", path=rf"/namespaces/{OP_NS}/secrets/{TOKEN_SECRET}$", method="GET", status=403, times=None)
    )

    result = await plugin("versions", "apps/f/db", "--connection", "default")

    assert (result.code, result.out) == (4, "")
    assert result.err.startswith(
        f"error: you may not read Secret {OP_NS}/{TOKEN_SECRET}, which holds the "
        "credentials of ClusterVaultConnection default"
    )
    assert f"kubectl auth can-i get secret/{TOKEN_SECRET} -n {OP_NS}" in result.err
    assert cluster.vault.stats.snapshot().requests == requests  # nothing was sent


async def test_versions_refuses_credentials_that_did_not_opt_in(cluster, plugin, dev_vault):
    await cluster.create(opaque_secret("plain", OP_NS, {"token": dev_vault.ro_token}))
    await cluster.create(cluster_connection("unlabelled", dev_vault.url, token_secret="plain"))

    result = await plugin("versions", "apps/x", "--connection", "unlabelled")

    assert result.code == 1
    assert "is not labelled scaivault.scailabs.ai/credentials=true" in result.err
    assert dev_vault.ro_token not in result.err


async def test_versions_scaivault_unreachable_exits_3(cluster, plugin):
    await cluster.create(cluster_connection("dead", f"http://127.0.0.1:{free_port()}"))

    result = await plugin("versions", "apps/x", "--connection", "dead")

    assert (result.code, result.out) == (3, "")
    assert result.err.startswith("error: cannot reach ScaiVault through ClusterVaultConnection dead")


async def test_versions_a_missing_connection_exits_1(cluster, plugin):
    result = await plugin("versions", "apps/x", "--connection", "nope")
    assert (result.code, result.err) == (1, "error: ClusterVaultConnection nope does not exist\n")


# -- refresh --------------------------------------------------------------------------------------------------------


async def test_refresh_sets_a_new_annotation_value_each_time(cluster, plugin):
    await synced(cluster, "app", "apps/r/db", {"a": "1"})

    first = await plugin("refresh", f"{NS}/app", "-o", "json")
    second = await plugin("refresh", "app")

    assert first.code == second.code == 0
    value = first.json()["value"]
    assert first.json()["annotation"] == ANNOTATION_REFRESH
    assert value.endswith("Z")
    assert "T" in value
    assert second.out.startswith(f"VaultSecret {NS}/app: re-read requested ({ANNOTATION_REFRESH}=")
    body = await cluster.vs(NS, "app")
    stored = body["metadata"]["annotations"][ANNOTATION_REFRESH]
    assert stored != value
    assert stored in second.out
    assert body["metadata"]["generation"] == 1  # metadata only: no spec change

    missing = await plugin("refresh", f"{NS}/nope")
    assert (missing.code, missing.err) == (1, f"error: VaultSecret {NS}/nope does not exist\n")


# -- render ---------------------------------------------------------------------------------------------------------


async def test_render_prints_keys_sizes_and_hashes_without_values(cluster, plugin, access_reviews):
    await synced(
        cluster,
        "shaped",
        "apps/rd/db",
        {"user": "app", "password": "pw-123", "port": 5432},
        keys=[{"from": "password", "to": "DB_PASSWORD"}, {"from": "port"}],
        target={"name": "db-env", "labels": {"team": "a"}, "annotations": {"owner": "me"}},
    )

    result = await plugin("render", f"{NS}/shaped", "-o", "json")

    assert result.code == 0, result.err
    data = result.json()
    assert data["secret"]["name"] == "db-env"
    assert data["secret"]["type"] == "Opaque"
    assert data["secret"]["labels"] == {
        "team": "a",
        "app.kubernetes.io/managed-by": "scaivault-operator",
        "scaivault.scailabs.ai/vaultsecret": "shaped",
    }
    assert data["secret"]["annotations"]["owner"] == "me"
    assert data["secret"]["annotations"]["scaivault.scailabs.ai/version"] == "1"
    assert data["source"] == {"path": "apps/rd/db", "version": 1, "connection": "ClusterVaultConnection/default"}
    assert [(k["key"], k["size"], len(k["sha256"])) for k in data["keys"]] == [("DB_PASSWORD", 6, 12), ("port", 4, 12)]
    assert all("value" not in k for k in data["keys"])
    assert data["live"]["same"] is True
    assert access_reviews.seen == []  # no --show-values: no question asked

    table = await plugin("render", "shaped")
    assert "pw-123" not in table.out
    assert "Live: the Secret already holds this data" in table.out


async def test_render_shows_a_templates_keys_masked_and_where_each_comes_from(cluster, plugin, access_reviews):
    url = "postgres://{{ data.user }}:{{ data.password }}@db/main"
    template = {"mergePolicy": "Merge", "data": {"DATABASE_URL": url}, "literals": {"MODE": "ro"},
                "type": "example.com/db", "labels": {"app": "web"}}  # fmt: skip
    cluster.vault.write("apps/rt/db", {"user": "app", "password": "pw-tpl-123"})
    body = vaultsecret("templated", "apps/rt/db")
    body["spec"]["template"] = template
    await cluster.create(body)
    await cluster.wait_synced(NS, "templated", 1)

    result = await plugin("render", f"{NS}/templated", "-o", "json")

    assert result.code == 0, result.err
    data = result.json()
    rendered = "postgres://app:pw-tpl-123@db/main"
    assert data["secret"]["type"] == "example.com/db"
    assert data["secret"]["labels"]["app"] == "web"
    assert data["template"] == {
        "mergePolicy": "Merge",
        "keys": {"DATABASE_URL": "template", "MODE": "literal", "password": "source", "user": "source"},
    }
    rows = {k["key"]: k for k in data["keys"]}
    assert rows["DATABASE_URL"]["size"] == len(rendered)
    assert rows["DATABASE_URL"]["sha256"] == hashlib.sha256(rendered.encode()).hexdigest()[:12]
    assert all("value" not in k for k in data["keys"])
    assert data["live"]["same"] is True  # the operator rendered the same
    table = await plugin("render", f"{NS}/templated")
    assert "pw-tpl-123" not in table.out
    assert "Template: mergePolicy Merge" in table.out
    assert "DATABASE_URL" in table.out
    assert "template" in table.out

    await cluster.cluster.patch("VaultSecret", NS, "templated", {"spec": {"template": {"data": {
        "DATABASE_URL": "{{ data.password ~ data.nope }}"}}}})  # fmt: skip
    failed = await plugin("render", f"{NS}/templated")
    assert failed.code == 1
    assert failed.err.startswith(
        "error: TemplateError: spec.template.data['DATABASE_URL'], line 1: data has no key 'nope' (its keys: "
    )
    assert "pw-tpl-123" not in failed.err + failed.out


async def test_render_shows_values_only_to_who_may_read_the_secret(cluster, plugin, access_reviews):
    await synced(cluster, "app", "apps/rv/db", {"password": "shown-when-allowed"})
    reads = cluster.vault.stats.count("read")

    access_reviews.allowed = False
    denied = await plugin("render", f"{NS}/app", "--show-values")

    assert (denied.code, denied.out) == (4, "")
    assert "the API server does not confirm that you may read Secret team-a/app" in denied.err
    assert cluster.vault.stats.count("read") == reads  # refused before anything was fetched
    assert access_reviews.seen[-1]["spec"]["resourceAttributes"] == {
        "verb": "get",
        "resource": "secrets",
        "namespace": NS,
        "name": "app",
        "group": "",
    }

    access_reviews.allowed = True
    allowed = await plugin("render", f"{NS}/app", "--show-values")
    assert allowed.code == 0
    assert "  password: shown-when-allowed" in allowed.out
    as_json = await plugin("render", f"{NS}/app", "--show-values", "-o", "json")
    assert as_json.json()["keys"][0]["value"] == "shown-when-allowed"


async def test_render_of_a_policy_denied_vaultsecret_reads_nothing(cluster, plugin, dev_vault):
    await cluster.create(cluster_connection("narrow", dev_vault.url, access=[access_rule(["other/"])]))
    await cluster.create(vaultsecret("denied", "apps/rp/db", connection="narrow"))
    reads = cluster.vault.stats.count("read")

    result = await plugin("render", f"{NS}/denied")

    assert result.code == 1
    assert result.err.startswith(
        "error: PolicyDenied: the operator would not read it: ClusterVaultConnection narrow "
        "does not allow namespace team-a to read 'apps/rp/db'"
    )
    assert cluster.vault.stats.count("read") == reads


async def test_render_of_data_that_cannot_become_a_secret(cluster, plugin):
    cluster.vault.write("apps/rb/db", {"bad key!": "x"})
    await cluster.create(vaultsecret("bad", "apps/rb/db"))

    result = await plugin("render", f"{NS}/bad")

    assert result.code == 1
    assert result.err.startswith("error: InvalidSourceData: key 'bad key!' of the ScaiVault secret's data")


# -- several sources (spec.sources, spec.dataFrom) -------------------------------------------------------------------


def composite(name: str, *, namespace: str = NS, **spec: Any) -> dict[str, Any]:
    """A VaultSecret with ``spec.sources`` and/or ``spec.dataFrom`` (as test_operator_sources.py builds them)."""
    return {"apiVersion": API_VERSION, "kind": "VaultSecret", "metadata": {"name": name, "namespace": namespace},
            "spec": {"connectionRef": {"name": CONN}, **spec}}  # fmt: skip


async def composite_synced(cluster, dev_vault, name: str = "mix") -> dict[str, Any]:
    """A VaultSecret of three named sources — one pinned, one through a second connection — and a dataFrom prefix
    with tags, synced; a value of one source is ``CANARY_VALUE``. Its Secret."""
    await cluster.create(cluster_connection("second", dev_vault.url))
    cluster.vault.write("apps/mix/db", {"host": "db.local"})
    cluster.vault.write("apps/mix/db", {"host": "db2.local"})  # version 2; the source is pinned to 1
    cluster.vault.write("apps/mix/creds", {"user": "app", "password": CANARY_VALUE})
    cluster.vault.write("apps/mix/cache", {"REDIS": "redis.local"})
    cluster.vault.write("apps/mix/found/stripe/api", {"token": "tok-1"}, metadata={"tags": ["prod", "eu"]})
    cluster.vault.write("apps/mix/found/test", {"token": "test-1"}, metadata={"tags": ["dev"]})
    await cluster.create(composite(
        name,
        sources=[{"name": "db", "path": "apps/mix/db", "version": 1},
                 {"name": "creds", "path": "apps/mix/creds", "keys": [{"from": "password", "to": "DB_PASSWORD"}]},
                 {"name": "cache", "path": "apps/mix/cache", "connectionRef": {"name": "second"}}],
        dataFrom=[{"prefix": "apps/mix/found/", "tags": ["prod"]}],
    ))  # fmt: skip
    await cluster.wait_reason(NS, name, "Synced", status="True")
    secret = await cluster.secret(NS, name)
    assert secret is not None
    return secret


async def test_render_of_several_sources_as_the_operator_builds_it(cluster, plugin, dev_vault, access_reviews):
    secret = await composite_synced(cluster, dev_vault)
    await cluster.stop_operator()  # so that every ScaiVault request counted below is the plugin's
    before = cluster.vault.stats.snapshot()

    result = await plugin("render", f"{NS}/mix", "-o", "json")

    assert result.code == 0, result.err
    data = result.json()
    assert "source" not in data
    assert data["sources"] == [
        {"name": "cache", "path": "apps/mix/cache", "version": 1, "read": "latest",
         "connection": "ClusterVaultConnection/second"},
        {"name": "creds", "path": "apps/mix/creds", "version": 1, "read": "latest",
         "connection": "ClusterVaultConnection/default"},
        {"name": "db", "path": "apps/mix/db", "version": 1, "read": "pinned to 1",
         "connection": "ClusterVaultConnection/default"},
        {"name": None, "path": "apps/mix/found/stripe/api", "version": 1, "read": "found under apps/mix/found/",
         "connection": "ClusterVaultConnection/default"},
    ]  # fmt: skip
    assert {k["key"]: k["from"] for k in data["keys"]} == {
        "DB_PASSWORD": "source creds",
        "REDIS": "source cache",
        "host": "source db",
        "stripe_api_token": "apps/mix/found/stripe/api",
    }
    rows = {k["key"]: k for k in data["keys"]}
    assert rows["host"]["sha256"] == hashlib.sha256(b"db.local").hexdigest()[:12]  # version 1, the pin
    assert all("value" not in k for k in data["keys"])
    annotations = data["secret"]["annotations"]
    live = secret["metadata"]["annotations"]
    for key in ("scaivault.scailabs.ai/sources", "scaivault.scailabs.ai/revision", "scaivault.scailabs.ai/data-hash",
                "scaivault.scailabs.ai/connection"):  # fmt: skip
        assert annotations[key] == live[key], key
    assert "scaivault.scailabs.ai/path" not in annotations
    assert "scaivault.scailabs.ai/version" not in annotations
    assert data["live"]["same"] is True
    assert data["live"]["message"].startswith("the Secret already holds this data (its revision annotation: ")
    after = cluster.vault.stats.snapshot()
    reads = {path: {v: n - before.reads_of(path).get(v, 0) for v, n in after.reads_of(path).items()}
             for path in ("apps/mix/db", "apps/mix/creds", "apps/mix/cache", "apps/mix/found/stripe/api",
                          "apps/mix/found/test")}  # fmt: skip
    assert reads == {"apps/mix/db": {1: 1}, "apps/mix/creds": {1: 1}, "apps/mix/cache": {1: 1},
                     "apps/mix/found/stripe/api": {1: 1}, "apps/mix/found/test": {}}, after.to_json()  # fmt: skip
    assert after.calls.get("list", 0) - before.calls.get("list", 0) == 1  # the prefix, once (one page)

    table = await plugin("render", f"{NS}/mix")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0] == (f"Secret {NS}/mix (type Opaque): 4 secrets (3 sources, 1 found by dataFrom) through "
                        "ClusterVaultConnection/default, ClusterVaultConnection/second")  # fmt: skip
    assert lines[2].split() == ["SOURCE", "PATH", "VERSION", "READ", "CONNECTION"]
    assert lines[5].split() == ["db", "apps/mix/db", "1", "pinned", "to", "1", "ClusterVaultConnection/default"]
    assert lines[6].split()[:2] == ["-", "apps/mix/found/stripe/api"]
    for out in (table.out, result.out, (await plugin("render", f"{NS}/mix", "-o", "yaml")).out):
        assert CANARY_VALUE not in out
        assert base64.b64encode(CANARY_VALUE.encode()).decode() not in out

    shown = await plugin("render", f"{NS}/mix", "--show-values")  # the positive control
    assert shown.code == 0
    assert f"  DB_PASSWORD: {CANARY_VALUE}" in shown.out


async def test_render_of_several_sources_with_a_template(cluster, plugin, access_reviews):
    cluster.vault.write("apps/mt/db", {"host": "db.local", "password": "p1"})
    cluster.vault.write("apps/mt/cache", {"host": "redis.local", "password": "p2"})
    template = {
        "mergePolicy": "Replace",
        "data": {
            "DATABASE_URL": "postgres://app:{{ sources.db.data.password }}@{{ sources.db.data.host }}"
            "/app?v={{ sources.db.version }}",
            "REDIS_URL": "redis://:{{ sources.cache.data.password }}@{{ sources.cache.data.host }}",
        },
    }
    await cluster.create(
        composite(
            "tpl",
            template=template,
            sources=[{"name": "db", "path": "apps/mt/db"}, {"name": "cache", "path": "apps/mt/cache"}],
        )
    )
    await cluster.wait_reason(NS, "tpl", "Synced", status="True")  # fmt: skip

    result = await plugin("render", f"{NS}/tpl", "-o", "json")

    assert result.code == 0, result.err
    data = result.json()
    assert data["template"] == {"mergePolicy": "Replace",
                                "keys": {"DATABASE_URL": "template", "REDIS_URL": "template"}}  # fmt: skip
    rendered = "postgres://app:p1@db.local/app?v=1"
    assert {k["key"]: k["sha256"] for k in data["keys"]}["DATABASE_URL"] == hashlib.sha256(
        rendered.encode()
    ).hexdigest()[:12]
    assert data["live"]["same"] is True
    assert "p1" not in (await plugin("render", f"{NS}/tpl")).out


async def test_render_of_several_sources_refuses_what_the_operator_refuses(cluster, plugin, dev_vault):
    await cluster.create(cluster_connection("narrow", dev_vault.url, access=[access_rule(["apps/ok/"])]))
    cluster.vault.write("apps/ok/a", {"a": "1"})
    cluster.vault.write("apps/no/b", {"b": "2"})
    cluster.vault.write("apps/ok/list/c", {"c": "3"})
    cluster.vault.write("apps/nolist/d", {"d": "4"})
    await cluster.create(
        composite(
            "denied",
            connectionRef={"name": "narrow"},
            sources=[{"name": "a", "path": "apps/ok/a"}, {"name": "b", "path": "apps/no/b"}],
        )
    )
    await cluster.create(composite("found-denied", connectionRef={"name": "narrow"},
                                   dataFrom=[{"prefix": "apps/no"}]))  # fmt: skip
    cluster.vault.write("apps/col/a", {"password": "x"})
    cluster.vault.write("apps/col/b", {"password": "y"})
    await cluster.create(composite("collide", sources=[{"name": "a", "path": "apps/col/a"},
                                                       {"name": "b", "path": "apps/col/b"}]))  # fmt: skip
    for i in range(3):
        cluster.vault.write(f"apps/many/s{i}", {"v": str(i)})
    await cluster.create(composite("many", dataFrom=[{"prefix": "apps/many/"}], maxDiscovered=2))
    await cluster.stop_operator()  # so that every read counted below would be the plugin's
    reads = cluster.vault.stats.count("read")

    denied = await plugin("render", f"{NS}/denied")
    assert denied.code == 1
    assert denied.err.startswith(
        "error: PolicyDenied: the operator would not read source b (apps/no/b): ClusterVaultConnection narrow does "
        "not allow namespace team-a to read 'apps/no/b'"
    )
    found = await plugin("render", f"{NS}/found-denied")
    assert found.code == 1
    assert found.err.startswith("error: PolicyDenied: the operator would not list apps/no: ")
    assert cluster.vault.stats.count("read") == reads  # denied before anything was read

    collide = await plugin("render", f"{NS}/collide")
    assert collide.code == 1
    assert collide.err.startswith("error: InvalidSourceData: the Secret key 'password' comes from both source a")
    many = await plugin("render", f"{NS}/many")
    assert many.code == 1
    assert many.err.startswith("error: TooManySecrets: spec.dataFrom finds 3 secrets under apps/many/")


async def test_why_of_several_sources(cluster, plugin, dev_vault, apps):
    await composite_synced(cluster, dev_vault)
    await apps.create("Deployment", "web", {"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "mix"}}]}]})

    result = await plugin("why", f"{NS}/mix")

    assert result.code == 0, result.out
    lines = result.out.splitlines()
    heads = [line for line in lines if not line.startswith(" ")]
    assert [h.split(":")[0] for h in heads] == [
        "✓ VaultSecret",
        "✓ Connection",
        "✓ Connection health",
        "✓ Connection",
        "✓ Connection health",
        "✓ Access rules",
        "✓ ScaiVault",
        "✓ Target Secret",
        "• Workloads",
    ]
    assert heads[0] == f"✓ VaultSecret: {NS}/mix: Ready (Synced), 4 secrets in the Secret"
    assert "    • source db: apps/mix/db, pinned to version 1" in lines
    assert (
        "    • source cache: apps/mix/cache, follows the latest version, through ClusterVaultConnection second" in lines
    )
    assert "    • dataFrom: every secret under apps/mix/found/ tagged prod" in lines
    assert heads[1] == "✓ Connection: ClusterVaultConnection default exists"
    assert heads[3] == "✓ Connection: ClusterVaultConnection second exists"
    assert heads[4].startswith("✓ Connection health: ClusterVaultConnection second: ")
    assert heads[5] == "✓ Access rules: every path checked may be read (4)"
    assert ("    ✓ source creds: ClusterVaultConnection default allows namespace team-a to read 'apps/mix/creds' "
            "(prefix 'apps/')") in lines  # fmt: skip
    assert ("    ✓ source cache: ClusterVaultConnection second allows namespace team-a to read 'apps/mix/cache' "
            "(prefix 'apps/')") in lines  # fmt: skip
    assert "    ✓ dataFrom apps/mix/found/: every secret under it may be read (rule #1 of spec.access)" in lines
    assert any(line.startswith("    ✓ apps/mix/found/stripe/api (found by dataFrom at the last sync): ")
               for line in lines)  # fmt: skip
    assert heads[6].startswith("✓ ScaiVault: last sync read 4 secrets")
    assert "    • source db: apps/mix/db version 1" in lines
    assert "    • apps/mix/found/stripe/api version 1 (found by dataFrom)" in lines
    assert any(line.startswith("    ✓ revision annotation ") and "status.sources 4 secret(s)" in line
               for line in lines)  # fmt: skip
    assert "    ✓ data matches its data-hash annotation" in lines
    assert heads[8] == "• Workloads: 1 workload(s) use Secret mix"
    assert CANARY_VALUE not in result.out

    data = (await plugin("why", f"{NS}/mix", "-o", "json")).json()
    assert data["ready"] is True
    assert [s["state"] for s in data["steps"]] == ["ok"] * 8 + ["info"]


async def test_why_of_several_sources_denied_names_the_path(cluster, plugin, dev_vault):
    await cluster.create(cluster_connection("narrow", dev_vault.url, access=[access_rule(["apps/ok/"])]))
    cluster.vault.write("apps/ok/a", {"a": "1"})
    cluster.vault.write("apps/no/b", {"b": "2"})
    await cluster.create(
        composite(
            "denied",
            connectionRef={"name": "narrow"},
            sources=[{"name": "a", "path": "apps/ok/a"}, {"name": "b", "path": "apps/no/b"}],
        )
    )
    await cluster.wait_reason(NS, "denied", "PolicyDenied")  # fmt: skip

    result = await plugin("why", f"{NS}/denied", "-o", "json")

    assert result.code == 1
    steps = {s["step"]: s for s in result.json()["steps"]}
    assert steps["VaultSecret"]["summary"] == f"{NS}/denied: not Ready (PolicyDenied), nothing in the Secret yet"
    access = steps["Access rules"]
    assert access["state"] == "fail"
    assert access["summary"].startswith("ClusterVaultConnection narrow does not allow namespace team-a to read "
                                        "'apps/no/b'")  # fmt: skip
    assert [d["state"] for d in access["details"]] == ["ok", "fail"]
    assert steps["ScaiVault"]["summary"] == "not asked: the sync stops before ScaiVault (PolicyDenied)"


async def test_status_and_versions_of_several_sources(cluster, plugin, dev_vault):
    await composite_synced(cluster, dev_vault)
    await synced(cluster, "single", "apps/mix/creds", {"user": "app", "password": CANARY_VALUE})
    cluster.vault.write("apps/mix/b", {"host": "collides"})
    await cluster.cluster.patch("VaultSecret", NS, "mix", {"spec": {"sources": [
        {"name": "db", "path": "apps/mix/db", "version": 1}, {"name": "b", "path": "apps/mix/b"},
        {"name": "creds", "path": "apps/mix/creds", "keys": [{"from": "password", "to": "DB_PASSWORD"}]},
        {"name": "cache", "path": "apps/mix/cache", "connectionRef": {"name": "second"}}]}})  # fmt: skip
    await cluster.wait_reason(NS, "mix", "InvalidSourceData")

    result = await plugin("status", "-o", "json")
    assert result.code == 1
    [mix] = result.json()["vaultSecrets"]["notReady"]
    assert mix["syncedVersion"] is None
    assert mix["sourceCount"] == 4  # the Secret keeps the last sync's data
    assert [(s.get("name"), s["version"]) for s in mix["sources"]] == [
        ("cache", 1), ("creds", 1), ("db", 1), (None, 1)]  # fmt: skip
    table = await plugin("status")
    row = next(line for line in table.out.splitlines() if line.split()[:2] == [NS, "mix"])
    assert "cache@1, creds@1, db@1, apps/mix/found/…" in row

    versions = await plugin("versions", "apps/mix/creds", "--connection", "default", "-o", "json")
    assert versions.code == 0, versions.err
    assert [(u["name"], u["source"], u["pinnedVersion"], u["syncedVersion"], u["state"])
            for u in versions.json()["usedBy"]] == [
        ("mix", "source creds", None, 1, "behind (current is 2)"),  # stuck on InvalidSourceData
        ("single", None, None, 2, "current"),
    ]  # fmt: skip
    found = await plugin("versions", "apps/mix/found/stripe/api", "--connection", "default")
    assert found.code == 0
    assert found.out.splitlines()[3].split() == ["NAMESPACE", "NAME", "SOURCE", "PINNED", "SYNCED", "READY", "STATE"]
    assert found.out.splitlines()[4].split() == [NS, "mix", "dataFrom", "apps/mix/found/", "-", "1", "False",
                                                 "current"]  # fmt: skip
    second = await plugin("versions", "apps/mix/cache", "--connection", "second", "-o", "json")
    assert [u["source"] for u in second.json()["usedBy"]] == ["source cache"]
    refreshed = await plugin("refresh", f"{NS}/mix")
    assert "the operator reads each of its secrets (sources and those dataFrom found) once" in refreshed.out
    for out in (result.out, table.out, versions.out, found.out, second.out):
        assert CANARY_VALUE not in out


# -- the canary -----------------------------------------------------------------------------------------------------


async def test_canary_no_value_or_token_is_printed_without_show_values(
    cluster, plugin, dev_vault, apps, access_reviews
):
    """A planted value and a planted token appear in no output of any command, in any format — also the failing
    ones — unless ``--show-values`` is given and allowed (the positive control at the end)."""
    await cluster.create(credentials_secret("canary-token", OP_NS, {"token": CANARY_TOKEN}))
    await cluster.create(cluster_connection("canary", dev_vault.url, token_secret="canary-token"))
    await synced(
        cluster,
        "canary",
        "apps/canary/db",
        {"password": CANARY_VALUE, "nested": {"k": CANARY_VALUE}},
        connection="canary",
    )
    await apps.create(
        "Deployment", "web", {"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "canary"}}]}]}
    )
    await cluster.create(vaultsecret("canary-bad", "apps/canary/none", connection="canary"))
    await cluster.wait_reason(NS, "canary-bad", "SourceNotFound")
    cluster.vault.write("apps/canary/found/api", {"token": CANARY_VALUE})
    await cluster.create(composite("canary-mix", connectionRef={"name": "canary"},
                                   sources=[{"name": "db", "path": "apps/canary/db"}],
                                   dataFrom=[{"prefix": "apps/canary/found/"}]))  # fmt: skip
    await cluster.create(composite("canary-mix-bad", connectionRef={"name": "canary"},
                                   sources=[{"name": "a", "path": "apps/canary/db"},
                                            {"name": "b", "path": "apps/canary/db"}]))  # fmt: skip
    await cluster.wait_reason(NS, "canary-mix", "Synced", status="True")
    await cluster.wait_reason(NS, "canary-mix-bad", "InvalidSourceData")
    access_reviews.allowed = False

    commands = [
        ["status"],
        ["status", "-A"],
        ["why", f"{NS}/canary"],
        ["why", f"{NS}/canary-bad"],
        ["versions", "apps/canary/db", "--connection", "canary"],
        ["versions", "apps/canary/none", "--connection", "canary"],
        ["render", f"{NS}/canary"],
        ["render", f"{NS}/canary-bad"],
        ["render", f"{NS}/canary", "--show-values"],
        ["refresh", f"{NS}/canary"],
        ["why", f"{NS}/canary-mix"],
        ["why", f"{NS}/canary-mix-bad"],
        ["render", f"{NS}/canary-mix"],
        ["render", f"{NS}/canary-mix-bad"],
        ["render", f"{NS}/canary-mix", "--show-values"],
        ["versions", "apps/canary/found/api", "--connection", "canary"],
    ]
    forbidden = {
        CANARY_VALUE,
        CANARY_TOKEN,
        base64.b64encode(CANARY_VALUE.encode()).decode(),
        base64.b64encode(CANARY_TOKEN.encode()).decode(),
        json.dumps({"k": CANARY_VALUE}),
    }
    codes = []
    for command in commands:
        for fmt in ("table", "json", "yaml"):
            result = await plugin(*command, "-o", fmt)
            codes.append(result.code)
            for planted in forbidden:
                assert planted not in result.out, (command, fmt)
                assert planted not in result.err, (command, fmt)
    assert {0, 1, 4} <= set(codes)  # successes, failures and the refused --show-values all checked

    access_reviews.allowed = True  # the positive control: the value is there to be found
    shown = await plugin("render", f"{NS}/canary", "--show-values")
    assert f"  password: {CANARY_VALUE}" in shown.out
    assert CANARY_TOKEN not in shown.out
    shown = await plugin("render", f"{NS}/canary-mix", "--show-values")
    assert f"  api_token: {CANARY_VALUE}" in shown.out
    assert f"  password: {CANARY_VALUE}" in shown.out
    assert CANARY_TOKEN not in shown.out


# -- the real kubectl -----------------------------------------------------------------------------------------------


async def test_kubectl_finds_the_plugin_on_path(cluster, kubeconfig):
    bin_dir = Path(sys.executable).parent
    kubectl, script = shutil.which("kubectl", path=str(bin_dir)), bin_dir / "kubectl-scaivault"
    if kubectl is None or not script.exists():
        pytest.skip("needs kubectl and the installed kubectl-scaivault in the venv (make install; pip install -e .)")
    await synced(cluster, "app", "apps/k/db", {"a": "1"})
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "KUBECONFIG": str(kubeconfig)}

    process = await asyncio.create_subprocess_exec(
        kubectl,
        "scaivault",
        "why",
        f"{NS}/app",
        "-o",
        "json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, err.decode()
    assert json.loads(out)["ready"] is True
