"""Prometheus metrics: a tiny registry of counters and scrape-time gauges, served as text on ``/metrics``.

Owned here: metric names, the text exposition format (0.0.4) and the HTTP endpoint (aiohttp, already a Kopf
dependency — no client library needed), which also answers the readiness probe (``/readyz``) with a callback
that ``runtime`` gives it. ``sync``, ``watcher``, ``connections`` (retries inside requests) and ``connstatus``
count; ``runtime`` registers gauges and serves. Label values are names only (connection kind/name, reason,
operation, call) — never a path's data, a token or a namespace-supplied free text.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web

__all__ = ["Metrics"]

logger = logging.getLogger(__name__)

PREFIX = "scaivault_operator_"
_HELP = {
    "syncs_total": "Sync jobs run, by outcome (synced: at least one VaultSecret done; other: no write needed).",
    "secret_writes_total": "Kubernetes Secret writes, by operation.",
    "status_writes_total": "VaultSecret status patches.",
    "events_total": "Kubernetes Events posted, by type.",
    "backend_requests_total": "ScaiVault requests sent, by connection and call (read, list; retry: the client's "
    "retries inside a read or list).",
    "backend_requests_suppressed_total": "ScaiVault requests not sent because the connection's breaker is open, by "
    "connection and call (read: a sync job held; retry: a retry inside a request refused).",
    "backend_errors_total": "Failed ScaiVault calls, by connection and condition reason.",
    "vaultsecrets": "Known VaultSecrets, by Ready reason.",
    "queue_depth": "Sources waiting for a worker.",
    "breaker_open": "1 while a connection's breaker is open (401, 403 on every prefix, or an outage: 5xx, 429, "
    "timeouts, connection errors).",
    "breaker_opens_total": "Times a connection's breaker opened (closed to open).",
    "breaker_retry_timestamp_seconds": "While a connection's breaker is open: when its next probe may go out (Unix "
    "time); 0 while closed.",
    "connection_status_writes_total": "ClusterVaultConnection / VaultConnection status patches.",
}
_TYPES = {name: ("counter" if name.endswith("_total") else "gauge") for name in _HELP}

Labels = tuple[tuple[str, str], ...]
#: ``() -> (ready, reason)``: the reason is a short text for the probe's answer, never a value or a token.
Readiness = Callable[[], Awaitable[tuple[bool, str]]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format(name: str, labels: Labels, value: float) -> str:
    inner = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
    return f"{PREFIX}{name}{{{inner}}} {value:g}" if inner else f"{PREFIX}{name} {value:g}"


class Metrics:
    """Counters incremented in place; gauges computed by callbacks at scrape time."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._gauges: dict[str, Callable[[], Iterable[tuple[Mapping[str, str], float]]]] = {}
        self._runner: web.AppRunner | None = None

    def inc(self, name: str, labels: Mapping[str, str] | None = None, value: float = 1.0) -> None:
        if name not in _HELP:
            raise KeyError(f"unknown metric {name}")
        key: Labels = tuple(sorted((labels or {}).items()))
        series = self._counters[name]
        series[key] = series.get(key, 0.0) + value

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        return self._counters.get(name, {}).get(tuple(sorted((labels or {}).items())), 0.0)

    def gauge(self, name: str, collect: Callable[[], Iterable[tuple[Mapping[str, str], float]]]) -> None:
        if name not in _HELP:
            raise KeyError(f"unknown metric {name}")
        self._gauges[name] = collect

    def render(self) -> str:
        lines: list[str] = []
        for name in _HELP:
            samples: list[tuple[Labels, float]] = list(self._counters.get(name, {}).items())
            if name in self._gauges:
                samples = [(tuple(sorted(labels.items())), value) for labels, value in self._gauges[name]()]
            lines.append(f"# HELP {PREFIX}{name} {_HELP[name]}")
            lines.append(f"# TYPE {PREFIX}{name} {_TYPES[name]}")
            lines.extend(_format(name, labels, value) for labels, value in sorted(samples))
        return "\n".join(lines) + "\n"

    async def serve(self, host: str, port: int, readiness: Readiness | None = None) -> None:
        """Serve ``GET /metrics`` (and ``GET /readyz``: 200 or 503 with the reason, when ``readiness`` is given)
        until ``close``."""

        async def handle(_: web.Request) -> web.Response:
            return web.Response(text=self.render(), content_type="text/plain", charset="utf-8",
                                headers={"X-Content-Type-Options": "nosniff"})  # fmt: skip

        async def ready(_: web.Request) -> web.Response:
            assert readiness is not None
            ok, reason = await readiness()
            return web.Response(status=200 if ok else 503, text=reason + "\n", content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", handle)
        if readiness is not None:
            app.router.add_get("/readyz", ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        logger.info("metrics on http://%s:%d/metrics", host, port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
