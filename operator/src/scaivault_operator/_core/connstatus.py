"""The status of ClusterVaultConnection / VaultConnection objects: the connection's health, written only on a change.

What the status says::

    status:
      observedGeneration: 3
      conditions:
      - type: Ready
        status: "True"                   # False with Unauthorized, MissingScope, Unreachable or InvalidSpec
        reason: Authenticated
        message: "ScaiVault accepts the credentials of ci-reader (service_account, tenant t-1) with secrets:read"
        lastTransitionTime: "2026-04-23T14:00:00Z"
        observedGeneration: 3
      identity: {identityId: ci-reader, identityType: service_account, tenantId: t-1, scopes: [secrets:read]}
      watchedPaths: 42                   # paths its version watcher follows
      lastPollAt: "2026-04-23T14:05:00Z" # refreshed with other changes, else at most every ``refresh`` seconds
      breaker:
        state: Open                      # or Closed
        reason: BackendUnavailable       # Unauthorized, Forbidden, BackendUnavailable (the VaultSecrets' reasons)
        message: "ScaiVault is unavailable (LIST secrets with prefix 'apps/': HTTP 503 unavailable); ..."
        failures: 1                      # consecutive failed requests on the connection when it opened
        retryAt: "2026-04-23T14:00:05Z"  # when its first probe may go out (later ones: the metrics)
        lastTransitionTime: "2026-04-23T14:00:00Z"

**Health** (``Health``, the Ready condition and ``identity``) comes from one ``GET /v1/auth/whoami`` — at start, when
the spec changes, and when the breaker closes after a refused token or scope — or, while the breaker is open, from
the breaker's failure, with no request at all (an outage must cost nothing: issue 10's budget). A connection whose
breaker closes after an outage keeps the identity it had; one whose spec is invalid reports InvalidSpec without a
request.

**Writes** go through a merge patch of the status subresource (``Kube.patch_connection_status``) only when a *hard*
part changed: the Ready condition (status, reason, message), ``identity``, ``observedGeneration``, or the breaker
(closed → open, open → closed, a new reason while open). ``watchedPaths`` and ``lastPollAt`` are *soft*: they ride
along with a hard change; otherwise ``heartbeat`` writes a changed ``watchedPaths`` at most every ``paths_refresh``
seconds (30) and a ``lastPollAt`` that only moved at most every ``refresh`` seconds (5 minutes) — so a healthy, idle
connection costs one status write per 5 minutes, never one per poll, and a failed probe that only lengthens the
backoff is no news.

Pure functions (``health_from_*``, ``desired``, ``needs_write``) plus ``StatusWriter``, which runtime tells of every
change (``soon``); it coalesces them per connection, writes from the state at write time, retries a failed write
later, and serves the ``connection_ready`` gauge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scaivault_operator._cogs.aiotasks import cancel_and_wait
from scaivault_operator._cogs.kube import Kube, KubeError
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import (
    ConfigurationError,
    ForbiddenError,
    Identity,
    ScaiVaultError,
    UnauthenticatedError,
)
from scaivault_operator._core.connections import Connection, Connections
from scaivault_operator._logic import conditions
from scaivault_operator._logic.breaker import CLOSED, OPEN, Breaker
from scaivault_operator._logic.manifests import merge_patch
from scaivault_operator._logic.registry import ConnKey

__all__ = ["Health", "StatusWriter", "breaker_status", "desired", "health_from_error", "health_from_identity",
           "needs_write"]  # fmt: skip

logger = logging.getLogger(__name__)

#: The scope reading secrets needs (quickstart: tokens are scoped ``secrets:read`` / ``secrets:write``).
READ_SCOPE = "secrets:read"
#: Seconds between two refreshes of the soft fields (``lastPollAt``, ``watchedPaths``) of an unchanged connection.
DEFAULT_REFRESH = 300.0
#: Seconds between two writes for a changed ``watchedPaths`` alone (a cold sync of thousands: a few writes).
DEFAULT_PATHS_REFRESH = 30.0
#: Fields of ``status.breaker`` the operator manages; a closed breaker clears all but ``state`` and the time.
_BREAKER_FIELDS = ("state", "reason", "message", "failures", "retryAt", "lastTransitionTime")


@dataclass(frozen=True)
class Health:
    """The connection's Ready condition in short: its reason, message and (when known) ``status.identity``."""

    reason: str
    message: str
    identity: Mapping[str, Any] | None = None

    @property
    def ready(self) -> bool:
        return self.reason == conditions.AUTHENTICATED


