"""The fake ``Kube`` and the harness of the rollout tests (``_core/rollout.Rollouts``): test_rollout_core.py (the
restarts of a window) and test_immutable_rollout_core.py (the moves to immutable versions and their clean-up).

- ``workload``: a Deployment, StatefulSet or DaemonSet whose one container uses Secrets by ``env``, ``envFrom`` or
  a secret volume.
- ``FakeKube``: what ``Rollouts`` uses of ``Kube``, in memory. A patch is applied as the API server applies a merge
  patch (pod-template annotations and lists alike), guarded by its resourceVersion (409 ``Conflict``), and bumps it;
  every call is counted, and errors are injected per call (lists, patches) or per Secret name (reads, deletes).
- ``RolloutHarness``: ``Rollouts`` on a ``FakeKube`` with a real ``Registry`` and ``Metrics``; each test module
  adds how it declares its VaultSecrets and notes their changes.
"""

from __future__ import annotations

import base64
import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

from scaivault_operator._cogs.kube import Conflict, KubeError
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.rollout import Rollouts
from scaivault_operator._logic.manifests import merge_patch
from scaivault_operator._logic.registry import Registry
from scaivault_operator._logic.rollout import RolloutWindow
from scaivault_operator._logic.workloads import pod_spec_of, referenced_secrets

NS = "team-a"
WINDOW = RolloutWindow(NS)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def workload(name: str, *, env: dict[str, tuple[str, str]] | None = None, env_from: str | None = None,
             volume: str | None = None, kind: str = "Deployment", rv: str = "1") -> dict[str, Any]:  # fmt: skip
    """``env``: variable -> (secret, key)."""
    container: dict[str, Any] = {"name": "app", "image": "busybox"}
    if env:
        container["env"] = [{"name": var, "valueFrom": {"secretKeyRef": {"name": s, "key": k}}}
                            for var, (s, k) in env.items()]  # fmt: skip
    if env_from:
        container["envFrom"] = [{"secretRef": {"name": env_from}}]
    pod: dict[str, Any] = {"containers": [container]}
    if volume:
        pod["volumes"] = [{"name": "v", "secret": {"secretName": volume}}]
    return {"kind": kind, "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": rv},
            "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": pod}}}  # fmt: skip


class FakeKube:
    """What ``Rollouts`` uses of ``Kube``: workloads and Secrets stored.

    Counted: ``lists``, ``workload_gets`` (``Kind/name``, in order), ``secret_gets`` (per name), ``patches`` and
    ``deletes`` (attempted, failed ones too), ``events``, ``statuses``. Injected: ``list_errors`` and
    ``patch_errors`` are raised by the next calls, in order; ``secret_get_errors`` and ``delete_errors`` by every
    read or delete of that Secret name; ``after_list`` runs once after the next list that succeeds: another writer
    between the list and the patches."""

    def __init__(self, *workloads: dict[str, Any]) -> None:
        self.workloads = {(w["kind"], w["metadata"]["name"]): w for w in workloads}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.list_errors: list[KubeError] = []
        self.patch_errors: list[KubeError] = []
        self.secret_get_errors: dict[str, KubeError] = {}
        self.delete_errors: dict[str, KubeError] = {}
        self.after_list: list[Callable[[], object]] = []
        self.lists = 0
        self.workload_gets: list[str] = []
        self.secret_gets: Counter[str] = Counter()
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.deletes: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.statuses: list[tuple[str, dict[str, Any]]] = []

    def add_secret(self, body: dict[str, Any]) -> None:
        self.secrets[body["metadata"]["name"]] = copy.deepcopy(body)

    async def list_workloads(self, namespace: str) -> list[dict[str, Any]]:
        self.lists += 1
        if self.list_errors:
            raise self.list_errors.pop(0)
        listed = [copy.deepcopy(w) for w in self.workloads.values() if w["metadata"]["namespace"] == namespace]
        while self.after_list:
            self.after_list.pop(0)()
        return listed

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.workload_gets.append(f"{kind}/{name}")
        found = self.workloads.get((kind, name))
        return copy.deepcopy(found) if found is not None else None

    async def patch_workload(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> bool:
        self.patches.append((kind, name, copy.deepcopy(patch)))
        if self.patch_errors:
            raise self.patch_errors.pop(0)
        found = self.workloads.get((kind, name))
        if found is None:
            return False
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != found["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified", 409)
        merged = merge_patch(found, {key: value for key, value in patch.items() if key != "metadata"})
        bumped = str(int(found["metadata"]["resourceVersion"]) + 1)
        merged["metadata"] = {**found["metadata"], "resourceVersion": bumped}
        self.workloads[(kind, name)] = merged
        return True

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.secret_gets[name] += 1
        if name in self.secret_get_errors:
            raise self.secret_get_errors[name]
        found = self.secrets.get(name)
        return copy.deepcopy(found) if found is not None else None

    async def delete_secret(self, namespace: str, name: str) -> None:
        self.deletes.append(name)
        if name in self.delete_errors:
            raise self.delete_errors[name]
        self.secrets.pop(name, None)

    async def post_event(self, involved: dict[str, str], *, type_: str, reason: str, message: str) -> None:
        self.events.append({"involved": dict(involved), "type": type_, "reason": reason, "message": message})

    async def patch_vaultsecret_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        self.statuses.append((name, copy.deepcopy(status)))
        return True

    def reasons(self) -> list[tuple[str, str, str]]:
        """The Events posted, as (kind, name, reason) of the object they are about."""
        return [(e["involved"]["kind"], e["involved"]["name"], e["reason"]) for e in self.events]

    def references(self, kind: str, name: str) -> set[str]:
        """The Secrets a stored workload's pod template references now."""
        return referenced_secrets(pod_spec_of(self.workloads[(kind, name)]))


class RolloutHarness:
    """``Rollouts`` on ``kube``, with ``retry_base`` 1 s and ``retry_max`` 8 s unless ``settings`` say otherwise;
    each window it asks to schedule is kept in ``scheduled`` as (window, priority, delay)."""

    def __init__(self, kube: FakeKube, **settings: Any) -> None:
        self.kube = kube
        self.registry = Registry()
        self.metrics = Metrics()
        self.scheduled: list[tuple[RolloutWindow, int, float]] = []
        values = {"retry_base": 1.0, "retry_max": 8.0, **settings}

        def schedule(key: RolloutWindow, priority: int, delay: float) -> None:
            self.scheduled.append((key, priority, delay))

        self.rollouts = Rollouts(kube, self.registry, OperatorSettings(**values), self.metrics, schedule)  # type: ignore[arg-type]

    def restarts(self, kind: str = "Deployment") -> float:
        return self.metrics.value("workload_restarts_total", {"kind": kind})

    def errors(self, reason: str) -> float:
        return self.metrics.value("rollout_errors_total", {"reason": reason})
