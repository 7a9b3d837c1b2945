"""Workload restarts on a real API server, with its Deployment controller: a new version that changes a key a
Deployment uses gives it a new ReplicaSet (one), a version that changes only other keys gives it none. The operator
runs with exactly the chart's RBAC (``conftest.operator``), so this also proves the chart grants the rollout's calls
(list and patch of Deployments)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_support import CLUSTER_TIMEOUT, E2E, deployment_manifest, wait_for

from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.rollout import ROLLOUT_ANNOTATION

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("deployment_controller")]


async def test_a_changed_used_key_rolls_the_deployment_once_and_an_unused_key_not_at_all(
    env: E2E, operator: Runtime | None
) -> None:
    await env.api.create(deployment_manifest("web", env.namespace, "db", "password"))
    await wait_for(lambda: env.replica_sets("web"), lambda found: len(found) == 1, within=CLUSTER_TIMEOUT,
                   what="the Deployment's first ReplicaSet")  # fmt: skip
    await env.create_synced("db", "e2e/rollout/db", {"password": "one", "other": "x"},
                            rollout={"auto": True, "debounce": "0s"})  # fmt: skip

    env.write("e2e/rollout/db", {"password": "two", "other": "x"})
    await env.wait_ready("db", version=2)
    await wait_for(lambda: env.replica_sets("web"), lambda found: len(found) == 2, within=CLUSTER_TIMEOUT,
                   what="a second ReplicaSet after the restart")  # fmt: skip
    web = await env.api.get("Deployment", "web", env.namespace)
    assert web is not None
    annotations = web["spec"]["template"]["metadata"].get("annotations") or {}
    assert annotations.get(ROLLOUT_ANNOTATION, "").startswith("db=")
    assert "two" not in str(web)  # a digest, never the value
    generation = web["metadata"]["generation"]
    status = await wait_for(lambda: _rollout_status(env), bool, within=CLUSTER_TIMEOUT, what="status.rollout")
    assert status is not None
    assert status["workloads"] == [{"kind": "Deployment", "name": "web", "keys": ["password"]}]
    assert status["version"] == 2
    events = await env.api.list("Event", env.namespace)
    assert [e["reason"] for e in events if e["involvedObject"]["name"] == "web" and e["reason"] == "SecretChanged"]

    env.write("e2e/rollout/db", {"password": "two", "other": "y"})  # only a key web does not use
    await env.wait_ready("db", version=3)
    await asyncio.sleep(3)  # a rollout would have been patched by now (debounce 0s): give it the chance
    web = await env.api.get("Deployment", "web", env.namespace)
    assert web is not None
    assert web["metadata"]["generation"] == generation
    assert len(await env.replica_sets("web")) == 2


async def _rollout_status(env: E2E) -> dict[str, Any] | None:
    body = await env.vaultsecret("db")
    status: dict[str, Any] | None = ((body or {}).get("status") or {}).get("rollout")
    return status
