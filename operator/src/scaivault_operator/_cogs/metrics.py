"""Prometheus metrics: a tiny registry of counters, histograms and scrape-time gauges, served as text on ``/metrics``.

Owned here: metric names, the text exposition format (0.0.4) and the HTTP endpoint (aiohttp, already a Kopf
dependency — no client library needed), which also answers the readiness probe (``/readyz``) with a callback
that ``runtime`` gives it. ``sync``, ``watcher``, ``connections`` (retries inside requests, and the ScaiVault
client's request observer) and ``connstatus`` count and observe; ``runtime`` registers gauges, observes the queue
wait and serves. Label values are names only (connection kind/name, reason, operation, call, endpoint, status
class, a VaultSecret's namespace and name) — never a path, a value, a token or a namespace-supplied free text.

Histograms (``_bucket{le}`` cumulative, ``+Inf``, ``_sum``, ``_count``) and their buckets, in seconds (``BUCKETS``):

- ``propagation_seconds``: a new version first seen in a version watcher's list → a Secret holding it written
  (queue wait, the GET and the write). 0.05 … 1800, with 60 (the chart's alert threshold) a bucket bound.
- ``source_propagation_seconds``: the version's ``updated_at`` in ScaiVault (wall clock) → the Secret written; adds
  the poll interval (30 s by default) and clock skew. 0.5 … 3600.
- ``backend_request_duration_seconds{endpoint, status_class}``: each ScaiVault HTTP request (each attempt: retries
  and the repeat after a renewed token count apart), endpoint ``whoami|read|list|token|write``, status class
  ``2xx|3xx|4xx|5xx`` or ``error`` (no answer: a timeout, a connection error). 0.005 … 30 (the client's timeouts:
  connect 5 s, read 15 s, pool 30 s).
- ``sync_duration_seconds``: one sync job of a source, end to end. 0.005 … 120.
- ``queue_wait_seconds``: a source due (pushed, or its delay elapsed) → a worker takes it. 0.001 … 300.

Histograms without labels are exposed from the start (all zero), so ``rate()`` has a first sample; labelled ones
appear with their first observation, as labelled counters do.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web

__all__ = ["BUCKETS", "ENDPOINTS", "Metrics", "status_class"]

logger = logging.getLogger(__name__)

PREFIX = "scaivault_operator_"
_HELP = {
    "syncs_total": "Sync jobs run, by outcome (done; retry: some VaultSecret of the source runs again later, e.g. "
    "after a transient failure; error: the job failed on a Kubernetes call or a bug, and is retried).",
    "secret_writes_total": "Kubernetes Secret writes, by operation.",
    "status_writes_total": "VaultSecret status patches.",
    "events_total": "Kubernetes Events posted, by type.",
    "backend_requests_total": "ScaiVault requests sent, by connection and call (read, list; retry: the client's "
    "retries inside a read or list).",
    "backend_requests_suppressed_total": "ScaiVault requests not sent because the connection's breaker is open, by "
    "connection and call (read: a sync job held; retry: a retry inside a request refused).",
    "backend_errors_total": "Failed ScaiVault calls, by connection and condition reason.",
    "vaultsecrets": "Known VaultSecrets, by Ready reason.",
    "workload_restarts_total": "Workloads restarted because keys they use changed (a patch of their pod template's "
    "scaivault.scailabs.ai/rollout annotation), by kind.",
    "rollout_errors_total": "Rollout windows or workload patches that failed, by reason (forbidden, conflict, "
    "unavailable).",
    "queue_depth": "Sources waiting for a worker.",
    "breaker_open": "1 while a connection's breaker is open (401, 403 on every prefix, or an outage: 5xx, 429, "
    "timeouts, connection errors).",
    "breaker_opens_total": "Times a connection's breaker opened (closed to open).",
    "breaker_retry_timestamp_seconds": "While a connection's breaker is open: when its next probe may go out (Unix "
    "time); 0 while closed.",
    "connection_status_writes_total": "ClusterVaultConnection / VaultConnection status patches.",
    "connection_ready": "1 while a connection's Ready condition is True (Authenticated), else 0, by connection and "
    "reason (Authenticated, Unauthorized, MissingScope, Unreachable, InvalidSpec).",
    "vaultsecret_not_ready": "1 for each VaultSecret whose Ready condition is not True, by namespace, name and Ready "
    "reason (Pending: no condition yet); absent while Ready.",
    "propagation_seconds": "Seconds from a new version first seen in a version watcher's list to a Secret holding it "
    "written; one observation per written Secret. Buckets 0.05 to 1800.",
    "source_propagation_seconds": "Seconds from a new version's updated_at in ScaiVault (wall clock) to a Secret "
    "holding it written, poll interval included; not observed without updated_at or when it lies in the future. "
    "Buckets 0.5 to 3600.",
    "backend_request_duration_seconds": "Seconds per ScaiVault HTTP request (each attempt), by endpoint (whoami, read, "
    "list, token, write) and status class (2xx, 3xx, 4xx, 5xx; error: no answer). Buckets 0.005 to 30.",
    "sync_duration_seconds": "Seconds per sync job (one source: its GET and its VaultSecrets' writes), end to end. "
    "Buckets 0.005 to 120.",
    "queue_wait_seconds": "Seconds a source waited for a worker once due (pushed, or its retry delay elapsed). "
    "Buckets 0.001 to 300.",
}
#: Upper bounds (seconds) of each histogram's buckets; ``+Inf`` is implied. See the module's docstring.
BUCKETS: dict[str, tuple[float, ...]] = {
    "propagation_seconds": (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
    "source_propagation_seconds": (0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800, 3600),
    "backend_request_duration_seconds": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
    "sync_duration_seconds": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    "queue_wait_seconds": (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
}
_TYPES = {name: "histogram" if name in BUCKETS else "counter" if name.endswith("_total") else "gauge" for name in _HELP}
#: The values of ``backend_request_duration_seconds``' labels: fixed sets, never a path.
ENDPOINTS = frozenset({"whoami", "read", "list", "token", "write"})
STATUS_CLASSES = frozenset({"2xx", "3xx", "4xx", "5xx", "error"})
#: Histograms without labels: one series, rendered from the start.
_UNLABELLED = frozenset(BUCKETS) - {"backend_request_duration_seconds"}

Labels = tuple[tuple[str, str], ...]
#: ``() -> (ready, reason)``: the reason is a short text for the probe's answer, never a value or a token.
Readiness = Callable[[], Awaitable[tuple[bool, str]]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    """HELP text escapes only backslashes and line feeds (not quotes)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    """A sample value or bucket bound as Prometheus reads it: integers without a fraction or an exponent (a counter
    past a million stays exact), other values at full precision, ``+Inf``/``-Inf``/``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _format(name: str, labels: Labels, value: float) -> str:
    inner = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
    return f"{PREFIX}{name}{{{inner}}} {_number(value)}" if inner else f"{PREFIX}{name} {_number(value)}"


def status_class(status: int | None) -> str:
    """``backend_request_duration_seconds``' status class of an HTTP status; ``error`` for no answer (None)."""
    if status is None or not 200 <= status < 600:
        return "error"
    return f"{status // 100}xx"


