"""The object store of the in-memory Kubernetes API: O(1) per read and write, real ``resourceVersion`` semantics.

Owned here: objects (a dict per resource type, keyed by ``(namespace, name)``), one global ``resourceVersion``
counter, a bounded event history per resource type (watch from a version; 410 Gone when it is too old), watch
fan-out with label/field selectors (an object that stops matching is seen as DELETED, one that starts
matching as ADDED, as the API server's watch cache does), paged lists from consistent snapshots, the status
subresource, ``generation``, ownerReference garbage collection, finalizers, namespace deletion, and
CustomResourceDefinitions that register their resource types -- after ``scaivault_operator.crdcheck`` has checked
them as the API server's admission does (422 ``Invalid`` with the server's causes, 400 for a body that does not
decode; unknown fields are dropped, as the server does without ``fieldValidation=Strict``).

Stored objects are never modified in place: every write stores a new dict, so lists, snapshots and pending
watch events can share them. Everything here is synchronous and runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import copy
import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scaivault_operator.crdcheck import InvalidCrdError, validate_crd, validate_crd_update

from ._patch import PatchError, json_patch, merge_patch
from ._selectors import Matcher, SelectorError, parse_field_selector, parse_label_selector

__all__ = ["ApiError", "Event", "ResourceType", "Store", "Watcher"]

Obj = dict[str, Any]
ObjKey = tuple[str, str, str]  # (resource type key, namespace or "", name)
Listener = Callable[["ResourceType", str, "Obj | None", Obj], None]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CLOSE = object()  # sentinel pushed to a watcher's queue to end its stream


class ApiError(Exception):
    """An error the API answers as a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = dict(details or {})

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": self.message, "reason": self.reason, "code": self.code}  # fmt: skip
        if self.details:
            body["details"] = self.details
        return body


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    generation: bool = False  # keep metadata.generation (bumped on changes outside metadata and status)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.api_version}/{self.plural}"

    def discovery(self) -> list[Obj]:
        main: Obj = {"name": self.plural, "singularName": self.singular or self.kind.lower(),
                     "namespaced": self.namespaced, "kind": self.kind, "verbs": list(_ALL_VERBS)}  # fmt: skip
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        subs = [{"name": f"{self.plural}/{sub}", "singularName": "", "namespaced": self.namespaced,
                 "kind": self.kind, "verbs": ["get", "patch", "update"]}
                for sub in sorted(self.subresources)]  # fmt: skip
        return [main, *subs]


@dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    old: Obj | None
    new: Obj
    _line: dict[str, bytes] = field(default_factory=dict)

    def line(self, type_: str) -> bytes:
        """The watch-stream line for this event seen as ``type_`` (encoded once, shared by all watchers)."""
        cached = self._line.get(type_)
        if cached is None:
            cached = self._line[type_] = _dumps({"type": type_, "object": self.new}) + b"\n"
        return cached


class Watcher:
    """One open watch: its filters and the queue the store pushes (type, event) pairs into."""

    def __init__(self, namespace: str | None, labels: Matcher | None, fields: Matcher | None) -> None:
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and (obj.get("metadata") or {}).get("namespace") != self.namespace:
            return False
        if self.labels is not None and not self.labels(obj):
            return False
        return self.fields is None or self.fields(obj)

    def seen_as(self, event: Event) -> str | None:
        """How this watcher sees ``event``: its type, a synthetic ADDED/DELETED, or None (filtered out)."""
        now = self.matches(event.new)
        if event.type != "MODIFIED":
            return event.type if now else None
        before = self.matches(event.old)
        if now and before:
            return "MODIFIED"
        if now:
            return "ADDED"
        if before:
            return "DELETED"
        return None

    def offer(self, event: Event) -> None:
        seen = self.seen_as(event)
        if seen is not None:
            self.queue.put_nowait((seen, event))


