"""The running operator: wires the registry, connections, work queue, workers, version watchers and ``sync``.

Owned here: lifecycle (start: index existing Secrets and connections, then start workers and the watch of our
Secrets; stop: cancel and close), the reactions to watch events, which only update the registry and queue work —
they never call ScaiVault themselves — and to a connection's breaker opening or closing (who re-syncs; the
connection's ``status.breaker`` through ``connstatus``). Kopf handlers (``handlers``) call the ``on_*`` methods
for VaultSecrets and connections, ``secretwatch`` calls ``on_secret``; tests drive them the same way. ``clock``
(monotonic seconds) is injectable so that tests can run an outage in virtual time.

Flow of a watch event to a written Secret::

    handlers.vaultsecret_event → Runtime.on_vaultsecret → Registry.upsert → WorkQueue.push(source)
    worker → Syncer.sync_source(source) → one GET → manifests.desired_secret → Kube create/patch → status
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from scaivault_operator._cogs.aiotasks import cancel_and_wait
from scaivault_operator._cogs.kube import Kube, KubeError
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Connection, Connections
from scaivault_operator._core.connstatus import StatusWriter
from scaivault_operator._core.rollout import Rollouts
from scaivault_operator._core.secretwatch import SecretWatch
from scaivault_operator._core.sync import Syncer
from scaivault_operator._core.watcher import VersionWatcher
from scaivault_operator._logic import conditions
from scaivault_operator._logic.composite import Composite
from scaivault_operator._logic.manifests import MANAGED_BY, MANAGED_BY_LABEL, MERGE_LABEL, MERGE_LABEL_VALUE
from scaivault_operator._logic.registry import (
    ConnKey,
    Priority,
    Registry,
    Release,
    Unit,
    deleting,
    entry_reason_label,
)
from scaivault_operator._logic.rollout import RolloutWindow
from scaivault_operator._logic.sharding import Shard
from scaivault_operator._logic.workqueue import WorkQueue

__all__ = ["Runtime"]

logger = logging.getLogger(__name__)

_LABEL_TTL = 30.0


class Runtime:
    """One per operator process."""

    def __init__(self, kube: Kube, settings: OperatorSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.settings = settings
        self._clock = clock
        self.registry = Registry()
        #: Which VaultSecrets this process serves (``--shard``, ``--selector``): the others are ignored.
        self.shard = Shard.of(settings.shard, settings.selector)
        self.metrics = Metrics()
        self.connections = Connections(kube, settings, self.metrics, clock=clock)
        self.queue: WorkQueue[Unit | Release | RolloutWindow] = WorkQueue(clock)
        self.rollouts = Rollouts(kube, self.registry, settings, self.metrics, self.schedule)
        self.syncer = Syncer(
            kube=kube,
            registry=self.registry,
            connections=self.connections,
            settings=settings,
            namespace_labels=self._namespace_labels,
            on_breaker=self._breaker_changed,
            metrics=self.metrics,
            clock=clock,
            on_data_changed=self.rollouts.note,
        )
        self.connection_status = StatusWriter(
            kube,
            self.connections,
            self.metrics,
            retry_delay=settings.retry_max,
            watched=lambda key: len(self.registry.followed_paths(key)) + len(self.registry.followed_prefixes(key)),
            polled_at=self._polled_at,
            clock=clock,
            enabled=self.shard.writes_connection_status
            if settings.connection_status is None
            else settings.connection_status,
        )
        self.metrics.gauge("queue_depth", lambda: [({}, float(len(self.queue)))])
        self.metrics.gauge("vaultsecrets", self._count_by_reason)
        self.metrics.gauge("breaker_open", self._breakers)
        self.metrics.gauge("breaker_retry_timestamp_seconds", self._breaker_retry_times)
        self.metrics.gauge("connection_ready", self.connection_status.ready_samples)
        self.metrics.gauge("vaultsecret_not_ready", lambda: [
            ({"namespace": namespace, "name": name, "reason": reason}, 1.0)
            for namespace, name, reason in self.registry.not_ready()
        ])  # fmt: skip
        self.watchers: dict[ConnKey, tuple[VersionWatcher, asyncio.Task[None]]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._labels: dict[str, tuple[float, Mapping[str, str] | None]] = {}
        self._started = False
        self._relist: asyncio.Task[None] | None = None  # the check of a re-list of the VaultSecret watch
        self._relist_seen: set[tuple[str, str]] = set()  # listed since the check began
        self._relist_again = False
        self._relist_last = 0.0  # loop time of the last listing event of a re-list
        self.syncs = 0
        self.secret_watch: SecretWatch | None = None  # from ``start``

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Learn what exists before any watch event arrives, so a warm restart costs no ScaiVault GETs."""
        await self._log_identity()
        namespaces = list(self.settings.namespaces)
        self.secret_watch = SecretWatch(self.kube, namespaces, {MANAGED_BY_LABEL: MANAGED_BY}, self.on_secret,
                                        timeout=self.settings.watch_server_timeout)  # fmt: skip
        secrets = await self.secret_watch.list_existing()  # where the watch of our Secrets starts
        # And the Secrets VaultSecrets merge their keys into (creationPolicy Merge): not ours, listed but not watched,
        # yet a warm restart trusts them as it trusts ours (one more paged list; a label selector has no "or").
        merged = SecretWatch(self.kube, namespaces, {MERGE_LABEL: MERGE_LABEL_VALUE}, self.on_secret)
        secrets += await merged.list_existing()
        secrets = [body for body in secrets if self.shard.owns_namespace(_namespace_of(body))]
        self.registry.index_secrets(secrets)
        for kind, body in await self.kube.list_connections(namespaces):
            await self.connections.upsert(kind, body)
            key: ConnKey = (kind, body["metadata"].get("namespace") or "", body["metadata"]["name"])
            self._ensure_watcher(key)
            self._check_status(key)  # a status.breaker left Open by a previous run is closed
        self._workers = [asyncio.create_task(self._worker(), name=f"sync-worker-{i}")
                         for i in range(self.settings.workers)]  # fmt: skip
        self.secret_watch.start()
        self._started = True
        self.connection_status.start()
        if self.settings.metrics_port:
            await self.metrics.serve(self.settings.metrics_host, self.settings.metrics_port, readiness=self.readiness)
        logger.info("started: %d managed Secrets, %d connections, %d workers; serving %s", len(secrets),
                    len(self.connections.keys()), len(self._workers), self.shard.describe())  # fmt: skip

    async def _log_identity(self) -> None:
        """One line at start: the API server's version and who it takes us for (names only, never a token)."""
        try:
            version = await self.kube.server_version()
        except KubeError as exc:
            logger.warning("the Kubernetes API server does not answer yet: %s", exc)
            return
        identity = await self.kube.whoami()
        if identity is None:
            logger.info("Kubernetes %s; identity unknown (SelfSubjectReview unavailable)", version)
        else:
            logger.info("Kubernetes %s; running as %s (groups: %s)", version, identity.username,
                        ", ".join(identity.groups) or "none")  # fmt: skip

    async def readiness(self) -> tuple[bool, str]:
        """Ready: start-up is done (Secrets and connections listed, workers running) and the API server answers
        now — the one Kopf watches through too (same ``KubeAccess``). Served on ``/readyz``."""
        if not self._started:
            return False, "starting"
        try:
            await self.kube.server_version()
        except KubeError as exc:
            return False, f"Kubernetes API server unreachable: {exc}"
        return True, "ok"

    async def stop(self) -> None:
        self._started = False
        tasks = self._workers + [task for _, task in self.watchers.values()]
        if self._relist is not None:
            tasks.append(self._relist)
            self._relist = None
        await cancel_and_wait(tasks)
        self._workers, self.watchers = [], {}
        if self.secret_watch is not None:
            await self.secret_watch.aclose()
        await self.connection_status.aclose()
        await self.connections.aclose()
        await self.metrics.close()

    # -- watch events (called by the Kopf handlers; ``on_secret`` by the Secret watch) ---------------------

    async def on_vaultsecret(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type != "DELETED" and not self.shard.owns(key[0], meta.get("labels") or {}):
            event_type = "DELETED"  # another shard's (or relabelled away): forgotten here, its Secret left alone
            if key not in self.registry.entries:
                return
            logger.info("VaultSecret %s/%s is served by another shard now; forgotten here", *key)
        if event_type == "DELETED":
            self.registry.remove(key)
            self.queue.discard(Release(key))
            return
        known = key in self.registry.entries
        if event_type is None and known and self._started:
            self._relisted(key)  # a listing event (type None) for an object seen before: Kopf listed again
        if deleting(body):
            # Being deleted (a MODIFIED event, or listed so at a start): never synced again. With our finalizer
            # (deletionPolicy Retain) its Secret is released and the finalizer removed, by a worker.
            if self.registry.mark_deleting(body):
                self.schedule(Release(key), Priority.NEW)
            return
        source = self.registry.upsert(body)
        entry = self.registry.entries[key]
        if entry.spec is None:
            self.registry.dirty.pop(key, None)
            failure = conditions.Failure(conditions.INVALID_SPEC, entry.spec_error or "invalid spec", transient=False)
            await self.syncer.report_failure(entry, failure)
        elif source is not None:
            self.schedule(source, self.registry.dirty.get(key, Priority.NEW))
        elif not known:
            # Trusted as in sync at a warm restart: only its Insecure condition may be stale (the connection
            # switched to or from plain HTTP while the operator was down). A status write, no sync.
            await self.syncer.refresh_insecure(entry)
            if key in self.registry.dirty and entry.source is not None:  # the write failed: retried by a sync
                self.schedule(entry.source, Priority.RETRY)

    def _relisted(self, key: tuple[str, str]) -> None:
        """Kopf listed the VaultSecrets again (after 410 Gone, or a watch that failed to resume). What was deleted
        meanwhile never gets a DELETED event: hold the entries not seen again, and list the VaultSecrets once
        ourselves — after Kopf's listing has been quiet for ``relist_quiet`` seconds — to forget those that are gone
        (``Registry.begin_relist``). Kopf delivers a re-list object by object: at 50,000 VaultSecrets a check per
        straggler listed everything again and again (issue 14's re-list storm)."""
        self._relist_last = asyncio.get_running_loop().time()
        if self._relist is None:
            self.registry.begin_relist()
            self._relist_seen = set()
            self._relist = asyncio.create_task(self._check_relist(), name="relist-check")
        elif key in self._relist_seen:
            self._relist_again = True  # listed twice since the check began: another re-list; check once more
        self._relist_seen.add(key)

    async def _relist_settled(self) -> None:
        """Return once Kopf's listing has been quiet for ``relist_quiet`` seconds: what it still delivers confirms
        entries, and the check should see all of it."""
        loop = asyncio.get_running_loop()
        while True:
            quiet = self._relist_last + self.settings.relist_quiet - loop.time()
            if quiet <= 0:
                return
            await asyncio.sleep(quiet)

    async def _check_relist(self) -> None:
        delay = self.settings.retry_base
        while True:
            await self._relist_settled()
            try:
                present = await self.kube.list_vaultsecret_uids(list(self.settings.namespaces))
            except KubeError as exc:
                logger.warning("cannot list VaultSecrets after a re-list: %s; retrying in %.0fs", exc, delay)
                await asyncio.sleep(max(delay, exc.retry_after or 0.0))
                delay = min(delay * 2, self.settings.retry_max)
                continue
            # Another shard's now (relabelled away while the watch was down): gone from here too.
            owned = {key: uid for key, (uid, labels) in present.items() if self.shard.owns(key[0], labels)}
            gone, runnable = self.registry.end_relist(owned)
            for key in gone:
                logger.info("VaultSecret %s/%s was deleted while the watch was down; forgotten", *key)
            for source, priority in runnable:
                self.schedule(source, priority)
            if not self._relist_again:
                break
            self._relist_again = False
            self._relist_seen = set()
            self.registry.begin_relist()
        self._relist, self._relist_seen = None, set()

    async def on_connection(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key: ConnKey = (kind, meta.get("namespace") or "", meta.get("name", ""))
        if event_type == "DELETED":
            await self.connections.remove(key)
            self.connection_status.forget(key)
            self._stop_watcher(key)
            self._resync(key, only_unready=False)
            return
        known = self.connections.get(key) is not None
        if await self.connections.upsert(kind, body):
            self._ensure_watcher(key)
            self._resync(key, only_unready=not known)
            self._check_status(key)  # a new spec has a new, closed breaker

    def on_secret(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        labels = (body.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
            return  # an API that ignores label selectors (the emulator) sends every Secret
        if not self.shard.owns_namespace(_namespace_of(body)):
            return  # another shard's namespace
        source = self.registry.observe_secret(event_type or "ADDED", body)
        if source is not None:
            self.schedule(source, Priority.DRIFT)

    # -- scheduling ---------------------------------------------------------------------------------------

    def schedule(self, source: Unit | Release | RolloutWindow, priority: int, delay: float = 0.0) -> None:
        self.queue.push(source, priority, delay)

    def _resync(self, conn: ConnKey, *, only_unready: bool) -> None:
        for source in self.registry.sources_of(conn):
            for entry in self.registry.members(source):
                if not only_unready or entry.ready != "True":
                    self.registry.mark_dirty(entry.key, Priority.RETRY)
                    self.schedule(source, Priority.RETRY)

    def _breaker_changed(self, conn: Connection, opened: bool) -> None:
        """A transition of the connection's breaker (or, closed: its configuration was fixed).

        Opened on a refused token or scope: every user reports it (no request goes out while it is open). Opened
        on an outage: nobody is touched — a VaultSecret in sync keeps its Secret and its Ready; the jobs that run
        meanwhile report the backoff. Closed: the users that are not Ready re-sync (those whose version did not
        move only get their status back, without a GET); the probe's list schedules the versions that moved.
        """
        if opened:
            if conn.breaker.just_opened:
                self.metrics.inc("breaker_opens_total", {"connection": conn.label})
            if not conn.breaker.outage_open:
                self._resync(conn.key, only_unready=False)
        else:
            self._resync(conn.key, only_unready=True)
        self.connection_status.soon(conn)

    def _polled_at(self, key: ConnKey) -> str | None:
        """When the connection's version watcher last polled successfully (RFC 3339), if it has."""
        item = self.watchers.get(key)
        return item[0].last_success_at if item is not None else None

    def _check_status(self, key: ConnKey) -> None:
        conn = self.connections.get(key)
        if conn is not None:
            self.connection_status.soon(conn)

    def _ensure_watcher(self, key: ConnKey) -> None:
        if key in self.watchers:
            return
        watcher = VersionWatcher(key, self.connections, self.registry, self.settings, self.schedule,
                                 self._breaker_changed, self.metrics, clock=self._clock)  # fmt: skip
        self.watchers[key] = (watcher, asyncio.create_task(watcher.run(), name=f"version-watcher-{key}"))

    def _stop_watcher(self, key: ConnKey) -> None:
        item = self.watchers.pop(key, None)
        if item is not None:
            item[1].cancel()

    async def _worker(self) -> None:
        while True:
            source, waited = await self.queue.take()
            self.metrics.observe("queue_wait_seconds", waited)
            if isinstance(source, Release):
                try:
                    await self._release(source)
                finally:
                    self.queue.done(source)
                continue
            if isinstance(source, RolloutWindow):
                await self._roll_out(source)
                continue
            delay: float | None = None
            outcome = "error"
            try:
                self.syncs += 1
                delay = await self.syncer.sync_source(source)
                outcome = "done" if delay is None else "retry"
            except KubeError as exc:
                logger.warning("sync of %s failed: %s; retrying", _describe(source), exc)
                delay = self._requeue_members(source, max(self.settings.retry_base, exc.retry_after or 0.0))
            except Exception:
                logger.exception("sync of %s failed unexpectedly; retrying", _describe(source))
                delay = self._requeue_members(source, self.settings.retry_max)
            finally:
                self.queue.done(source)
                self.metrics.inc("syncs_total", {"outcome": outcome})
            refused = self.syncer.status_retry.pop(source, None)  # a status write was refused: not at once
            if refused is not None:
                delay = max(delay or 0.0, refused)
            pending = self.registry.pending(source)  # held members (a re-list being checked) come back later
            if delay is not None and pending is not None:
                self.schedule(source, Priority.RETRY, delay)
            elif pending is not None:
                self.schedule(source, pending)

    async def _roll_out(self, window: RolloutWindow) -> None:
        """Run a namespace's rollout window; a failed list runs it again later (its changes wait)."""
        delay: float | None = None
        try:
            delay = await self.rollouts.run(window)
        except Exception:
            logger.exception("rollout in namespace %s failed unexpectedly", window.namespace)
        finally:
            self.queue.done(window)
        if delay is not None:
            self.schedule(window, Priority.RETRY, delay)

    async def _release(self, item: Release) -> None:
        """Release the Secret of a deleted VaultSecret with deletionPolicy Retain and remove its finalizer; a failure
        is retried with backoff (the VaultSecret stays Terminating meanwhile)."""
        entry = self.registry.entries.get(item.key)
        if entry is None or not entry.deleting or not entry.finalized:
            return
        try:
            await self.syncer.release(entry)
            entry.failures = 0
            return
        except KubeError as exc:
            logger.warning("releasing the Secret of deleted VaultSecret %s/%s failed: %s; retrying", *item.key, exc)
            backoff = min(self.settings.retry_max, self.settings.retry_base * 2 ** min(entry.failures, 16))
            delay = max(exc.retry_after or 0.0, backoff)
        except Exception:
            logger.exception("releasing the Secret of deleted VaultSecret %s/%s failed unexpectedly; retrying",
                             *item.key)  # fmt: skip
            delay = self.settings.retry_max
        entry.failures += 1
        self.schedule(item, Priority.RETRY, delay)

    def _count_by_reason(self) -> list[tuple[dict[str, str], float]]:
        counts: dict[str, int] = {}
        for entry in self.registry.entries.values():
            reason = entry_reason_label(entry)
            counts[reason] = counts.get(reason, 0) + 1
        return [({"reason": reason}, float(n)) for reason, n in sorted(counts.items())]

    def _breakers(self) -> list[tuple[dict[str, str], float]]:
        return [({"connection": c.label}, 1.0 if c.breaker.is_open else 0.0) for c in self.connections.all()]

    def _breaker_retry_times(self) -> list[tuple[dict[str, str], float]]:
        wall = time.time()
        return [({"connection": c.label}, wall + c.breaker.remaining() if c.breaker.is_open else 0.0)
                for c in self.connections.all()]  # fmt: skip

    def _requeue_members(self, source: Unit, delay: float) -> float:
        """A job died half-way: its members lost their dirty mark in ``take_dirty``; give it back."""
        for entry in self.registry.members(source):
            self.registry.mark_dirty(entry.key, Priority.RETRY)
        return delay

    async def _namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        cached = self._labels.get(namespace)
        now = self._clock()
        if cached is not None and cached[0] > now:
            return cached[1]
        labels = await self.kube.namespace_labels(namespace)
        self._labels[namespace] = (now + _LABEL_TTL, labels)
        return labels


def _namespace_of(body: Mapping[str, Any]) -> str:
    namespace = (body.get("metadata") or {}).get("namespace")
    return namespace if isinstance(namespace, str) else ""


def _describe(unit: Unit) -> str:
    """A work unit in a log line: the source's path, or the VaultSecret with several sources."""
    return f"VaultSecret {unit.key[0]}/{unit.key[1]}" if isinstance(unit, Composite) else unit[1]
