"""The status of ClusterVaultConnection / VaultConnection objects: what it says, and writing it only on a change.

Today the status carries ``breaker`` and ``observedGeneration``::

    status:
      observedGeneration: 3
      breaker:
        state: Open                      # or Closed
        reason: BackendUnavailable       # Unauthorized, Forbidden, BackendUnavailable (the VaultSecrets' reasons)
        message: "ScaiVault is unavailable (LIST secrets with prefix 'apps/': HTTP 503 unavailable); ..."
        failures: 1                      # consecutive failed requests on the connection when it opened
        retryAt: "2026-04-23T14:00:05Z"  # when its first probe may go out (later ones: the metrics)
        lastTransitionTime: "2026-04-23T14:00:00Z"

Written with a merge patch of the status subresource (``Kube.patch_connection_status``) only on a transition —
closed → open, open → closed, or the reason changes while open — never per poll: an idle or healthy connection
costs no write at all, and a failed probe that only lengthens the backoff is no news. A connection whose stored
status says Open while its breaker is closed (the operator restarted, or the spec changed and the breaker with it)
is corrected once. Issue 13 grows this status (a Ready condition, identity, lastPollAt, watchedPaths): ``desired``
and ``needs_write`` are where its parts are compared.

Pure functions (``breaker_status``, ``needs_write``) plus ``StatusWriter``, which runtime tells of every change
(``soon``); it coalesces them per connection, writes from the breaker's state at write time, and retries a failed
write later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from scaivault_operator._cogs.kube import Kube, KubeError
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._core.connections import Connection, Connections
from scaivault_operator._logic import conditions
from scaivault_operator._logic.breaker import CLOSED, OPEN, Breaker
from scaivault_operator._logic.manifests import merge_patch
from scaivault_operator._logic.registry import ConnKey

__all__ = ["StatusWriter", "breaker_status", "desired", "needs_write"]

logger = logging.getLogger(__name__)

#: Fields of ``status.breaker`` the operator manages; a closed breaker clears all but ``state`` and the time.
_BREAKER_FIELDS = ("state", "reason", "message", "failures", "retryAt", "lastTransitionTime")


def breaker_status(breaker: Breaker, *, previous: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """``status.breaker`` for the breaker's state now, as a merge patch (cleared fields are None).

    ``lastTransitionTime`` moves only when ``state`` does (not when only the reason changes)."""
    old = previous or {}
    state = breaker.state
    since = old.get("lastTransitionTime") if old.get("state") == state else None
    result: dict[str, Any] = dict.fromkeys(_BREAKER_FIELDS)
    result["state"] = state
    result["lastTransitionTime"] = since if isinstance(since, str) else now
    if breaker.failure is not None:
        result.update(reason=breaker.failure.reason, message=breaker.failure.message,
                      failures=max(1, breaker.failures), retryAt=breaker.retry_at())  # fmt: skip
    return result


def needs_write(status: Mapping[str, Any], breaker: Breaker) -> bool:
    """Whether ``status`` (as stored) misses a transition of ``breaker``: it opened, its reason changed, or it
    closed while the stored status still says Open. A connection that never opened needs no status at all."""
    stored = status.get("breaker")
    stored = stored if isinstance(stored, Mapping) else {}
    if breaker.failure is not None:
        return stored.get("state") != OPEN or stored.get("reason") != breaker.failure.reason
    return stored.get("state") == OPEN


def desired(conn: Connection, *, now: str) -> dict[str, Any]:
    """The status merge patch for ``conn`` (wrap as ``{"status": ...}``)."""
    previous = conn.status.get("breaker")
    patch: dict[str, Any] = {
        "breaker": breaker_status(conn.breaker, previous=previous if isinstance(previous, Mapping) else None, now=now)
    }
    if conn.generation is not None:
        patch["observedGeneration"] = conn.generation
    return patch


class StatusWriter:
    """Brings connections' stored status in line with their breakers, one write per transition."""

    def __init__(
        self,
        kube: Kube,
        connections: Connections,
        metrics: Metrics,
        *,
        retry_delay: float,
        now: Callable[[], str] = conditions.now_rfc3339,
    ) -> None:
        self._kube = kube
        self._connections = connections
        self._metrics = metrics
        self._retry_delay = retry_delay
        self._now = now
        self._pending: dict[ConnKey, asyncio.Task[None]] = {}
        self._retries: dict[ConnKey, asyncio.TimerHandle] = {}
        self.writes = 0

    def soon(self, conn: Connection) -> None:
        """Check ``conn`` (by key: the object may be replaced meanwhile) in a task of its own; one at a time."""
        if not needs_write(conn.status, conn.breaker) or conn.key in self._pending:
            return
        task = asyncio.create_task(self._write(conn.key), name=f"connection-status-{conn.key}")
        self._pending[conn.key] = task
        task.add_done_callback(lambda _: self._pending.pop(conn.key, None))

    async def _write(self, key: ConnKey) -> None:
        await asyncio.sleep(0)  # let the transition's other reactions run first
        while True:  # a transition while a write was out is written right after it
            conn = self._connections.get(key)
            if conn is None or not needs_write(conn.status, conn.breaker):
                return
            patch = desired(conn, now=self._now())
            kind, namespace, name = key
            try:
                await self._kube.patch_connection_status(kind, namespace or None, name, patch)
            except KubeError as exc:
                logger.warning("cannot write the status of %s: %s; trying again in %.0fs", conn.display, exc,
                               self._retry_delay)  # fmt: skip
                self._retry_later(key)
                return
            except Exception:  # a bug must not end as an exception nobody retrieves from this task
                logger.exception("writing the status of %s failed unexpectedly", conn.display)
                self._retry_later(key)
                return
            self.writes += 1
            self._metrics.inc("connection_status_writes_total")
            conn.status = merge_patch(conn.status, patch)
            state = patch["breaker"]["state"]
            logger.info("%s: status.breaker is %s%s", conn.display, state,
                        f" ({patch['breaker']['reason']})" if state != CLOSED else "")  # fmt: skip

    def _retry_later(self, key: ConnKey) -> None:
        old = self._retries.pop(key, None)
        if old is not None:
            old.cancel()

        def again() -> None:
            self._retries.pop(key, None)
            conn = self._connections.get(key)
            if conn is not None:
                self.soon(conn)

        self._retries[key] = asyncio.get_running_loop().call_later(self._retry_delay, again)

    async def aclose(self) -> None:
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
