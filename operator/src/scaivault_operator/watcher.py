"""Version watchers: one loop per connection that notices new versions with paged lists, not per-object GETs.

Owned here: when to poll and what to list. Each poll lists the fewest prefixes that cover the paths of the
unpinned VaultSecrets on the connection (``covering_prefixes``, pure), pages through them, and hands the
versions to the registry, which marks the VaultSecrets that are behind. A new version therefore costs
ceil(listed / page size) list requests per poll plus one GET per (path, version) — never a request per
VaultSecret per interval. Pinned VaultSecrets are not listed at all. Polls are jittered (no thundering herd),
and a 401/403 on the list trips the connection's breaker instead of being retried hot.

Started and stopped by ``runtime`` as connections come and go.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable

from . import conditions
from .connections import Connection, Connections
from .metrics import Metrics
from .registry import ConnKey, Priority, Registry, SourceKey
from .scaivault import ConfigurationError, ForbiddenError, ScaiVaultError, UnauthenticatedError
from .settings import OperatorSettings

__all__ = ["VersionWatcher", "covering_prefixes"]

logger = logging.getLogger(__name__)


def covering_prefixes(paths: Iterable[str], max_prefixes: int | None = None) -> list[str]:
    """The parent "directories" of ``paths`` (``a/b/c`` → ``a/b/``), minus any covered by a shorter one.

    A top-level path (no ``/``) is its own prefix. Listing a prefix returns everything below it, so ``a/``
    makes ``a/b/`` redundant. With ``max_prefixes``, sibling prefixes are merged into their deepest common parent
    until at most that many remain (the root ``""`` — everything — as the last resort): thousands of paths in
    their own directories then cost a few paged lists instead of a list each.
    """
    kept = _without_covered({path[: path.rfind("/") + 1] or path for path in paths})
    while max_prefixes is not None and len(kept) > max(1, max_prefixes):
        groups = Counter(_parent_dir(prefix) for prefix in kept)
        shared = [parent for parent, count in groups.items() if count >= 2 and parent]
        if not shared:
            return [""]
        target = max(shared, key=lambda parent: (len(parent), groups[parent], parent))
        kept = _without_covered({prefix for prefix in kept if not prefix.startswith(target)} | {target})
    return kept


def _without_covered(prefixes: Iterable[str]) -> list[str]:
    kept: list[str] = []
    for prefix in sorted(prefixes):
        if not any(prefix.startswith(shorter) and shorter.endswith("/") for shorter in kept):
            kept.append(prefix)
    return kept


def _parent_dir(prefix: str) -> str:
    """``a/b/`` → ``a/``; ``a/`` and ``top`` → ``""`` (the root)."""
    trimmed = prefix[:-1] if prefix.endswith("/") else prefix
    return trimmed[: trimmed.rfind("/") + 1]


class VersionWatcher:
    """Polls one connection's list endpoint and schedules the sources whose version moved."""

    def __init__(
        self,
        conn_key: ConnKey,
        connections: Connections,
        registry: Registry,
        settings: OperatorSettings,
        schedule: Callable[[SourceKey, int], None],
        on_breaker: Callable[[Connection, bool], None],
        metrics: Metrics,
    ) -> None:
        self.conn_key = conn_key
        self._connections = connections
        self._registry = registry
        self._settings = settings
        self._schedule = schedule
        self._on_breaker = on_breaker
        self._metrics = metrics
        self.polls = 0
        self.list_requests = 0
        self._forbidden: dict[str, float] = {}  # prefix -> monotonic time before which it is not listed again
        #: The last poll failed on the connection's configuration (e.g. a token Secret missing or not labelled):
        #: its users report InvalidSpec and retry slowly, so the first poll that works re-syncs them.
        self._misconfigured = False

    async def run(self) -> None:
        """Poll forever: at once, then every jittered pollInterval (or the breaker's backoff)."""
        delay = 0.0
        while True:
            await asyncio.sleep(delay)
            try:
                delay = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not silently stop version watching
                logger.exception("version watcher of %s failed; retrying", self.conn_key)
                delay = self._interval()

    def _interval(self) -> float:
        conn = self._connections.get(self.conn_key)
        seconds = conn.spec.poll_seconds if conn and conn.spec else 30.0
        jitter = self._settings.poll_jitter
        return seconds * random.uniform(1 - jitter, 1 + jitter)

    async def poll_once(self) -> float:
        """One poll. Returns the delay until the next one."""
        conn = self._connections.get(self.conn_key)
        paths = self._registry.followed_paths(self.conn_key)
        if conn is None or conn.spec is None or not paths:
            # Nothing to follow yet (e.g. just started: the VaultSecrets are still arriving): look again soon, so
            # a warm restart learns what moved while it was down within a second, not a whole interval.
            return min(self._interval(), 1.0)
        if not conn.breaker.allow():
            return max(self._interval(), conn.breaker.remaining())
        self.polls += 1
        try:
            versions = await self._list(conn, paths)
        except ScaiVaultError as exc:
            failure = conditions.classify(exc)
            self._metrics.inc("backend_errors_total", {"connection": conn.label, "reason": failure.reason})
            if isinstance(exc, UnauthenticatedError | ForbiddenError) or conn.breaker.probing:
                conn.breaker.trip(failure)
                logger.warning("%s: listing failed (%s); pausing requests for %.0fs", conn.display,
                               failure.reason, conn.breaker.remaining())  # fmt: skip
                self._on_breaker(conn, True)
                return max(self._interval(), conn.breaker.remaining())
            self._misconfigured = isinstance(exc, ConfigurationError)
            logger.warning("%s: listing failed (%s); next poll as scheduled", conn.display, failure.message)
            return max(self._interval(), failure.retry_after or 0.0)
        if conn.breaker.reset() or self._misconfigured:
            self._on_breaker(conn, False)  # closed again, or fixed: re-sync what the outage marked
        self._misconfigured = False
        for source in self._registry.observe_versions(self.conn_key, versions):
            self._schedule(source, Priority.VERSION)
        return self._interval()

    async def _list(self, conn: Connection, paths: set[str]) -> dict[str, int | None]:
        """``{path: current version or None when gone}`` for the followed paths that could be listed.

        A 403 on one prefix (a ScaiVault policy on part of the tree) pauses that prefix for ``forbidden_retry``
        and hands its paths to their own reads once, which report Forbidden per VaultSecret; only when every
        prefix is refused is it the token's scope, and the error goes up to trip the connection's breaker.
        """
        client = await self._connections.client(conn)
        found: dict[str, int | None] = dict.fromkeys(paths)
        prefixes = covering_prefixes(paths, self._settings.max_list_prefixes)
        now = time.monotonic()
        refused: list[str] = []
        error: ForbiddenError | None = None
        for prefix in prefixes:
            if self._forbidden.get(prefix, 0.0) > now:
                refused.append(prefix)
                continue
            try:
                async for page in client.list_secrets(prefix, page_size=self._settings.page_size):
                    self.list_requests += 1
                    self._metrics.inc("backend_requests_total", {"connection": conn.label, "call": "list"})
                    for item in page.secrets:
                        if item.path in found:
                            found[item.path] = item.version
            except ForbiddenError as exc:
                error = exc
                if prefix not in self._forbidden:
                    self._hand_over(conn, [path for path in paths if path.startswith(prefix)])
                self._forbidden[prefix] = now + self._settings.forbidden_retry
                refused.append(prefix)
            else:
                self._forbidden.pop(prefix, None)
        if error is not None and len(refused) == len(prefixes):
            raise error
        return {path: version for path, version in found.items() if not any(path.startswith(p) for p in refused)}

    def _hand_over(self, conn: Connection, paths: list[str]) -> None:
        logger.warning("%s: listing %d followed path(s) was refused (403); each is read on its own", conn.display,
                       len(paths))  # fmt: skip
        for path in paths:
            source: SourceKey = (self.conn_key, path, None)
            for entry in self._registry.members(source):
                self._registry.mark_dirty(entry.key, Priority.RETRY)
            self._schedule(source, Priority.RETRY)
