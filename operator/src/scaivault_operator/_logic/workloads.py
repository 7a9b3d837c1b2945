"""Which workloads use a Secret, and how: a pure matcher over pod templates.

A pod spec names a Secret in five places, all matched here by the Secret's name (a pod only sees Secrets of its own
namespace, so the caller passes the workloads of the Secret's namespace):

- ``env[].valueFrom.secretKeyRef.name`` of a container (``env``: one key as one variable);
- ``envFrom[].secretRef.name`` of a container (``envFrom``: every key as a variable);
- ``volumes[].secret.secretName`` (``volume``: the keys as files, where the containers mount the volume);
- ``volumes[].projected.sources[].secret.name`` (``projected``: the same, inside a projected volume);
- ``imagePullSecrets[].name`` (``imagePullSecret``: a ``kubernetes.io/dockerconfigjson`` Secret).

Containers are ``containers``, ``initContainers`` and ``ephemeralContainers``. What follows a new version by
itself is told apart from what needs a restart (``SecretUse.follows_updates``): the kubelet refreshes mounted
volumes, but environment variables are read when the container starts, and a ``subPath`` mount never changes.

Workloads are Deployments, StatefulSets, DaemonSets, ReplicaSets and Jobs (``spec.template.spec``), CronJobs
(``spec.jobTemplate.spec.template.spec``) and Pods (``spec``), as plain dicts. Malformed input (a field of the
wrong type) is read as absent, never raised.

Used by ``kubectl scaivault why`` and by ``rollout`` (which workloads a changed Secret restarts).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Mount",
    "SecretUse",
    "UseKind",
    "WorkloadUse",
    "pod_spec_of",
    "referenced_secrets",
    "renamed_references",
    "secret_uses",
    "summarize",
    "workloads_using",
]

UseKind = Literal["env", "envFrom", "volume", "projected", "imagePullSecret"]

_CONTAINER_LISTS = (("containers", False), ("initContainers", True), ("ephemeralContainers", False))


@dataclass(frozen=True)
class Mount:
    """Where a container mounts a volume that carries the Secret."""

    container: str
    path: str
    sub_path: bool  # mounted with subPath / subPathExpr: the kubelet never updates it

    def describe(self) -> str:
        return f"{self.path or '?'} in {self.container}" + (" (subPath: never updated)" if self.sub_path else "")


@dataclass(frozen=True)
class SecretUse:
    """One reference to the Secret in a pod spec.

    ``container``: the container of an ``env``/``envFrom`` use (``init`` when it is an init container); None for
    volumes and pull secrets. ``name``: the variable (``env``), the prefix (``envFrom``, may be None) or the volume
    (``volume``/``projected``). ``keys``: the Secret's keys used — one for ``env``; the ``items`` of a volume;
    empty when every key is. ``mounts``: where containers mount a volume use.
    """

    kind: UseKind
    container: str | None = None
    init: bool = False
    name: str | None = None
    keys: tuple[str, ...] = ()
    optional: bool = False
    mounts: tuple[Mount, ...] = ()

    @property
    def follows_updates(self) -> bool:
        """Whether running pods see a new version without a restart: volumes not mounted with subPath."""
        if self.kind in ("env", "envFrom"):
            return False
        if self.kind == "imagePullSecret":
            return True  # read at each image pull
        return not any(m.sub_path for m in self.mounts)

    def describe(self) -> str:
        """One line for people, e.g. ``env API_KEY <- key api_key (container app)``."""
        where = f" ({'init ' if self.init else ''}container {self.container})" if self.container else ""
        optional = ", optional" if self.optional else ""
        if self.kind == "env":
            return f"env {self.name} <- key {self.keys[0] if self.keys else '?'}{where}{optional}"
        if self.kind == "envFrom":
            prefix = f" with prefix {self.name}" if self.name else ""
            return f"envFrom: every key as a variable{prefix}{where}{optional}"
        if self.kind == "imagePullSecret":
            return "imagePullSecrets"
        kind = "volume" if self.kind == "volume" else "projected volume"
        keys = f", keys {', '.join(self.keys)}" if self.keys else ""
        mounted = "; ".join(m.describe() for m in self.mounts) or "not mounted by any container"
        return f"{kind} {self.name}{keys}{optional}: {mounted}"


@dataclass(frozen=True)
class WorkloadUse:
    """A workload whose pod template uses the Secret."""

    kind: str
    namespace: str
    name: str
    uses: tuple[SecretUse, ...]

    @property
    def needs_restart(self) -> bool:
        """Whether its pods see a new version only after a restart (an env use, or a subPath mount)."""
        return not all(use.follows_updates for use in self.uses)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def pod_spec_of(workload: Mapping[str, Any], kind: str | None = None) -> Mapping[str, Any]:
    """The pod spec of ``workload`` (its ``kind``, or the object's own ``kind``); empty when it has none."""
    kind = kind or _str(workload.get("kind")) or ""
    spec = _mapping(workload.get("spec"))
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = _mapping(_mapping(spec.get("jobTemplate")).get("spec"))
    return _mapping(_mapping(spec.get("template")).get("spec"))


def _containers(pod_spec: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], bool]]:
    return [(c, init) for field, init in _CONTAINER_LISTS for c in _list(pod_spec.get(field))]


