"""Kubernetes access for the operator's own calls (Kopf watches the VaultSecrets and connections): lightkube, async,
on httpx.

Owned here: the lightkube client, the few calls the operator makes (Secrets, the status subresources of VaultSecrets
and connections, the finalizer of VaultSecrets with deletionPolicy Retain, namespace labels, Events, who it runs
as, whether the API server answers), the list and watch of the operator's own Secrets (plain JSON over the same
httpx client: ``list_secrets_at``, ``watch_secrets``; ``secretwatch`` runs them), and the translation of
lightkube/httpx errors into ``KubeError`` — only here. Where the API server is and which credentials to use come
from ``kubeconfig`` (the same ``KubeAccess`` that Kopf logs in with). Objects travel as plain dicts, so the pure
modules (``manifests``, ``conditions``) never see lightkube types. Called by ``sync``, ``connections``, ``runtime``
and ``secretwatch``.

Logs name objects, never Secret data.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import httpx
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config.client_adapter import AsyncClient as HttpxAsyncClient
from lightkube.config.client_adapter import ConnectionParams, verify_cluster
from lightkube.config.kubeconfig import SingleConfig
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import DaemonSet, Deployment, StatefulSet
from lightkube.resources.authentication_v1 import SelfSubjectReview
from lightkube.resources.core_v1 import Event, Namespace, Secret
from lightkube.types import PatchType

from scaivault_operator._cogs.api import GROUP, VERSION
from scaivault_operator._cogs.kubeconfig import KubeAccess
from scaivault_operator._cogs.transport import AiohttpTransport

__all__ = [
    "Conflict",
    "Gone",
    "Identity",
    "Kube",
    "KubeError",
    "Listing",
    "ObjectRef",
    "VaultSecretResource",
    "WatchEvent",
    "secret_value",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

VaultSecretResource = create_namespaced_resource(GROUP, VERSION, "VaultSecret", "vaultsecrets")
ClusterVaultConnectionResource = create_global_resource(
    GROUP, VERSION, "ClusterVaultConnection", "clustervaultconnections"
)
VaultConnectionResource = create_namespaced_resource(GROUP, VERSION, "VaultConnection", "vaultconnections")


class KubeError(Exception):
    """A Kubernetes API call failed. ``status`` is the HTTP status, None for network errors; ``retry_after`` the
    seconds the API server asked to wait (``Retry-After``), if it did."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class Conflict(KubeError):
    """409: the object already exists (create) or changed under us."""


class Gone(KubeError):
    """410: the ``resourceVersion`` a watch resumed from (or a list continued from) is older than the API server
    keeps: list again."""


class Listing(NamedTuple):
    """A list of objects (plain dicts, as the API sends them: no ``kind`` per item) and the list's
    ``resourceVersion``, where a watch of the same objects starts ("" when the API sent none)."""

    items: list[dict[str, Any]]
    resource_version: str


#: A watch event: its type (ADDED, MODIFIED, DELETED, BOOKMARK) and the object (for a BOOKMARK only its
#: ``metadata.resourceVersion``).
WatchEvent = tuple[str, dict[str, Any]]


ObjectRef = Mapping[str, str]  # apiVersion, kind, name, namespace, uid

#: The workloads a rollout restarts (apps/v1).
_WORKLOADS: dict[str, Any] = {"Deployment": Deployment, "StatefulSet": StatefulSet, "DaemonSet": DaemonSet}

#: How long the reachability probe (GET /version) may take.
_PROBE_TIMEOUT = 2.0
#: Start-up lists retry transient failures this long: e.g. a real API server answers 429 "storage is
#: (re)initializing" for a CRD created a moment ago (``helm install`` creates the CRDs and the operator at once).
_STARTUP_RETRY_DEADLINE = 60.0
_STARTUP_RETRY_MAX_DELAY = 5.0
#: A page of a Secret list (500 items) may take this long.
_LIST_TIMEOUT = 60.0
#: A watch's reads may be silent this much longer than the server's own timeout before the connection counts as dead.
_WATCH_READ_MARGIN = 30


class Identity(NamedTuple):
    """Who the API server says we are (SelfSubjectReview): names only."""

    username: str
    groups: tuple[str, ...]


def _status(exc: Exception) -> int | None:
    """The HTTP status of a failed call. lightkube raises ``ApiError`` only for ``application/json`` answers
    exactly; other JSON content types arrive as plain ``httpx.HTTPStatusError``."""
    if isinstance(exc, ApiError) and exc.status.code:
        return int(exc.status.code)
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    return None


