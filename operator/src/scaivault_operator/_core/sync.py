"""One sync job: bring every dirty VaultSecret of one source to the source's current (or pinned) version.

Owned here: the flow from "this source needs work" to written Secrets and statuses. It reads as::

    entries  = registry.take_dirty(source)           # who needs this source now
    allowed  = the entries the connection's access rules permit     → PolicyDenied for the others
    secret   = one GET (path, version), unless the breaker is open  → held: the breaker's failure, no request
    for each allowed entry: build the Secret (pure), write it only if it differs, report status

A VaultSecret with several sources (``spec.sources``, ``spec.dataFrom``) is its own job (``composite.Composite``):
the secrets its dataFrom prefixes list (the watcher's last list; the first sync of a prefix lists it once), the
access rules on every path, then one read per source through ``SharedReads`` — one GET per (connection, path,
version) across every job —, ``composite.compose`` and the same write and report.

While the connection's breaker is open a job sends nothing: its VaultSecrets report the breaker's failure (during
an outage: ``conditions.backing_off``, naming when the next probe goes out) and are not retried on a timer — the
breaker's closing re-syncs every VaultSecret that is not Ready (``on_breaker``). A 401 on the GET opens the breaker;
so do transient failures (5xx, 429, timeouts, connection errors, answers that cannot be understood) of reads of
``Breaker.sources_to_trip`` different sources in a row. A failed read that does not open it is retried per source
(jittered exponential backoff).

Secret data lives only inside ``sync_source`` and is dropped when it returns. Every outcome goes through
``_report``, which writes the status only when it changed and posts an Event only on a transition (or when a
Secret was really written), so a sync that changes nothing makes no Kubernetes write at all.

Metrics: each job is one ``sync_duration_seconds``. A Secret written with a version the version watcher saw move
(``Registry.first_seen``) is one ``propagation_seconds`` (from that sighting, on the runtime's clock) and, when the
GET's answer dates the version (``updated_at``, not in the future), one ``source_propagation_seconds`` (wall clock).

Called by ``runtime``'s workers; returns the delay after which the source should run again, if any.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from scaivault_operator._cogs.api import VaultSecretSpec
from scaivault_operator._cogs.kube import Conflict, Kube, KubeError
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import (
    ConfigurationError,
    ForbiddenError,
    NotFoundError,
    ScaiVaultError,
    Secret,
    UnauthenticatedError,
)
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.connections import Connection, Connections
from scaivault_operator._core.reads import SharedReads
from scaivault_operator._logic import composite, conditions
from scaivault_operator._logic.breaker import Breaker
from scaivault_operator._logic.composite import Composite, Listed, Needed, Slot
from scaivault_operator._logic.manifests import (
    ANNOTATION_REVISION,
    ANNOTATION_VERSION,
    RETAIN_FINALIZER,
    Owner,
    SourceDataError,
    data_intact,
    desired_secret,
    merge_refusal,
    merge_secret_patch,
    merge_target_missing,
    merged_by_uid,
    needs_recreate,
    overwritten_keys,
    ownership,
    read_data_hash,
    release_patch,
    secret_data,
    secret_patch,
    target_refusal,
    unmerge_patch,
    wants_finalizer,
    with_finalizer,
    written_keys,
)
from scaivault_operator._logic.policy import check_access
from scaivault_operator._logic.registry import Entry, Priority, Registry, SecretInfo, SourceKey, Unit
from scaivault_operator._logic.templating import SourceInput, apply_template

__all__ = ["Syncer"]

#: A Secret's name is a DNS subdomain (253 characters).
MAX_SECRET_NAME = 253

logger = logging.getLogger(__name__)


class TargetConflictError(Exception):
    """The target Secret exists and may not be written: its message is ``manifests.target_refusal``'s (or
    ``merge_refusal``'s)."""

    reason = conditions.TARGET_CONFLICT


class TargetMissingError(TargetConflictError):
    """creationPolicy Merge and the target Secret does not exist: ``manifests.merge_target_missing``."""

    reason = conditions.TARGET_NOT_FOUND


@dataclass(frozen=True)
class _Written:
    """What ``_commit`` did: the Secret's name, whether it wrote, the data before (None: created), and what the entry
    held before (its version, spec and sources)."""

    name: str
    written: bool
    before: Mapping[str, Any] | None
    previous: tuple[int | None, VaultSecretSpec | None, dict[Slot, int] | None]
    after: Any  # the data written