def _identity_status(identity: Identity) -> dict[str, Any]:
    fields = {"identityId": identity.identity_id, "identityType": identity.identity_type,
              "tenantId": identity.tenant_id, "scopes": list(identity.scopes)}  # fmt: skip
    return {key: value for key, value in fields.items() if value is not None}


def health_from_identity(identity: Identity) -> Health:
    """whoami answered: Authenticated when the token may read secrets, else MissingScope."""
    who = identity.identity_id
    details = ", ".join(x for x in (identity.identity_type, f"tenant {identity.tenant_id}" if identity.tenant_id
                                    else None) if x)  # fmt: skip
    who = f"{who} ({details})" if details else who
    status = _identity_status(identity)
    if READ_SCOPE in identity.scopes:
        return Health(conditions.AUTHENTICATED, f"ScaiVault accepts the credentials of {who} with {READ_SCOPE}", status)
    scopes = ", ".join(identity.scopes) or "none"
    return Health(conditions.MISSING_SCOPE, f"the token of {who} lacks the scope {READ_SCOPE} (its scopes: {scopes}); "
                  "give it the scope or use another token", status)  # fmt: skip


def health_from_error(error: ScaiVaultError) -> Health:
    """whoami failed (or nothing could be sent): why, in the connection's terms."""
    failure = conditions.classify(error)
    if isinstance(error, ConfigurationError):
        return Health(conditions.INVALID_SPEC, failure.message)
    if isinstance(error, UnauthenticatedError):
        return Health(conditions.UNAUTHORIZED, failure.message)
    if isinstance(error, ForbiddenError):
        return Health(conditions.MISSING_SCOPE, failure.message)
    if failure.reason == conditions.INVALID_SPEC:  # e.g. a tokenUrl that is no token endpoint
        return Health(conditions.INVALID_SPEC, failure.message)
    return Health(conditions.UNREACHABLE, failure.message)


def health_from_breaker(breaker: Breaker, known: Health | None) -> Health | None:
    """While the breaker is open, its failure says it all (no request); None while it is closed."""
    failure = breaker.failure
    if not breaker.is_open or failure is None:
        return None
    identity = known.identity if known is not None else None
    if failure.reason == conditions.UNAUTHORIZED:
        return Health(conditions.UNAUTHORIZED, failure.message, identity)
    if failure.reason == conditions.FORBIDDEN:
        return Health(conditions.MISSING_SCOPE, failure.message, identity)
    return Health(conditions.UNREACHABLE, failure.message, identity)


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


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _trusted(conn: Connection) -> Health | None:
    """The health the stored status reports, when it was found for this generation and was good: trusted at start
    as a VaultSecret's Ready is (a token that stopped working shows as a 401, which opens the breaker)."""
    status = conn.status
    ready = conditions.ready_of(status)
    reason, message = ready.get("reason"), ready.get("message")
    identity = status.get("identity")
    if reason not in (conditions.AUTHENTICATED, conditions.MISSING_SCOPE) or not isinstance(message, str):
        return None
    if conn.generation is None or status.get("observedGeneration") != conn.generation:
        return None
    return Health(reason, message, dict(identity) if isinstance(identity, Mapping) else None)


def _breaker_moved(stored: Mapping[str, Any], breaker: Breaker) -> bool:
    if breaker.failure is not None:
        return stored.get("state") != OPEN or stored.get("reason") != breaker.failure.reason
    return stored.get("state") != CLOSED


def needs_write(status: Mapping[str, Any], conn: Connection, health: Health) -> bool:
    """Whether ``status`` (as stored) misses a hard change: the Ready condition, identity, observedGeneration, or a
    transition of the breaker."""
    ready = conditions.ready_of(status)
    if (ready.get("status"), ready.get("reason"), ready.get("message")) != (
        "True" if health.ready else "False",
        health.reason,
        conditions.clip(health.message),
    ):
        return True
    if health.identity is not None and dict(_mapping(status.get("identity"))) != dict(health.identity):
        return True
    if conn.generation is not None and status.get("observedGeneration") != conn.generation:
        return True
    return _breaker_moved(_mapping(status.get("breaker")), conn.breaker)


