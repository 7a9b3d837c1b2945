"""Request statistics of the dev vault, readable over HTTP (``GET /_dev/stats``) and in-process.

Owns the counters: requests per call kind (``whoami``, ``read``, ``list``, ``write``, ``token``), per HTTP
status, successful reads per (path, version served), and injected faults per kind (``"503"``, ``"429"``, ...
for injected statuses, ``latency``, ``expire_tokens``, ``expire_issued``, ``list_version_lag`` and the
``body_fault`` modes). A call kind counts every request routed to it, whatever its outcome (faults and auth
failures included); statuses count every ``/v1`` and ``/oauth`` answer, unknown routes included (a ``reset``
answer counts with the status it started with); admin (``/_dev``) requests are not counted.

Written by the stats and fault middlewares and the handlers in ``_app``; read by ``_admin``, by
``DevVault.stats`` users (tests asserting "exactly one GET per version", fault tests counting what a client
sent during a fault) from any thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = ["CALL_KINDS", "DevVaultStats", "StatsSnapshot"]

CALL_KINDS: tuple[str, ...] = ("whoami", "read", "list", "write", "token")


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of the counters at one moment."""

    calls: dict[str, int]
    statuses: dict[int, int]
    reads: dict[tuple[str, int], int]
    injected: dict[str, int]

    @property
    def requests(self) -> int:
        """All counted requests."""
        return sum(self.statuses.values())

    def reads_of(self, path: str) -> dict[int, int]:
        """Reads of ``path`` per version served."""
        return {version: count for (name, version), count in self.reads.items() if name == path}

    def to_json(self) -> dict[str, Any]:
        reads: dict[str, dict[str, int]] = {}
        for (path, version), count in sorted(self.reads.items()):
            reads.setdefault(path, {})[str(version)] = count
        return {
            "requests": self.requests,
            "calls": dict(self.calls),
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "reads": reads,
            "injected": dict(sorted(self.injected.items())),
        }


class DevVaultStats:
    """Thread-safe counters; ``snapshot()`` for a consistent view, ``count*`` for single values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._reads: Counter[tuple[str, int]] = Counter()
        self._injected: Counter[str] = Counter()

    def record_request(self, kind: str | None, status: int) -> None:
        with self._lock:
            if kind is not None:
                self._calls[kind] += 1
            self._statuses[status] += 1

    def record_read(self, path: str, version: int) -> None:
        with self._lock:
            self._reads[(path, version)] += 1

    def record_injected(self, kind: str) -> None:
        with self._lock:
            self._injected[kind] += 1

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._statuses.clear()
            self._reads.clear()
            self._injected.clear()

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                calls={kind: self._calls[kind] for kind in CALL_KINDS},
                statuses=dict(self._statuses),
                reads=dict(self._reads),
                injected=dict(self._injected),
            )

    def count(self, kind: str) -> int:
        """Requests routed to call kind ``kind`` (one of ``CALL_KINDS``)."""
        with self._lock:
            return self._calls[kind]

    def count_status(self, status: int) -> int:
        """Answers with HTTP ``status``."""
        with self._lock:
            return self._statuses[status]

    def count_injected(self, kind: str | None = None) -> int:
        """Injected faults of ``kind`` (e.g. ``"503"``, ``"reset"``), or of every kind when None."""
        with self._lock:
            return self._injected[kind] if kind is not None else sum(self._injected.values())

    def count_reads(self, path: str, version: int | None = None) -> int:
        """Successful reads of ``path`` that served ``version`` (any version when None)."""
        with self._lock:
            if version is not None:
                return self._reads[(path, version)]
            return sum(count for (name, _), count in self._reads.items() if name == path)
