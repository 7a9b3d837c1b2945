"""In-memory index of what the operator knows: VaultSecrets, their sources, managed Secrets, latest versions.

Owned here: the bookkeeping that decides *what needs a sync*. No I/O and no secret data: entries hold specs,
versions and flags. Kopf watch events (through ``runtime``) and the version watchers feed it; ``sync`` reads
and updates it; ``runtime`` queues the sources it reports as dirty.

A *source* is what one ScaiVault GET serves: ``(connection, path, pinned version or None)``. All VaultSecrets
with the same source are synced together from one fetched secret, so a new version costs one GET however
many VaultSecrets use the path. A VaultSecret with ``spec.sources`` or ``spec.dataFrom`` is its own work unit
(``composite.Composite``): it is behind when the versions the lists show (``composite.wanted``) differ from the
ones its Secret holds (``Entry.synced_sources``); its reads share GETs in ``_core/sync``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from scaivault_operator._cogs.api import API_VERSION, VaultSecretSpec
from scaivault_operator._logic import composite, conditions
from scaivault_operator._logic.composite import Composite, Listed, Slot
from scaivault_operator._logic.manifests import (
    ANNOTATION_REFRESH,
    ANNOTATION_REVISION,
    ANNOTATION_VERSION,
    RETAIN_FINALIZER,
    data_intact,
    merged_by_uid,
    wants_finalizer,
)
from scaivault_operator._logic.rollout import version_of

__all__ = [
    "ConnKey",
    "Entry",
    "Priority",
    "Registry",
    "Release",
    "SecretInfo",
    "SourceKey",
    "Unit",
    "VSKey",
    "deleting",
    "entry_reason_label",
    "ready_reason",
    "reason_label",
]

logger = logging.getLogger(__name__)

VSKey = tuple[str, str]  # (namespace, name)
ConnKey = tuple[str, str, str]  # (kind, namespace or "", name)
SourceKey = tuple[ConnKey, str, int | None]  # (connection, path, pinned version)
#: A work unit: a source, or a VaultSecret with several sources.
Unit = SourceKey | Composite


_UNSEEN = -1
#: A condition reason (metav1.Condition's pattern, bounded): what ``not_ready`` puts in a metric label.
_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]{0,126}[A-Za-z0-9_])?")


class Priority:
    """Lower runs first: new and changed objects never wait behind routine work (peers' pain #4)."""

    NEW = 0
    DRIFT = 1
    VERSION = 2
    RETRY = 3


@dataclass(frozen=True)
class Release:
    """A work-queue key beside the sources: release the Secret of the deleted VaultSecret ``key`` (deletionPolicy
    Retain) and remove its finalizer."""

    key: VSKey


@dataclass(slots=True)
class SecretInfo:
    """What the index keeps of a managed Secret (or of one a VaultSecret merges into): no data, only whether the data
    written is intact and its version."""

    owner_uid: str  # uid of the VaultSecret merging into it, else of the controlling ownerReference; "" when none
    version: int | None
    intact: bool
    #: The Secret of a VaultSecret with several sources: its ``scaivault.scailabs.ai/revision`` (no version).
    revision: str | None = None


@dataclass(slots=True)
class Entry:
    """One VaultSecret as the operator last saw it. Compact (issue 14: ten thousands of them): slots, and its status
    kept as compact JSON (``packed_status``, a fifth of the dict's memory), read back as a dict by ``status`` — only a
    sync does — with the Ready condition's status and reason at hand for the per-poll and per-scrape questions
    (``ready``, ``reason``)."""

    key: VSKey
    uid: str
    generation: int | None
    spec: VaultSecretSpec | None
    spec_error: str | None
    packed_status: bytes = b"{}"
    #: The Ready condition's status ("True", "False", ...; "" when it has none) and reason in ``status``; None without
    #: a Ready condition (``ready``) or a reason.
    ready: str | None = None
    reason: str | None = None
    source: Unit | None = None
    synced_version: int | None = None
    synced_spec: VaultSecretSpec | None = None
    #: With sources or dataFrom: the version of each secret its Secret holds (``synced_version`` stays None).
    synced_sources: dict[Slot, int] | None = None
    #: A refresh was asked of a VaultSecret with sources: its next sync reads every source (no shared read).
    reread: bool = False
    failures: int = 0
    #: The value of the refresh annotation when last seen: a new value asks for one re-read of the source.
    refresh: str | None = None
    #: Whether it carries ``RETAIN_FINALIZER`` (as last seen, or as the operator's own patch left it).
    finalized: bool = False
    #: It has a deletionTimestamp: never synced again; only released (``Release``) when it carries our finalizer.
    deleting: bool = False

    @classmethod
    def of(cls, *, status: Mapping[str, Any], **fields: Any) -> Entry:
        entry = cls(**fields)
        entry.status = status
        return entry

    @property
    def status(self) -> dict[str, Any]:
        """The status as last seen or written (a new dict each time: change it by assigning a new one)."""
        found: dict[str, Any] = json.loads(self.packed_status)
        return found

    @status.setter
    def status(self, value: Mapping[str, Any]) -> None:
        try:
            self.packed_status = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError):  # not JSON (an odd body): keep what can be kept
            self.packed_status = json.dumps(value, separators=(",", ":"), default=str).encode("utf-8")
        ready = conditions.ready_of(value)
        status, reason = ready.get("status"), ready.get("reason")
        self.ready = (status if isinstance(status, str) else "") if ready else None
        self.reason = reason if isinstance(reason, str) else None

    @property
    def namespace(self) -> str:
        return self.key[0]

    @property
    def name(self) -> str:
        return self.key[1]

    @property
    def ref(self) -> dict[str, str]:
        return {"apiVersion": API_VERSION, "kind": "VaultSecret", "namespace": self.key[0],
                "name": self.key[1], "uid": self.uid}  # fmt: skip

    @property
    def target_name(self) -> str | None:
        return self.spec.target_name(self.name) if self.spec else None