def desired(conn: Connection, health: Health, *, watched: int, polled_at: str | None, now: str) -> dict[str, Any]:
    """The whole status of ``conn`` as a merge patch (wrap as ``{"status": ...}``)."""
    status = "True" if health.ready else "False"
    previous = conditions.ready_of(conn.status)
    since = previous.get("lastTransitionTime") if previous.get("status") == status else None
    ready: dict[str, Any] = {"type": conditions.READY, "status": status, "reason": health.reason,
                             "message": conditions.clip(health.message),
                             "lastTransitionTime": since if isinstance(since, str) else now}  # fmt: skip
    if conn.generation is not None:
        ready["observedGeneration"] = conn.generation
    stored_breaker = conn.status.get("breaker")
    patch: dict[str, Any] = {
        "conditions": [ready],
        "watchedPaths": watched,
        "breaker": breaker_status(conn.breaker, previous=_mapping(stored_breaker) or None, now=now),
    }
    if health.identity is not None:
        patch["identity"] = dict(health.identity)
    if polled_at is not None:
        patch["lastPollAt"] = polled_at
    if conn.generation is not None:
        patch["observedGeneration"] = conn.generation
    return patch


class StatusWriter:
    """Keeps connections' stored status in line with their health and breakers: one write per change, plus a
    refresh of the soft fields at most every ``refresh`` seconds."""

    def __init__(
        self,
        kube: Kube,
        connections: Connections,
        metrics: Metrics,
        *,
        retry_delay: float,
        watched: Callable[[ConnKey], int] = lambda _: 0,
        polled_at: Callable[[ConnKey], str | None] = lambda _: None,
        refresh: float = DEFAULT_REFRESH,
        paths_refresh: float = DEFAULT_PATHS_REFRESH,
        now: Callable[[], str] = conditions.now_rfc3339,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        #: False on every shard but the first (``sharding.Shard.writes_connection_status``): one writer per status.
        self.enabled = enabled
        self._kube = kube
        self._connections = connections
        self._metrics = metrics
        self._retry_delay = retry_delay
        self._watched = watched
        self._polled_at = polled_at
        self._refresh = refresh
        self._paths_refresh = paths_refresh
        self._now = now
        self._clock = clock
        self._pending: dict[ConnKey, asyncio.Task[None]] = {}
        self._retries: dict[ConnKey, asyncio.TimerHandle] = {}
        #: The last health found per connection, for the Connection object it was found for (a new spec is a new
        #: object: checked again).
        self._health: dict[ConnKey, tuple[Connection, Health]] = {}
        self._written_at: dict[ConnKey, float] = {}  # monotonic time of the last write
        self._beat: asyncio.Task[None] | None = None
        self._again: set[ConnKey] = set()
        self.writes = 0
        self.whoami_requests = 0

    def health(self, key: ConnKey) -> Health | None:
        item = self._health.get(key)
        return item[1] if item is not None else None

    def ready_samples(self) -> Iterable[tuple[Mapping[str, str], float]]:
        """The ``connection_ready`` gauge: 1 while Authenticated, else 0, labelled with the reason."""
        for conn, health in self._health.values():
            if self._connections.get(conn.key) is conn:
                yield {"connection": conn.label, "reason": health.reason}, 1.0 if health.ready else 0.0

    def soon(self, conn: Connection) -> None:
        """Check ``conn`` (by key: the object may be replaced meanwhile) in a task of its own; one at a time."""
        if not self.enabled:
            return
        if conn.key in self._pending:
            self._again.add(conn.key)  # the running task looks once more when it is done
            return
        task = asyncio.create_task(self._write(conn.key), name=f"connection-status-{conn.key}")
        self._pending[conn.key] = task
        task.add_done_callback(lambda _: self._pending.pop(conn.key, None))

    def heartbeat(self) -> None:
        """Refresh the soft fields of connections last written more than ``refresh`` seconds ago (a connection
        whose fields did not move is not written)."""
        for conn in self._connections.all():
            if self._soft_due(conn):
                self.soon(conn)

    def start(self) -> None:
        """Run ``heartbeat`` every ``paths_refresh / 3`` seconds (10 s by default) until ``aclose``."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(min(self._paths_refresh / 3, self._refresh / 5))
                self.heartbeat()

        if self._beat is None and self.enabled:
            self._beat = asyncio.create_task(beat(), name="connection-status-heartbeat")

    def forget(self, key: ConnKey) -> None:
        self._health.pop(key, None)
        self._written_at.pop(key, None)

    async def _find_health(self, conn: Connection) -> Health:
        if conn.spec is None:
            return Health(conditions.INVALID_SPEC, f"{conn.display} is invalid: {conn.error}")
        cached = self._health.get(conn.key)
        known = cached[1] if cached is not None and cached[0] is conn else None
        if known is None:
            known = _trusted(conn)  # a warm restart: the stored health of this generation, without a request
        derived = health_from_breaker(conn.breaker, known)
        if derived is not None:
            return derived
        if known is not None and known.reason in (conditions.AUTHENTICATED, conditions.MISSING_SCOPE):
            return known  # checked for this spec; the breaker did not say otherwise since
        if known is not None and known.reason == conditions.UNREACHABLE and known.identity is not None:
            return Health(conditions.AUTHENTICATED, f"ScaiVault answers again; {known.identity.get('identityId')} "
                          f"was accepted with {READ_SCOPE}", known.identity)  # fmt: skip
        try:
            client = await self._connections.client(conn)
            self.whoami_requests += 1
            self._metrics.inc("backend_requests_total", {"connection": conn.label, "call": "whoami"})
            return health_from_identity(await client.whoami())
        except ScaiVaultError as exc:
            return health_from_error(exc)

    async def _write(self, key: ConnKey) -> None:
        await asyncio.sleep(0)  # let the transition's other reactions run first
        while True:  # a change told while this task ran is looked at right after it
            self._again.discard(key)
            conn = self._connections.get(key)
            if conn is None:
                return
            health = await self._find_health(conn)
            if self._connections.get(key) is not conn:
                continue  # replaced while whoami was out: check the new one
            self._health[key] = (conn, health)
            due = needs_write(conn.status, conn, health) or self._soft_due(conn)
            if due and not await self._put(key, conn, health):
                return
            if key not in self._again:
                return

    async def _put(self, key: ConnKey, conn: Connection, health: Health) -> bool:
        """Write the status; False when the write failed (it is retried later)."""
        patch = desired(conn, health, watched=self._watched(key), polled_at=self._polled_at(key), now=self._now())
        kind, namespace, name = key
        try:
            await self._kube.patch_connection_status(kind, namespace or None, name, patch)
        except KubeError as exc:
            logger.warning("cannot write the status of %s: %s; trying again in %.0fs", conn.display, exc,
                           self._retry_delay)  # fmt: skip
            self._retry_later(key)
            return False
        except Exception:  # a bug must not end as an exception nobody retrieves from this task
            logger.exception("writing the status of %s failed unexpectedly", conn.display)
            self._retry_later(key)
            return False
        self.writes += 1
        self._written_at[key] = self._clock()
        self._metrics.inc("connection_status_writes_total")
        before = conditions.ready_of(conn.status).get("reason")
        conn.status = merge_patch(conn.status, patch)
        if before != health.reason:
            level = logging.INFO if health.ready else logging.WARNING
            logger.log(level, "%s: Ready %s (%s)", conn.display, "True" if health.ready else "False",
                       health.reason)  # fmt: skip
        return True

    def _soft_due(self, conn: Connection) -> bool:
        """A soft field moved, and the last write is old enough: ``paths_refresh`` seconds for ``watchedPaths``
        (VaultSecrets came or went), ``refresh`` for ``lastPollAt`` alone (it moves with every poll). Never while
        the breaker is open (the status says so, and nothing polls)."""
        written = self._written_at.setdefault(conn.key, self._clock())  # first sight: counts as a write
        if conn.breaker.is_open:
            return False
        age = self._clock() - written
        if age >= self._paths_refresh and conn.status.get("watchedPaths") != self._watched(conn.key):
            return True
        polled = self._polled_at(conn.key)
        return age >= self._refresh and polled is not None and conn.status.get("lastPollAt") != polled

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
        if self._beat is not None:
            tasks.append(self._beat)
            self._beat = None
        await cancel_and_wait(tasks)
