"""``kubectl scaivault`` on a real API server, with the operator (in-process, as the chart's ServiceAccount) syncing.

``status`` and ``why`` as the tests' admin: the counts, the connection, every step of the chain down to a Deployment
that uses the Secret (the real API server's objects, lists and Namespace labels); ``refresh`` and ``render
--show-values`` (a real SelfSubjectAccessReview). Then as a user with only what docs/kubectl-plugin.md lists for
reading (get/list VaultSecrets and VaultConnections in the namespace, nothing on Secrets): ``status`` and ``why`` still
answer and say what they could not read, and ``versions``, ``render`` and ``render --show-values`` exit 4.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from chart_rbac import ChartIdentity
from e2e_support import (
    CONNECTION,
    E2E,
    E2E_LABEL,
    ApiFailure,
    ClusterAccess,
    ClusterConnectionFactory,
    unique_name,
    vaultsecret_manifest,
)
from lightkube import AsyncClient, codecs
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ServiceAccount

from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import ANNOTATION_REFRESH
from scaivault_operator._plugin.main import main

pytestmark = pytest.mark.e2e

PATH = "e2e/plugin/db"
DATA = {"password": "e2e-plugin-pw", "user": "app"}


async def run(cluster: ClusterAccess, *argv: str, kubeconfig: Path | None = None) -> tuple[int, str, str]:
    """The plugin in a thread, with the cluster's kubeconfig (or ``kubeconfig``)."""
    environ = dict(os.environ)
    if kubeconfig is not None:
        argv = (*argv, "--kubeconfig", str(kubeconfig))
    elif cluster.kubeconfig:
        environ["KUBECONFIG"] = cluster.kubeconfig
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(main, list(argv), stdout=out, stderr=err, environ=environ)
    return code, out.getvalue(), err.getvalue()