class _Histogram:
    """One series: a count per bucket (not cumulative; summed when rendered), the sum and the count."""

    __slots__ = ("count", "counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0


class Metrics:
    """Counters incremented in place; histograms observed in place; gauges computed by callbacks at scrape time."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._histograms: dict[str, dict[Labels, _Histogram]] = defaultdict(dict)
        self._gauges: dict[str, Callable[[], Iterable[tuple[Mapping[str, str], float]]]] = {}
        self._runner: web.AppRunner | None = None

    def inc(self, name: str, labels: Mapping[str, str] | None = None, value: float = 1.0) -> None:
        if _TYPES.get(name) != "counter":
            raise KeyError(f"unknown counter {name}")
        key: Labels = tuple(sorted((labels or {}).items()))
        series = self._counters[name]
        series[key] = series.get(key, 0.0) + value

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        return self._counters.get(name, {}).get(tuple(sorted((labels or {}).items())), 0.0)

    def observe(self, name: str, seconds: float, labels: Mapping[str, str] | None = None) -> None:
        """Add one observation to the histogram ``name`` (a NaN is dropped: it would poison ``_sum``)."""
        bounds = BUCKETS.get(name)
        if bounds is None:
            raise KeyError(f"unknown histogram {name}")
        if math.isnan(seconds):
            return
        key: Labels = tuple(sorted((labels or {}).items()))
        series = self._histograms[name].get(key)
        if series is None:
            series = self._histograms[name][key] = _Histogram(len(bounds))
        index = next((i for i, bound in enumerate(bounds) if seconds <= bound), len(bounds))
        series.counts[index] += 1
        series.sum += seconds
        series.count += 1

    def observe_request(self, endpoint: str, status: int | None, seconds: float) -> None:
        """One ScaiVault HTTP request: the client's ``on_request`` observer. ``endpoint`` must be one of
        ``ENDPOINTS`` (a fixed set: a path never becomes a label)."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown ScaiVault endpoint {endpoint!r}")
        labels = {"endpoint": endpoint, "status_class": status_class(status)}
        self.observe("backend_request_duration_seconds", seconds, labels)

    def count(self, name: str, labels: Mapping[str, str] | None = None) -> int:
        """How many observations the histogram ``name`` has (with exactly ``labels``)."""
        series = self._histograms.get(name, {}).get(tuple(sorted((labels or {}).items())))
        return series.count if series is not None else 0

    def gauge(self, name: str, collect: Callable[[], Iterable[tuple[Mapping[str, str], float]]]) -> None:
        if _TYPES.get(name) != "gauge":
            raise KeyError(f"unknown gauge {name}")
        self._gauges[name] = collect

    def render(self) -> str:
        lines: list[str] = []
        for name in _HELP:
            lines.append(f"# HELP {PREFIX}{name} {_escape_help(_HELP[name])}")
            lines.append(f"# TYPE {PREFIX}{name} {_TYPES[name]}")
            if name in BUCKETS:
                lines.extend(self._render_histogram(name))
                continue
            samples: list[tuple[Labels, float]] = list(self._counters.get(name, {}).items())
            if name in self._gauges:
                samples = [(tuple(sorted(labels.items())), value) for labels, value in self._gauges[name]()]
            lines.extend(_format(name, labels, value) for labels, value in sorted(samples))
        return "\n".join(lines) + "\n"

    def _render_histogram(self, name: str) -> Iterable[str]:
        bounds = BUCKETS[name]
        series = dict(self._histograms.get(name, {}))
        if not series and name in _UNLABELLED:
            series[()] = _Histogram(len(bounds))  # exposed (all zero) before its first observation
        for labels, histogram in sorted(series.items(), key=lambda item: item[0]):
            cumulative = 0
            for bound, count in zip((*bounds, math.inf), histogram.counts, strict=True):
                cumulative += count
                yield _format(f"{name}_bucket", (*labels, ("le", _number(bound))), cumulative)
            yield _format(f"{name}_sum", labels, histogram.sum)
            yield _format(f"{name}_count", labels, histogram.count)

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