@dataclass
class _TypeState:
    rtype: ResourceType
    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    history: collections.deque[Event] = field(default_factory=collections.deque)
    evicted_rv: int = 0  # events up to this resourceVersion are gone from the history
    watchers: set[Watcher] = field(default_factory=set)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner_uids(obj: Obj | None) -> set[str]:
    if obj is None:
        return set()
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return {str(ref.get("uid")) for ref in refs if isinstance(ref, Mapping) and ref.get("uid")}


def _without_rv(obj: Obj) -> Obj:
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    return {**obj, "metadata": meta}


CORE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",),
                 subresources=frozenset({"status"})),
    ResourceType("", "v1", "secrets", "Secret", namespaced=True),
    ResourceType("", "v1", "configmaps", "ConfigMap", namespaced=True, short_names=("cm",)),
    ResourceType("", "v1", "events", "Event", namespaced=True, short_names=("ev",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", namespaced=True, short_names=("sa",)),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                 namespaced=False, short_names=("crd", "crds"), subresources=frozenset({"status"}), generation=True),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True),
    # The workloads the operator lists and patches to roll out changed keys (``_core/rollout``): without them it
    # would see 404s and retry, which a real API server never answers.
    ResourceType("apps", "v1", "deployments", "Deployment", namespaced=True, short_names=("deploy",),
                 subresources=frozenset({"status"}), generation=True),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", namespaced=True, short_names=("sts",),
                 subresources=frozenset({"status"}), generation=True),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", namespaced=True, short_names=("ds",),
                 subresources=frozenset({"status"}), generation=True),
)  # fmt: skip