def connection_key(spec: VaultSecretSpec, namespace: str) -> ConnKey:
    return composite.connection_key(None, spec, namespace)


def _spec_error(error: ValidationError) -> str:
    return conditions.classify(error).message


@dataclass
class Registry:
    """The operator's memory. Every method is synchronous and cheap (called on every watch event)."""

    entries: dict[VSKey, Entry] = field(default_factory=dict)
    by_source: dict[Unit, set[VSKey]] = field(default_factory=lambda: defaultdict(set))
    dirty: dict[VSKey, int] = field(default_factory=dict)
    secrets: dict[VSKey, SecretInfo] = field(default_factory=dict)  # (namespace, secret name)
    latest: dict[tuple[ConnKey, str], int | None] = field(default_factory=dict)
    by_target: dict[VSKey, VSKey] = field(default_factory=dict)  # (namespace, Secret name) -> VaultSecret
    #: The listed ``updated_at`` (Unix seconds) per path, when the list gives one: a secret deleted and re-created at
    #: the version the operator synced keeps the number but not the time.
    stamps: dict[tuple[ConnKey, str], int] = field(default_factory=dict)
    #: While a re-list of the VaultSecret watch is checked (``begin_relist`` .. ``end_relist``): the entries not seen
    #: again since it began. They may have been deleted while the watch was down — no DELETED event tells — so
    #: their syncs wait (``take_dirty`` and ``pending`` skip them) until ``end_relist`` confirms or forgets them.
    unconfirmed: set[VSKey] = field(default_factory=set)
    #: ``(connection, path) → (version, monotonic time)``: when a version of a followed path was first seen in a list
    #: while members held an older one — the start of ``propagation_seconds`` (``propagation_start``). One per path in
    #: flight: replaced by a newer version, dropped when every member holds it (``settle_propagation``), when the
    #: path is gone or nobody follows it any more.
    first_seen: dict[tuple[ConnKey, str], tuple[int, float]] = field(default_factory=dict)
    #: VaultSecrets with sources or dataFrom: per connection they read through; per unpinned source path and per
    #: dataFrom prefix they follow (what the version watcher lists).
    composites: dict[ConnKey, set[VSKey]] = field(default_factory=lambda: defaultdict(set))
    composite_paths: dict[tuple[ConnKey, str], set[VSKey]] = field(default_factory=lambda: defaultdict(set))
    composite_prefixes: dict[tuple[ConnKey, str], set[VSKey]] = field(default_factory=lambda: defaultdict(set))
    #: What the last list of each followed dataFrom prefix showed: ``{path: Listed}`` (absent: not listed yet).
    listings: dict[tuple[ConnKey, str], dict[str, Listed]] = field(default_factory=dict)
    #: The versions the last poll showed for each VaultSecret with sources (``composite.wanted``): it is behind when
    #: they move.
    composite_seen: dict[VSKey, dict[Slot, int] | None] = field(default_factory=dict)

    # -- VaultSecrets ----------------------------------------------------------------------------------

    def upsert(self, body: Mapping[str, Any]) -> Unit | None:
        """Record a VaultSecret from a watch event; return its source when it needs a sync now."""
        meta = _mapping(body.get("metadata"))
        key: VSKey = (_text(meta.get("namespace")), _text(meta.get("name")))
        held = key in self.unconfirmed
        self.unconfirmed.discard(key)
        source = self._upsert(key, meta, body)
        if source is None and held and key in self.dirty:
            # Held by a re-list while dirty: the job of its source skipped it (``take_dirty``) and did not queue it
            # again (``pending``). Listed again now, it must run — ``end_relist`` hands back only the entries still
            # held (found at 10,000 VaultSecrets: 2,095 dirty entries that no job would ever take).
            return self.entries[key].source
        return source

    def _upsert(self, key: VSKey, meta: Mapping[str, Any], body: Mapping[str, Any]) -> Unit | None:
        uid = _text(meta.get("uid"))
        generation = meta.get("generation")
        generation = generation if isinstance(generation, int) and not isinstance(generation, bool) else None
        old = self.entries.get(key)
        spec: VaultSecretSpec | None
        if old is not None and old.uid == uid and generation is not None and old.generation == generation:
            # The same generation has the same spec: the echo of our own status write, a label or annotation. Not
            # parsed again (pydantic is most of what an event costs; issue 14).
            spec, error = old.spec, old.spec_error
        else:
            try:
                spec = VaultSecretSpec.model_validate(body.get("spec") or {})
                error = None
            except ValidationError as exc:
                spec, error = None, _spec_error(exc)

        refresh = _mapping(meta.get("annotations")).get(ANNOTATION_REFRESH)
        refresh = refresh if isinstance(refresh, str) else None
        finalized = _finalized(meta)
        if old is not None and old.uid == uid and old.spec == spec and old.spec_error == error and not old.deleting:
            old.generation = generation
            old.finalized = finalized
            if spec is not None and old.source is not None and finalized != wants_finalizer(spec):
                self.dirty[key] = min(Priority.NEW, self.dirty.get(key, Priority.NEW))
                return old.source  # our finalizer removed by hand (or a stale event): the sync puts it right
            if refresh == old.refresh:
                return None  # our own status write, or a metadata change: nothing to do
            old.refresh = refresh
            if refresh is None or spec is None or old.source is None:
                return None
            logger.info("VaultSecret %s/%s: refresh requested; re-reading its source", key[0], key[1])
            old.synced_version = None  # confirmed by a GET only: the data hash decides whether anything is written
            old.synced_sources, old.reread = None, True
            self.dirty[key] = Priority.NEW
            return old.source
        status = dict(_mapping(body.get("status")))
        entry = Entry.of(key=key, uid=uid, generation=generation, spec=spec, spec_error=error, status=status,
                         refresh=refresh, finalized=finalized)  # fmt: skip
        if old is not None and old.uid == uid:
            entry.synced_version, entry.synced_spec = old.synced_version, old.synced_spec
            entry.synced_sources = old.synced_sources
            entry.status = old.status | status
        self._detach(key)
        self.entries[key] = entry
        if spec is not None:
            self._attach(entry, spec)
        self._prune_listings(old)
        if old is None and spec is not None and spec.composite:
            versions = self._looks_synced_composite(entry, spec)
            if versions is not None:
                entry.synced_sources, entry.synced_spec = versions, spec
                return None  # warm restart, as below
        elif old is None and self._looks_synced(entry):
            entry.synced_version = status.get("syncedVersion")
            entry.synced_spec = spec
            return None  # warm restart: trust the status until a watcher or the Secret index says otherwise
        self.dirty[key] = Priority.NEW
        return entry.source

    def _prune_listings(self, old: Entry | None) -> None:
        """Forget the listings of the dataFrom prefixes ``old`` followed that nobody follows any more (after the
        entry's new spec is attached: a spec change that keeps a prefix keeps its listing)."""
        if old is not None and old.spec is not None and old.spec.dataFrom:
            for prefix in composite.prefixes(old.spec, old.namespace):
                if prefix not in self.composite_prefixes:
                    self.listings.pop(prefix, None)

    def _attach(self, entry: Entry, spec: VaultSecretSpec) -> None:
        key = entry.key
        self.by_target[(key[0], spec.target_name(key[1]))] = key
        if spec.path is not None:
            entry.source = (connection_key(spec, key[0]), spec.path, spec.version)
            self.by_source[entry.source].add(key)
            return
        entry.source = Composite(key)
        self.by_source[entry.source].add(key)
        for conn in composite.connection_keys(spec, key[0]):
            self.composites[conn].add(key)
        for followed in composite.followed(spec, key[0]):
            self.composite_paths[followed].add(key)
        for prefix in composite.prefixes(spec, key[0]):
            self.composite_prefixes[prefix].add(key)

    def _looks_synced_composite(self, entry: Entry, spec: VaultSecretSpec) -> dict[Slot, int] | None:
        """The versions a VaultSecret with sources seen for the first time (operator start) holds, from its status,
        when its Secret holds them too (its revision); else None."""
        status = entry.status
        if entry.generation is None or status.get("observedGeneration") != entry.generation:
            return None
        if conditions.ready_of(status).get("status") != "True" or entry.finalized != wants_finalizer(spec):
            return None
        versions = composite.versions_from_status(status)
        return versions if versions is not None and self.secret_holds(entry, versions) else None

    def secret_holds(self, entry: Entry, versions: Mapping[Slot, int]) -> bool:
        """Whether the Secret of a VaultSecret with sources is indexed, intact, its own, and holds ``versions`` (its
        revision annotation)."""
        assert entry.spec is not None
        info = self.secrets.get((entry.namespace, entry.spec.target_name(entry.name)))
        return (info is not None and info.intact and info.owner_uid == entry.uid
                and info.revision == composite.revision(versions))  # fmt: skip

    def _looks_synced(self, entry: Entry) -> bool:
        """Whether a VaultSecret seen for the first time (operator start) is already in sync."""
        status, spec = entry.status, entry.spec
        if spec is None or entry.generation is None or status.get("observedGeneration") != entry.generation:
            return False
        version = status.get("syncedVersion")
        if (
            conditions.ready_of(status).get("status") != "True"
            or not isinstance(version, int)
            or isinstance(version, bool)
        ):
            return False
        if spec.version is not None and spec.version != version:
            return False
        if entry.finalized != wants_finalizer(spec):
            return False  # deletionPolicy changed (or the finalizer was removed) while the operator was down
        info = self.secrets.get((entry.namespace, spec.secret_name(entry.name, version)))
        return info is not None and info.intact and info.version == version and info.owner_uid == entry.uid

    def mark_deleting(self, body: Mapping[str, Any]) -> bool:
        """Record a VaultSecret that has a deletionTimestamp (a MODIFIED event, or listed at a start): it is never
        synced again — it leaves its source and the Secret index's owners, so no version, drift or retry touches
        it. True when it carries ``RETAIN_FINALIZER``: the caller queues its ``Release``."""
        meta = _mapping(body.get("metadata"))
        key: VSKey = (_text(meta.get("namespace")), _text(meta.get("name")))
        self.unconfirmed.discard(key)
        try:
            spec: VaultSecretSpec | None = VaultSecretSpec.model_validate(body.get("spec") or {})
            error = None
        except ValidationError as exc:
            spec, error = None, _spec_error(exc)
        old = self.entries.get(key)
        uid = _text(meta.get("uid"))
        status = dict(_mapping(body.get("status")))
        if old is not None and old.uid == uid:
            status = old.status | status
        self._detach(key)
        self._prune_listings(old)
        self.dirty.pop(key, None)
        self.entries[key] = Entry.of(key=key, uid=uid, generation=None, spec=spec, spec_error=error, status=status,
                                     finalized=_finalized(meta), deleting=True)  # fmt: skip
        return self.entries[key].finalized

    def remove(self, key: VSKey) -> None:
        old = self.entries.get(key)
        self._detach(key)
        self._prune_listings(old)
        self.entries.pop(key, None)
        self.dirty.pop(key, None)

    def _detach(self, key: VSKey) -> None:
        old = self.entries.get(key)
        if old is not None and old.spec is not None:
            target = (key[0], old.spec.target_name(key[1]))
            if self.by_target.get(target) == key:
                del self.by_target[target]
            if old.spec.composite:
                self.composite_seen.pop(key, None)
                _discard(self.composites, composite.connection_keys(old.spec, key[0]), key)
                _discard(self.composite_paths, composite.followed(old.spec, key[0]), key)
                _discard(self.composite_prefixes, composite.prefixes(old.spec, key[0]), key)
        if old is not None and old.source is not None:
            members = self.by_source.get(old.source)
            if members is not None:
                members.discard(key)
                if not members:
                    del self.by_source[old.source]
                    if not isinstance(old.source, Composite) and old.source[2] is None:
                        self.first_seen.pop((old.source[0], old.source[1]), None)

    def mark_dirty(self, key: VSKey, priority: int) -> Unit | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        self.dirty[key] = min(priority, self.dirty.get(key, priority))
        return entry.source

    def take_dirty(self, source: Unit) -> list[tuple[Entry, int]]:
        """The dirty members of ``source`` with their priority, no longer marked dirty (a failure re-marks).
        Unconfirmed members stay dirty: ``end_relist`` hands them back."""
        taken = []
        for key in sorted(self.by_source.get(source, ())):
            if key in self.unconfirmed:
                continue
            priority = self.dirty.pop(key, None)
            if priority is not None:
                taken.append((self.entries[key], priority))
        return taken

    def pending(self, source: Unit) -> int | None:
        """The most urgent priority among the members of ``source`` that are dirty and may run now, or None."""
        priorities = [self.dirty[key] for key in self.by_source.get(source, ())
                      if key in self.dirty and key not in self.unconfirmed]  # fmt: skip
        return min(priorities, default=None)

    # -- re-lists of the VaultSecret watch --------------------------------------------------------------

    def begin_relist(self) -> None:
        """The VaultSecret watch was listed again (its resourceVersion expired: 410 Gone). Objects deleted while it
        was down get no DELETED event; until ``end_relist``, every entry not seen again is held."""
        self.unconfirmed = set(self.entries)

    def end_relist(self, present: Mapping[VSKey, str]) -> tuple[list[VSKey], list[tuple[Unit, int]]]:
        """``present``: ``{key: uid}`` of a list made after the re-list. Forget the held entries it lacks (or has
        with another uid: deleted and re-created, the new one arrives as a watch event); return them, and the
        sources (with their priority) that have dirty members again to run."""
        held = [self.entries[key] for key in self.unconfirmed if key in self.entries]
        gone = sorted(entry.key for entry in held if present.get(entry.key) != entry.uid)
        sources = {entry.source for entry in held if entry.key in self.dirty}
        for key in gone:
            self.remove(key)
        self.unconfirmed = set()
        runnable = []
        for source in sources:
            priority = self.pending(source) if source is not None else None
            if source is not None and priority is not None:
                runnable.append((source, priority))
        return gone, runnable

    def members(self, source: Unit) -> list[Entry]:
        return [self.entries[key] for key in sorted(self.by_source.get(source, ()))]

    def sources_of(self, conn: ConnKey) -> list[Unit]:
        """The work units reading through ``conn``: its sources, and the VaultSecrets with sources that use it."""
        found: list[Unit] = [source for source in self.by_source if not isinstance(source, Composite)
                             and source[0] == conn]  # fmt: skip
        return found + [Composite(key) for key in sorted(self.composites.get(conn, ()))]

    def not_ready(self) -> list[tuple[str, str, str]]:
        """``(namespace, name, reason)`` of each VaultSecret whose Ready condition is not True: ``Pending`` while it has
        none, ``Unknown`` for a reason that is not a condition reason (a word; status is not free text in a label)."""
        found = []
        for entry in self.entries.values():
            if entry.ready != "True":
                found.append((entry.namespace, entry.name, entry_reason_label(entry)))
        return found

    def invalid_entries(self) -> list[Entry]:
        return [entry for entry in self.entries.values() if entry.spec is None]

    # -- version watching -------------------------------------------------------------------------------

    def followed_paths(self, conn: ConnKey) -> set[str]:
        """Paths of unpinned VaultSecrets on ``conn``: what the version watcher lists.

        A path whose users were all denied by the connection's access rules is left out: the rules hold for lists
        too. (A change of the rules re-syncs every user, which brings the path back once one is allowed.)
        """
        paths = {
            source[1]
            for source, members in self.by_source.items()
            if not isinstance(source, Composite)
            and source[0] == conn
            and source[2] is None
            and not all(self.entries[key].reason == conditions.POLICY_DENIED for key in members)
        }
        return paths | {path for (key_conn, path), members in self.composite_paths.items()
                        if key_conn == conn and not self._all_denied(members)}  # fmt: skip

    def _all_denied(self, members: Iterable[VSKey]) -> bool:
        return all(self.entries[key].reason == conditions.POLICY_DENIED for key in members)

    def followed_prefixes(self, conn: ConnKey) -> set[str]:
        """The dataFrom prefixes of the VaultSecrets on ``conn``: listed whole by the version watcher."""
        return {prefix for (key_conn, prefix), members in self.composite_prefixes.items()
                if key_conn == conn and not self._all_denied(members)}  # fmt: skip

    def observe_listing(self, conn: ConnKey, prefix: str, listing: Mapping[str, Listed]) -> None:
        """Record what a list of a followed dataFrom prefix showed (the watcher's poll, or a composite's first sync)."""
        if (conn, prefix) in self.composite_prefixes:
            self.listings[(conn, prefix)] = dict(listing)

    def composites_behind(self, conn: ConnKey) -> list[Composite]:
        """The VaultSecrets with sources on ``conn`` whose Secret does not hold what the lists show (marked dirty):
        another version or set of secrets; a followed source listed gone (its read reports SourceNotFound, the
        Secret keeps its data); or a source back after SourceNotFound."""
        behind = []
        for key in sorted(self.composites.get(conn, ())):
            entry = self.entries[key]
            if entry.spec is None or entry.deleting:
                continue
            wanted = self.wanted(entry)
            # Only what moved since the last poll (as a source's version): a VaultSecret that fails on what the lists
            # show (e.g. InvalidSourceData) is not read again every poll, only at its own retry.
            moved = key not in self.composite_seen or self.composite_seen[key] != wanted
            self.composite_seen[key] = wanted
            if not moved:
                continue
            if wanted is None:
                followed = composite.followed(entry.spec, entry.namespace)
                if not any(self.path_gone(*item) for item in followed):
                    continue  # not listed yet, or too many secrets: the sync reports it
                # A source is gone: one re-created later starts again at version 1, so the versions held can no
                # longer confirm the Secret (as for a single path): its next sync reads every source again.
                entry.synced_sources, entry.reread = None, True
            elif wanted == entry.synced_sources and entry.reason != conditions.SOURCE_NOT_FOUND:
                continue
            self.mark_dirty(key, Priority.VERSION)
            behind.append(Composite(key))
        return behind

    def wanted(self, entry: Entry) -> dict[Slot, int] | None:
        """``composite.wanted`` for a VaultSecret with sources, from the registry's latest versions and listings."""
        assert entry.spec is not None
        listings = [self.listings.get(prefix) for prefix in _prefix_keys(entry.spec, entry.namespace)]
        return composite.wanted(entry.spec, entry.namespace, self.latest_version, listings)

    def listings_of(self, entry: Entry) -> list[tuple[tuple[ConnKey, str], dict[str, Listed] | None]]:
        """Each dataFrom prefix of ``entry`` (in spec order) and what its last list showed (None: not listed yet)."""
        assert entry.spec is not None
        return [(prefix, self.listings.get(prefix)) for prefix in _prefix_keys(entry.spec, entry.namespace)]

    def latest_version(self, conn: ConnKey, path: str) -> int | None:
        """The version the connection's last list showed for ``path`` (None: not listed yet, or gone)."""
        return self.latest.get((conn, path))

    def observe_versions(
        self,
        conn: ConnKey,
        versions: Mapping[str, int | None],
        stamps: Mapping[str, int] | None = None,
        *,
        now: float | None = None,
        listings: Mapping[str, Mapping[str, Listed]] | None = None,
        partial: bool = False,
    ) -> list[Unit]:
        """Record listed versions (None: the path is gone) and, where the list gives them, ``updated_at`` stamps;
        return the sources with members behind. ``now`` (the watcher's monotonic clock): when given, a version that
        moved while members held an older one is noted in ``first_seen``. ``listings``: what the lists showed under
        each followed dataFrom prefix (``{prefix: {path: Listed}}``); the VaultSecrets with sources that are behind
        come last — unless ``partial`` (one page of a poll): what they should hold is decided on the whole list only.

        Behind: a version that moved since the last poll; the same version with another stamp (the secret was
        deleted and re-created at that version between two polls: its members are synced again, from a GET);
        or, when nothing moved, members whose last read failed transiently (BackendUnavailable) — the list just
        showed ScaiVault answering, so they run now instead of at the end of their own backoff.
        """
        changed: list[Unit] = []
        for path, version in versions.items():
            key_: tuple[ConnKey, str] = (conn, path)
            previous = self.latest.get(key_, _UNSEEN)
            self.latest[key_] = version
            stamp = stamps.get(path) if stamps is not None else None
            old_stamp = self.stamps.pop(key_, None) if stamp is None else self.stamps.get(key_)
            if stamp is not None:
                self.stamps[key_] = stamp
            source: SourceKey = (conn, path, None)
            members = self.by_source.get(source, ())
            recreated = previous == version and None not in (version, stamp, old_stamp) and stamp != old_stamp
            if previous == version and not recreated:
                if version is not None and any(self._retrying(key, version) for key in members):
                    changed.append(source)  # already dirty: only its turn comes sooner
                continue
            if now is not None:
                self._note_first_seen(key_, version, members, now, recreated=recreated)
            if recreated:
                logger.info("%s was re-created at version %s: syncing its users again", path, version)
                for key in members:
                    self.entries[key].synced_version = None
                changed += self._reread(self.composite_paths.get(key_, ()))
            stale = [key for key in members if self.entries[key].synced_version != version]
            for key in stale:
                self.mark_dirty(key, Priority.VERSION)
            if version is None:
                # Gone: a secret re-created later starts again at version 1, so the version number the Secret
                # holds can no longer confirm it. Forget it: the next listing of the path costs one GET, and the
                # data hash decides whether anything is written.
                for key in self.by_source.get(source, ()):
                    self.entries[key].synced_version = None
            if stale:
                changed.append(source)
        for prefix, listing in (listings or {}).items():
            before = self.listings.get((conn, prefix), {})
            again = [path for path, item in listing.items() if (old := before.get(path)) is not None
                     and old.version == item.version and None not in (old.stamp, item.stamp)
                     and old.stamp != item.stamp]  # fmt: skip
            if again:
                logger.info("%s: %d secret(s) re-created at the same version; syncing their users again", prefix,
                            len(again))  # fmt: skip
                changed += self._reread(self.composite_prefixes.get((conn, prefix), ()))
            self.observe_listing(conn, prefix, listing)
        if partial:
            return changed
        return changed + [unit for unit in self.composites_behind(conn) if unit not in changed]

    def _reread(self, keys: Iterable[VSKey]) -> list[Unit]:
        """VaultSecrets with sources that hold a secret deleted and re-created at the same version: their versions no
        longer confirm the Secret; the next sync reads every source again (no shared read)."""
        found: list[Unit] = []
        for key in sorted(keys):
            entry = self.entries[key]
            if entry.spec is not None and not entry.deleting:
                entry.synced_sources, entry.reread = None, True
                self.mark_dirty(key, Priority.VERSION)
                found.append(Composite(key))
        return found

    def _note_first_seen(
        self, key_: tuple[ConnKey, str], version: int | None, members: Iterable[VSKey], now: float, *, recreated: bool
    ) -> None:
        """The listed version of a path moved: start its propagation clock when a member holds an older version (a
        new VaultSecret's first sync, or a path seen for the first time with nobody synced, is not propagation)."""
        held = [self.entries[key].synced_version for key in members]
        if version is None or not any(v is not None and (v != version or recreated) for v in held):
            self.first_seen.pop(key_, None)
        elif recreated or self.first_seen.get(key_, (None, 0.0))[0] != version:
            self.first_seen[key_] = (version, now)

    def path_gone(self, conn: ConnKey, path: str) -> bool:
        """Whether the connection's last list showed ``path`` gone (not merely: not listed yet)."""
        key_ = (conn, path)
        return key_ in self.latest and self.latest[key_] is None

    def propagation_start(self, source: Unit, version: int) -> float | None:
        """When ``version`` of an unpinned source's path was first seen in a list, while it is in flight; else None
        (always for a VaultSecret with sources: its Secret holds several versions)."""
        if isinstance(source, Composite):
            return None
        found = self.first_seen.get((source[0], source[1])) if source[2] is None else None
        return found[1] if found is not None and found[0] == version else None

    def settle_propagation(self, source: SourceKey) -> None:
        """After a sync of ``source``: forget its version's first sighting once every member holds that version."""
        key_ = (source[0], source[1])
        found = self.first_seen.get(key_)
        if (
            found is not None
            and source[2] is None
            and all(entry.synced_version == found[0] for entry in self.members(source))
        ):
            del self.first_seen[key_]

    def _retrying(self, key: VSKey, version: int) -> bool:
        entry = self.entries[key]
        return (key in self.dirty and entry.synced_version != version
                and entry.reason == conditions.BACKEND_UNAVAILABLE)  # fmt: skip

    # -- managed Secrets (drift) ------------------------------------------------------------------------

    def observe_secret(self, event_type: str, body: Mapping[str, Any]) -> Unit | None:
        """Index a managed Secret from a watch event (or a Secret merged into, from the start-up list: those are not
        watched); return the owner's source when the Secret drifted."""
        meta = _mapping(body.get("metadata"))
        skey: VSKey = (_text(meta.get("namespace")), _text(meta.get("name")))
        if event_type == "DELETED":
            self.secrets.pop(skey, None)
        else:
            self.secrets[skey] = SecretInfo(owner_uid=merged_by_uid(body) or _controller_uid(meta),
                                            version=_annotation_version(meta), intact=data_intact(body),
                                            revision=_annotation_text(meta, ANNOTATION_REVISION))  # fmt: skip
        entry = self._target_owner(skey)
        if entry is not None and entry.spec is not None and entry.spec.composite:
            return self._composite_drift(entry, skey)
        if entry is None or entry.synced_version is None or entry.spec is None:
            return None
        if entry.spec.secret_name(entry.name, entry.synced_version) != skey[1]:
            return None  # another version of an immutable VaultSecret: only the current one is repaired
        info = self.secrets.get(skey)
        if info is not None and info.intact and info.version == entry.synced_version:
            return None
        logger.info("Secret %s/%s drifted from VaultSecret %s (%s); restoring", skey[0], skey[1], entry.name,
                    "deleted" if info is None else "edited")  # fmt: skip
        return self.mark_dirty(entry.key, Priority.DRIFT)

    def _composite_drift(self, entry: Entry, skey: VSKey) -> Unit | None:
        """The Secret of a VaultSecret with sources changed: drifted unless it still holds the synced revision."""
        if entry.synced_sources is None:
            return None
        info = self.secrets.get(skey)
        if info is not None and info.intact and info.revision == composite.revision(entry.synced_sources):
            return None
        logger.info("Secret %s/%s drifted from VaultSecret %s (%s); restoring", skey[0], skey[1], entry.name,
                    "deleted" if info is None else "edited")  # fmt: skip
        return self.mark_dirty(entry.key, Priority.DRIFT)

    def _target_owner(self, skey: VSKey) -> Entry | None:
        """The VaultSecret writing the Secret ``skey``: by its target name, or — ``<name>-v<version>`` — by the
        target name of an immutable VaultSecret."""
        owner_key = self.by_target.get(skey)
        if owner_key is None:
            base = skey[1].rpartition("-v")[0]
            owner_key = self.by_target.get((skey[0], base)) if version_of(base, skey[1]) is not None else None
            entry = self.entries.get(owner_key) if owner_key else None
            return entry if entry is not None and entry.spec is not None and entry.spec.target.immutable else None
        return self.entries.get(owner_key)

    def index_secrets(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Fill the Secret index from a list at start-up, before the VaultSecret watch delivers anything."""
        for body in bodies:
            self.observe_secret("ADDED", body)


# Bodies come from watch events: an API server validates them, but the index must not break on one that is odd
# (a field of the wrong type is read as absent).


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def reason_label(status: Mapping[str, Any]) -> str:
    """The Ready reason of ``status`` as a metric label: ``Pending`` while it has none, ``Unknown`` for one that is
    not a condition reason (status is written by whoever may patch it: never free text in a label)."""
    ready = conditions.ready_of(status)
    reason = ready.get("reason") if ready else "Pending"
    return reason if isinstance(reason, str) and _REASON.fullmatch(reason) else "Unknown"


def entry_reason_label(entry: Entry) -> str:
    """``reason_label`` of an entry's status, from its cached Ready reason (no decoding)."""
    if entry.ready is None:
        return "Pending"
    reason = entry.reason
    return reason if reason is not None and _REASON.fullmatch(reason) else "Unknown"


def ready_reason(status: Mapping[str, Any]) -> str | None:
    """The reason of the Ready condition in ``status``, if any."""
    reason = conditions.ready_of(status).get("reason")
    return reason if isinstance(reason, str) else None


def _controller_uid(meta: Mapping[str, Any]) -> str:
    refs = meta.get("ownerReferences")
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return _text(ref.get("uid"))
    return ""


def _finalized(meta: Mapping[str, Any]) -> bool:
    finalizers = meta.get("finalizers")
    return isinstance(finalizers, list) and RETAIN_FINALIZER in finalizers


def deleting(body: Mapping[str, Any]) -> bool:
    """Whether the object has a deletionTimestamp (it is being deleted, held by finalizers)."""
    return bool(_mapping(body.get("metadata")).get("deletionTimestamp"))


def _prefix_keys(spec: VaultSecretSpec, namespace: str) -> list[tuple[ConnKey, str]]:
    """``(connection, prefix)`` of each dataFrom entry, in spec order."""
    conn = composite.connection_key(None, spec, namespace)
    return [(conn, entry.prefix) for entry in spec.dataFrom or ()]


def _discard(index: dict[Any, set[VSKey]], keys: Iterable[Any], key: VSKey) -> None:
    for item in keys:
        members = index.get(item)
        if members is not None:
            members.discard(key)
            if not members:
                del index[item]


def _annotation_text(meta: Mapping[str, Any], name: str) -> str | None:
    value = _mapping(meta.get("annotations")).get(name)
    return value if isinstance(value, str) else None


def _annotation_version(meta: Mapping[str, Any]) -> int | None:
    raw = _mapping(meta.get("annotations")).get(ANNOTATION_VERSION)
    try:
        return int(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
