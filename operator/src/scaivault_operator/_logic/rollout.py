"""Which workloads a change of a synced Secret restarts, and with what patch: pure decisions, no I/O.

A restart is a patch of one pod-template annotation, ``ROLLOUT_ANNOTATION``, whose value lists, per Secret that
restarts the workload, a digest of the data of the keys that workload actually uses (``name=digest,...``, sorted).
Changing the value changes the pod template, so the workload's controller rolls its pods; the same data gives the
same digest, so nothing rolls when the keys a workload uses did not change — a new version that changes other keys,
an operator restart, a drift repair or a resync restart nothing.

The digests are keyed (HMAC-SHA256 with a key only the operator holds, ``key_digests``): a pod template is readable
by people who may not read Secrets (the ``view`` role), and a plain hash of a short password can be reversed by
trying every candidate. Per key, the operator keeps only these digests between the write and the rollout — never a
value.

A workload is restarted for a changed Secret when it uses the Secret (``workloads``' matcher: ``env``,
``envFrom``, volumes, projected volumes; not ``imagePullSecrets``, read at each pull) and one of:

- it is in the VaultSecret's ``spec.rollout.targets`` (restarted even without a reference in its pod template: an
  application may read the Secret through the API; then every key counts as used);
- ``spec.rollout.auto`` is true;
- the workload carries ``RELOAD_ANNOTATION: "true"`` (it opts in from its side, whatever the VaultSecret says).

Changes are debounced per namespace (``Planner``): the first change opens a window of ``spec.rollout.debounce``;
every change until it closes joins, so several VaultSecrets used by one workload cause one patch. Called by
``_core/rollout``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scaivault_operator._logic.workloads import pod_spec_of, referenced_secrets, renamed_references, secret_uses

__all__ = [
    "RELOAD_ANNOTATION",
    "ROLLOUT_ANNOTATION",
    "WORKLOAD_KINDS",
    "Change",
    "Planner",
    "Restart",
    "RolloutWindow",
    "changed_keys",
    "format_stamps",
    "key_digests",
    "parse_stamps",
    "plan",
    "restart_patch",
    "version_of",
    "versioned_names",
]

#: Pod-template annotation whose change restarts a workload: ``secret=digest,...``.
ROLLOUT_ANNOTATION = "scaivault.scailabs.ai/rollout"
#: Workload annotation: ``"true"`` restarts it when a synced Secret it uses changes, whatever the VaultSecret says.
RELOAD_ANNOTATION = "scaivault.scailabs.ai/reload"
#: The kinds a rollout patches (apps/v1).
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
_DIGEST_CHARS = 16


@dataclass(frozen=True)
class RolloutWindow:
    """Work-queue key: the debounce window of one namespace's rollouts."""

    namespace: str


def key_digests(secret_key: bytes, data: Mapping[str, Any]) -> dict[str, str]:
    """Per key of a Secret's ``data`` (base64 strings), the keyed digest of its value: what may be kept and compared
    in place of the value."""
    return {
        key: hmac.new(secret_key, f"{key}\0{value}".encode(), hashlib.sha256).hexdigest()
        for key, value in data.items()
        if isinstance(value, str)
    }


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> frozenset[str]:
    """Keys added, removed or with another value between two ``data`` maps."""
    return frozenset(key for key in set(before) | set(after) if before.get(key) != after.get(key))


@dataclass(frozen=True)
class Change:
    """The data of one synced Secret changed (a new version or spec). No values: keyed digests only."""

    vaultsecret: str  # its name (same namespace as the Secret)
    secret: str
    changed: frozenset[str]
    digests: Mapping[str, str]
    targets: frozenset[tuple[str, str]] = frozenset()  # (kind, name) of spec.rollout.targets
    auto: bool = False
    #: ``target.immutable``: the base name; ``secret`` is then the new versioned Secret ``<base>-v<version>``, and
    #: workloads are moved to it from the names of older versions (``versioned_names``) instead of stamped.
    base: str | None = None

    @property
    def slot(self) -> str:
        """What a later change in the same window replaces: the Secret, or every version of an immutable one."""
        return self.base or self.secret

    def joined(self, later: Change) -> Change:
        """This change followed by ``later`` of the same Secret within one window: the later data and settings,
        the keys changed by either."""
        return Change(later.vaultsecret, later.secret, self.changed | later.changed, later.digests, later.targets,
                      later.auto, later.base)  # fmt: skip