class Store:
    """Every object of the emulated cluster. Methods raise ``ApiError`` with the API server's status codes."""

    def __init__(self, *, history: int = 20_000, strict_namespaces: bool = False, snapshots: int = 64) -> None:
        self.history_limit = history
        self.strict_namespaces = strict_namespaces
        self.rv = 1
        self._types: dict[tuple[str, str, str], _TypeState] = {}
        self._uids: dict[str, ObjKey] = {}
        self._dependents: dict[str, set[ObjKey]] = collections.defaultdict(set)
        self._snapshots: collections.OrderedDict[str, tuple[int, list[Obj]]] = collections.OrderedDict()
        self._snapshot_limit = snapshots
        self._snapshot_ids = itertools.count(1)
        self.listeners: list[Listener] = []
        for rtype in CORE_TYPES:
            self.register(rtype)

    # -- types --------------------------------------------------------------------------------------------

    def register(self, rtype: ResourceType) -> None:
        key = (rtype.group, rtype.version, rtype.plural)
        if key not in self._types:
            self._types[key] = _TypeState(rtype, evicted_rv=0)

    def unregister(self, group: str, version: str, plural: str) -> None:
        state = self._types.get((group, version, plural))
        if state is None:
            return
        for namespace, name in list(state.objects):
            self._remove(state, namespace, name)
        for watcher in state.watchers:
            watcher.queue.put_nowait(CLOSE)
        del self._types[(group, version, plural)]

    def types(self) -> list[ResourceType]:
        return [state.rtype for state in self._types.values()]

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        state = self._types.get((group, version, plural))
        return state.rtype if state else None

    def _state(self, rtype: ResourceType) -> _TypeState:
        state = self._types.get((rtype.group, rtype.version, rtype.plural))
        if state is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return state

    def objects(self, rtype: ResourceType) -> dict[tuple[str, str], Obj]:
        """The live objects of a type (read only: do not modify)."""
        return self._state(rtype).objects

    # -- reads --------------------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._state(rtype).objects.get((namespace or "", name))
        if obj is None:
            raise self._not_found(rtype, name)
        return obj

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[Obj], int, str | None, int | None]:
        """(items, list resourceVersion, continue token, remaining item count)."""
        if continue_token:
            snapshot_id, offset, rv = self._decode_continue(continue_token)
            snap = self._snapshots.get(snapshot_id)
            if snap is None:
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                               "list result. You can start a new list without the continue parameter.")  # fmt: skip
            items = snap[1]
        else:
            watcher = self._watcher(namespace, label_selector, field_selector)
            state = self._state(rtype)
            items = [obj for key, obj in sorted(state.objects.items()) if watcher.matches(obj)]
            snapshot_id, offset, rv = "", 0, self.rv
        if limit is None or limit <= 0 or offset + limit >= len(items):
            if snapshot_id:
                self._snapshots.pop(snapshot_id, None)
            return items[offset:], rv, None, None
        if not snapshot_id:
            snapshot_id = str(next(self._snapshot_ids))
            self._snapshots[snapshot_id] = (rv, items)
            while len(self._snapshots) > self._snapshot_limit:
                self._snapshots.popitem(last=False)
        end = offset + limit
        token = base64.urlsafe_b64encode(_dumps({"s": snapshot_id, "o": end, "rv": rv})).decode()
        return items[offset:end], rv, token, len(items) - end

    @staticmethod
    def _decode_continue(token: str) -> tuple[str, int, int]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            return str(data["s"]), int(data["o"]), int(data["rv"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise ApiError(400, "BadRequest", "continue key is not valid") from None

    @staticmethod
    def _watcher(namespace: str | None, label_selector: str | None, field_selector: str | None) -> Watcher:
        try:
            return Watcher(namespace, parse_label_selector(label_selector), parse_field_selector(field_selector))
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None

    def watch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        resource_version: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        send_initial_events: bool = False,
    ) -> tuple[list[tuple[str, Event]], Watcher]:
        """Register a watcher; return the events to send first (replay or initial state) and the watcher.

        Raises ``ApiError(410)`` when ``resource_version`` is older than the history kept for the type.
        """
        state = self._state(rtype)
        watcher = self._watcher(namespace, label_selector, field_selector)
        first: list[tuple[str, Event]] = []
        if resource_version in (None, "", "0") or send_initial_events:
            for _, obj in sorted(state.objects.items()):
                if watcher.matches(obj):
                    first.append(("ADDED", Event(int(obj["metadata"]["resourceVersion"]), "ADDED", None, obj)))
        else:
            try:
                since = int(str(resource_version))
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resource version {resource_version!r}") from None
            if since < state.evicted_rv:
                raise ApiError(410, "Expired", f"too old resource version: {since} ({state.evicted_rv})")
            for event in reversed(state.history):  # newest first; stop at the first one already seen
                if event.rv <= since:
                    break
                seen = watcher.seen_as(event)
                if seen is not None:
                    first.append((seen, event))
            first.reverse()
        state.watchers.add(watcher)
        return first, watcher

    def unwatch(self, rtype: ResourceType, watcher: Watcher) -> None:
        state = self._types.get((rtype.group, rtype.version, rtype.plural))
        if state is not None:
            state.watchers.discard(watcher)

    def watcher_count(self, rtype: ResourceType) -> int:
        state = self._types.get((rtype.group, rtype.version, rtype.plural))
        return len(state.watchers) if state else 0

    def close_watchers(self) -> None:
        for state in self._types.values():
            for watcher in state.watchers:
                watcher.queue.put_nowait(CLOSE)

    # -- writes -------------------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str | None, body: Any) -> Obj:
        state = self._state(rtype)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        self._check_kind(rtype, obj)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if rtype.namespaced:
            body_ns = meta.get("namespace")
            if namespace is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if body_ns not in (None, "", namespace):
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                               "namespace sent on the request")  # fmt: skip
            meta["namespace"] = namespace
            if self.strict_namespaces and ("", namespace) not in self._types[("", "v1", "namespaces")].objects:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})  # fmt: skip
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{secrets.token_hex(3)[:5]}"
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise self._invalid(rtype, "", "metadata.name: Required value: name or generateName is required")
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise self._invalid(rtype, name, f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 "
                                "subdomain must consist of lower case alphanumeric characters, '-' or '.'")  # fmt: skip
        key = (namespace or "", name) if rtype.namespaced else ("", name)
        if key in state.objects:
            resource = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
            raise ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists', self._details(rtype, name))
        for dropped in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(dropped, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        if rtype.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if "status" in rtype.subresources and rtype.group not in ("",):
            obj.pop("status", None)  # custom resources: status is ignored on create
        obj = self._type_rules(rtype, None, obj)
        self._commit(state, "ADDED", None, obj)
        return obj

    def replace(self, rtype: ResourceType, namespace: str | None, name: str, body: Any, *,
                subresource: str | None = None) -> Obj:  # fmt: skip
        old = self.get(rtype, namespace, name)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        self._check_kind(rtype, body)
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        return self._write(rtype, old, copy.deepcopy(body), subresource)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
    ) -> Obj:
        old = self.get(rtype, namespace, name)
        try:
            if patch_type == "json":
                new = json_patch(old, patch)
            elif patch_type in ("merge", "strategic"):
                if not isinstance(patch, dict):
                    raise PatchError("a merge patch must be a JSON object")
                new = merge_patch(old, patch)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"the media type of the patch ({patch_type}) is not "
                               "supported")  # fmt: skip
        except PatchError as exc:
            raise self._invalid(rtype, name, str(exc)) from None
        if not isinstance(new, dict):
            raise self._invalid(rtype, name, "the patched object is not an object")
        return self._write(rtype, old, new, subresource)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str, *,
               propagation: str | None = None, preconditions: Mapping[str, Any] | None = None) -> Obj:  # fmt: skip
        state = self._state(rtype)
        old = self.get(rtype, namespace, name)
        meta = old["metadata"]
        for field_name in ("uid", "resourceVersion"):
            wanted = (preconditions or {}).get(field_name)
            if wanted is not None and wanted != meta.get(field_name):
                raise ApiError(409, "Conflict", f"Precondition failed: {field_name}: {wanted}, "
                               f"object has {meta.get(field_name)}", self._details(rtype, name))  # fmt: skip
        if propagation == "Orphan":
            self._orphan(meta["uid"])
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            self._commit(state, "MODIFIED", old, new)
            return new
        if rtype.kind == "Namespace" and rtype.group == "":
            self._delete_namespace_contents(name)
        return self._remove(state, meta.get("namespace") or "", name, foreground=propagation == "Foreground")

    def delete_collection(self, rtype: ResourceType, namespace: str | None, *, label_selector: str | None = None,
                          field_selector: str | None = None) -> list[Obj]:  # fmt: skip
        items, *_ = self.list(rtype, namespace, label_selector=label_selector, field_selector=field_selector)
        return [self.delete(rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in items]

    # -- write internals ----------------------------------------------------------------------------------

    def _write(self, rtype: ResourceType, old: Obj, new: Obj, subresource: str | None) -> Obj:
        state = self._state(rtype)
        old_meta = old["metadata"]
        if subresource is not None and subresource not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self._check_kind(rtype, new)
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv not in (None, "") and str(wanted_rv) != old_meta["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rtype.plural} "{old_meta["name"]}": '
                           "the object has been modified; please apply your changes to the latest version and try "
                           "again", self._details(rtype, old_meta["name"]))  # fmt: skip
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        if subresource == "status":
            new = {**copy.deepcopy(old), "status": new.get("status")}
            if new["status"] is None:
                del new["status"]
        else:
            for immutable in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                              "deletionGracePeriodSeconds", "generation"):  # fmt: skip
                if immutable in old_meta:
                    meta[immutable] = old_meta[immutable]
                else:
                    meta.pop(immutable, None)
            if "status" in rtype.subresources:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        new = self._type_rules(rtype, old, new)
        if rtype.generation and subresource is None:
            ignored = {"metadata", "status"} if "status" in rtype.subresources else {"metadata"}
            before = {k: v for k, v in old.items() if k not in ignored}
            after = {k: v for k, v in new.items() if k not in ignored}
            if before != after:
                new["metadata"]["generation"] = int(old_meta.get("generation") or 0) + 1
        if new == old:
            return old  # a no-op write changes nothing, not even the resourceVersion
        if old_meta.get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._commit(state, "MODIFIED", old, new)
            return self._remove(state, old_meta.get("namespace") or "", old_meta["name"])
        self._commit(state, "MODIFIED", old, new)
        return new

    def _type_rules(self, rtype: ResourceType, old: Obj | None, new: Obj) -> Obj:
        """Per-kind rules of the real API server that the operator relies on."""
        if rtype.group == "" and rtype.kind == "Secret":
            string_data = new.pop("stringData", None)
            data = dict(new.get("data") or {})
            for key, value in data.items():
                if not isinstance(value, str):
                    raise self._invalid(rtype, new["metadata"]["name"], f"data[{key}]: must be a base64 string")
                try:
                    base64.b64decode(value, validate=True)
                except binascii.Error:
                    raise ApiError(400, "BadRequest", f"illegal base64 data in data[{key}]") from None
            if isinstance(string_data, dict):
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
            if data or "data" in new:
                new["data"] = data
            new.setdefault("type", "Opaque")
            if old is not None:
                if new.get("type") != old.get("type", "Opaque"):
                    raise self._invalid(rtype, new["metadata"]["name"], "type: Invalid value: field is immutable")
                if old.get("immutable") and (new.get("data") != old.get("data") or not new.get("immutable")):
                    raise self._invalid(rtype, new["metadata"]["name"], "data: Forbidden: field is immutable when "
                                        "`immutable` is set")  # fmt: skip
        elif rtype.group == "" and rtype.kind == "Namespace":
            new.setdefault("status", {"phase": "Active"})
        elif rtype.group == "apiextensions.k8s.io" and rtype.kind == "CustomResourceDefinition":
            new = self._crd_rules(old, new)
        return new

    def _crd_rules(self, old: Obj | None, crd: Obj) -> Obj:
        """Admit a CRD as the API server does (crdcheck, CEL included), then register its served versions."""
        name = crd["metadata"]["name"]
        checked = {key: value for key, value in crd.items() if key != "status"}  # the server keeps status itself
        if old is None:
            problems = validate_crd(checked, cel=True, strict=False)
        else:
            problems = validate_crd_update(checked, old, cel=True, strict=False)
        if problems:
            error = InvalidCrdError(name, problems)
            raise ApiError(error.code, error.reason, str(error), error.details)
        spec = dict(crd["spec"])  # v1 defaulting, as the server stores it: singular, listKind, conversion
        names = spec["names"] = {**spec["names"]}
        group, plural, kind = spec["group"], names["plural"], names["kind"]
        names.setdefault("singular", kind.lower())
        names.setdefault("listKind", f"{kind}List")
        spec.setdefault("conversion", {"strategy": "None"})
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            subresources = frozenset((version.get("subresources") or {}).keys())
            self.register(ResourceType(group, version["name"], plural, kind,
                                       namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                                       singular=names.get("singular") or kind.lower(),
                                       short_names=tuple(names.get("shortNames") or ()),
                                       subresources=subresources, generation=True))  # fmt: skip
        crd = {**crd, "spec": spec}
        stored = list(((old or {}).get("status") or {}).get("storedVersions") or [])
        stored += [v["name"] for v in spec.get("versions") or [] if v.get("storage") and v["name"] not in stored]
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": stored,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
                 "lastTransitionTime": _now()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": _now()},
            ],
        }  # fmt: skip
        return crd

    def _commit(self, state: _TypeState, type_: str, old: Obj | None, new: Obj) -> None:
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        meta = new["metadata"]
        key = (meta.get("namespace") or "", meta["name"])
        obj_key: ObjKey = (state.rtype.key, key[0], key[1])
        if type_ == "DELETED":
            state.objects.pop(key, None)
            self._uids.pop(meta["uid"], None)
        else:
            state.objects[key] = new
            self._uids[meta["uid"]] = obj_key
        before, after = _owner_uids(old), (set() if type_ == "DELETED" else _owner_uids(new))
        for uid in before - after:
            dependents = self._dependents.get(uid)
            if dependents is not None:
                dependents.discard(obj_key)
                if not dependents:
                    del self._dependents[uid]
        for uid in after - before:
            self._dependents[uid].add(obj_key)
        event = Event(self.rv, type_, old, new)
        state.history.append(event)
        if len(state.history) > self.history_limit:
            state.evicted_rv = state.history.popleft().rv
        for watcher in state.watchers:
            watcher.offer(event)
        for listener in self.listeners:
            listener(state.rtype, type_, old, new)

    def _remove(self, state: _TypeState, namespace: str, name: str, *, foreground: bool = False) -> Obj:
        old = state.objects[(namespace, name)]
        uid = old["metadata"]["uid"]
        if foreground:
            self._collect(uid)
        final = copy.deepcopy(old)
        self._commit(state, "DELETED", old, final)
        if state.rtype.group == "apiextensions.k8s.io" and state.rtype.kind == "CustomResourceDefinition":
            spec = old.get("spec") or {}
            for version in spec.get("versions") or []:
                plural = (spec.get("names") or {}).get("plural", "")
                self.unregister(spec.get("group", ""), version.get("name", ""), plural)
        if uid in self._dependents:
            try:
                asyncio.get_running_loop().call_soon(self._collect, uid)  # the garbage collector runs after
            except RuntimeError:
                self._collect(uid)
        return final

    def _collect(self, owner_uid: str) -> None:
        """Delete the dependents of a deleted owner that have no other live owner (background propagation)."""
        for type_key, namespace, name in list(self._dependents.pop(owner_uid, ())):
            state = self._state_by_key(type_key)
            obj = state.objects.get((namespace, name)) if state else None
            if state is None or obj is None:
                continue
            if any(uid in self._uids for uid in _owner_uids(obj)):
                continue
            if obj["metadata"].get("finalizers"):
                self.delete(state.rtype, namespace or None, name)
            else:
                self._remove(state, namespace, name)

    def _orphan(self, owner_uid: str) -> None:
        for type_key, namespace, name in list(self._dependents.get(owner_uid, ())):
            state = self._state_by_key(type_key)
            obj = state.objects.get((namespace, name)) if state else None
            if state is None or obj is None:
                continue
            refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
            new = copy.deepcopy(obj)
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._commit(state, "MODIFIED", obj, new)

    def _state_by_key(self, type_key: str) -> _TypeState | None:
        for state in self._types.values():
            if state.rtype.key == type_key:
                return state
        return None

    def _delete_namespace_contents(self, namespace: str) -> None:
        for state in list(self._types.values()):
            if not state.rtype.namespaced:
                continue
            for ns, name in [key for key in state.objects if key[0] == namespace]:
                if (ns, name) in state.objects:
                    self._remove(state, ns, name)

    # -- helpers ------------------------------------------------------------------------------------------

    @staticmethod
    def _check_kind(rtype: ResourceType, body: Mapping[str, Any]) -> None:
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind not in (None, "", rtype.kind) or api_version not in (None, "", rtype.api_version):
            raise ApiError(400, "BadRequest", f"the API version in the data ({api_version}) or kind ({kind}) does "
                           f"not match the expected {rtype.api_version} {rtype.kind}")  # fmt: skip

    @staticmethod
    def _details(rtype: ResourceType, name: str) -> Obj:
        details: Obj = {"name": name, "kind": rtype.plural}
        if rtype.group:
            details["group"] = rtype.group
        return details

    def _not_found(self, rtype: ResourceType, name: str) -> ApiError:
        resource = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
        return ApiError(404, "NotFound", f'{resource} "{name}" not found', self._details(rtype, name))

    def _invalid(self, rtype: ResourceType, name: str, message: str) -> ApiError:
        return ApiError(422, "Invalid", f'{rtype.kind} "{name}" is invalid: {message}', self._details(rtype, name))

    def iter_all(self) -> Iterable[tuple[ResourceType, Obj]]:
        for state in self._types.values():
            for obj in state.objects.values():
                yield state.rtype, obj

    def now(self) -> float:
        return time.monotonic()