@dataclass
class Syncer:
    kube: Kube
    registry: Registry
    connections: Connections
    settings: OperatorSettings
    namespace_labels: Callable[[str], Awaitable[Mapping[str, str] | None]]  # cached by runtime
    #: Told of the breaker's transitions caused here (opened: True); the watcher's probe closes it.
    on_breaker: Callable[[Connection, bool], None]
    metrics: Metrics
    #: Sources whose status write the API server refused, and how long to wait before the next try (the runtime's
    #: worker takes it out after the job: a refused write must not be retried at once, in a loop).
    status_retry: dict[Unit, float] = field(default_factory=dict)
    #: Monotonic seconds: the runtime's clock, which the version watchers note first sightings on.
    clock: Callable[[], float] = time.monotonic
    #: Unix seconds, for ``source_propagation_seconds`` (ScaiVault's ``updated_at``).
    wall_clock: Callable[[], float] = time.time
    #: Told when a sync changed the data of an existing Secret — a new version or a new spec, not a drift repair —
    #: with the data before (None: a new versioned Secret, ``target.immutable``) and after (base64, as in the
    #: Secret): the workload rollouts (``_core/rollout``).
    on_data_changed: (
        Callable[[Entry, VaultSecretSpec, str, Mapping[str, Any] | None, Mapping[str, Any]], None] | None
    ) = None
    #: One GET per (connection, path, version) across every job that needs it at once (``_core/reads``).
    reads: SharedReads = field(init=False)

    def __post_init__(self) -> None:
        self.reads = SharedReads(clock=self.clock, max_bytes=self.settings.source_cache_bytes)

    async def sync_source(self, source: Unit) -> float | None:
        """Run the source; return seconds until it should run again (retries), or None. One
        ``sync_duration_seconds`` observation, whatever the outcome."""
        started = self.clock()
        try:
            return await self._sync_source(source)
        finally:
            self.metrics.observe("sync_duration_seconds", max(0.0, self.clock() - started))

    async def _sync_source(self, source: Unit) -> float | None:
        taken = self.registry.take_dirty(source)
        if not taken:
            return None
        taken, retry = await self._apply_finalizers(taken)
        if not taken:
            return retry
        if isinstance(source, Composite):
            delay = await self._sync_composite(*taken[0])
        else:
            delay = await self._sync_taken(source, taken)
        return delay if retry is None or (delay is not None and delay < retry) else retry

    def _usable(self, key: tuple[str, str, str], field: str = "spec.connectionRef") -> Connection | conditions.Failure:
        """The connection ``key`` when it exists and is valid, else the failure its users report (the connection's
        arrival or change re-queues them); ``field`` names where the VaultSecret refers to it."""
        conn = self.connections.get(key)
        if conn is None:
            kind, namespace, name = key
            where = f" in namespace {namespace}" if namespace else ""
            return conditions.Failure(conditions.INVALID_SPEC, f"{kind} {name!r}{where} does not exist; create it "
                                      f"or fix {field}", transient=False)  # fmt: skip
        if conn.spec is None:  # invalid (e.g. plain HTTP not allowed): no access rules to apply, no client, no request
            return conditions.classify(ConfigurationError(f"{conn.display} is invalid: {conn.error}"))
        return conn

    async def _sync_taken(self, source: SourceKey, taken: list[tuple[Entry, int]]) -> float | None:
        conn = self._usable(source[0])
        if isinstance(conn, conditions.Failure):
            for entry, _ in taken:
                await self.report_failure(entry, conn)
            return None
        allowed = [entry for entry, priority in taken if await self._permitted(entry, conn, source[1])
                   and (priority != Priority.DRIFT or await self._still_drifted(entry))]  # fmt: skip
        if not allowed:
            return None
        breaker = conn.breaker
        # Confirming needs no request; while the breaker is open on a refused token or scope, every user reports
        # that instead (an outage is no news for a VaultSecret that is in sync).
        if not breaker.is_open or breaker.outage_open:
            allowed = [entry for entry in allowed if not await self._confirm_current(entry, conn)]
            if not allowed:
                return None
        if not breaker.allow():
            self.metrics.inc("backend_requests_suppressed_total", {"connection": conn.label, "call": "read"})
            return await self._hold(allowed, conn)
        try:
            secret = await self._read(conn, source[1], source[2])
        except ScaiVaultError as exc:
            failure = conditions.classify(exc)
            held = await self._held_after(conn, exc, failure, source, allowed)
            if held is not None:
                return held
            backoff = self._backoff(allowed, exc, failure)
            if isinstance(exc, NotFoundError) and source[2] is None and self.registry.path_gone(conn.key, source[1]):
                removing = [entry for entry in allowed if entry.spec and entry.spec.onSourceDeleted == "Delete"]
                for entry in removing:
                    await self._delete_for_gone_source(entry, failure, backoff)
                allowed = [entry for entry in allowed if entry not in removing]
            return await self._fail(allowed, failure, delay=backoff)
        retry: float | None = None
        for entry in allowed:
            delay = await self._materialize(entry, conn, secret)
            retry = delay if retry is None or (delay is not None and delay < retry) else retry
        self.registry.settle_propagation(source)
        return retry

    async def _read(
        self, conn: Connection, path: str, version: int | None, *, fresh: bool = False, keep: bool = False
    ) -> Secret:
        """One read through ``SharedReads``: counted in ``backend_requests_total`` only when a GET goes out."""
        client = await self.connections.client(conn)
        labels = {"connection": conn.label, "call": "read"}
        count = lambda: self.metrics.inc("backend_requests_total", labels)  # noqa: E731
        return await self.reads.read(conn.key, client, path, version, count=count, fresh=fresh, keep=keep)

    # -- a VaultSecret with several sources -------------------------------------------------------------------

    async def _sync_composite(self, entry: Entry, priority: int) -> float | None:
        """Sync a VaultSecret with ``spec.sources`` and/or ``spec.dataFrom``: see the module docstring."""
        spec = entry.spec
        assert spec is not None
        conns: dict[tuple[str, str, str], Connection] = {}
        default = composite.connection_key(None, spec, entry.namespace)
        for key in sorted(composite.connection_keys(spec, entry.namespace)):
            users = [source.name for source in spec.sources or ()
                     if composite.connection_key(source.connectionRef, spec, entry.namespace) == key]  # fmt: skip
            field = "spec.connectionRef" if key == default else f"spec.sources[].connectionRef ({', '.join(users)})"
            conn = self._usable(key, field)
            if isinstance(conn, conditions.Failure):
                await self.report_failure(entry, conn)
                return None
            conns[key] = conn
        if priority == Priority.DRIFT and not await self._still_drifted(entry):
            return None
        lister = conns.get(composite.connection_key(None, spec, entry.namespace))
        for item in spec.dataFrom or ():  # before anything is listed: nothing outside the rules is ever listed
            assert lister is not None
            if not await self._permitted(entry, lister, item.prefix, prefix=True, field="spec.dataFrom"):
                return None
        try:
            listings = await self._listings(entry, conns)
            if listings is None and lister is not None:
                return await self._hold([entry], lister)
            found = composite.discover(spec, listings or [])
        except SourceDataError as exc:  # too many secrets
            await self.report_failure(entry, conditions.classify(exc))
            return None
        except ScaiVaultError as exc:
            assert lister is not None  # only dataFrom lists, through spec.connectionRef
            return await self._composite_read_failed(entry, lister, exc, "list")
        reads = composite.needed(spec, entry.namespace, self.registry.latest_version, found)
        for read in reads:
            field = "spec.sources" if read.slot[0] is not None else "spec.dataFrom"
            if not await self._permitted(entry, conns[read.conn], read.path, field=field):
                return None
        versions: dict[Slot, int] = {}
        if self._composite_current(entry, spec, reads):
            name = spec.target_name(entry.name)
            versions = {read.slot: read.version for read in reads if read.version is not None}
            await self._report(entry, ok=True, reason=conditions.SYNCED, sources=versions, secret_name=name,
                               message=composite.ready_message(spec, versions, name))  # fmt: skip
            return None
        fetched: list[tuple[Needed, Mapping[str, Any]]] = []
        for read in reads:
            conn = conns[read.conn]
            if not conn.breaker.allow():
                self.metrics.inc("backend_requests_suppressed_total", {"connection": conn.label, "call": "read"})
                return await self._hold([entry], conn)
            try:
                secret = await self._read(conn, read.path, read.version, fresh=entry.reread, keep=True)
            except ScaiVaultError as exc:
                return await self._composite_read_failed(entry, conn, exc, read)
            fetched.append((read, secret.data))
            versions[read.slot] = secret.version

        def build() -> dict[str, Any]:
            data, named = composite.compose(spec, fetched, found)
            inputs = {name: SourceInput(path, versions[(name, path)], named[name]) for name, path in versions
                      if name is not None}  # fmt: skip
            data = apply_template(spec, data, version=None, sources=inputs)
            conn = composite.connection_key(None, spec, entry.namespace)
            revision = composite.revision(versions), composite.sources_annotation(versions)
            return desired_secret(owner=self._owner(entry), spec=spec, data=data, version=None,
                                  connection=f"{conn[0]}/{conn[2]}", revision=revision)  # fmt: skip

        done = await self._commit(entry, spec, build, version=None, sources=versions)
        if not isinstance(done, _Written):
            return done
        message = composite.ready_message(spec, versions, done.name)
        if done.written:
            logger.info("VaultSecret %s/%s: wrote %d secrets to Secret %s", entry.namespace, entry.name,
                        len(versions), done.name)  # fmt: skip
            held = done.previous[2] if done.previous[2] is not None else composite.versions_from_status(entry.status)
            if held is not None and (held != versions or done.previous[1] != spec):
                self._note_change(entry, spec, done)
        await self._report(entry, ok=True, reason=conditions.SYNCED, message=message, sources=versions,
                           secret_name=done.name, written=done.written)  # fmt: skip
        return None

    async def _listings(
        self, entry: Entry, conns: Mapping[tuple[str, str, str], Connection]
    ) -> list[dict[str, Listed]] | None:
        """What each dataFrom prefix of ``entry`` holds: the version watcher's last list, or — a prefix no poll has
        listed yet (a new VaultSecret) — one list now, recorded for the others. None while the breaker holds the
        list; ``ScaiVaultError`` when it fails."""
        found = []
        for (conn_key, prefix), listing in self.registry.listings_of(entry):
            if listing is None:
                conn = conns[conn_key]
                if not conn.breaker.allow():
                    self.metrics.inc("backend_requests_suppressed_total", {"connection": conn.label, "call": "list"})
                    return None
                client = await self.connections.client(conn)
                listing = {}
                async for page in client.list_secrets(prefix, page_size=self.settings.page_size):
                    self.metrics.inc("backend_requests_total", {"connection": conn.label, "call": "list"})
                    for item in page.secrets:
                        if item.path.startswith(prefix):
                            listing[item.path] = Listed.of(item)
                self.registry.observe_listing(conn_key, prefix, listing)
            found.append(listing)
        return found

    def _composite_current(self, entry: Entry, spec: VaultSecretSpec, reads: list[Needed]) -> bool:
        """Already in sync (e.g. a drift signal that was stale, or a spec change that changes nothing read)? Only
        when every version is known, the same as synced, and the Secret holds that revision."""
        if entry.synced_sources is None or entry.synced_spec != spec or entry.reread:
            return False
        if any(read.version is None for read in reads):
            return False
        versions = {read.slot: read.version for read in reads}
        return versions == entry.synced_sources and self.registry.secret_holds(entry, entry.synced_sources)

    async def _composite_read_failed(
        self, entry: Entry, conn: Connection, exc: ScaiVaultError, read: Needed | str
    ) -> float | None:
        """A read (or the list of a dataFrom prefix) of a VaultSecret with sources failed: its failure, named by the
        source, and the retry — a 401 opens the breaker, as do transient failures in a row (``count_failure``)."""
        failure = conditions.classify(exc)
        held = await self._held_after(conn, exc, failure, Composite(entry.key), [entry])
        if held is not None:
            return held
        if isinstance(read, Needed):
            name, path = read.slot
            where = f"source {name} ({path})" if name is not None else f"{path} (found by dataFrom)"
            failure = conditions.Failure(failure.reason, conditions.clip(f"{where}: {failure.message}"),
                                         transient=failure.transient, retry_after=failure.retry_after)  # fmt: skip
        return await self._fail([entry], failure, delay=self._backoff([entry], exc, failure))

    async def _held_after(
        self, conn: Connection, exc: ScaiVaultError, failure: conditions.Failure, unit: Unit, entries: list[Entry]
    ) -> float | None:
        """The breaker's part of a failed read (or list) of ``unit``: counted in ``backend_errors_total``; when the
        breaker was open already (it opened while the request was out), a 401 opens it, or transient failures of
        different units in a row do (``count_failure``), the entries are held like the others — the hold's delay.
        None: the breaker stays closed, the caller reports the failure."""
        self.metrics.inc("backend_errors_total", {"connection": conn.label, "reason": failure.reason})
        breaker = conn.breaker
        if breaker.is_open:
            return await self._hold(entries, conn)
        if isinstance(exc, UnauthenticatedError):
            self._trip(conn, failure)
            return await self._hold(entries, conn)
        if failure.transient and breaker.count_failure(unit):
            self._trip(conn, failure, counted=True)
            return await self._hold(entries, conn)
        return None

    # -- steps --------------------------------------------------------------------------------------------

    async def _permitted(
        self, entry: Entry, conn: Connection, path: str, *, prefix: bool = False, field: str = "spec.path"
    ) -> bool:
        assert entry.spec is not None
        access = conn.spec.access if conn.spec else None
        needs_labels = any(rule.namespaceSelector is not None for rule in access or ())
        labels = await self.namespace_labels(entry.namespace) if needs_labels else None
        decision = check_access(
            connection_kind=conn.key[0],
            connection_namespace=conn.key[1] or None,
            connection_name=conn.key[2],
            access=access,
            namespace=entry.namespace,
            namespace_labels=labels,
            path=path,
            prefix=prefix,
            field=field,
        )
        if not decision.allowed:
            logger.info("VaultSecret %s/%s denied by %s: path %s", entry.namespace, entry.name, conn.display,
                        path)  # fmt: skip
            failure = conditions.Failure(conditions.POLICY_DENIED, decision.message, transient=False)
            await self.report_failure(entry, failure)
        return decision.allowed

    async def _confirm_current(self, entry: Entry, conn: Connection) -> bool:
        """Already in sync (e.g. only its status is stale after an outage)? Then report it without a GET."""
        spec = entry.spec
        if spec is None or spec.path is None or entry.synced_version is None or entry.synced_spec != spec:
            return False
        wanted = spec.version if spec.version is not None else self.registry.latest.get((conn.key, spec.path))
        name = spec.secret_name(entry.name, wanted)
        info = self.registry.secrets.get((entry.namespace, name))
        if wanted != entry.synced_version or info is None or not info.intact or info.version != wanted:
            return False
        if info.owner_uid != entry.uid:
            return False
        await self._report(entry, ok=True, reason=conditions.SYNCED, synced_version=wanted,
                           message=_synced_message(wanted, spec.path, name), secret_name=name)  # fmt: skip
        return True

    async def _still_drifted(self, entry: Entry) -> bool:
        """A drift signal may be stale (an event from before our own write): check the Secret itself. A Secret
        that is gone may have been garbage-collected with a VaultSecret whose deletion the watch missed (it
        expired meanwhile): it is re-created only while its VaultSecret still exists (one GET, on deletions only) —
        never a create/collect loop."""
        assert entry.spec is not None
        name = entry.spec.secret_name(entry.name, entry.synced_version)
        try:
            existing = await self.kube.get_secret(entry.namespace, name)
            if existing is None:
                return await self._owner_exists(entry)
        except KubeError:
            return True
        merging = entry.spec.target.creationPolicy == "Merge"
        mine = merged_by_uid(existing) == entry.uid if merging else ownership(existing, entry.uid) == "ours"
        if not mine or not data_intact(existing):
            return True
        annotations = existing.get("metadata", {}).get("annotations") or {}
        if entry.spec.composite:
            held = entry.synced_sources
            return held is None or annotations.get(ANNOTATION_REVISION) != composite.revision(held)
        version = annotations.get(ANNOTATION_VERSION)
        return version != str(entry.synced_version) or read_data_hash(existing) is None

    async def _owner_exists(self, entry: Entry) -> bool:
        """Whether the VaultSecret of ``entry`` (this uid) still exists; when it does not, forget it."""
        body = await self.kube.get_vaultsecret(entry.namespace, entry.name)
        if body is not None and (body.get("metadata") or {}).get("uid") == entry.uid:
            return True
        self._forget(entry)
        return False

    def _forget(self, entry: Entry) -> None:
        if self.registry.entries.get(entry.key) is entry:
            logger.info("VaultSecret %s/%s no longer exists; forgotten", entry.namespace, entry.name)
            self.registry.remove(entry.key)

    def _owner(self, entry: Entry) -> Owner:
        return Owner(api_version=entry.ref["apiVersion"], kind="VaultSecret", name=entry.name,
                     namespace=entry.namespace, uid=entry.uid)  # fmt: skip

    async def _materialize(self, entry: Entry, conn: Connection, secret: Secret) -> float | None:
        spec = entry.spec
        assert spec is not None
        assert spec.path is not None
        kind, _, conn_name = conn.key
        if len(spec.secret_name(entry.name, secret.version)) > MAX_SECRET_NAME:  # immutable: <name>-v<version>
            message = (f"the Secret of version {secret.version} would be named {spec.target_name(entry.name)}"
                       f"-v{secret.version}, longer than {MAX_SECRET_NAME} characters (target.immutable): set "
                       "spec.target.name to a shorter name")  # fmt: skip
            await self.report_failure(entry, conditions.Failure(conditions.INVALID_SPEC, message, transient=False))
            return None

        def build() -> dict[str, Any]:
            data = secret_data(secret.data, spec.keys)
            data = apply_template(spec, data, version=secret.version)  # spec.template (TemplateError: no write)
            return desired_secret(owner=self._owner(entry), spec=spec, data=data, version=secret.version,
                                  connection=f"{kind}/{conn_name}")  # fmt: skip

        done = await self._commit(entry, spec, build, version=secret.version, sources=None)
        if not isinstance(done, _Written):
            return done
        message = _synced_message(secret.version, spec.path, done.name)
        if done.written:
            logger.info("VaultSecret %s/%s: wrote version %d to Secret %s", entry.namespace, entry.name,
                        secret.version, done.name)  # fmt: skip
            if done.previous[0] != secret.version:  # not a drift repair at the version it held
                self._observe_propagation(entry, secret)
            self._note_rollout(entry, spec, done, secret.version)
        await self._report(entry, ok=True, reason=conditions.SYNCED, message=message,
                           synced_version=secret.version, secret_name=done.name, written=done.written)  # fmt: skip
        return None

    async def _commit(
        self,
        entry: Entry,
        spec: VaultSecretSpec,
        build: Callable[[], dict[str, Any]],
        *,
        version: int | None,
        sources: dict[Slot, int] | None,
    ) -> _Written | float | None:
        """Build the desired Secret (``build``: ``SourceDataError``, a template's included) and write it; a failure is
        reported here, and its retry delay (or None) returned instead of ``_Written``. The entry holds ``version``
        (or ``sources``) from before the write, so that the write's own watch event does not look like drift."""
        previous = entry.synced_version, entry.synced_spec, entry.synced_sources
        try:
            desired = build()
            entry.synced_version, entry.synced_spec, entry.synced_sources = version, spec, sources
            written, before = await self._write_target(entry, spec, desired)
            await self._delete_old_target(entry, previous[1], spec)
        except SourceDataError as exc:
            entry.synced_version, entry.synced_spec, entry.synced_sources = previous
            await self.report_failure(entry, conditions.classify(exc))
            return None
        except TargetConflictError as exc:
            entry.synced_version, entry.synced_spec, entry.synced_sources = previous
            failure = conditions.Failure(exc.reason, str(exc), transient=False)
            # The fix (e.g. the consent annotation) is on a Secret the operator does not watch: back off from
            # retry_base, so a fix made soon after the refusal is seen soon, and a lasting conflict costs little.
            return await self._fail([entry], failure, delay=self._growing_delay([entry]))
        except KubeError as exc:
            entry.synced_version, entry.synced_spec, entry.synced_sources = previous
            logger.warning("writing the Secret of VaultSecret %s/%s failed: %s", entry.namespace, entry.name, exc)
            failure = conditions.Failure(conditions.BACKEND_UNAVAILABLE, f"writing the Secret failed ({exc}); retrying",
                                         transient=True, retry_after=exc.retry_after)  # fmt: skip
            return await self._fail([entry], failure, delay=self._backoff([entry], exc, failure))
        entry.failures = 0
        entry.reread = False
        return _Written(desired["metadata"]["name"], written, before, previous, desired.get("data"))

    def _note_rollout(self, entry: Entry, spec: VaultSecretSpec, done: _Written, version: int) -> None:
        """Tell the rollouts about a write that changed the data of the Secret its workloads use: a new version or
        a new spec — not a drift repair at the version it held, not a new VaultSecret's first Secret. The version
        held is the one in memory or, after a refresh cleared it, the status's. With ``target.immutable`` every new
        versioned Secret counts, the first one too (workloads may wait for it under the unversioned name)."""
        held = done.previous[0] if done.previous[0] is not None else entry.status.get("syncedVersion")
        held = held if isinstance(held, int) and not isinstance(held, bool) else None
        moved = held is not None and (held != version or done.previous[1] != spec)
        if spec.target.immutable and (moved or held is None):
            self._note_change(entry, spec, done, created=True)  # before: the same version re-created
        elif moved:
            self._note_change(entry, spec, done)

    def _note_change(self, entry: Entry, spec: VaultSecretSpec, done: _Written, *, created: bool = False) -> None:
        """Tell the rollouts that the data of the Secret ``done`` wrote changed (``created``: a new versioned Secret
        of ``target.immutable``, which counts even without data before)."""
        after = done.after
        if self.on_data_changed is None or not isinstance(after, Mapping):
            return
        if created or (done.before is not None and dict(done.before) != dict(after)):
            self.on_data_changed(entry, spec, done.name, done.before, after)

    def _observe_propagation(self, entry: Entry, secret: Secret) -> None:
        """A Secret now holds a version the version watcher saw move: ``propagation_seconds`` from that sighting, and
        ``source_propagation_seconds`` from the version's ``updated_at`` (not without one, nor from the future)."""
        started = self.registry.propagation_start(entry.source, secret.version) if entry.source else None
        if started is None:
            return  # pinned, a new VaultSecret's first sync, or a version no list showed moving
        self.metrics.observe("propagation_seconds", max(0.0, self.clock() - started))
        updated = secret.updated_at
        if updated is None:
            return
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=UTC)  # ScaiVault's times are UTC
        age = self.wall_clock() - updated.timestamp()
        if age >= 0:
            self.metrics.observe("source_propagation_seconds", age)

    async def _write_target(
        self, entry: Entry, spec: VaultSecretSpec, desired: dict[str, object]
    ) -> tuple[bool, Mapping[str, Any] | None]:
        """Create or patch the target Secret: whether something was written, and the ``data`` the Secret had before
        when it existed (None when it was created), so that a rollout can tell which keys changed."""
        if spec.target.creationPolicy == "Merge":
            return await self._merge_target(entry, desired)
        meta = desired["metadata"]
        assert isinstance(meta, dict)
        namespace, name = meta["namespace"], meta["name"]
        # A Secret the index of managed Secrets does not know is most likely not there (a new VaultSecret): try
        # to create it first and read it only on a conflict (foreign, or ours but not yet seen) — one request
        # less per new Secret. A known one is read first, as its minimal patch needs it.
        known = (namespace, name) in self.registry.secrets
        existing = await self.kube.get_secret(namespace, name) if known else None
        if existing is None:
            try:
                await self.kube.create_secret(desired)
                self.metrics.inc("secret_writes_total", {"operation": "create"})
                return True, None
            except Conflict:
                existing = await self.kube.get_secret(namespace, name)
                if existing is None:
                    raise KubeError(f"Secret {namespace}/{name} appeared and vanished; retrying", None) from None
        if merged_by_uid(existing) == entry.uid:  # creationPolicy was Merge: our keys leave before anything else
            existing = await self._unmerge(entry, name, existing, keep_keys=False, why="no longer merges into it")
        refusal = target_refusal(existing, owner_uid=entry.uid, creation_policy=spec.target.creationPolicy)
        if refusal is not None:
            raise TargetConflictError(refusal)
        adopting = ownership(existing, entry.uid) == "foreign"  # and target_refusal let it be taken over
        before = existing.get("data") or {}
        if needs_recreate(existing, desired):
            await self.kube.delete_secret(namespace, name)
            await self.kube.create_secret(desired)
            self.metrics.inc("secret_writes_total", {"operation": "recreate"})
            return True, before
        patch = secret_patch(existing, desired)
        if patch is None:
            return False, before
        if adopting:  # only the Secret that was checked: a concurrent change fails the patch (409), retried
            resource_version = (existing.get("metadata") or {}).get("resourceVersion")
            if isinstance(resource_version, str):
                patch.setdefault("metadata", {})["resourceVersion"] = resource_version
        await self.kube.patch_secret(namespace, name, patch)
        self.metrics.inc("secret_writes_total", {"operation": "patch"})
        return True, before

    async def _merge_target(self, entry: Entry, desired: dict[str, object]) -> tuple[bool, Mapping[str, Any] | None]:
        """creationPolicy Merge: write only our keys into the existing Secret (``manifests.merge_secret_patch``);
        absent → ``TargetMissingError``, refused → ``TargetConflictError``. Returns whether something was written and
        the Secret's previous data — of the keys this VaultSecret writes or wrote, as ``desired`` holds only those:
        the Secret's other keys are not ours and do not change."""
        meta = desired["metadata"]
        assert isinstance(meta, dict)
        namespace, name = meta["namespace"], meta["name"]
        existing = await self.kube.get_secret(namespace, name)
        if existing is None:
            raise TargetMissingError(merge_target_missing(namespace, name))
        refusal = merge_refusal(existing, owner_uid=entry.uid)
        if refusal is not None:
            raise TargetConflictError(refusal)
        have, want = existing.get("data") or {}, desired.get("data")
        relevant = set(written_keys(existing, entry.uid)) | (set(want) if isinstance(want, Mapping) else set())
        before = {key: value for key, value in have.items() if key in relevant}
        patch = merge_secret_patch(existing, desired)
        if patch is not None:
            taken = overwritten_keys(existing, desired)
            if taken:
                logger.info("VaultSecret %s/%s overwrites %s of Secret %s, which it did not write before "
                            "(creationPolicy: Merge): %s", entry.namespace, entry.name,
                            "a key" if len(taken) == 1 else f"{len(taken)} keys", name,
                            conditions.clip(", ".join(taken)))  # fmt: skip
            await self.kube.patch_secret(namespace, name, patch)
            self.metrics.inc("secret_writes_total", {"operation": "merge"})
        # Not watched: what the index knows of it comes from here (and from the start-up list).
        held = entry.synced_sources
        self.registry.secrets[(namespace, name)] = SecretInfo(
            owner_uid=entry.uid, version=entry.synced_version, intact=True,
            revision=composite.revision(held) if held is not None else None)  # fmt: skip
        return patch is not None, before

    async def _unmerge(
        self, entry: Entry, name: str, existing: dict[str, Any], *, keep_keys: bool, why: str
    ) -> dict[str, Any]:
        """Take the merge of ``entry`` out of the Secret ``name`` (``manifests.unmerge_patch``: our keys unless
        ``keep_keys``, our label and annotations); return the Secret as it is now. ``KubeError`` when the patch fails
        (409: it changed since it was read)."""
        patch = unmerge_patch(existing, entry.uid, keep_keys=keep_keys)
        if patch is None:
            return existing
        updated = await self.kube.patch_secret(entry.namespace, name, patch)
        self.registry.secrets.pop((entry.namespace, name), None)
        self.metrics.inc("secret_writes_total", {"operation": "unmerge"})
        removed = "its annotations" if "data" not in patch else "its keys and annotations"
        if not keep_keys and "data" not in patch and existing.get("immutable") is True:
            removed += " (the Secret is immutable: its keys stay)"
        logger.info("VaultSecret %s/%s %s: removed %s from Secret %s", entry.namespace, entry.name, why, removed, name)
        return updated

    async def _delete_old_target(self, entry: Entry, old: VaultSecretSpec | None, new: VaultSecretSpec) -> None:
        """After spec.target.name changed, remove the Secret we wrote under the old name — or, from a Secret we merged
        into (creationPolicy Merge), our keys. The old name is the previous spec's, or after a restart (no previous
        spec in memory) the status's ``secretName``: for a merge only, which leaves no ownerReference behind."""
        new_name = new.target_name(entry.name)
        old_name = old.target_name(entry.name) if old is not None else entry.status.get("secretName")
        if not isinstance(old_name, str) or not old_name or old_name == new_name:
            return
        if old is None and old_name.startswith(f"{new_name}-v"):
            return  # a versioned Secret of the same target (target.immutable), not an old target
        existing = await self.kube.get_secret(entry.namespace, old_name)
        if existing is not None and merged_by_uid(existing) == entry.uid:
            await self._unmerge(entry, old_name, existing, keep_keys=False, why="writes another Secret now")
            return
        if old is not None and existing is not None and ownership(existing, entry.uid) == "ours":
            await self.kube.delete_secret(entry.namespace, old_name)
            self.metrics.inc("secret_writes_total", {"operation": "delete"})
            logger.info("VaultSecret %s/%s: deleted its previous Secret %s", entry.namespace, entry.name, old_name)

    async def _delete_for_gone_source(self, entry: Entry, failure: conditions.Failure, delay: float) -> None:
        """``spec.onSourceDeleted: Delete`` and the unpinned path is gone from ScaiVault (listed gone and read 404):
        delete the Secret, if it is ours — or, creationPolicy Merge, remove our keys from it — and report SourceNotFound
        saying so. The path's return writes it again (the version watcher sees it again: every member with no synced
        version is behind)."""
        assert entry.spec is not None
        name = entry.spec.secret_name(entry.name, entry.synced_version)
        entry.synced_version = None  # its DELETED event is no drift to repair
        merging = entry.spec.target.creationPolicy == "Merge"
        try:
            existing = await self.kube.get_secret(entry.namespace, name)
            merged = existing is not None and merged_by_uid(existing) == entry.uid
            mine = not merging and ownership(existing, entry.uid) == "ours"
            if merged and existing is not None:
                why = f"(onSourceDeleted: Delete): {entry.spec.path} is gone from ScaiVault"
                await self._unmerge(entry, name, existing, keep_keys=False, why=why)
            elif mine:
                await self.kube.delete_secret(entry.namespace, name)
                self.registry.secrets.pop((entry.namespace, name), None)
                self.metrics.inc("secret_writes_total", {"operation": "delete"})
                logger.info("VaultSecret %s/%s: %s is gone from ScaiVault; deleted Secret %s (onSourceDeleted: "
                            "Delete)", entry.namespace, entry.name, entry.spec.path, name)  # fmt: skip
        except KubeError as exc:
            logger.warning("deleting the Secret of VaultSecret %s/%s failed: %s", entry.namespace, entry.name, exc)
            retry = conditions.Failure(conditions.BACKEND_UNAVAILABLE, f"deleting the Secret failed ({exc}); "
                                       "retrying", transient=True, retry_after=exc.retry_after)  # fmt: skip
            await self._fail([entry], retry, delay=self._backoff([entry], exc, retry))
            return
        if merged:
            outcome = f"the keys of this VaultSecret were removed from Secret {name} (spec.onSourceDeleted: Delete); "
            outcome += "they are written again when the path comes back"
        elif merging and existing is None:
            outcome = f"Secret {name} does not exist"
        elif mine or existing is None:
            outcome = f"Secret {name} was deleted (spec.onSourceDeleted: Delete); it is written again when the path "
            outcome += "comes back"
        else:
            outcome = f"Secret {name} is not managed by this VaultSecret and was left alone"
        gone = conditions.Failure(conditions.SOURCE_NOT_FOUND, conditions.clip(f"{failure.message}; {outcome}"),
                                  transient=False)  # fmt: skip
        await self._fail([entry], gone, delay=delay)

    # -- finalizer and deletion (deletionPolicy: Retain) ------------------------------------------------------

    async def _apply_finalizers(self, taken: list[tuple[Entry, int]]) -> tuple[list[tuple[Entry, int]], float | None]:
        """Give ``RETAIN_FINALIZER`` to the VaultSecrets with deletionPolicy Retain and take it from the others, before
        any Secret is written (a Retain Secret then never exists without the finalizer that releases it). Returns
        the entries to sync on and the retry delay of those whose patch failed (reported, and left out)."""
        kept: list[tuple[Entry, int]] = []
        retry: float | None = None
        for entry, priority in taken:
            if entry.spec is None or entry.finalized == wants_finalizer(entry.spec):
                kept.append((entry, priority))
                continue
            try:
                exists = await self._set_finalizer(entry, present=wants_finalizer(entry.spec))
            except KubeError as exc:
                logger.warning("cannot update the finalizer of VaultSecret %s/%s: %s", entry.namespace, entry.name,
                               exc)  # fmt: skip
                failure = conditions.Failure(conditions.BACKEND_UNAVAILABLE, f"updating the VaultSecret's finalizer "
                                             f"{RETAIN_FINALIZER} failed ({exc}); retrying", transient=True,
                                             retry_after=exc.retry_after)  # fmt: skip
                delay = await self._fail([entry], failure, delay=self._backoff([entry], exc, failure))
                retry = delay if retry is None else min(retry, delay)
                continue
            if exists:
                kept.append((entry, priority))
        return kept, retry

    async def _set_finalizer(self, entry: Entry, *, present: bool) -> bool:
        """Add or remove ``RETAIN_FINALIZER`` on the VaultSecret of ``entry``: one GET, and a patch only when it is
        not yet as wanted. False when the VaultSecret is gone (forgotten) or being deleted (its event releases it)."""
        body = await self.kube.get_vaultsecret(entry.namespace, entry.name)
        meta = (body or {}).get("metadata") or {}
        if body is None or meta.get("uid") != entry.uid:
            self._forget(entry)
            return False
        if meta.get("deletionTimestamp"):
            return False  # no finalizer may be added now; removing one is the release's job
        finalizers = with_finalizer(meta.get("finalizers"), present=present)
        if finalizers is not None:
            patched = await self.kube.patch_vaultsecret_finalizers(entry.namespace, entry.name, finalizers,
                                                                   meta.get("resourceVersion"))  # fmt: skip
            if patched is None:
                self._forget(entry)
                return False
            change = ("added (deletionPolicy: Retain or creationPolicy: Merge)" if present
                      else "removed (deletionPolicy: Delete, creationPolicy not Merge)")  # fmt: skip
            logger.info("VaultSecret %s/%s: finalizer %s %s", entry.namespace, entry.name, RETAIN_FINALIZER, change)
        entry.finalized = present
        return True

    async def release(self, entry: Entry) -> None:
        """A VaultSecret with our finalizer is being deleted: with deletionPolicy Retain (or a spec that no longer
        validates: keeping is the safe side), leave its Secret unmanaged (``release_patch``: no ownerReference, no
        labels or annotations of ours; data and type kept); from a Secret it merges into (creationPolicy Merge,
        ``unmerge_patch``) remove our annotations, and with deletionPolicy Delete our keys — the Secret stays, it is
        not ours. Then remove the finalizer so the deletion completes — the garbage collector then has no reason to
        delete the Secret. A Secret that is gone or not ours is left alone. ``KubeError`` when a call fails: the
        caller retries."""
        spec = entry.spec
        name = (spec.target_name(entry.name) if spec is not None and not spec.target.immutable
                else entry.status.get("secretName"))  # fmt: skip
        retain = spec is None or spec.target.deletionPolicy == "Retain"
        existing = await self.kube.get_secret(entry.namespace, name) if isinstance(name, str) and name else None
        if existing is not None and isinstance(name, str) and merged_by_uid(existing) == entry.uid:
            await self._unmerge(entry, name, existing, keep_keys=retain, why="is being deleted")
        elif retain and isinstance(name, str) and name:
            ours = existing is not None and ownership(existing, entry.uid) == "ours"
            patch = release_patch(existing, entry.uid) if existing is not None and ours else None
            if patch is not None:
                await self.kube.patch_secret(entry.namespace, name, patch)
                self.registry.secrets.pop((entry.namespace, name), None)
                self.metrics.inc("secret_writes_total", {"operation": "release"})
                logger.info("VaultSecret %s/%s is being deleted: Secret %s retained, no longer managed",
                            entry.namespace, entry.name, name)  # fmt: skip
            else:
                logger.info("VaultSecret %s/%s is being deleted: Secret %s is %s; nothing to retain", entry.namespace,
                            entry.name, name, "gone" if existing is None else "not ours")  # fmt: skip
        body = await self.kube.get_vaultsecret(entry.namespace, entry.name)
        meta = (body or {}).get("metadata") or {}
        finalizers = with_finalizer(meta.get("finalizers"), present=False) if meta.get("uid") == entry.uid else None
        if finalizers is not None:
            await self.kube.patch_vaultsecret_finalizers(entry.namespace, entry.name, finalizers,
                                                         meta.get("resourceVersion"))  # fmt: skip
        entry.finalized = False

    # -- outcomes -----------------------------------------------------------------------------------------

    async def _fail(self, entries: list[Entry], failure: conditions.Failure, *, delay: float) -> float:
        for entry in entries:
            entry.failures += 1
            self.registry.mark_dirty(entry.key, Priority.RETRY)
            await self.report_failure(entry, failure)
        return delay

    def _trip(self, conn: Connection, failure: conditions.Failure, *, counted: bool = False) -> None:
        breaker: Breaker = conn.breaker
        if breaker.trip(failure, floor=conn.poll_seconds, counted=counted):
            logger.warning("%s: reads failed (%s); no request on this connection for %.0fs", conn.display,
                           failure.reason, breaker.remaining())  # fmt: skip
            self.on_breaker(conn, True)

    async def _hold(self, entries: list[Entry], conn: Connection) -> float:
        """The breaker is open: report its failure, send nothing, and leave the entries to the breaker's closing
        (it re-syncs every VaultSecret that is not Ready). The delay only matters to an entry whose status write
        failed (``_write_status`` marked it dirty again)."""
        breaker = conn.breaker
        assert breaker.failure is not None
        failure = breaker.failure
        if failure.transient:
            failure = conditions.backing_off(failure, connection=conn.display, retry_at=breaker.retry_at())
        for entry in entries:
            await self.report_failure(entry, failure)
        return self._breaker_delay(conn)

    def _breaker_delay(self, conn: Connection) -> float:
        return max(conn.breaker.remaining(), self.settings.retry_base) * random.uniform(1.0, 1.5)

    def _backoff(self, entries: list[Entry], exc: BaseException, failure: conditions.Failure) -> float:
        if isinstance(exc, ForbiddenError):
            delay = self.settings.forbidden_retry * random.uniform(0.5, 1.0)  # a scope problem: don't retry hot
        elif not failure.transient:
            delay = self.settings.retry_max * random.uniform(0.5, 1.0)
        else:
            delay = self._growing_delay(entries)
        return max(delay, failure.retry_after or 0.0)

    def _growing_delay(self, entries: list[Entry]) -> float:
        """Jittered exponential backoff over the entries' failures: retry_base → retry_max."""
        attempts = max((entry.failures for entry in entries), default=0)
        base: float = min(self.settings.retry_max, self.settings.retry_base * 2 ** max(0, attempts))
        return base * random.uniform(0.5, 1.0)

    async def report_failure(self, entry: Entry, failure: conditions.Failure) -> None:
        await self._report(entry, ok=False, reason=failure.reason, message=failure.message)

    def _insecure(self, entry: Entry) -> str | None:
        """The Insecure condition's message while the entry's connection uses plain HTTP, else None (no condition)."""
        if entry.spec is None or entry.source is None:
            return None
        keys = ([entry.source[0]] if not isinstance(entry.source, Composite)
                else sorted(composite.connection_keys(entry.spec, entry.namespace)))  # fmt: skip
        for key in keys:
            conn = self.connections.get(key)
            if conn is not None and conn.plain_http:
                return conditions.insecure_message(conn.display, conn.plain_http)
        return None

    async def refresh_insecure(self, entry: Entry) -> None:
        """Bring the Insecure condition up to date without a sync (Ready and everything else stay as they are)."""
        desired = conditions.with_insecure(entry.status, message=self._insecure(entry), generation=entry.generation,
                                           now=conditions.now_rfc3339())  # fmt: skip
        await self._write_status(entry, desired)

    async def _report(
        self,
        entry: Entry,
        *,
        ok: bool,
        reason: str,
        message: str,
        synced_version: int | None = None,
        secret_name: str | None = None,
        written: bool = False,
        sources: Mapping[Slot, int] | None = None,
    ) -> None:
        now = conditions.now_rfc3339()
        first = entry.reason is None  # never reported before: a new VaultSecret (or a cold start)
        previous_version = entry.status.get("syncedVersion")
        listed = composite.status_sources(sources) if sources is not None else None
        moved = written or (synced_version is not None and synced_version != previous_version)
        moved = moved or (listed is not None and listed != entry.status.get("sources"))
        desired = conditions.desired_status(
            previous=entry.status,
            generation=entry.generation,
            ok=ok,
            reason=reason,
            message=message,
            now=now,
            synced_version=synced_version,
            secret_name=secret_name,
            synced_at=now if moved else None,
            insecure=self._insecure(entry),
            sources=listed,
        )
        transition = conditions.is_transition(entry.status, desired)
        if not await self._write_status(entry, desired):
            return
        # Events are for what a user looks for in `kubectl describe`: failures, recoveries, a new version or a
        # repaired Secret. The first sync of a new VaultSecret posts none (its status says it): a cold sync of
        # ten thousand objects costs two writes each, the Secret and the status (docs/performance.md).
        if transition and not ok:
            await self._event(entry, "Warning", reason, message)
        elif ok and not first and (written or transition):
            await self._event(entry, "Normal", reason, message)

    async def _write_status(self, entry: Entry, desired: dict[str, Any]) -> bool:
        """Write ``desired`` as the entry's status if anything changed; True when it was written."""
        patch = conditions.status_patch(entry.status, desired)
        if patch is None:
            return False
        try:
            found = await self.kube.patch_vaultsecret_status(entry.namespace, entry.name, patch)
        except KubeError as exc:
            logger.warning("cannot write the status of VaultSecret %s/%s: %s", entry.namespace, entry.name, exc)
            self.registry.mark_dirty(entry.key, Priority.RETRY)
            # Not at once: a server that refuses status writes (503, 429, a webhook) must not get a hot loop.
            entry.failures += 1
            delay = max(self._growing_delay([entry]), exc.retry_after or 0.0)
            if entry.source is not None:
                self.status_retry[entry.source] = max(self.status_retry.get(entry.source, 0.0), delay)
            return False
        if not found:  # deleted, and its DELETED event missed or still on its way
            self._forget(entry)
            return False
        self.metrics.inc("status_writes_total")
        entry.status = desired
        return True

    async def _event(self, entry: Entry, type_: str, reason: str, message: str) -> None:
        self.metrics.inc("events_total", {"type": type_})
        await self.kube.post_event(entry.ref, type_=type_, reason=reason, message=message)


def _synced_message(version: int, path: str, secret_name: str) -> str:
    return f"version {version} of {path} is in Secret {secret_name}"