def _retry_after(exc: Exception) -> float | None:
    response = exc.response if isinstance(exc, httpx.HTTPStatusError) else None
    try:
        return max(0.0, float(response.headers["Retry-After"])) if response is not None else None
    except (KeyError, ValueError):
        return None


_BY_STATUS: dict[int, type[KubeError]] = {409: Conflict, 410: Gone}


def _translate(what: str, exc: Exception) -> KubeError:
    status = _status(exc)
    if status is None:
        return KubeError(f"{what}: {type(exc).__name__}", None)
    reason = (exc.status.reason or "") if isinstance(exc, ApiError) else ""
    cls = _BY_STATUS.get(status, KubeError)
    return cls(f"{what}: HTTP {status} {reason}".rstrip(), status, _retry_after(exc))


async def _retrying(what: str, call: Callable[[], Awaitable[T]], deadline: float = _STARTUP_RETRY_DEADLINE) -> T:
    """``call()``, again after a transient ``KubeError`` (429, 5xx, network) until ``deadline`` seconds have passed:
    jittered exponential backoff from 0.25 s to 5 s, or the server's ``Retry-After`` when longer."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    delay = 0.25
    while True:
        try:
            return await call()
        except KubeError as exc:
            wait = max(delay * random.uniform(0.8, 1.2), exc.retry_after or 0.0)
            if not exc.transient or loop.time() + wait > give_up:
                raise
            logger.info("%s: %s; retrying in %.1f s", what, exc, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, _STARTUP_RETRY_MAX_DELAY)


def secret_value(secret: Mapping[str, Any] | None, key: str) -> str | None:
    """The decoded value of one key of a Secret (e.g. a token), stripped; None when missing, empty or not UTF-8."""
    data = (secret or {}).get("data")
    encoded = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8").strip() or None
    except (binascii.Error, UnicodeDecodeError):
        return None


class Kube:
    """The operator's Kubernetes calls. One instance per process, sharing one connection pool."""

    def __init__(self, config: SingleConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """``transport``: an httpx transport for every call (tests: ``httpx.MockTransport``); by default aiohttp's
        (``transport.AiohttpTransport``) with the kubeconfig's CA and client certificate."""
        if transport is None:
            assert config.user is not None, "a kubeconfig context without a user"
            transport = AiohttpTransport(ssl=verify_cluster(config.cluster, config.user, config.abs_file))
        self._client = AsyncClient(config, field_manager="scaivault-operator", transport=transport)
        # Plain HTTP on the same server and credentials, for what lightkube has no call for (GET /version) and for
        # the Secret list and watch (JSON as the API sends it: no model objects for thousands of Secrets).
        self._http = HttpxAsyncClient(
            config,
            ConnectionParams(timeout=httpx.Timeout(_PROBE_TIMEOUT), transport=transport),  # type: ignore[arg-type]
        )

    @classmethod
    def from_access(cls, access: KubeAccess) -> Kube:
        return cls(access.config)

    @classmethod
    def for_server(cls, server: str, *, transport: httpx.AsyncBaseTransport | None = None) -> Kube:
        """An unauthenticated client for a local API (the emulated one of tests and the demo)."""
        config = KubeConfig.from_dict(
            {
                "clusters": [{"name": "local", "cluster": {"server": server.rstrip("/")}}],
                "users": [{"name": "local", "user": {}}],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local"}}],
                "current-context": "local",
            }
        )
        single = config.get()
        assert single is not None
        return cls(single, transport=transport)

    @property
    def default_namespace(self) -> str:
        """The kubeconfig context's namespace (in a pod: the service account's), else ``default``: where Events
        about cluster-scoped objects go, as Kopf posts them."""
        namespace: str = self._client.namespace
        return namespace

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()

    async def server_version(self) -> str:
        """The API server's ``gitVersion`` (``GET /version``, answered to every client), within 2 s; ``KubeError``
        when it does not answer."""
        try:
            response = await self._http.get("/version")
            response.raise_for_status()
            return str(response.json().get("gitVersion") or "unknown")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise _translate("GET /version", exc) from None

    async def whoami(self) -> Identity | None:
        """Who the API server takes us for (``SelfSubjectReview``, Kubernetes 1.28+); None where it cannot say."""
        try:
            review = await self._client.create(SelfSubjectReview())
        except (ApiError, httpx.HTTPError) as exc:
            logger.debug("cannot ask who we are: %s", _translate("create SelfSubjectReview", exc))
            return None
        info = review.status.userInfo if review.status else None
        if info is None or not info.username:
            return None
        return Identity(username=info.username, groups=tuple(info.groups or ()))

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = await self._client.get(Secret, name, namespace=namespace)
        except (ApiError, httpx.HTTPError) as exc:
            if _status(exc) == 404:
                return None
            raise _translate(f"get Secret {namespace}/{name}", exc) from None
        return _as_dict(obj)

    async def create_secret(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        try:
            obj = await self._client.create(Secret.from_dict(dict(manifest)))  # type: ignore[no-untyped-call]
        except (ApiError, httpx.HTTPError) as exc:
            raise _translate(f"create Secret {meta['namespace']}/{meta['name']}", exc) from None
        return _as_dict(obj)

    async def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        try:
            obj = await self._client.patch(Secret, name, dict(patch), namespace=namespace, patch_type=PatchType.MERGE)
        except (ApiError, httpx.HTTPError) as exc:
            raise _translate(f"patch Secret {namespace}/{name}", exc) from None
        return _as_dict(obj)

    async def delete_secret(self, namespace: str, name: str) -> None:
        try:
            await self._client.delete(Secret, name, namespace=namespace)
        except (ApiError, httpx.HTTPError) as exc:
            if _status(exc) == 404:
                return
            raise _translate(f"delete Secret {namespace}/{name}", exc) from None

    async def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        try:
            obj = await self._client.get(Namespace, namespace)
        except (ApiError, httpx.HTTPError) as exc:
            level = logging.DEBUG if _status(exc) == 404 else logging.WARNING
            logger.log(level, "cannot read labels of namespace %s: %s", namespace, _translate("get", exc))
            return None
        return dict(obj.metadata.labels or {}) if obj.metadata else {}

    async def list_secrets_at(self, namespace: str, selector: str) -> Listing:
        """The Secrets matching the label ``selector`` in ``namespace`` ("": every namespace), in 500-item pages, with
        the list's ``resourceVersion`` for ``watch_secrets``. Transient failures are retried (``_retrying``); a
        continue token that expired (410) starts the list again."""
        return await _retrying("list Secrets", lambda: self._list_secrets_at(namespace, selector))

    async def _list_secrets_at(self, namespace: str, selector: str) -> Listing:
        where = namespace or "every namespace"
        items: list[dict[str, Any]] = []
        resource_version = ""
        params: dict[str, str | int] = {"labelSelector": selector, "limit": 500}
        while True:
            try:
                response = await self._http.get(_secrets_path(namespace), params=params, timeout=_LIST_TIMEOUT)
                response.raise_for_status()
                page = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                error = _translate(f"list Secrets in {where}", exc)
                if isinstance(error, Gone) and "continue" in params:  # the snapshot expired between pages
                    items, resource_version, params = [], "", {"labelSelector": selector, "limit": 500}
                    continue
                raise error from None
            meta = _dict(page.get("metadata"))
            resource_version = resource_version or _str(meta.get("resourceVersion"))  # the first page's snapshot
            items.extend(item for item in page.get("items") or () if isinstance(item, dict))
            token = _str(meta.get("continue"))
            if not token:
                return Listing(items, resource_version)
            params = {"labelSelector": selector, "limit": 500, "continue": token}

    async def watch_secrets(
        self, namespace: str, selector: str, resource_version: str, server_timeout: int
    ) -> AsyncIterator[WatchEvent]:
        """Watch the Secrets matching ``selector`` in ``namespace`` ("": every namespace) from ``resource_version``
        ("": from now, with an ADDED event for each existing one), with bookmarks, until the API server ends the
        watch after ``server_timeout`` seconds. Raises ``Gone`` when ``resource_version`` is too old (an ERROR event
        or an HTTP 410: list again), ``KubeError`` for any other failure, the connection's included."""
        where = namespace or "every namespace"
        params: dict[str, str | int] = {"watch": "true", "labelSelector": selector, "allowWatchBookmarks": "true",
                                        "timeoutSeconds": server_timeout}  # fmt: skip
        if resource_version:
            params["resourceVersion"] = resource_version
        # No read may take longer than the server's own timeout and a margin: a silent dead connection ends too.
        limits = httpx.Timeout(_PROBE_TIMEOUT * 15, read=server_timeout + _WATCH_READ_MARGIN)
        try:
            async with self._http.stream("GET", _secrets_path(namespace), params=params, timeout=limits) as response:
                if response.is_error:
                    await response.aread()
                    response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.strip():
                        yield _watch_event(where, line)
        except (httpx.HTTPError, ValueError) as exc:
            raise _translate(f"watch Secrets in {where}", exc) from None

    async def list_connections(self, namespaces: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """Every connection object as ``(kind, body)``: cluster-wide ones, then namespaced ones in ``namespaces``.
        A start-up read: transient failures are retried (``_retrying``)."""
        return await _retrying("list connections", lambda: self._list_connections(namespaces))

    async def _list_connections(self, namespaces: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        found: list[tuple[str, dict[str, Any]]] = []
        try:
            async for cluster_obj in self._client.list(ClusterVaultConnectionResource):
                found.append(("ClusterVaultConnection", _as_dict(cluster_obj)))
            for namespace in namespaces or ["*"]:
                async for obj in self._client.list(VaultConnectionResource, namespace=namespace):
                    found.append(("VaultConnection", _as_dict(obj)))
        except (ApiError, httpx.HTTPError) as exc:
            raise _translate("list connections", exc) from None
        return found

    async def get_vaultsecret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The VaultSecret, or None when it does not exist (any more)."""
        try:
            obj = await self._client.get(VaultSecretResource, name, namespace=namespace)
        except (ApiError, httpx.HTTPError) as exc:
            if _status(exc) == 404:
                return None
            raise _translate(f"get VaultSecret {namespace}/{name}", exc) from None
        return _as_dict(obj)

    async def patch_vaultsecret_finalizers(
        self, namespace: str, name: str, finalizers: Sequence[str], resource_version: str | None
    ) -> dict[str, Any] | None:
        """Set the VaultSecret's ``metadata.finalizers`` to ``finalizers`` (a merge patch of the object itself, RBAC
        ``patch`` on vaultsecrets), guarded by ``resource_version`` when given: a VaultSecret changed since it was read
        fails with ``Conflict`` (409) and is read again. The patched object, or None when it does not exist (any
        more)."""
        metadata: dict[str, Any] = {"finalizers": list(finalizers)}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        try:
            obj = await self._client.patch(
                VaultSecretResource, name, {"metadata": metadata}, namespace=namespace, patch_type=PatchType.MERGE
            )
        except (ApiError, httpx.HTTPError) as exc:
            if _status(exc) == 404:
                return None
            raise _translate(f"patch finalizers of VaultSecret {namespace}/{name}", exc) from None
        return _as_dict(obj)

    async def list_vaultsecret_uids(
        self, namespaces: Sequence[str]
    ) -> dict[tuple[str, str], tuple[str, dict[str, str]]]:
        """``{(namespace, name): (uid, labels)}`` of every VaultSecret in ``namespaces`` (empty: all), in 500-item
        pages (the labels: a shard keeps only its own, ``sharding.Shard.owns``)."""
        found: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
        for namespace in namespaces or ["*"]:
            try:
                async for obj in self._client.list(VaultSecretResource, namespace=namespace, chunk_size=500):
                    meta = obj.metadata
                    if meta is not None and meta.namespace and meta.name:
                        found[(meta.namespace, meta.name)] = (meta.uid or "", dict(meta.labels or {}))
            except (ApiError, httpx.HTTPError) as exc:
                raise _translate(f"list VaultSecrets in {namespace}", exc) from None
        return found

    async def patch_vaultsecret_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        """Merge-patch the VaultSecret's status; False when the VaultSecret does not exist (any more)."""
        try:
            await self._client.patch(
                VaultSecretResource.Status,
                name,
                {"status": dict(status)},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
        except (ApiError, httpx.HTTPError) as exc:
            if _status(exc) == 404:
                return False  # deleted meanwhile: nothing to report on
            raise _translate(f"patch status of VaultSecret {namespace}/{name}", exc) from None
        return True

    async def patch_connection_status(
        self, kind: str, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> None:
        """Merge-patch the status subresource of a ClusterVaultConnection (``namespace`` None) or VaultConnection.
        A connection deleted meanwhile is not an error."""
        where = f"{namespace}/{name}" if namespace else name
        body = {"status": dict(status)}
        try:
            if kind == "ClusterVaultConnection":
                await self._client.patch(ClusterVaultConnectionResource.Status, name, body, patch_type=PatchType.MERGE)
            else:
                await self._client.patch(
                    VaultConnectionResource.Status, name, body, namespace=namespace, patch_type=PatchType.MERGE
                )
        except (ApiError, httpx.HTTPError) as exc:
            if _status(exc) == 404:
                return
            raise _translate(f"patch status of {kind} {where}", exc) from None

    async def list_workloads(self, namespace: str) -> list[dict[str, Any]]:
        """The Deployments, StatefulSets and DaemonSets of ``namespace``, each with its ``kind`` (in 500-item pages)."""
        found: list[dict[str, Any]] = []
        for kind, resource in _WORKLOADS.items():
            try:
                async for obj in self._client.list(resource, namespace=namespace, chunk_size=500):
                    item = _as_dict(obj)
                    item["kind"] = kind
                    found.append(item)
            except (ApiError, httpx.HTTPError) as exc:
                raise _translate(f"list {kind}s in {namespace}", exc) from None
        return found

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The Deployment, StatefulSet or DaemonSet, with its ``kind``; None when it does not exist."""
        try:
            obj = await self._client.get(_WORKLOADS[kind], name, namespace=namespace)
        except (ApiError, httpx.HTTPError) as exc:
            if _status(exc) == 404:
                return None
            raise _translate(f"get {kind} {namespace}/{name}", exc) from None
        item = _as_dict(obj)
        item["kind"] = kind
        return item

    async def patch_workload(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> bool:
        """Merge-patch a Deployment, StatefulSet or DaemonSet; False when it does not exist (any more). A
        ``resourceVersion`` in the patch that is no longer current fails with ``Conflict``."""
        try:
            await self._client.patch(_WORKLOADS[kind], name, dict(patch), namespace=namespace,
                                     patch_type=PatchType.MERGE)  # fmt: skip
        except (ApiError, httpx.HTTPError) as exc:
            if _status(exc) == 404:
                return False
            raise _translate(f"patch {kind} {namespace}/{name}", exc) from None
        return True

    async def post_event(self, involved: ObjectRef, *, type_: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about ``involved``. Failures are logged, never raised (Events are best effort)."""
        now = datetime.now(UTC)
        event = Event(
            # Named like kubectl's events (object name + a unique suffix); generateName would do on a real API
            # server, but an explicit name works on the emulator too.
            metadata=ObjectMeta(name=f"{involved['name']}.{uuid.uuid4().hex[:16]}", namespace=involved["namespace"]),
            involvedObject=ObjectReference(
                apiVersion=involved["apiVersion"],
                kind=involved["kind"],
                name=involved["name"],
                namespace=involved["namespace"],
                uid=involved.get("uid") or None,
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            source=EventSource(component="scaivault-operator"),
            reportingComponent="scaivault-operator",
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
        )
        try:
            await self._client.create(event)
        except (ApiError, httpx.HTTPError) as exc:
            logger.warning("cannot post Event %s on %s/%s: %s", reason, involved["namespace"], involved["name"],
                           _translate("create Event", exc))  # fmt: skip


def _secrets_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets" if namespace else "/api/v1/secrets"


def _watch_event(where: str, line: str) -> WatchEvent:
    """One line of a watch stream. An ERROR event is raised (410 as ``Gone``); a line that is not an event ends the
    watch as a ``KubeError`` (never quoting the line: it may hold Secret data)."""
    try:
        event = json.loads(line)
    except ValueError:
        raise KubeError(f"watch Secrets in {where}: a line that is not JSON", None) from None
    obj = _dict(event.get("object")) if isinstance(event, dict) else {}
    kind = event.get("type") if isinstance(event, dict) else None
    if kind == "ERROR":
        code = obj.get("code") if isinstance(obj.get("code"), int) else None
        reason = _str(obj.get("reason"))
        cls = _BY_STATUS.get(code or 0, KubeError)
        raise cls(f"watch Secrets in {where}: ERROR {code or ''} {reason}".rstrip(), code)
    if kind not in _WATCH_TYPES:
        raise KubeError(f"watch Secrets in {where}: an event of unknown type", None)
    return kind, obj


_WATCH_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _as_dict(obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = obj.to_dict()
    return result
