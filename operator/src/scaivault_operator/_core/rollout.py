"""Restarting the workloads whose keys changed: the I/O around ``_logic/rollout``'s decisions.

Owned here: the operator's digest key (random per process, never written anywhere: the digests only need to be
stable while the process runs and unreadable to people who read pod templates), the pending changes per namespace,
and the rollout job of one namespace's debounce window::

    Syncer wrote new data into an existing Secret → Rollouts.note → Planner (digests, never values)
        → queue RolloutWindow(namespace) after spec.rollout.debounce
    worker → Rollouts.run(window): list the namespace's workloads (3 lists) → plan → one patch per workload
        → an Event on each workload and VaultSecret, status.rollout, workload_restarts_total

A failed list is retried with backoff (the changes wait, joined with newer ones); a 403 is reported once per
window as a Warning Event on the VaultSecrets concerned (RBAC: the chart's ``rollout.enabled``) and dropped. A
patch refused with 409 (the workload changed since it was listed) is planned again on a fresh read, up to three
times. Changes noted but not yet rolled out are lost if the operator stops in the window (docs/rollout.md).

Called by ``runtime`` (its workers run the windows; ``sync`` reports the changes through ``Syncer.on_data_changed``).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scaivault_operator._cogs.api import VaultSecretSpec
from scaivault_operator._cogs.kube import Conflict, Kube, KubeError
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._logic import conditions
from scaivault_operator._logic.registry import Entry, Priority, Registry
from scaivault_operator._logic.rollout import (
    Change,
    Planner,
    Restart,
    RolloutWindow,
    changed_keys,
    key_digests,
    plan,
    restart_patch,
    version_of,
    versioned_names,
)
from scaivault_operator._logic.workloads import pod_spec_of, referenced_secrets

__all__ = ["RESTARTED", "ROLLOUT_FAILED", "ROLLOUT_TARGET_NOT_FOUND", "WORKLOADS_RESTARTED", "Rollouts"]

logger = logging.getLogger(__name__)

#: Event reasons (on the VaultSecret; ``RESTARTED`` on the workload).
WORKLOADS_RESTARTED = "WorkloadsRestarted"
RESTARTED = "SecretChanged"
ROLLOUT_FAILED = "RolloutFailed"
ROLLOUT_TARGET_NOT_FOUND = "RolloutTargetNotFound"
#: The debounce of a change whose VaultSecret has no ``spec.rollout`` (workloads that opt in themselves).
DEFAULT_DEBOUNCE = 10.0
_PATCH_ATTEMPTS = 3


@dataclass
class Rollouts:
    kube: Kube
    registry: Registry
    settings: OperatorSettings
    metrics: Metrics
    #: Queues a window: ``(key, priority, delay)`` (the runtime's work queue; a window already queued keeps the
    #: earlier time, so the first change of a window sets its end).
    schedule: Callable[[RolloutWindow, int, float], None]
    planner: Planner = field(default_factory=Planner)
    _key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    _failures: dict[str, int] = field(default_factory=dict)

    def note(self, entry: Entry, spec: VaultSecretSpec, secret: str, before: Mapping[str, Any] | None,
             after: Mapping[str, Any]) -> None:  # fmt: skip
        """The data of ``secret`` (of VaultSecret ``entry``) changed from ``before`` to ``after``: remember which
        keys changed and their new digests, and open the namespace's window. ``before`` None: a new versioned
        Secret (``target.immutable``), which no workload uses yet — its workloads move to it from older versions."""
        if not self.settings.rollout_enabled:
            return
        base = spec.target_name(entry.name) if spec.target.immutable else None
        changed = changed_keys(before, after) if before is not None else frozenset()
        if not changed and base is None:
            return
        rollout = spec.rollout
        targets = frozenset((t.kind, t.name) for t in rollout.targets) if rollout else frozenset()
        change = Change(entry.name, secret, changed, key_digests(self._key, after), targets,
                        rollout.auto if rollout else False, base)  # fmt: skip
        self.planner.note(entry.namespace, change)
        delay = rollout.debounce_seconds if rollout else DEFAULT_DEBOUNCE
        self.schedule(RolloutWindow(entry.namespace), Priority.VERSION, delay)

    async def run(self, window: RolloutWindow) -> float | None:
        """Roll out the changes of ``window``'s namespace; the delay after which to run it again (a failed list),
        or None."""
        namespace = window.namespace
        changes = self.planner.take(namespace)
        if not changes:
            return None
        try:
            workloads = await self.kube.list_workloads(namespace)
        except KubeError as exc:
            return await self._list_failed(namespace, changes, exc)
        self._failures.pop(namespace, None)
        await self._report_missing_targets(namespace, changes, workloads)
        previous = await self._previous_versions(namespace, changes, workloads)
        done: list[Restart] = []
        for restart in plan(workloads, changes, previous):
            applied = await self._restart(namespace, restart, changes, previous)
            if applied is not None:
                done.append(applied)
        await self._report(namespace, done, {change.vaultsecret: change.secret for change in changes})
        await self._clean_up_versions(namespace, changes, workloads, done)
        return None

    async def _previous_versions(self, namespace: str, changes: list[Change], workloads: list[dict[str, Any]]
                                 ) -> dict[str, Mapping[str, str] | None]:  # fmt: skip
        """Immutable versions: the digests of each older version a workload references (read once per window; None
        when it is gone), so that a workload moves to the new version only when a key it uses differs."""
        referenced = {name for workload in workloads for name in referenced_secrets(pod_spec_of(workload))}
        previous: dict[str, Mapping[str, str] | None] = {}
        for change in changes:
            if change.base is None:
                continue
            for name in versioned_names(change.base, referenced):
                if name == change.secret or name in previous:
                    continue
                try:
                    secret = await self.kube.get_secret(namespace, name)
                except KubeError as exc:
                    logger.warning("cannot read Secret %s/%s to compare versions: %s", namespace, name, exc)
                    secret = None  # unknown: a workload on it moves to the new version
                data = (secret or {}).get("data")
                previous[name] = key_digests(self._key, data) if isinstance(data, Mapping) else None
        return previous

    async def _clean_up_versions(self, namespace: str, changes: list[Change], workloads: list[dict[str, Any]],
                                 done: list[Restart]) -> None:  # fmt: skip
        """Immutable versions: delete this VaultSecret's versioned Secrets beyond ``target.keepVersions`` (the newest,
        the current one included) that no workload of the namespace references any more (after this window's
        moves). The unversioned Secret of a VaultSecret that became immutable counts as the oldest version."""
        moved: dict[tuple[Any, Any], dict[str, str]] = {(r.kind, r.name): dict(r.renames) for r in done}
        referenced: set[str] = set()
        for workload in workloads:
            renames = moved.get((workload.get("kind"), (workload.get("metadata") or {}).get("name")), {})
            referenced |= {renames.get(name, name) for name in referenced_secrets(pod_spec_of(workload))}
        for change in changes:
            entry = self.registry.entries.get((namespace, change.vaultsecret))
            if change.base is None or entry is None or entry.spec is None or not entry.spec.target.immutable:
                continue
            base = change.base
            ours = [name for (ns, name), info in list(self.registry.secrets.items())
                    if ns == namespace and info.owner_uid == entry.uid and versioned_names(base, [name])]  # fmt: skip
            if change.secret not in ours:  # its watch event may not have reached the index yet: still the newest
                ours.append(change.secret)
            ours.sort(key=lambda name: version_of(base, name) or 0, reverse=True)
            kept = set(ours[: entry.spec.target.keepVersions]) | {change.secret}
            for name in ours:
                if name in kept or name in referenced:
                    continue
                try:
                    await self.kube.delete_secret(namespace, name)
                except KubeError as exc:
                    logger.warning("cannot delete old version Secret %s/%s: %s", namespace, name, exc)
                    continue
                self.registry.secrets.pop((namespace, name), None)
                self.metrics.inc("secret_writes_total", {"operation": "delete"})
                logger.info("VaultSecret %s/%s: deleted Secret %s (beyond keepVersions, referenced by no workload)",
                            namespace, change.vaultsecret, name)  # fmt: skip

    async def _restart(self, namespace: str, restart: Restart, changes: list[Change],
                       previous: Mapping[str, Mapping[str, str] | None]) -> Restart | None:  # fmt: skip
        """Patch one workload's annotation; on 409, read it again and plan it anew (it may need no restart now)."""
        current: Restart | None = restart
        for attempt in range(_PATCH_ATTEMPTS):
            if current is None:
                return None
            try:
                if not await self.kube.patch_workload(current.kind, namespace, current.name, restart_patch(current)):
                    return None  # deleted meanwhile
            except Conflict:
                if attempt + 1 == _PATCH_ATTEMPTS:
                    break
                try:
                    fresh = await self.kube.get_workload(current.kind, namespace, current.name)
                except KubeError as exc:
                    self._patch_failed(namespace, current, exc)
                    return None
                planned = plan([fresh], changes, previous) if fresh is not None else []
                current = planned[0] if planned else None
                continue
            except KubeError as exc:
                self._patch_failed(namespace, current, exc)
                return None
            self.metrics.inc("workload_restarts_total", {"kind": current.kind})
            logger.info("restarted %s %s/%s: %s changed", current.kind, namespace, current.name, current.describe())
            ref = {"apiVersion": "apps/v1", "kind": current.kind, "name": current.name, "namespace": namespace,
                   "uid": current.uid or ""}  # fmt: skip
            await self._event(ref, "Normal", RESTARTED, f"restarted by scaivault-operator: {current.describe()} "
                              f"changed (VaultSecret {', '.join(current.vaultsecrets)})")  # fmt: skip
            return current
        self.metrics.inc("rollout_errors_total", {"reason": "conflict"})
        logger.warning("%s %s/%s changed under every restart attempt; not restarted", restart.kind, namespace,
                       restart.name)  # fmt: skip
        return None

    def _patch_failed(self, namespace: str, restart: Restart, exc: KubeError) -> None:
        reason = "forbidden" if exc.status == 403 else "unavailable"
        self.metrics.inc("rollout_errors_total", {"reason": reason})
        logger.warning("cannot restart %s %s/%s: %s", restart.kind, namespace, restart.name, exc)

    async def _list_failed(self, namespace: str, changes: list[Change], exc: KubeError) -> float | None:
        if exc.status in (401, 403):
            self.metrics.inc("rollout_errors_total", {"reason": "forbidden"})
            logger.warning("cannot list the workloads of namespace %s to restart them: %s", namespace, exc)
            message = (f"cannot list the Deployments, StatefulSets and DaemonSets of namespace {namespace} ({exc}): "
                       "grant get, list and patch on them (the chart's rollout.enabled), or set "
                       "SCAIVAULT_OPERATOR_ROLLOUT_ENABLED=false")  # fmt: skip
            for name in sorted({change.vaultsecret for change in changes}):
                await self._vaultsecret_event(namespace, name, "Warning", ROLLOUT_FAILED, message)
            return None
        self.metrics.inc("rollout_errors_total", {"reason": "unavailable"})
        failures = self._failures[namespace] = self._failures.get(namespace, 0) + 1
        backoff: float = min(self.settings.retry_max, self.settings.retry_base * 2 ** min(failures, 16))
        delay = max(backoff * random.uniform(0.5, 1.0), exc.retry_after or 0.0)
        logger.warning("cannot list the workloads of namespace %s: %s; retrying in %.0fs", namespace, exc, delay)
        self.planner.put_back(namespace, changes)
        return delay

    async def _report_missing_targets(self, namespace: str, changes: list[Change],
                                      workloads: list[dict[str, Any]]) -> None:  # fmt: skip
        present = {(w.get("kind"), (w.get("metadata") or {}).get("name")) for w in workloads}
        for change in changes:
            missing = sorted(target for target in change.targets if target not in present)
            if missing:
                names = ", ".join(f"{kind}/{name}" for kind, name in missing)
                await self._vaultsecret_event(namespace, change.vaultsecret, "Warning", ROLLOUT_TARGET_NOT_FOUND,
                                              f"spec.rollout.targets: {names} not found in namespace {namespace}; "
                                              "not restarted")  # fmt: skip

    async def _report(self, namespace: str, restarts: list[Restart], secrets: Mapping[str, str]) -> None:
        """Per VaultSecret that restarted workloads: one Event and ``status.rollout``, whose keys are those of its
        own Secret (``secrets``: the Secret of each VaultSecret of the window)."""
        by_vaultsecret: dict[str, list[Restart]] = {}
        for restart in restarts:
            for name in restart.vaultsecrets:
                by_vaultsecret.setdefault(name, []).append(restart)
        now = conditions.now_rfc3339()
        for name, done in sorted(by_vaultsecret.items()):
            listed = ", ".join(f"{r.kind}/{r.name} ({r.describe()})" for r in done)
            await self._vaultsecret_event(namespace, name, "Normal", WORKLOADS_RESTARTED,
                                          conditions.clip(f"restarted {listed}"))  # fmt: skip
            entry = self.registry.entries.get((namespace, name))
            if entry is None:
                continue
            status: dict[str, Any] = {"lastRolloutAt": now, "workloads": [
                {"kind": r.kind, "name": r.name,
                 "keys": sorted({k for secret, keys in r.secrets if secret == secrets.get(name) for k in keys})}
                for r in done
            ]}  # fmt: skip
            if entry.synced_version is not None:
                status["version"] = entry.synced_version
            try:
                if await self.kube.patch_vaultsecret_status(namespace, name, {"rollout": status}):
                    self.metrics.inc("status_writes_total")
                    entry.status = {**entry.status, "rollout": status}
            except KubeError as exc:
                logger.warning("cannot write status.rollout of VaultSecret %s/%s: %s", namespace, name, exc)

    async def _vaultsecret_event(self, namespace: str, name: str, type_: str, reason: str, message: str) -> None:
        entry = self.registry.entries.get((namespace, name))
        if entry is not None:
            await self._event(entry.ref, type_, reason, message)

    async def _event(self, ref: Mapping[str, str], type_: str, reason: str, message: str) -> None:
        self.metrics.inc("events_total", {"type": type_})
        await self.kube.post_event(ref, type_=type_, reason=reason, message=message)
