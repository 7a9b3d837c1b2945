"""A ScaiVault outage with the real operator (Kopf on kmock, the dev vault over real HTTP): the connection's breaker
opens on 503s, holds every sync job (no GET while it is open), probes with the version watcher's poll only, writes
the connection's ``status.breaker`` exactly once on opening and once on closing, and the first successful poll
brings everything back. Counts only (dev vault stats, kmock's request log); the bound is the breaker's arithmetic
(``breaker.worst_case_requests``) for the time the fault really lasted."""

from __future__ import annotations

import asyncio

import pytest
from operator_helpers import (
    CONN,
    POLL_SECONDS,
    OperatorEnv,
    decoded,
    fast_settings,
    ready_condition,
    vaultsecret,
    wait_until,
)

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._logic.breaker import Backoff, worst_case_requests
from scaivault_operator._logic.registry import ConnKey

NS = "team-a"
KEY: ConnKey = ("ClusterVaultConnection", "", CONN)
STATUS_PATH = f"/apis/{API_VERSION}/clustervaultconnections/{CONN}/status"
COUNT = 12
FAULT_SECONDS = 6.0


@pytest.fixture
def operator_settings() -> OperatorSettings:
    return fast_settings(retry_base=0.4, retry_max=2.0)  # the outage schedule: 1 s → 2 s, never under the 1 s poll


def status_patches(env: OperatorEnv, since: int) -> list[str]:
    return [w for w in env.operator_writes(since) if w == f"PATCH {STATUS_PATH}"]


async def test_an_outage_opens_the_breaker_holds_reads_and_recovers_with_two_status_writes(
    cluster: OperatorEnv, operator_settings: OperatorSettings
) -> None:
    env = cluster
    assert env.runtime is not None
    paths = [f"apps/o{i % 4}/s{i}/db" for i in range(COUNT)]
    for path in paths:
        env.vault.write(path, {"password": f"{path}-1"})
    for i, path in enumerate(paths):
        await env.create(vaultsecret(f"s{i}", path))
    keys = [(NS, f"s{i}") for i in range(COUNT)]
    await env.wait_all_synced(keys, 1)
    conn = env.runtime.connections.get(KEY)
    assert conn is not None
    await wait_until(lambda: all(env.runtime.registry.latest.get((KEY, p)) == 1 for p in paths), 5 * POLL_SECONDS,
                     what="a poll listed every path")  # fmt: skip

    loop = asyncio.get_running_loop()
    mark = env.mark()
    env.vault.stats.reset()
    started = loop.time()
    env.vault.faults.error_rate = 1.0  # every /v1 request: 503
    await wait_until(lambda: conn.breaker.is_open, 5 * POLL_SECONDS, interval=0.02, what="the breaker opens")
    # During the outage: new versions, a spec change, a new VaultSecret. Their jobs must send nothing.
    for path in paths[:3]:
        env.vault.write(path, {"password": f"{path}-2"})
    await env.cluster.patch("VaultSecret", NS, "s5", {"spec": {"target": {"labels": {"changed": "yes"}}}})
    env.vault.write("apps/o0/fresh/db", {"password": "fresh-1"})
    await env.create(vaultsecret("fresh", "apps/o0/fresh/db"))
    held = await env.wait_reason(NS, "s5", "BackendUnavailable")
    message = ready_condition(held)["message"]
    assert "ClusterVaultConnection default is backing off" in message, message
    assert "HTTP 503" in message, message
    assert "the Secret keeps its last synced data" in message, message
    await env.wait_reason(NS, "fresh", "BackendUnavailable")
    opened = await env.cluster.get("ClusterVaultConnection", None, CONN)
    assert opened is not None
    breaker = opened["status"]["breaker"]
    assert (breaker["state"], breaker["reason"]) == ("Open", "BackendUnavailable"), breaker
    assert breaker["retryAt"].endswith("Z"), breaker
    assert breaker["failures"] >= 1, breaker
    assert opened["status"]["observedGeneration"] == 1
    assert env.runtime.metrics.value("breaker_opens_total", {"connection": conn.label}) == 1
    assert 'scaivault_operator_breaker_open{connection="ClusterVaultConnection/default"} 1' in (
        env.runtime.metrics.render()
    )

    await asyncio.sleep(max(0.0, started + FAULT_SECONDS - loop.time()))
    during = env.vault.stats.snapshot()
    lasted = loop.time() - started
    env.vault.reset_faults()
    writes_during = env.operator_writes(mark)

    # Nothing was read while the breaker was open; the probes were the polls' first list requests.
    assert during.calls.get("read", 0) == 0, during.to_json()
    bound = worst_case_requests(Backoff(0.4 * 2.5, 2.0), lasted, floor=POLL_SECONDS)
    print(f"outage-budget: operator on kmock + dev vault: {lasted:.1f} s of 503s, {during.requests} requests "
          f"({during.calls}), bound {bound}")  # fmt: skip
    assert during.requests <= bound, (during.to_json(), lasted, bound)
    assert not [w for w in writes_during if f"/namespaces/{NS}/secrets" in w], writes_during  # Secrets untouched
    assert len(status_patches(env, mark)) == 1  # opened; failed probes are no news
    for i in range(6, COUNT):  # in sync and untouched by the outage: still Ready, no status write
        body = await env.vs(NS, f"s{i}")
        assert ready_condition(body)["status"] == "True"

    # Recovery: the first successful poll closes the breaker and brings everything back.
    for i, path in enumerate(paths[:3]):
        _, secret = await env.wait_synced(NS, f"s{i}", 2, within=10)
        assert decoded(secret) == {"password": f"{path}-2"}
    _, secret = await env.wait_synced(NS, "s5", 1, within=10)
    assert secret["metadata"]["labels"]["changed"] == "yes"
    await env.wait_synced(NS, "fresh", 1, within=10)
    await wait_until(lambda: len(status_patches(env, mark)) == 2, 5, what="the Closed status write")
    closed = await env.cluster.get("ClusterVaultConnection", None, CONN)
    assert closed is not None
    assert closed["status"]["breaker"]["state"] == "Closed"
    assert set(closed["status"]["breaker"]) == {"state", "lastTransitionTime"}
    await asyncio.sleep(3 * POLL_SECONDS)  # healthy polls write no connection status
    assert len(status_patches(env, mark)) == 2
    assert not conn.breaker.is_open
    suppressed = env.runtime.metrics.value("backend_requests_suppressed_total", {"connection": conn.label,
                                                                                   "call": "read"})  # fmt: skip
    assert suppressed >= 2  # s5 and fresh were held
