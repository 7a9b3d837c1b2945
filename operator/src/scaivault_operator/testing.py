"""Run the real operator in-process against an emulated Kubernetes API — for tests and ``make demo``.

Owned here: starting kmock's ``KubernetesEmulator`` with our resources declared, a small async client for it
that fills in what the emulator does not (``uid``, ``generation`` bumps on spec changes, ``resourceVersion``),
and ``running_operator``, which runs Kopf with our handlers on the caller's event loop until the block exits.
kmock is a development dependency (the ``dev`` extra); it is imported only when these helpers are used.

The emulator is not a cluster: it has no garbage collection, no admission for custom resources (their CRD schema
and CEL are not enforced) and ignores label selectors. ``tests/e2e`` covers those against a real API server. A
CustomResourceDefinition created or patched through ``EmulatedCluster`` is checked first, as the API server's own
admission checks it (``crdcheck``, CEL included): a CRD a server would refuse raises ``crdcheck.InvalidCrdError``
instead of landing in the emulator.

Faults (``EmulatedCluster.inject``, a ``KubeFault``): the emulated API server can answer chosen requests of the
operator with an error (409, 429/503 with ``Retry-After``...) without applying them, let another writer act just
before serving one (a conflicting writer), end a watch with an ERROR event (410 Gone), or reset a watch's connection
in the middle of an event. Requests of ``EmulatedCluster``'s own client (the test's) are never faulted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from scaivault_operator._cogs.api import GROUP, VERSION
from scaivault_operator._cogs.kubeconfig import KubeAccess
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import merge_patch
from scaivault_operator.crdcheck import InvalidCrdError, check_crd, validate_crd_update

__all__ = [
    "Cluster",
    "EmulatedCluster",
    "KubeFault",
    "RealCluster",
    "emulated_cluster",
    "real_cluster",
    "running_operator",
]

_NAMESPACED_VERBS = {"list", "watch", "get", "create", "patch", "delete"}
_RESOURCES: dict[str, dict[str, Any]] = {
    "v1/namespaces": {"kind": "Namespace", "namespaced": False},
    "apiextensions.k8s.io/v1/customresourcedefinitions": {"kind": "CustomResourceDefinition", "namespaced": False},
    "v1/secrets": {"kind": "Secret", "namespaced": True},
    "v1/events": {"kind": "Event", "namespaced": True},
    f"{GROUP}/{VERSION}/vaultsecrets": {"kind": "VaultSecret", "namespaced": True, "subresources": {"status"}},
    f"{GROUP}/{VERSION}/vaultconnections": {"kind": "VaultConnection", "namespaced": True},
    f"{GROUP}/{VERSION}/clustervaultconnections": {"kind": "ClusterVaultConnection", "namespaced": False},
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True},
    "apps/v1/statefulsets": {"kind": "StatefulSet", "namespaced": True},
    "apps/v1/daemonsets": {"kind": "DaemonSet", "namespaced": True},
}
_PLURALS = {"Namespace": "namespaces", "Secret": "secrets", "VaultSecret": "vaultsecrets",
            "VaultConnection": "vaultconnections", "ClusterVaultConnection": "clustervaultconnections",
            "CustomResourceDefinition": "customresourcedefinitions", "Deployment": "deployments",
            "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}  # fmt: skip
_APPS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
_CRD = "CustomResourceDefinition"
_CLUSTER_SCOPED = frozenset({"Namespace", "ClusterVaultConnection", _CRD})


#: Marks the requests of ``EmulatedCluster.http`` (the test's own): faults never apply to them.
_UNFAULTED_HEADER = "X-Scaivault-Unfaulted"
_REASONS = {409: "Conflict", 410: "Expired", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}

FaultKind = Literal["serve", "answer", "watch_error", "watch_cut"]


@dataclass
class KubeFault:
    """What the emulated API server does to the operator's requests that match (``EmulatedCluster.inject``).

    Selection: ``method`` (``PATCH``...; None: any), ``path`` (a regular expression searched in the URL path), and
    ``watch`` (True: only watch requests, False: only others, None: both). The first ``times`` matching requests
    (None: every one until ``EmulatedCluster.clear_faults``) get the fault; ``hits`` counts them.

    ``before(body)``, when set, runs first with the request's JSON body (or None): another writer acting between
    the operator's read and its write. Then, by ``kind``:

    - ``serve``: the request is served as usual (a create of an object ``before`` created gets the emulator's 409).
    - ``answer``: a Kubernetes ``Status`` with ``status`` (and ``reason``; ``Retry-After`` and
      ``details.retryAfterSeconds`` when ``retry_after`` is set) instead of serving the request: nothing is stored,
      no watch event is sent — as a real API server refuses a write.
    - ``watch_error``: the watch is answered with one ``ERROR`` event carrying ``status`` (410: the resource version
      expired, as ``too old resource version``), then the stream ends.
    - ``watch_cut``: the watch is served (the stored objects as ``ADDED``, then live events) until the next live
      event, of which only the first half of the line is sent before the connection is reset.
    """

    kind: FaultKind
    path: str
    method: str | None = None
    watch: bool | None = None
    times: int | None = 1
    status: int = 503
    reason: str | None = None
    retry_after: float | None = None
    before: Callable[[Any], Awaitable[None]] | None = None
    hits: int = 0
    #: ``METHOD path`` of each request that got the fault.
    requests: list[str] = field(default_factory=list)

    def matches(self, method: str, path: str, watch: bool) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and method.upper() != self.method.upper():
            return False
        if self.watch is not None and watch != self.watch:
            return False
        return re.search(self.path, path) is not None

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                                "code": self.status, "reason": self.reason or _REASONS.get(self.status, "Unknown"),
                                "message": f"injected by the test: HTTP {self.status}"}  # fmt: skip
        if self.retry_after is not None:
            body["details"] = {"retryAfterSeconds": int(self.retry_after)}
        return body


def _fault_emulator(kmock: Any) -> Any:
    """kmock's ``KubernetesEmulator`` with ``faults`` (``KubeFault``) applied before the emulator sees a request."""
    import aiohttp.web

    class FaultyEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
        faults: list[KubeFault]

        async def _handle(self, request: Any) -> Any:
            raw = request._raw_request
            watch = str(request.params.get("watch", "")).lower() in ("true", "1")
            fault = None
            if raw is not None and _UNFAULTED_HEADER not in raw.headers:
                fault = next((f for f in self.faults if f.matches(request.method.value, request.url.path, watch)), None)
            if fault is None:
                return await super()._handle(request)
            fault.hits += 1
            fault.requests.append(f"{request.method.value} {request.url.path}")
            if fault.before is not None:
                await fault.before(request.data)
            if fault.kind == "serve":
                return await super()._handle(request)
            if fault.kind == "answer":
                headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                return aiohttp.web.json_response(fault.status_body(), status=fault.status, headers=headers)
            if fault.kind == "watch_error":
                event = {"type": "ERROR", "object": fault.status_body()}
                return aiohttp.web.Response(body=json.dumps(event).encode() + b"\n", content_type="application/json")
            return await self._cut_watch(request, raw)

        async def _cut_watch(self, request: Any, raw: Any) -> Any:
            response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await response.prepare(raw)
            bus = self._buses[request.resource]
            async with self._lock:
                marker = await bus.mark()
                replay = [{"type": "ADDED", "object": obj.raw} for (resource, namespace, _), obj in self.objects.items()
                          if resource == request.resource and not obj.deleted
                          and (request.namespace is None or namespace == request.namespace)]  # fmt: skip
            try:
                for event in replay:
                    await response.write(json.dumps(event).encode() + b"\n")
                async for event in bus.stream(since=marker):
                    namespace = (event.get("object") or {}).get("metadata", {}).get("namespace")
                    if request.namespace is None or namespace == request.namespace:
                        line = json.dumps(event).encode()
                        await response.write(line[: len(line) // 2])
                        break
            finally:
                await bus.unmark(marker)
            raw.transport.abort()  # a reset connection, not a clean end of the stream
            return response

    return FaultyEmulator


@dataclass
class EmulatedCluster:
    """An async client for the emulated API that behaves a little more like a real API server."""

    url: str
    emulator: Any
    http: httpx.AsyncClient

    def inject(self, fault: KubeFault) -> KubeFault:
        """Apply ``fault`` to the operator's matching requests from now on (see ``KubeFault``); returns it."""
        self.emulator.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.emulator.faults.clear()

    async def send_watch_event(self, kind: str, event: Mapping[str, Any]) -> None:
        """Send ``event`` (e.g. an ``ERROR`` with a 410 ``Status``) down every open cluster-wide watch of ``kind``,
        as a real API server ends a live watch whose resource version expired."""
        import kmock

        group_version, plural = self._path(kind, None).rsplit("/", 1)
        group, _, version = group_version.removeprefix("/apis/").removeprefix("/api/").rpartition("/")
        await self.emulator._buses[kmock.resource(group, version, plural)].put(dict(event))

    def _path(self, kind: str, namespace: str | None, name: str | None = None) -> str:
        plural = _PLURALS[kind]
        base = {"Namespace": "/api/v1", "Secret": "/api/v1", _CRD: "/apis/apiextensions.k8s.io/v1"}.get(
            kind, "/apis/apps/v1" if kind in _APPS else f"/apis/{GROUP}/{VERSION}"
        )
        scope = f"/namespaces/{namespace}" if namespace and kind not in _CLUSTER_SCOPED else ""
        return f"{base}{scope}/{plural}" + (f"/{name}" if name else "")

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object; a CustomResourceDefinition is checked first (``crdcheck.InvalidCrdError``)."""
        if body.get("kind") == _CRD:
            check_crd(body, cel=True)
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("resourceVersion", str(next(_RV)))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        if obj.get("kind") == "Secret" and "stringData" in obj:  # an API server folds stringData into data
            encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in obj.pop("stringData").items()}
            obj["data"] = {**(obj.get("data") or {}), **encoded}
        response = await self.http.post(self._path(obj["kind"], meta.get("namespace")), json=obj)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        response = await self.http.get(self._path(kind, namespace, name))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def patch(self, kind: str, namespace: str | None, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A merge patch; a change of ``spec`` bumps ``metadata.generation`` as a real API server does. A patched
        CustomResourceDefinition must pass the API server's update checks (``crdcheck.InvalidCrdError``)."""
        if kind == _CRD:
            current = await self.get(kind, namespace, name) or {}
            problems = validate_crd_update(merge_patch(current, patch), current, cel=True)
            if problems:
                raise InvalidCrdError(name, problems)
        body = dict(patch)
        if "spec" in body:
            current = await self.get(kind, namespace, name) or {}
            generation = int((current.get("metadata") or {}).get("generation") or 0) + 1
            body["metadata"] = {**(body.get("metadata") or {}), "generation": generation}
        body["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": str(next(_RV))}
        response = await self.http.patch(self._path(kind, namespace, name), json=body,
                                          headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def delete(self, kind: str, namespace: str | None, name: str) -> None:
        response = await self.http.delete(self._path(kind, namespace, name))
        if response.status_code != 404:
            response.raise_for_status()


_RV = itertools.count(1000)


class Cluster(Protocol):
    """What the demo and tests need from a cluster, emulated or real: plain-dict CRUD by kind."""

    url: str

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    async def patch(self, kind: str, namespace: str | None, name: str, patch: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete(self, kind: str, namespace: str | None, name: str) -> None: ...


@dataclass
class RealCluster:
    """The cluster of the kubeconfig (or in-cluster config), through lightkube, with the same dict interface."""

    url: str
    client: Any  # lightkube.AsyncClient

    @staticmethod
    def _resource(kind: str) -> Any:
        from lightkube.generic_resource import get_generic_resource
        from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
        from lightkube.resources.apps_v1 import DaemonSet, Deployment, StatefulSet
        from lightkube.resources.core_v1 import Namespace, Secret

        builtin = {"Namespace": Namespace, "Secret": Secret, "CustomResourceDefinition": CustomResourceDefinition,
                   "Deployment": Deployment, "StatefulSet": StatefulSet, "DaemonSet": DaemonSet}  # fmt: skip
        if kind in builtin:
            return builtin[kind]
        resource = get_generic_resource(f"{GROUP}/{VERSION}", kind)  # type: ignore[no-untyped-call]
        if resource is None:
            raise KeyError(f"unknown kind {kind}")
        return resource

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        from lightkube import codecs

        import scaivault_operator._cogs.kube  # noqa: F401  (registers our generic resources)

        obj = await self.client.create(codecs.from_dict(dict(body)))
        result: dict[str, Any] = obj.to_dict()
        return result

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        from lightkube import ApiError

        try:
            obj = await self.client.get(self._resource(kind), name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        result: dict[str, Any] = obj.to_dict()
        return result

    async def patch(self, kind: str, namespace: str | None, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        from lightkube.types import PatchType

        obj = await self.client.patch(self._resource(kind), name, dict(patch), namespace=namespace,
                                      patch_type=PatchType.MERGE)  # fmt: skip
        result: dict[str, Any] = obj.to_dict()
        return result

    async def delete(self, kind: str, namespace: str | None, name: str) -> None:
        from lightkube import ApiError

        try:
            await self.client.delete(self._resource(kind), name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise


@contextlib.asynccontextmanager
async def real_cluster(probe_timeout: float = 3.0) -> AsyncIterator[RealCluster]:
    """Connect to the kubeconfig's cluster; raise ``ConnectionError`` (with the reason) when it is unreachable."""
    from lightkube import ApiError, AsyncClient
    from lightkube.core.exceptions import ConfigError
    from lightkube.resources.core_v1 import Namespace

    from scaivault_operator._cogs.kubeconfig import KubeConfigError
    from scaivault_operator._cogs.kubeconfig import load as load_kubeconfig

    try:
        access = load_kubeconfig()  # as the operator finds it: $KUBECONFIG (a list), in-cluster, ~/.kube/config
        client = AsyncClient(access.config, timeout=httpx.Timeout(probe_timeout),
                             field_manager="scaivault-operator-demo")  # fmt: skip
    except (KubeConfigError, ConfigError, OSError, ValueError) as exc:
        raise ConnectionError(f"no usable kubeconfig ({type(exc).__name__}: {exc})") from None
    try:
        try:
            await client.get(Namespace, "default")
        except ApiError:
            pass  # the API server answered (403/404 still prove it is there)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"the API server did not answer ({type(exc).__name__})") from None
        yield RealCluster(url=access.server, client=client)
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def emulated_cluster() -> AsyncIterator[EmulatedCluster]:
    """Start kmock's Kubernetes emulator with the resources the operator and Kopf need."""
    import kmock  # development dependency

    emulator = _fault_emulator(kmock)()
    emulator.faults = []
    for resource, info in _RESOURCES.items():
        emulator.resources[resource] = kmock.ResourceInfo(verbs=_NAMESPACED_VERBS, **info)
    async with emulator, kmock.Server(emulator) as server:
        url = str(server.url).rstrip("/")
        async with httpx.AsyncClient(base_url=url, timeout=10.0, headers={_UNFAULTED_HEADER: "1"}) as http:
            yield EmulatedCluster(url=url, emulator=emulator, http=http)


@contextlib.asynccontextmanager
async def running_operator(
    settings: OperatorSettings | None = None,
    *,
    server: str | None = None,
    access: KubeAccess | None = None,
    startup_timeout: float = 30.0,
    serve_endpoints: bool = False,
    settle: float = 0.3,
) -> AsyncIterator[Runtime]:
    """Run the operator (Kopf + our handlers) on this event loop; yield its ``Runtime`` once it started.

    ``server``: an unauthenticated API URL (the emulator). Else ``access`` (e.g. a ServiceAccount's token), else
    the kubeconfig or in-cluster config.
    The liveness and metrics ports stay closed unless ``serve_endpoints`` (tests run operators side by side).
    ``settle``: seconds to wait after start-up for Kopf's watches (a caller that can see them may pass 0 and wait
    for them itself).
    """
    from scaivault_operator._app.runner import operate

    settings = settings or OperatorSettings()
    if not serve_endpoints:
        settings = settings.model_copy(update={"liveness_endpoint": None, "metrics_port": 0})
    started: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        operate(settings, server=server, access=access, stop_flag=stop, runtime_ready=started.set_result)
    )
    try:
        waiting: set[asyncio.Future[Any]] = {task, started}
        done, _ = await asyncio.wait(waiting, timeout=startup_timeout, return_when=asyncio.FIRST_COMPLETED)
        if started not in done:
            if task.done():
                task.result()  # raise the operator's own error
            raise TimeoutError(f"the operator did not start within {startup_timeout}s")
        await asyncio.sleep(settle)  # let the first watch requests arrive before the caller creates objects
        yield started.result()
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=15)