@dataclass
class Planner:
    """Changes waiting for their namespace's window to close. A Secret changed twice in a window counts once."""

    pending: dict[str, dict[str, Change]] = field(default_factory=dict)

    def note(self, namespace: str, change: Change) -> None:
        waiting = self.pending.setdefault(namespace, {})
        earlier = waiting.get(change.slot)
        waiting[change.slot] = change if earlier is None else earlier.joined(change)

    def take(self, namespace: str) -> list[Change]:
        return list(self.pending.pop(namespace, {}).values())

    def put_back(self, namespace: str, changes: Iterable[Change]) -> None:
        """Changes of a window whose rollout failed: kept for the next try (joined with newer ones)."""
        newer = self.pending.pop(namespace, {})
        for change in changes:
            self.note(namespace, change)
        for change in newer.values():
            self.note(namespace, change)


@dataclass(frozen=True)
class Restart:
    """One workload to patch: its new ``ROLLOUT_ANNOTATION`` value, and why (for Events and status)."""

    kind: str
    name: str
    value: str | None  # None: the annotation stays (only renames)
    resource_version: str | None
    #: (secret, changed keys it uses) per Secret that restarts it, sorted
    secrets: tuple[tuple[str, tuple[str, ...]], ...]
    vaultsecrets: tuple[str, ...]
    uid: str | None = None
    #: Immutable versions: (old name, new name) of each reference moved to a new versioned Secret.
    renames: tuple[tuple[str, str], ...] = ()
    #: The pod template's lists with the renamed references (``renamed_references``).
    lists: Mapping[str, list[Any]] = field(default_factory=dict)

    def describe(self) -> str:
        """``keys a, b of Secret db`` (names only)."""
        return "; ".join(f"{'key' if len(keys) == 1 else 'keys'} {', '.join(keys)} of Secret {secret}"
                         for secret, keys in self.secrets)  # fmt: skip


def parse_stamps(value: Any) -> dict[str, str]:
    """``ROLLOUT_ANNOTATION``'s value as ``{secret: digest}``; entries that do not parse are dropped."""
    stamps: dict[str, str] = {}
    if not isinstance(value, str):
        return stamps
    for item in value.split(","):
        secret, sep, digest = item.strip().partition("=")
        if sep and secret and digest:
            stamps[secret] = digest
    return stamps


def format_stamps(stamps: Mapping[str, str]) -> str:
    return ",".join(f"{secret}={digest}" for secret, digest in sorted(stamps.items()))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _used_keys(pod_spec: Mapping[str, Any], secret: str, explicit: bool, all_keys: Iterable[str]) -> set[str] | None:
    """The keys of ``secret`` the pod spec uses (every key for ``envFrom`` or a volume without ``items``, or for an
    explicit target that does not reference the Secret at all); None when it does not use the Secret. ``all_keys``:
    the Secret's keys, those the change removed included (an ``envFrom`` variable stays until the pods restart)."""
    uses = [use for use in secret_uses(pod_spec, secret) if use.kind != "imagePullSecret"]
    if not uses:
        return set(all_keys) if explicit else None
    used: set[str] = set()
    for use in uses:
        if not use.keys:
            return set(all_keys)
        used.update(use.keys)
    return used


def _stamp(digests: Mapping[str, str], used: Iterable[str]) -> str:
    """The digest of the used keys' digests: changes when, and only when, one of them does."""
    joined = "\n".join(f"{key}={digests.get(key, '-')}" for key in sorted(used))
    return hashlib.sha256(joined.encode()).hexdigest()[:_DIGEST_CHARS]


