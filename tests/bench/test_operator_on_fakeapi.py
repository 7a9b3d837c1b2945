"""The real operator (Kopf + our handlers, in-process) against the in-memory Kubernetes API and the dev vault:
what the e2e tests expect from a real API server — Secrets created and followed, garbage collection through the
ownerReference, drift repaired, and no write at all while nothing changes."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from bench.fakeapi import FakeApi
from fakeapi_support import TEST_AGENT

from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._logic.manifests import CREDENTIALS_LABEL
from scaivault_operator.devvault import DevVaultConfig, run_in_thread
from scaivault_operator.testing import running_operator

GROUP_PATH = "/apis/scaivault.scailabs.ai/v1alpha1"
MERGE = {"Content-Type": "application/merge-patch+json"}


async def until(check: Callable[[], Any], limit: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        result = check()
        value = await result if asyncio.iscoroutine(result) else result
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
def vault() -> Any:
    with run_in_thread(DevVaultConfig(port=0, tokens={"ro": {"secrets:read"}})) as running:
        yield running


@pytest.fixture
async def operator(api: FakeApi, http: httpx.AsyncClient, vault: Any) -> AsyncIterator[Any]:
    token = {"metadata": {"name": "token", "namespace": "ops", "labels": {CREDENTIALS_LABEL: "true"}},
             "stringData": {"token": "ro"}}  # fmt: skip
    assert (await http.post("/api/v1/namespaces/ops/secrets", json=token)).status_code == 201
    connection = {"metadata": {"name": "default"}, "spec": {
        "url": vault.url, "pollInterval": "1s", "auth": {"tokenSecretRef": {"name": "token", "namespace": "ops",
                                                                            "key": "token"}},
        "access": [{"namespaceSelector": {}, "pathPrefixes": ["apps/"]}]}}  # fmt: skip
    assert (await http.post(f"{GROUP_PATH}/clustervaultconnections", json=connection)).status_code == 201
    settings = OperatorSettings(liveness_endpoint=None, metrics_port=0, workers=2, retry_base=0.2, retry_max=2.0)
    async with running_operator(settings, server=api.url) as runtime:
        yield runtime


async def secret_of(http: httpx.AsyncClient, name: str) -> dict[str, Any] | None:
    response = await http.get(f"/api/v1/namespaces/team-a/secrets/{name}")
    return response.json() if response.status_code == 200 else None


async def test_operator_syncs_follows_collects_and_stays_quiet(
    api: FakeApi, http: httpx.AsyncClient, vault: Any, operator: Any
) -> None:
    vault.vault.write("apps/db", {"password": "one"})
    body = {"metadata": {"name": "db"}, "spec": {"path": "apps/db"}}
    assert (await http.post(f"{GROUP_PATH}/namespaces/team-a/vaultsecrets", json=body)).status_code == 201

    async def version(expected: str) -> dict[str, Any] | None:
        found = await secret_of(http, "db")
        annotations = (found or {}).get("metadata", {}).get("annotations") or {}
        return found if annotations.get("scaivault.scailabs.ai/version") == expected else None

    first = await until(lambda: version("1"))
    assert base64.b64decode(first["data"]["password"]) == b"one"
    vs = (await http.get(f"{GROUP_PATH}/namespaces/team-a/vaultsecrets/db")).json()
    assert vs["status"]["observedGeneration"] == vs["metadata"]["generation"] == 1
    assert first["metadata"]["ownerReferences"][0]["uid"] == vs["metadata"]["uid"]

    vault.vault.write("apps/db", {"password": "two"})
    second = await until(lambda: version("2"))
    assert base64.b64decode(second["data"]["password"]) == b"two"

    # Drift: a hand edit is put back.
    await http.patch("/api/v1/namespaces/team-a/secrets/db", json={"data": {"password": "ZWRpdA=="}}, headers=MERGE)
    await until(lambda: _password_is(http, b"two"))

    # Idle: polls go on, nothing is written.
    await asyncio.sleep(0.5)
    writes = api.writes(exclude_client=TEST_AGENT)
    await asyncio.sleep(2.5)
    assert api.writes(exclude_client=TEST_AGENT) == writes

    # Deleting the VaultSecret deletes its Secret (garbage collection through the ownerReference).
    assert (await http.delete(f"{GROUP_PATH}/namespaces/team-a/vaultsecrets/db")).status_code == 200
    await until(lambda: _gone(http))


async def _password_is(http: httpx.AsyncClient, value: bytes) -> bool:
    found = await secret_of(http, "db")
    return found is not None and base64.b64decode(found["data"]["password"]) == value


async def _gone(http: httpx.AsyncClient) -> bool:
    return await secret_of(http, "db") is None