def _mounts(pod_spec: Mapping[str, Any], volume: str) -> tuple[Mount, ...]:
    found: list[Mount] = []
    for container, _ in _containers(pod_spec):
        for mount in _list(container.get("volumeMounts")):
            if mount.get("name") == volume:
                sub_path = bool(_str(mount.get("subPath")) or _str(mount.get("subPathExpr")))
                found.append(Mount(_str(container.get("name")) or "?", _str(mount.get("mountPath")) or "", sub_path))
    return tuple(found)


def _item_keys(source: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(key for item in _list(source.get("items")) if (key := _str(item.get("key"))) is not None)


def secret_uses(pod_spec: Mapping[str, Any], secret: str) -> list[SecretUse]:
    """Every reference to the Secret named ``secret`` in ``pod_spec``: containers in order (their ``env``, then
    ``envFrom``), then volumes in order, then ``imagePullSecrets``."""
    uses: list[SecretUse] = []
    for container, init in _containers(pod_spec):
        name = _str(container.get("name")) or "?"
        for env in _list(container.get("env")):
            ref = _mapping(_mapping(env.get("valueFrom")).get("secretKeyRef"))
            if ref.get("name") == secret:
                key = _str(ref.get("key"))
                uses.append(SecretUse("env", name, init, _str(env.get("name")) or "?", (key,) if key else (),
                                      ref.get("optional") is True))  # fmt: skip
        for source in _list(container.get("envFrom")):
            ref = _mapping(source.get("secretRef"))
            if ref.get("name") == secret:
                uses.append(SecretUse("envFrom", name, init, _str(source.get("prefix")), (),
                                      ref.get("optional") is True))  # fmt: skip
    for volume in _list(pod_spec.get("volumes")):
        volume_name = _str(volume.get("name")) or "?"
        direct = _mapping(volume.get("secret"))
        if direct.get("secretName") == secret:
            uses.append(SecretUse("volume", None, False, volume_name, _item_keys(direct),
                                  direct.get("optional") is True, _mounts(pod_spec, volume_name)))  # fmt: skip
        for source in _list(_mapping(volume.get("projected")).get("sources")):
            projected = _mapping(source.get("secret"))
            if projected.get("name") == secret:
                uses.append(SecretUse("projected", None, False, volume_name, _item_keys(projected),
                                      projected.get("optional") is True, _mounts(pod_spec, volume_name)))  # fmt: skip
    if any(ref.get("name") == secret for ref in _list(pod_spec.get("imagePullSecrets"))):
        uses.append(SecretUse("imagePullSecret"))
    return uses


def referenced_secrets(pod_spec: Mapping[str, Any]) -> set[str]:
    """The names of every Secret the pod spec reads data from (env, envFrom, volumes, projected volumes; not
    ``imagePullSecrets``)."""
    names: set[str] = set()
    for container, _ in _containers(pod_spec):
        for env in _list(container.get("env")):
            names.add(_str(_mapping(_mapping(env.get("valueFrom")).get("secretKeyRef")).get("name")) or "")
        for source in _list(container.get("envFrom")):
            names.add(_str(_mapping(source.get("secretRef")).get("name")) or "")
    for volume in _list(pod_spec.get("volumes")):
        names.add(_str(_mapping(volume.get("secret")).get("secretName")) or "")
        for source in _list(_mapping(volume.get("projected")).get("sources")):
            names.add(_str(_mapping(source.get("secret")).get("name")) or "")
    names.discard("")
    return names


def renamed_references(pod_spec: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, list[Any]]:
    """The lists of a pod template's spec (``containers``, ``initContainers``, ``volumes``) in which a reference to a
    Secret named in ``renames`` (old name → new name) now names the new one: only the lists that changed, whole (a
    merge patch replaces a list), copies — ``pod_spec`` is not modified."""
    changed: dict[str, list[Any]] = {}

    def rename(holder: Any, key: str) -> bool:
        name = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(name, str) and name in renames:
            holder[key] = renames[name]
            return True
        return False

    def field_of(holder: Any, key: str) -> Any:
        return holder.get(key) if isinstance(holder, dict) else None

    def items_of(value: Any) -> list[Any]:
        return value if isinstance(value, list) else []  # malformed: read as absent, never raised

    for field in ("containers", "initContainers"):
        items = copy.deepcopy(pod_spec.get(field))
        if not isinstance(items, list):
            continue
        touched = False
        for container in items:
            for env in items_of(field_of(container, "env")):
                touched |= rename(field_of(field_of(env, "valueFrom"), "secretKeyRef"), "name")
            for source in items_of(field_of(container, "envFrom")):
                touched |= rename(field_of(source, "secretRef"), "name")
        if touched:
            changed[field] = items
    volumes = copy.deepcopy(pod_spec.get("volumes"))
    if isinstance(volumes, list):
        touched = False
        for volume in volumes:
            touched |= rename(field_of(volume, "secret"), "secretName")
            for source in items_of(field_of(field_of(volume, "projected"), "sources")):
                touched |= rename(field_of(source, "secret"), "name")
        if touched:
            changed["volumes"] = volumes
    return changed


def workloads_using(workloads: Iterable[Mapping[str, Any]], secret: str, *, namespace: str) -> list[WorkloadUse]:
    """The workloads of ``namespace`` whose pod template uses the Secret ``secret``, in the given order. Each
    workload is a dict with its ``kind`` (set it on list items, which the API server sends without one)."""
    found: list[WorkloadUse] = []
    for workload in workloads:
        meta = _mapping(workload.get("metadata"))
        if (_str(meta.get("namespace")) or namespace) != namespace:
            continue
        uses = secret_uses(pod_spec_of(workload), secret)
        if uses:
            found.append(WorkloadUse(_str(workload.get("kind")) or "?", namespace, _str(meta.get("name")) or "?",
                                     tuple(uses)))  # fmt: skip
    return found


def summarize(uses: Sequence[WorkloadUse]) -> list[dict[str, Any]]:
    """``uses`` as plain data (``-o json``)."""
    return [
        {
            "kind": w.kind,
            "name": w.name,
            "needsRestart": w.needs_restart,
            "uses": [
                {
                    "kind": u.kind,
                    "container": u.container,
                    "name": u.name,
                    "keys": list(u.keys),
                    "optional": u.optional,
                    "followsUpdates": u.follows_updates,
                    "mounts": [{"container": m.container, "path": m.path, "subPath": m.sub_path} for m in u.mounts],
                }
                for u in w.uses
            ],
        }
        for w in uses
    ]
