"""The Prometheus text exposition of ``metrics.Metrics`` and its HTTP endpoint."""

from __future__ import annotations

import socket

import httpx
import pytest

from scaivault_operator._cogs.metrics import Metrics


def test_counters_render_with_help_type_and_sorted_labels() -> None:
    metrics = Metrics()
    metrics.inc("secret_writes_total", {"operation": "patch"})
    metrics.inc("secret_writes_total", {"operation": "patch"})
    metrics.inc("secret_writes_total", {"operation": "create"})
    text = metrics.render()
    assert "# TYPE scaivault_operator_secret_writes_total counter" in text
    assert 'scaivault_operator_secret_writes_total{operation="create"} 1' in text
    assert 'scaivault_operator_secret_writes_total{operation="patch"} 2' in text
    assert metrics.value("secret_writes_total", {"operation": "patch"}) == 2


def test_gauges_are_collected_at_scrape_time() -> None:
    metrics = Metrics()
    depth = [3.0]
    metrics.gauge("queue_depth", lambda: [({}, depth[0])])
    assert "scaivault_operator_queue_depth 3" in metrics.render()
    depth[0] = 0.0
    assert "scaivault_operator_queue_depth 0" in metrics.render()
    assert "# TYPE scaivault_operator_queue_depth gauge" in metrics.render()


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.inc("backend_errors_total", {"connection": 'a"b\\c\nd', "reason": "Forbidden"})
    assert 'connection="a\\"b\\\\c\\nd"' in metrics.render()


def test_unknown_metric_names_are_refused() -> None:
    metrics = Metrics()
    with pytest.raises(KeyError):
        metrics.inc("made_up_total")
    with pytest.raises(KeyError):
        metrics.gauge("made_up", list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serves_metrics_over_http() -> None:
    metrics = Metrics()
    metrics.inc("status_writes_total")
    port = _free_port()
    await metrics.serve("127.0.0.1", port)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "scaivault_operator_status_writes_total 1" in response.text
    finally:
        await metrics.close()


async def test_serves_readiness_from_the_callback() -> None:
    metrics = Metrics()
    state = [(False, "starting")]

    async def readiness() -> tuple[bool, str]:
        return state[0]

    port = _free_port()
    await metrics.serve("127.0.0.1", port, readiness=readiness)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            not_ready = await client.get("/readyz")
            state[0] = (True, "ok")
            ready = await client.get("/readyz")
        assert (not_ready.status_code, not_ready.text) == (503, "starting\n")
        assert (ready.status_code, ready.text) == (200, "ok\n")
    finally:
        await metrics.close()


async def test_no_readiness_endpoint_without_a_callback() -> None:
    metrics = Metrics()
    port = _free_port()
    await metrics.serve("127.0.0.1", port)
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 404
    finally:
        await metrics.close()
