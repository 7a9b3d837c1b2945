"""Request statistics of the dev vault, over ``/_dev/stats`` and in-process; the health endpoint."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def http(dev_vault) -> httpx.Client:
    with httpx.Client(base_url=dev_vault.url, headers=dev_vault.headers(), timeout=10.0) as client:
        yield client


def _exercise(dev_vault, http: httpx.Client) -> None:
    http.get("/v1/auth/whoami")
    http.put("/v1/secrets/apps/db", json={"data": {"v": 1}})
    http.put("/v1/secrets/apps/db", json={"data": {"v": 2}})
    http.get("/v1/secrets/apps/db", params={"version": 1})
    http.get("/v1/secrets/apps/db")
    http.get("/v1/secrets/apps/db")
    http.get("/v1/secrets/missing")
    http.get("/v1/secrets", params={"prefix": "apps/"})
    http.get("/v1/secrets/apps/db", headers=dev_vault.headers(dev_vault.wo_token))
    http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(dev_vault.client_id, "bad"))
    http.get("/v1/nowhere")


def test_stats_over_http(dev_vault, http):
    _exercise(dev_vault, http)

    assert http.get("/_dev/stats").json() == {
        "requests": 11,
        "calls": {"whoami": 1, "read": 5, "list": 1, "write": 2, "token": 1},
        "statuses": {"200": 6, "201": 1, "401": 1, "403": 1, "404": 2},
        "reads": {"apps/db": {"1": 1, "2": 2}},
        "injected": {},
    }


def test_stats_in_process(dev_vault, http):
    _exercise(dev_vault, http)

    stats = dev_vault.vault.stats
    snapshot = stats.snapshot()
    assert snapshot.reads == {("apps/db", 1): 1, ("apps/db", 2): 2}
    assert snapshot.reads_of("apps/db") == {1: 1, 2: 2}
    assert snapshot.requests == 11
    assert stats.count("read") == 5
    assert stats.count_status(404) == 2
    assert stats.count_reads("apps/db", 2) == 2
    assert stats.count_reads("apps/db") == 3
    assert stats.count_reads("missing") == 0


def test_admin_calls_and_in_process_writes_are_not_counted(dev_vault, http):
    dev_vault.vault.write("seeded", {})
    http.get("/_dev/stats")
    http.get("/_dev/faults")
    http.get("/_dev/health")

    assert http.get("/_dev/stats").json()["requests"] == 0


def test_stats_reset(dev_vault, http):
    _exercise(dev_vault, http)

    reset = http.post("/_dev/stats/reset")

    assert reset.json() == {
        "requests": 0,
        "calls": {"whoami": 0, "read": 0, "list": 0, "write": 0, "token": 0},
        "statuses": {},
        "reads": {},
        "injected": {},
    }
    assert dev_vault.vault.stats.snapshot().requests == 0
    http.get("/v1/auth/whoami")
    assert dev_vault.vault.stats.count("whoami") == 1