def _number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is also true for superscripts (which ``int`` refuses) and for the digits
    of other scripts (which ``int`` reads as numbers)."""
    return text.isascii() and text.isdigit()


def versioned_names(base: str, names: Iterable[str]) -> list[str]:
    """The names among ``names`` that are ``base`` itself or one of its versions ``<base>-v<number>``."""
    return sorted(n for n in names if n == base or (n.startswith(f"{base}-v") and _number(n[len(base) + 2 :])))


def version_of(base: str, name: str) -> int | None:
    """The version in ``<base>-v<number>``; None for ``base`` itself or another name."""
    suffix = name[len(base) + 2 :] if name.startswith(f"{base}-v") else ""
    return int(suffix) if _number(suffix) else None


def plan(
    workloads: Iterable[Mapping[str, Any]],
    changes: Iterable[Change],
    previous: Mapping[str, Mapping[str, str] | None] | None = None,
) -> list[Restart]:
    """The workloads to restart for ``changes`` (all of one namespace), each once, in the given order.

    ``workloads``: Deployments, StatefulSets and DaemonSets of the namespace as dicts with their ``kind``. A workload
    is restarted when a Secret it is selected for (targets, auto, or its reload annotation) changed in a key it uses
    and its stamp for that Secret differs from the new one. For an immutable VaultSecret (``Change.base``), a
    workload that references an older version is moved to the new one when a key it uses differs between the two:
    ``previous`` has the digests of each older version referenced (None: gone, so it moves); one that references
    the current version, re-created with other data (``Change.changed``), is stamped.
    """
    changes = list(changes)
    restarts: list[Restart] = []
    for workload in workloads:
        kind, meta = workload.get("kind"), _mapping(workload.get("metadata"))
        name = meta.get("name")
        if kind not in WORKLOAD_KINDS or not isinstance(name, str):
            continue
        pod_spec = pod_spec_of(workload, kind)
        template_meta = _mapping(_mapping(_mapping(workload.get("spec")).get("template")).get("metadata"))
        current = parse_stamps(_mapping(template_meta.get("annotations")).get(ROLLOUT_ANNOTATION))
        reload = _mapping(meta.get("annotations")).get(RELOAD_ANNOTATION) == "true"
        stamps = dict(current)
        reasons: list[tuple[str, tuple[str, ...]]] = []
        vaultsecrets: list[str] = []
        renames: dict[str, str] = {}
        refs = referenced_secrets(pod_spec) if any(change.base is not None for change in changes) else set()
        for change in changes:
            explicit = (kind, name) in change.targets
            if not (explicit or change.auto or reload):
                continue
            if change.base is not None:
                moved = _moves(pod_spec, refs, change, previous or {})
                for old, keys in moved.items():
                    renames[old] = change.secret
                    reasons.append((change.secret, keys))
                if moved:
                    vaultsecrets.append(change.vaultsecret)
                # The current version itself re-created with other data (a spec change at the same version): its
                # users are stamped as for a mutable Secret. A new version has no users yet (``changed`` empty).
                if not change.changed or change.secret not in refs:
                    continue
                explicit = False  # a target that does not reference it cannot be moved or restarted for it
            used = _used_keys(pod_spec, change.secret, explicit, change.digests.keys() | change.changed)
            if used is None or not used & change.changed:
                continue
            stamp = _stamp(change.digests, used)
            if current.get(change.secret) == stamp:
                continue  # its pods already run with this data
            stamps[change.secret] = stamp
            reasons.append((change.secret, tuple(sorted(used & change.changed))))
            vaultsecrets.append(change.vaultsecret)
        if reasons:
            version, uid = meta.get("resourceVersion"), meta.get("uid")
            value = format_stamps(stamps) if stamps != current else None
            lists = renamed_references(pod_spec, renames) if renames else {}
            restarts.append(Restart(kind, name, value, version, tuple(sorted(set(reasons))),
                                    tuple(sorted(set(vaultsecrets))), uid, tuple(sorted(renames.items())),
                                    lists))  # fmt: skip
    return restarts


def _moves(pod_spec: Mapping[str, Any], refs: Iterable[str], change: Change,
           previous: Mapping[str, Mapping[str, str] | None]) -> dict[str, tuple[str, ...]]:  # fmt: skip
    """Immutable versions: the older versions the pod spec references (``refs``: ``referenced_secrets``) that it
    should leave for ``change.secret``, with the keys it uses that differ (every used key when the old version's
    data is unknown)."""
    assert change.base is not None
    moves: dict[str, tuple[str, ...]] = {}
    for old in versioned_names(change.base, refs):
        if old == change.secret:
            continue
        before = previous.get(old)
        used = _used_keys(pod_spec, old, False, change.digests.keys() | (before or {}).keys()) or set()
        differ = used if before is None else {key for key in used if before.get(key) != change.digests.get(key)}
        if differ:
            moves[old] = tuple(sorted(differ))
    return moves


def restart_patch(restart: Restart) -> dict[str, Any]:
    """The merge patch that restarts the workload: the new annotation on its pod template and the lists whose
    references moved to a new immutable version, guarded by the ``resourceVersion`` it was planned on (a workload
    changed meanwhile fails with 409 and is planned again)."""
    template: dict[str, Any] = {}
    if restart.value is not None:
        template["metadata"] = {"annotations": {ROLLOUT_ANNOTATION: restart.value}}
    if restart.lists:
        template["spec"] = dict(restart.lists)
    patch: dict[str, Any] = {"spec": {"template": template}}
    if restart.resource_version:
        patch["metadata"] = {"resourceVersion": restart.resource_version}
    return patch
