"""A ScaiVault outage on a real API server, with the operator running as the chart's ServiceAccount under the chart's
exact RBAC: the breaker of each connection opens and its ``status.breaker`` is written through the status
subresource — a VaultConnection's (the namespace Role) and a ClusterVaultConnection's (the ClusterRole) — the
Secrets stay as they were, and after the outage the status says Closed once and is not written again per poll."""

from __future__ import annotations

import asyncio

import pytest
from e2e_support import CONNECTION, E2E, ClusterConnectionFactory, ready_condition, wait_for

from scaivault_operator._core.runtime import Runtime

pytestmark = pytest.mark.e2e

PATH = "e2e/outage/db"
CLUSTER_PATH = "e2e/outage/cluster-db"
DATA = {"password": "outage-1"}
AFTER = {"password": "outage-2"}


def breaker_of(connection: dict | None) -> dict:
    return ((connection or {}).get("status") or {}).get("breaker") or {}


async def test_an_outage_writes_each_connection_status_once_open_and_once_closed(
    env: E2E, operator: Runtime | None, cluster_connection: ClusterConnectionFactory
) -> None:
    if operator is None:
        pytest.skip("injects a fault into the session's dev vault: only with the in-process operator")
    cluster_name = await cluster_connection([{"namespaces": [env.namespace], "pathPrefixes": ["e2e/"]}])
    await env.create_synced("db", PATH, DATA)
    await env.create_synced("cdb", CLUSTER_PATH, DATA, connectionRef={"kind": "ClusterVaultConnection",
                                                                        "name": cluster_name})  # fmt: skip
    connections = (("VaultConnection", CONNECTION, env.namespace), ("ClusterVaultConnection", cluster_name, None))
    reads_before = env.vault.vault.stats.count("read")

    faults = env.vault.vault.faults
    try:
        faults.error_rate = 1.0  # every /v1 request: 503
        for kind, name, namespace in connections:
            opened = await wait_for(
                lambda kind=kind, name=name, namespace=namespace: env.api.get(kind, name, namespace),
                lambda c: breaker_of(c).get("state") == "Open",
                what=f"{kind} {name}: status.breaker Open",
            )
            breaker = breaker_of(opened)
            assert breaker["reason"] == "BackendUnavailable", breaker
            assert "HTTP 503" in breaker["message"], breaker
            assert breaker["retryAt"].endswith("Z"), breaker
            assert opened["status"]["observedGeneration"] == opened["metadata"]["generation"]
        assert env.vault.vault.stats.count("read") == reads_before  # nobody read: the polls found the outage
        for name in ("db", "cdb"):  # in sync: untouched by the outage
            vs = await env.vaultsecret(name)
            assert vs is not None
            assert (ready_condition(vs) or {}).get("status") == "True", vs["status"]
        await env.assert_secret_intact("db", DATA, version=1)
        await env.assert_secret_intact("cdb", DATA, version=1)
    finally:
        env.vault.vault.reset_faults()

    closed = {}
    for kind, name, namespace in connections:
        closed[kind] = await wait_for(
            lambda kind=kind, name=name, namespace=namespace: env.api.get(kind, name, namespace),
            lambda c: breaker_of(c).get("state") == "Closed",
            what=f"{kind} {name}: status.breaker Closed",
        )
        assert set(breaker_of(closed[kind])) == {"state", "lastTransitionTime"}
    env.write(PATH, AFTER)
    env.write(CLUSTER_PATH, AFTER)
    await env.wait_ready("db", version=2)
    await env.wait_ready("cdb", version=2)
    await asyncio.sleep(3)  # healthy polls (1 s): no status write
    for kind, name, namespace in connections:
        now = await env.api.get(kind, name, namespace)
        assert now is not None
        assert now["metadata"]["resourceVersion"] == closed[kind]["metadata"]["resourceVersion"], kind
