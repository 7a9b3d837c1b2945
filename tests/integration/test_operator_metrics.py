"""The metrics endpoint of the running operator (Kopf on the emulator, the dev vault over HTTP): a new version is one
``propagation_seconds`` observation per Secret written, the histograms and the not-ready gauge are served and read
strictly (``prometheus_text``), and a planted secret value appears in no metric. Counts only, never timings.
"""

from __future__ import annotations

import asyncio
import socket

import httpx
from operator_helpers import POLL_SECONDS, b64, vaultsecret

from prometheus_text import Family, parse, sample_value

PREFIX = "scaivault_operator_"
PATH = "apps/metrics/db"
USERS = [("team-a", "db"), ("team-b", "db"), ("team-c", "db")]
CANARY = "CANARY-METRICS-VALUE-62f1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _count(families: dict[str, Family], name: str) -> float:
    value = sample_value(families, f"{PREFIX}{name}_count")
    assert value is not None, name
    return value


async def test_a_new_version_is_one_propagation_per_written_secret_on_the_metrics_endpoint(cluster):
    env = cluster
    assert env.runtime is not None
    # The harness keeps the operator's ports closed (tests run side by side): serve its Metrics on a free one.
    port = _free_port()
    await env.runtime.metrics.serve("127.0.0.1", port)
    scrapes: list[str] = []

    async def scrape() -> dict[str, Family]:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        scrapes.append(response.text)
        return parse(response.text)

    env.vault.write(PATH, {"password": CANARY})
    for namespace, name in USERS:
        await env.create(vaultsecret(name, PATH, namespace=namespace))
    await env.create(vaultsecret("missing", "missing/metrics/db"))
    await env.wait_all_synced(USERS, 1)
    await env.wait_reason("team-a", "missing", "SourceNotFound")
    before = await scrape()
    assert _count(before, "propagation_seconds") == 0  # first syncs of new VaultSecrets are not propagation

    env.vault.write(PATH, {"password": CANARY, "rotated": "yes"})
    await env.wait_all_synced(USERS, 2, within=10 * POLL_SECONDS)
    after = await scrape()
    await asyncio.sleep(3 * POLL_SECONDS)  # more polls and the Secrets' own watch events: nothing counted twice
    later = await scrape()

    for families in (after, later):
        assert _count(families, "propagation_seconds") == len(USERS)
        assert sample_value(families, PREFIX + "propagation_seconds_bucket", le="+Inf") == len(USERS)
        # The dev vault dates its versions (updated_at, whole seconds, its clock is this machine's).
        assert _count(families, "source_propagation_seconds") == len(USERS)
    for name in ("propagation_seconds", "source_propagation_seconds", "backend_request_duration_seconds",
                 "sync_duration_seconds", "queue_wait_seconds"):  # fmt: skip
        assert later[PREFIX + name].type == "histogram", name
    assert _count(later, "sync_duration_seconds") >= 2  # (equal to the jobs taken: the unit tests count them)
    assert _count(later, "queue_wait_seconds") >= 2
    assert sample_value(later, PREFIX + "backend_request_duration_seconds_count", endpoint="read",
                        status_class="2xx") >= 2  # fmt: skip
    assert sample_value(later, PREFIX + "backend_request_duration_seconds_count", endpoint="list",
                        status_class="2xx") >= 2  # fmt: skip
    not_ready = {(s.label("namespace"), s.label("name"), s.label("reason")): s.value
                 for s in later[PREFIX + "vaultsecret_not_ready"].samples}  # fmt: skip
    assert not_ready == {("team-a", "missing", "SourceNotFound"): 1}  # the Ready ones are absent

    for text in scrapes:
        for form in (CANARY, b64(CANARY), PATH, "missing/metrics"):
            assert form not in text, form
