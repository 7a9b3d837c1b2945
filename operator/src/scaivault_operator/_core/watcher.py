"""Version watchers: one loop per connection that notices new versions with paged lists, not per-object GETs.

Owned here: when to poll and what to list. Each poll lists the fewest prefixes that cover the paths of the
unpinned VaultSecrets on the connection and the ``dataFrom`` prefixes of those with several sources
(``covering_prefixes``, pure), pages through them, and hands the versions (and, per ``dataFrom`` prefix, every
secret listed under it with its tags) to the registry, which marks the VaultSecrets that are behind — each page's
versions as the page arrives, what only the whole list can tell (a path gone, the VaultSecrets with sources) at
its end. A new
version therefore costs ceil(listed / page size) list requests per poll plus one GET per (path, version) — never
a request per VaultSecret per interval. Pinned VaultSecrets are not listed at all. Polls are jittered (no
thundering herd).

Failures (issue 10's budget): a poll stops at its first failed list request. A 401, a 403 on every prefix, or an
outage (5xx, 429, timeout, connection error) opens the connection's breaker (``breaker.Breaker``); while it is open
the watcher sleeps until the breaker's ``retryAt`` and its next poll is the single probe (a connection with only
pinned VaultSecrets has nothing to list: its probe is one GET of a pinned path, whose data is dropped). A probe
that succeeds closes the breaker, and runtime re-syncs what the outage marked. An answer the operator cannot
understand does not open the breaker (one malformed list must not hold every sync of the connection): the watcher
backs off its own polls on the same schedule instead.

Metrics: the moment a poll's list shows a new version of a path whose VaultSecrets hold an older one is noted
(``Registry.first_seen``, on this watcher's clock — the runtime's); ``sync`` observes ``propagation_seconds`` from it
when it writes a Secret holding that version.

Started and stopped by ``runtime`` as connections come and go.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable

from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import (
    APIError,
    ConfigurationError,
    ForbiddenError,
    NotFoundError,
    ResponseError,
    ScaiVaultError,
    TransientError,
    UnauthenticatedError,
)
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Connection, Connections
from scaivault_operator._logic import conditions
from scaivault_operator._logic.breaker import Backoff
from scaivault_operator._logic.composite import Composite, Listed
from scaivault_operator._logic.registry import ConnKey, Priority, Registry, SourceKey, Unit

__all__ = ["VersionWatcher", "covering_prefixes"]

logger = logging.getLogger(__name__)

#: The shortest sleep between two looks at an open breaker (its ``remaining`` may round to 0).
_MIN_WAIT = 0.05


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
    """``prefixes`` in order, without those below a kept directory prefix (``a/`` covers ``a/b/``, not ``ab/``).

    A prefix's covering directories are its own leading parts up to a ``/``: looked up in a set, so this is linear
    in the number of prefixes (times their depth), not quadratic — at 10,000 VaultSecrets in their own directories
    a poll's prefixes take milliseconds, where comparing every pair took half a minute of the event loop.
    """
    kept: list[str] = []
    directories: set[str] = set()
    for prefix in sorted(prefixes):
        ends = [i for i, char in enumerate(prefix) if char == "/"]
        if any(prefix[: i + 1] in directories for i in ends):
            continue
        kept.append(prefix)
        if prefix.endswith("/"):
            directories.add(prefix)
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
        schedule: Callable[[Unit, int], None],
        on_breaker: Callable[[Connection, bool], None],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn_key = conn_key
        self._connections = connections
        self._registry = registry
        self._settings = settings
        self._schedule = schedule
        #: Told of the breaker's transitions (opened: True; closed: False) and of a configuration fixed (False).
        self._on_breaker = on_breaker
        self._metrics = metrics
        self._clock = clock
        #: Polls that sent requests (a probe is one; a poll skipped while the breaker is open is not).
        self.polls = 0
        self.list_requests = 0
        #: When a poll last succeeded (RFC 3339): the connection's ``status.lastPollAt`` (``connstatus``).
        self.last_success_at: str | None = None
        self._forbidden: dict[str, float] = {}  # prefix -> monotonic time before which it is not listed again
        #: The last poll failed on the connection's configuration (e.g. a token Secret missing or not labelled):
        #: its users report InvalidSpec and retry slowly, so the first poll that works re-syncs them.
        self._misconfigured = False
        #: Polls in a row whose answer could not be understood (they back off without opening the breaker).
        self._garbled = 0
        self._backoff = Backoff(settings.retry_base * 2.5, settings.retry_max)
        self._rng = random.Random(random.random())  # seeded from the global source (repeatable simulations)
        self._covered: tuple[set[str], list[str]] = (set(), [])  # the last followed paths and prefixes, and theirs

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
        """One poll (or, while the breaker is open and due, the probe). Returns the delay until the next one."""
        conn = self._connections.get(self.conn_key)
        if conn is None or conn.spec is None:
            return min(self._interval(), 1.0)
        breaker = conn.breaker
        paths = self._registry.followed_paths(self.conn_key)
        wholes = self._registry.followed_prefixes(self.conn_key)
        pinned = self._pinned_probe() if not paths and not wholes and breaker.is_open else None
        if not paths and not wholes and pinned is None:
            # Nothing to follow yet (e.g. just started: the VaultSecrets are still arriving): look again soon, so
            # a warm restart learns what moved while it was down within a second, not a whole interval.
            return min(self._interval(), 1.0)
        if not breaker.begin_probe():
            return max(breaker.remaining(), _MIN_WAIT)  # open: sleep until its retryAt, then probe
        self.polls += 1
        seen: set[str] = set()  # the paths whose new versions were handed over page by page
        # While the breaker is closed, what a page shows is acted on at once: a path on the last of 20 pages is not
        # read a whole list later (propagation, issue 14). A probe hands nothing over until it has succeeded.
        early = None if breaker.probing else functools.partial(self._observe_page, seen)
        try:
            if pinned is not None:
                await self._probe_pinned(conn, pinned)
                versions: dict[str, int | None] = {}
                stamps: dict[str, int] = {}
                listings: dict[str, dict[str, Listed]] = {}
            else:
                versions, stamps, listings = await self._list(conn, paths, wholes, on_page=early)
        except ScaiVaultError as exc:
            return self._failed(conn, exc)
        self._garbled = 0
        self.last_success_at = conditions.now_rfc3339()
        if breaker.reset() or self._misconfigured:
            self._on_breaker(conn, False)  # closed again, or fixed: re-sync what the outage marked
        self._misconfigured = False
        rest = {path: version for path, version in versions.items() if path not in seen}  # the gone ones, mostly
        self._observe(rest, stamps, listings)
        return self._interval()

    def _observe(
        self,
        versions: dict[str, int | None],
        stamps: dict[str, int],
        listings: dict[str, dict[str, Listed]] | None = None,
        *,
        partial: bool = False,
    ) -> None:
        # ``now``: a version that moved starts its propagation clock (``propagation_seconds``, observed by ``sync``).
        moved = self._registry.observe_versions(self.conn_key, versions, stamps, now=self._clock(), listings=listings,
                                                partial=partial)  # fmt: skip
        for source in moved:
            self._schedule(source, Priority.VERSION)

    def _observe_page(self, seen: set[str], versions: dict[str, int | None], stamps: dict[str, int]) -> None:
        """One page: the single-path VaultSecrets behind go at once; those with sources wait for the whole list."""
        seen.update(versions)
        self._observe(versions, stamps, partial=True)

    def _failed(self, conn: Connection, exc: ScaiVaultError) -> float:
        """A poll failed: open (or keep open) the breaker, or back off this watcher's polls; the next delay."""
        failure = conditions.classify(exc)
        self._metrics.inc("backend_errors_total", {"connection": conn.label, "reason": failure.reason})
        breaker = conn.breaker
        if isinstance(exc, UnauthenticatedError | ForbiddenError | TransientError) or breaker.probing:
            probe = breaker.probing
            changed = breaker.trip(failure, floor=conn.poll_seconds)
            level = logging.WARNING if changed else logging.INFO
            logger.log(level, "%s: %s failed (%s); no request on this connection for %.0fs", conn.display,
                       "the probe" if probe else "listing", failure.reason, breaker.remaining())  # fmt: skip
            if changed:
                self._on_breaker(conn, True)
            return max(breaker.remaining(), _MIN_WAIT)
        self._misconfigured = isinstance(exc, ConfigurationError)
        if self._misconfigured:  # nothing was sent (e.g. the token Secret is missing): look again as scheduled
            logger.warning("%s: listing failed (%s); next poll as scheduled", conn.display, failure.message)
            return self._interval()
        self._garbled += 1
        delay = self._backoff.delay(self._garbled, self._rng, floor=conn.poll_seconds)
        logger.warning("%s: listing failed (%s); next poll in %.0fs", conn.display, failure.message, delay)
        return delay

    def _pinned_probe(self) -> SourceKey | None:
        """A pinned source of the connection with a user that is not denied: what the probe reads when the
        connection has nothing to list."""
        sources = [s for s in self._registry.sources_of(self.conn_key) if not isinstance(s, Composite)]
        for source in sorted(sources, key=lambda s: (s[1], s[2] or 0)):
            if source[2] is not None and not all(
                entry.reason == conditions.POLICY_DENIED for entry in self._registry.members(source)
            ):
                return source
        return None

    async def _probe_pinned(self, conn: Connection, source: SourceKey) -> None:
        """One GET of a pinned path as the probe; its data is dropped at once. A 404 or a 403 (a ScaiVault policy on
        that path) also means ScaiVault answers: the outage is over (a pinned-only connection is never opened for
        Forbidden, which only a 403 on every listed prefix does)."""
        client = await self._connections.client(conn)
        self._metrics.inc("backend_requests_total", {"connection": conn.label, "call": "read"})
        try:
            await client.read(source[1], source[2])
        except (NotFoundError, ForbiddenError):
            return

    async def _list(
        self,
        conn: Connection,
        paths: set[str],
        wholes: set[str],
        *,
        on_page: Callable[[dict[str, int | None], dict[str, int]], None] | None = None,
    ) -> tuple[dict[str, int | None], dict[str, int], dict[str, dict[str, Listed]]]:
        """``{path: current version or None when gone}`` for the followed paths that could be listed,
        ``{path: updated_at as Unix seconds}`` for those the list dated, and for each followed ``dataFrom`` prefix
        (``wholes``) that could be listed, every secret under it: ``{prefix: {path: Listed}}``. ``on_page`` is
        given each page's followed paths (versions and stamps) as soon as the page arrives.

        A 403 on one prefix (a ScaiVault policy on part of the tree) pauses that prefix for ``forbidden_retry``
        and hands its paths to their own reads once, which report Forbidden per VaultSecret; only when every
        prefix is refused is it the token's scope, and the error goes up to trip the connection's breaker.
        """
        client = await self._connections.client(conn)
        found: dict[str, int | None] = dict.fromkeys(paths)
        stamps: dict[str, int] = {}
        listings: dict[str, dict[str, Listed]] = {whole: {} for whole in wholes}
        followed = paths | wholes
        if followed != self._covered[0]:  # the same paths as last time (the usual case): the same prefixes
            self._covered = (followed, covering_prefixes(followed, self._settings.max_list_prefixes))
        prefixes = self._covered[1]
        now = self._clock()
        refused: list[str] = []
        error: ForbiddenError | None = None
        for prefix in prefixes:
            if self._forbidden.get(prefix, 0.0) > now:
                refused.append(prefix)
                continue
            try:
                async for page in client.list_secrets(prefix, page_size=self._settings.page_size):
                    self._count_list(conn)
                    page_versions: dict[str, int | None] = {}
                    page_stamps: dict[str, int] = {}
                    for item in page.secrets:
                        if item.path in found:
                            found[item.path] = page_versions[item.path] = item.version
                            if item.updated_at is not None:
                                stamps[item.path] = page_stamps[item.path] = int(item.updated_at.timestamp())
                        for whole, listing in listings.items():
                            if item.path.startswith(whole):
                                listing[item.path] = Listed.of(item)
                    if on_page is not None and page_versions:
                        on_page(page_versions, page_stamps)
            except ScaiVaultError as exc:
                if isinstance(exc, APIError | ResponseError):  # sent and failed (any but a 403 stops the poll)
                    self._count_list(conn)
                if not isinstance(exc, ForbiddenError):
                    raise
                error = exc
                if prefix not in self._forbidden:
                    self._hand_over(conn, [path for path in followed if path.startswith(prefix)])
                self._forbidden[prefix] = now + self._settings.forbidden_retry
                refused.append(prefix)
            else:
                self._forbidden.pop(prefix, None)
        if error is not None and len(refused) == len(prefixes):
            raise error
        listed = {path: version for path, version in found.items() if not any(path.startswith(p) for p in refused)}
        listings = {whole: items for whole, items in listings.items() if not any(whole.startswith(p) for p in refused)}
        return listed, stamps, listings

    def _count_list(self, conn: Connection) -> None:
        self.list_requests += 1
        self._metrics.inc("backend_requests_total", {"connection": conn.label, "call": "list"})

    def _hand_over(self, conn: Connection, paths: list[str]) -> None:
        logger.warning("%s: listing %d followed path(s) was refused (403); each is read on its own", conn.display,
                       len(paths))  # fmt: skip
        for path in paths:
            source: SourceKey = (self.conn_key, path, None)
            members = self._registry.members(source)
            for entry in members:
                self._registry.mark_dirty(entry.key, Priority.RETRY)
            if members:
                self._schedule(source, Priority.RETRY)
            # VaultSecrets with sources that follow it (a path, or a dataFrom prefix): their syncs report it.
            users = set(self._registry.composite_paths.get((self.conn_key, path), ()))
            users |= self._registry.composite_prefixes.get((self.conn_key, path), set())
            for key in sorted(users):
                self._registry.mark_dirty(key, Priority.RETRY)
                self._schedule(Composite(key), Priority.RETRY)
