"""Plain HTTP on a real cluster: a connection allowed it (``insecureHTTP: true``) is flagged on its VaultSecrets and
with a Warning Event the API server accepts — under the chart's RBAC for a VaultConnection, in the operator's own
namespace for a ClusterVaultConnection. (The CRDs' refusal of plain HTTP without it is in test_e2e_crd_validation.)
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from e2e_support import (
    E2E,
    TOKEN_SECRET,
    ClusterAccess,
    JsonDict,
    connection_manifest,
    custom_resource_manifest,
    unique_name,
    wait_for,
)

from scaivault_operator._cogs.api import is_plain_http
from scaivault_operator._cogs.kube import Kube
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Connections
from scaivault_operator._core.runtime import Runtime

pytestmark = pytest.mark.e2e

PATH = "e2e/plain/db"
DATA = {"password": "pw-plain"}


def plain_http_url(vault_url: str) -> str:
    """A URL to the dev vault that is plain HTTP to a host that is not loopback: ``SVO_E2E_VAULT_HOST``'s already is;
    else (the operator runs in this process) the dev vault's port on 0.0.0.0, no loopback name, which Linux connects
    to the local host."""
    if is_plain_http(vault_url):
        return vault_url
    if os.environ.get("SVO_E2E_OPERATOR") == "installed":
        pytest.skip("the dev vault is on loopback: an installed operator cannot reach it over a non-loopback URL")
    port = int(vault_url.rsplit(":", 1)[1])
    try:
        socket.create_connection(("0.0.0.0", port), timeout=2).close()  # noqa: S104 - connecting, not binding
    except OSError as exc:
        pytest.skip(f"a connection to 0.0.0.0 does not reach the local host here: {exc}")
    return f"http://0.0.0.0:{port}"


def insecure_condition(body: JsonDict | None) -> JsonDict | None:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Insecure"), None)


def insecure_events(items: list[JsonDict], kind: str, uid: str) -> list[JsonDict]:
    return [e for e in items if e.get("reason") == "InsecureHTTP" and e.get("type") == "Warning"
            and (e.get("involvedObject") or {}).get("kind") == kind
            and (e.get("involvedObject") or {}).get("uid") == uid]  # fmt: skip


async def test_a_plain_http_connection_is_flagged(env: E2E, operator: Runtime | None) -> None:
    url = plain_http_url(env.vault.url)
    manifest = connection_manifest("VaultConnection", "plain", url=url, namespace=env.namespace,
                                   token_secret=(env.namespace, TOKEN_SECRET))  # fmt: skip
    assert manifest["spec"]["insecureHTTP"] is True
    connection = await env.api.create(manifest)
    env.write(PATH, DATA)
    await env.create_vaultsecret("db", PATH, connectionRef={"kind": "VaultConnection", "name": "plain"})

    vs = await env.wait_ready("db", version=1)
    await env.wait_secret_data("db", DATA)
    condition = insecure_condition(vs)
    assert condition is not None, vs["status"]
    assert (condition["status"], condition["reason"]) == ("True", "InsecureHTTP")
    assert f"VaultConnection {env.namespace}/plain allows plain http://" in condition["message"]
    assert env.vault.ro_token not in condition["message"]

    uid = connection["metadata"]["uid"]
    events = await wait_for(
        lambda: env.api.list("Event", env.namespace, fields={"involvedObject.name": "plain"}),
        lambda items: bool(insecure_events(items, "VaultConnection", uid)),
        what="a Warning Event InsecureHTTP on the VaultConnection",
    )
    [event] = insecure_events(events, "VaultConnection", uid)
    assert env.vault.ro_token not in event["message"]


@pytest_asyncio.fixture
async def cluster_connection_name(env: E2E) -> AsyncIterator[str]:
    name = unique_name()
    try:
        yield name
    finally:
        await env.api.delete("ClusterVaultConnection", name)


async def test_the_event_on_a_cluster_connection_is_accepted(
    cluster: ClusterAccess, env: E2E, cluster_connection_name: str
) -> None:
    """A ClusterVaultConnection has no namespace: its Event goes to the operator's namespace (its kubeconfig
    context's, in a pod its service account's) with involvedObject.namespace set to it too — which the API server
    requires of an Event about a cluster-scoped object outside ``default``. Building the client sends nothing."""
    spec: dict[str, Any] = {
        "url": "http://scaivault.invalid:8200",
        "insecureHTTP": True,
        "auth": {"tokenSecretRef": {"namespace": env.namespace, "name": TOKEN_SECRET}},
    }
    created = await env.api.create(custom_resource_manifest("ClusterVaultConnection", cluster_connection_name, None,
                                                            spec))  # fmt: skip
    in_namespace = dataclasses.replace(cluster.config.context, namespace=env.namespace)
    kube = Kube(cluster.config._replace(context=in_namespace))
    connections = Connections(kube, OperatorSettings(liveness_endpoint=None))
    try:
        await connections.upsert("ClusterVaultConnection", created)
        [conn] = connections.all()
        await connections.client(conn)
    finally:
        await connections.aclose()
        await kube.aclose()

    uid = created["metadata"]["uid"]
    events = await wait_for(
        lambda: env.api.list("Event", env.namespace, fields={"involvedObject.name": cluster_connection_name}),
        lambda items: bool(insecure_events(items, "ClusterVaultConnection", uid)),
        what="the InsecureHTTP Event of the ClusterVaultConnection, in the operator's namespace",
    )
    [event] = insecure_events(events, "ClusterVaultConnection", uid)
    assert event["involvedObject"]["namespace"] == env.namespace
    assert "spec.url sends the ScaiVault token" in event["message"]
