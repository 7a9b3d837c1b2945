"""Connections report their health on a real API server (issue 13): the status subresource takes the Ready
condition, identity and watchedPaths the operator writes (the CRD's structural schema keeps them: nothing pruned),
and ``kubectl get`` shows READY, REASON, IDENTITY, POLL and AGE through the CRD's printer columns."""

from __future__ import annotations

import pytest
from e2e_support import CONNECTION, E2E, ready_condition, wait_for

from scaivault_operator._core.runtime import Runtime

pytestmark = pytest.mark.e2e


async def test_the_connection_is_ready_and_says_who_it_is(env: E2E, operator: Runtime | None) -> None:
    await env.create_synced("cs", "e2e/status/cs", {"password": "status-1"})

    def authenticated(connection: dict | None) -> bool:
        status = (connection or {}).get("status") or {}
        return (ready_condition(connection or {}) or {}).get("reason") == "Authenticated" and bool(
            status.get("watchedPaths")
        )

    connection = await wait_for(
        lambda: env.api.get("VaultConnection", CONNECTION, env.namespace),
        authenticated,
        what=f"VaultConnection {CONNECTION}: Ready Authenticated, watchedPaths",
        within=60,
    )
    assert connection is not None
    status = connection["status"]
    ready = ready_condition(connection)
    assert ready is not None
    assert ready["status"] == "True"
    assert ready["observedGeneration"] == connection["metadata"]["generation"]
    assert status["identity"]["identityId"], status
    assert "secrets:read" in status["identity"]["scopes"]
    assert status["watchedPaths"] >= 1
    assert status["breaker"]["state"] == "Closed"
    assert env.vault.ro_token not in str(connection)

    columns = await env.api.printer_columns(env.namespace, CONNECTION, plural="vaultconnections")
    assert list(columns)[:5] == ["Name", "Ready", "Reason", "Identity", "Poll"]
    assert columns["Ready"] == "True"
    assert columns["Reason"] == "Authenticated"
    assert columns["Identity"] == status["identity"]["identityId"]
    assert columns["Poll"] == connection["spec"].get("pollInterval", "30s")
    assert "Age" in columns