def deployment(name: str, namespace: str, secret: str) -> dict[str, Any]:
    """A Deployment with no replicas (nothing is scheduled) that uses ``secret`` as an env variable and a volume."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "busybox:1.37",
                            "env": [
                                {
                                    "name": "DB_PASSWORD",
                                    "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}},
                                }
                            ],
                            "volumeMounts": [{"name": "db", "mountPath": "/etc/db", "readOnly": True}],
                        }
                    ],
                    "volumes": [{"name": "db", "secret": {"secretName": secret}}],
                },
            },
        },
    }


async def test_status_and_why_on_a_real_api_server(
    cluster: ClusterAccess, env: E2E, operator: Runtime | None, cluster_connection: ClusterConnectionFactory
) -> None:
    await env.create_synced("db", PATH, DATA)
    client = AsyncClient(cluster.config, field_manager="svo-e2e")
    try:
        await client.create(codecs.from_dict(deployment("web", env.namespace, "db")))
    finally:
        await client.close()
    await env.create_vaultsecret("lost", "e2e/plugin/missing")
    await env.wait_ready("lost", reason="SourceNotFound")

    code, out, err = await run(cluster, "status", "-n", env.namespace, "-o", "json")
    assert code == 1, err  # "lost" is not Ready
    data = json.loads(out)
    assert data["vaultSecrets"]["byReason"] == {"Synced": 1, "SourceNotFound": 1}
    assert [v["name"] for v in data["vaultSecrets"]["notReady"]] == ["lost"]
    mine = [c for c in data["connections"] if c["kind"] == "VaultConnection"]
    assert [(c["namespace"], c["name"]) for c in mine] == [(env.namespace, CONNECTION)]
    assert mine[0]["ready"] in ("True", "Unknown")

    code, out, err = await run(cluster, "why", f"{env.namespace}/db")
    assert code == 0, out + err
    lines = out.splitlines()
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
    assert f"VaultConnection {CONNECTION} has no access rules" in heads[3]
    assert "    ✓ data matches its data-hash annotation" in lines
    assert heads[6] == "• Workloads: 1 workload(s) use Secret db"
    assert "    • Deployment/web: env DB_PASSWORD <- key password (container app); volume db: /etc/db in app" in lines
    assert DATA["password"] not in out

    code, out, _ = await run(cluster, "why", f"{env.namespace}/lost", "-o", "json")
    assert code == 1
    steps = {s["step"]: s for s in json.loads(out)["steps"]}
    assert steps["ScaiVault"]["summary"].startswith("last answer: SourceNotFound")
    assert steps["Target Secret"]["state"] == "fail"

    # A ClusterVaultConnection whose rule selects namespaces by label: the plugin reads the real Namespace's labels.
    selected = await cluster_connection([{"namespaceSelector": {"matchLabels": {E2E_LABEL: "true"}},
                                          "pathPrefixes": ["e2e/plugin/"]}])  # fmt: skip
    await env.create_synced("by-label", "e2e/plugin/by-label", DATA,
                            connectionRef={"kind": "ClusterVaultConnection", "name": selected})  # fmt: skip
    code, out, err = await run(cluster, "why", f"{env.namespace}/by-label", "-o", "json")
    assert code == 0, out + err
    access = {s["step"]: s for s in json.loads(out)["steps"]}["Access rules"]
    assert access["state"] == "ok"
    assert access["details"] == [{"state": "ok", "text": "rule #1 of spec.access (a namespaceSelector) matches"}]

    code, out, err = await run(cluster, "refresh", f"{env.namespace}/db", "-o", "json")
    assert code == 0, err
    vs = await env.vaultsecret("db")
    assert vs is not None
    assert vs["metadata"]["annotations"][ANNOTATION_REFRESH] == json.loads(out)["value"]

    code, out, err = await run(cluster, "render", f"{env.namespace}/db", "--show-values", "-o", "json")
    assert code == 0, err  # the admin may read the Secret: a real SelfSubjectAccessReview says so
    assert {k["key"]: k["value"] for k in json.loads(out)["keys"]} == DATA


async def test_several_sources_on_a_real_api_server(cluster: ClusterAccess, env: E2E, operator: Runtime | None) -> None:
    """A VaultSecret with spec.sources and spec.dataFrom: ``why`` walks every path, ``render`` builds the Secret the
    operator wrote (same revision, same data hash) without printing a value, ``status`` counts its sources."""
    env.write("e2e/plugin/mix/db", {"host": "db.local"})
    env.write("e2e/plugin/mix/creds", {"password": DATA["password"]})
    env.vault.vault.write("e2e/plugin/mix/found/api", {"token": "tok"}, metadata={"tags": ["prod"]})
    env.vault.vault.write("e2e/plugin/mix/found/dev", {"token": "dev"}, metadata={"tags": ["dev"]})
    spec = {"connectionRef": env.connection_ref,
            "sources": [{"name": "db", "path": "e2e/plugin/mix/db", "version": 1},
                        {"name": "creds", "path": "e2e/plugin/mix/creds"}],
            "dataFrom": [{"prefix": "e2e/plugin/mix/found/", "tags": ["prod"]}]}  # fmt: skip
    await env.api.create(vaultsecret_manifest("mix", env.namespace, spec))
    await env.wait_ready("mix")
    secret = await env.wait_secret_data("mix", {"host": "db.local", "password": DATA["password"], "api_token": "tok"})

    code, out, err = await run(cluster, "why", f"{env.namespace}/mix")
    assert code == 0, out + err
    lines = out.splitlines()
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
    assert heads[0] == f"✓ VaultSecret: {env.namespace}/mix: Ready (Synced), 3 secrets in the Secret"
    assert heads[3] == "✓ Access rules: every path checked may be read (3)"
    assert heads[4].startswith("✓ ScaiVault: last sync read 3 secrets")
    assert "    • e2e/plugin/mix/found/api version 1 (found by dataFrom)" in lines
    assert DATA["password"] not in out

    code, out, err = await run(cluster, "render", f"{env.namespace}/mix", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert [(s["name"], s["path"], s["version"]) for s in data["sources"]] == [
        ("creds", "e2e/plugin/mix/creds", 1),
        ("db", "e2e/plugin/mix/db", 1),
        (None, "e2e/plugin/mix/found/api", 1),
    ]
    annotations = secret["metadata"]["annotations"]
    for key in ("scaivault.scailabs.ai/revision", "scaivault.scailabs.ai/sources", "scaivault.scailabs.ai/data-hash"):
        assert data["secret"]["annotations"][key] == annotations[key], key
    assert data["live"]["same"] is True
    assert {k["key"]: k["from"] for k in data["keys"]} == {
        "api_token": "e2e/plugin/mix/found/api",
        "host": "source db",
        "password": "source creds",
    }
    assert DATA["password"] not in out

    code, out, err = await run(cluster, "status", "-n", env.namespace, "-o", "json")
    assert code == 0, out + err
    assert json.loads(out)["vaultSecrets"]["byReason"] == {"Synced": 1}


async def _reader(cluster: ClusterAccess, namespace: str, tmp_path: Path) -> Path:
    """A ServiceAccount that may read VaultSecrets and VaultConnections in ``namespace`` and nothing else, and a
    kubeconfig that logs in as it."""
    name = unique_name("reader-")
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["scaivault.scailabs.ai"],
                    "resources": ["vaultsecrets", "vaultconnections"],
                    "verbs": ["get", "list"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]
    client = AsyncClient(cluster.config, field_manager="svo-e2e")
    try:
        for body in objects:
            await client.create(codecs.from_dict(body))
        request = ServiceAccount.Token(
            metadata=ObjectMeta(name=name, namespace=namespace),
            spec=TokenRequestSpec(audiences=[], expirationSeconds=3600),
        )
        issued = await client.create(request, name=name, namespace=namespace)
    finally:
        await client.close()
    assert issued.status is not None
    identity = ChartIdentity(namespace=namespace, name=name, token=issued.status.token)
    identity.access(cluster, tmp_path)  # writes the kubeconfig
    return tmp_path / "chart-rbac.kubeconfig"


async def test_a_user_who_may_not_read_secrets(
    cluster: ClusterAccess, env: E2E, operator: Runtime | None, tmp_path: Path
) -> None:
    await env.create_synced("db", PATH, DATA)
    try:
        kubeconfig = await _reader(cluster, env.namespace, tmp_path)
    except ApiFailure as exc:  # pragma: no cover - a narrower test user
        pytest.skip(f"cannot create a ServiceAccount and Role: {exc}")
    ns = env.namespace

    code, out, err = await run(cluster, "status", "-n", ns, kubeconfig=kubeconfig)
    assert code == 0, out + err
    assert "note: list ClusterVaultConnections: forbidden (HTTP 403" in err

    code, out, err = await run(cluster, "why", f"{ns}/db", "-o", "json", kubeconfig=kubeconfig)
    assert code == 0, out + err  # Ready, and nothing seen failed: what cannot be read is "?"
    steps = {s["step"]: s for s in json.loads(out)["steps"]}
    assert steps["Target Secret"]["state"] == "unknown"
    assert "forbidden (HTTP 403" in steps["Target Secret"]["details"][0]["text"]
    assert steps["Workloads"]["state"] == "unknown"
    assert steps["Access rules"]["state"] == "ok"  # a VaultConnection without rules: no label is needed

    code, out, err = await run(
        cluster, "versions", PATH, "--connection", f"vconn/{CONNECTION}", "-n", ns, kubeconfig=kubeconfig
    )
    assert (code, out) == (4, ""), err
    assert f"you may not read Secret {ns}/scaivault-token" in err

    code, out, err = await run(cluster, "render", f"{ns}/db", "--show-values", kubeconfig=kubeconfig)
    assert (code, out) == (4, ""), err
    assert "does not confirm that you may read Secret" in err

    code, out, err = await run(cluster, "refresh", f"{ns}/db", kubeconfig=kubeconfig)
    assert (code, out) == (4, ""), err
    assert f"patch VaultSecret {ns}/db: forbidden (HTTP 403" in err
