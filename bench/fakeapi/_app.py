"""The HTTP side of the in-memory Kubernetes API: routing, discovery, watch streams, Status errors, counters.

Routes follow the API server's URL scheme (``/api/v1/...``, ``/apis/{group}/{version}/...``, optional
``namespaces/{ns}/``, ``{plural}[/{name}[/{subresource}]]``, the legacy ``/watch/`` prefix). Errors are
``Status`` objects with ``Content-Type: application/json`` exactly (lightkube only raises ``ApiError`` for that
type). Every request is counted by (client, verb, resource), the client being the ``User-Agent``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from aiohttp import web

from ._store import CLOSE, ApiError, Obj, ResourceType, Store, Watcher, _dumps

__all__ = ["WRITE_VERBS", "FakeApi"]

logger = logging.getLogger(__name__)

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
VERSION_INFO = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-bench-fakeapi", "gitCommit": "",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22",
                "compiler": "gc", "platform": "linux/amd64"}  # fmt: skip


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(body), status=status, content_type="application/json")


def _true(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


class FakeApi:
    """An in-memory Kubernetes API server on aiohttp. ``async with FakeApi() as api: api.url ...``"""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        history: int = 20_000,
        strict_namespaces: bool = False,
        bookmark_interval: float = 60.0,
        default_watch_timeout: float = 1800.0,
        crds: Iterable[Obj] = (),
    ) -> None:
        self.store = Store(history=history, strict_namespaces=strict_namespaces)
        self.host, self.port = host, port
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None
        crd_type = self.store.resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None
        for crd in crds:
            self.store.create(crd_type, None, crd)

    # -- lifecycle ----------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self) -> FakeApi:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        assert server.sockets
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://{self.host}:{self.port}"
        return self

    async def stop(self) -> None:
        self.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- counters -----------------------------------------------------------------------------------------

    def count(
        self,
        verbs: Iterable[str] | str | None = None,
        resource: str | None = None,
        *,
        client: str | None = None,
        exclude_client: str | None = None,
    ) -> int:
        """Requests received, filtered by verb(s), resource (``secrets``, ``vaultsecrets/status``) and client
        (a ``User-Agent`` prefix)."""
        wanted = {verbs} if isinstance(verbs, str) else set(verbs) if verbs is not None else None
        total = 0
        for (agent, verb, res), n in self.counts.items():
            if wanted is not None and verb not in wanted:
                continue
            if resource is not None and res != resource:
                continue
            if client is not None and not agent.startswith(client):
                continue
            if exclude_client is not None and agent.startswith(exclude_client):
                continue
            total += n
        return total

    def writes(self, *, client: str | None = None, exclude_client: str | None = None) -> int:
        return self.count(WRITE_VERBS, client=client, exclude_client=exclude_client)

    def breakdown(self, *, exclude_client: str | None = None) -> dict[str, int]:
        """``"verb resource": count`` over all clients but ``exclude_client``."""
        result: collections.Counter[str] = collections.Counter()
        for (agent, verb, res), n in self.counts.items():
            if exclude_client is None or not agent.startswith(exclude_client):
                result[f"{verb} {res}"] += n
        return dict(sorted(result.items()))

    # -- routing ------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except ApiError as exc:
            return _json(exc.status(), exc.code)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/version", "/healthz"]})
        head = parts[0]
        if head in ("healthz", "readyz", "livez") and request.method == "GET":
            return web.Response(text="ok", content_type="text/plain")
        if head == "version" and len(parts) == 1:
            return _json(VERSION_INFO)
        if head == "_fake":
            return await self._admin(request, parts[1:])
        if head == "api":
            if len(parts) == 1:
                return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]})  # fmt: skip
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": self._groups()})
            if len(parts) == 2:
                found = [g for g in self._groups() if g["name"] == parts[1]]
                if not found:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return _json({"kind": "APIGroup", "apiVersion": "v1", **found[0]})
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        types = [t for t in self.store.types() if t.group == group and t.version == version]
        if not types:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            resources = [entry for t in sorted(types, key=lambda t: t.plural) for entry in t.discovery()]
            return _json({"kind": "APIResourceList", "apiVersion": "v1",
                          "groupVersion": types[0].api_version, "resources": resources})  # fmt: skip
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.store.resolve(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rtype = self.store.resolve(group, version, rest[0])
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rtype.namespaced and namespace is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return await self._resource(request, rtype, namespace, name, sub, watch=watch_prefix)

    def _groups(self) -> list[Obj]:
        versions: dict[str, list[str]] = {}
        for rtype in self.store.types():
            if rtype.group and rtype.version not in versions.setdefault(rtype.group, []):
                versions[rtype.group].append(rtype.version)
        groups = []
        for group, names in sorted(versions.items()):
            entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in names]
            groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
        return groups

    def _count(self, request: web.Request, verb: str, rtype: ResourceType, sub: str | None) -> None:
        agent = request.headers.get("User-Agent", "")
        self.counts[(agent, verb, f"{rtype.plural}/{sub}" if sub else rtype.plural)] += 1

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "BadRequest", "the body of the request is not valid JSON") from None

    async def _resource(self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str | None,
                        sub: str | None, *, watch: bool) -> web.StreamResponse:  # fmt: skip
        method, query, store = request.method, request.query, self.store
        if query.get("dryRun"):
            raise ApiError(400, "BadRequest", "dryRun is not supported by this emulator")
        if name is None:
            if method == "GET" and (watch or _true(query.get("watch"))):
                self._count(request, "watch", rtype, None)
                return await self._watch(request, rtype, namespace)
            if method == "GET":
                self._count(request, "list", rtype, None)
                limit = int(query["limit"]) if query.get("limit", "").isdigit() else None
                items, rv, token, remaining = store.list(
                    rtype, namespace, label_selector=query.get("labelSelector"),
                    field_selector=query.get("fieldSelector"), limit=limit, continue_token=query.get("continue"),
                )  # fmt: skip
                meta: Obj = {"resourceVersion": str(rv)}
                if token:
                    meta["continue"] = token
                    meta["remainingItemCount"] = remaining
                return _json({"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version, "metadata": meta,
                              "items": items})  # fmt: skip
            if method == "POST":
                self._count(request, "create", rtype, None)
                return _json(store.create(rtype, namespace, await self._body(request)), 201)
            if method == "DELETE":
                self._count(request, "deletecollection", rtype, None)
                deleted = store.delete_collection(rtype, namespace, label_selector=query.get("labelSelector"),
                                                  field_selector=query.get("fieldSelector"))  # fmt: skip
                return _json({"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version,
                              "metadata": {"resourceVersion": str(store.rv)}, "items": deleted})  # fmt: skip
            raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on {rtype.plural}")
        if method == "GET":
            self._count(request, "get", rtype, sub)
            return _json(store.get(rtype, namespace, name))
        if method == "PUT":
            self._count(request, "update", rtype, sub)
            return _json(store.replace(rtype, namespace, name, await self._body(request), subresource=sub))
        if method == "PATCH":
            self._count(request, "patch", rtype, sub)
            patch_type = _PATCH_TYPES.get(request.content_type)
            if patch_type is None or patch_type == "apply":
                accepted = ", ".join(k for k, v in _PATCH_TYPES.items() if v != "apply")
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                               f"accepted media types include: {accepted}")  # fmt: skip
            return _json(store.patch(rtype, namespace, name, patch_type, await self._body(request), subresource=sub))
        if method == "DELETE" and sub is None:
            self._count(request, "delete", rtype, None)
            options = await self._body(request) or {}
            if not isinstance(options, Mapping):
                raise ApiError(400, "BadRequest", "DeleteOptions must be an object")
            propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
            return _json(store.delete(rtype, namespace, name, propagation=propagation,
                                      preconditions=options.get("preconditions")))  # fmt: skip
        raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on {rtype.plural}")

    # -- watch --------------------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, rtype: ResourceType, namespace: str | None) -> web.StreamResponse:
        query = request.query
        bookmarks = _true(query.get("allowWatchBookmarks"))
        initial = _true(query.get("sendInitialEvents"))
        try:
            timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else self.default_watch_timeout
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid timeoutSeconds") from None
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        try:
            first, watcher = self.store.watch(
                rtype, namespace, resource_version=query.get("resourceVersion"),
                label_selector=query.get("labelSelector"), field_selector=query.get("fieldSelector"),
                send_initial_events=initial,
            )  # fmt: skip
        except ApiError as exc:
            if exc.code != 410:
                raise
            await response.prepare(request)
            await response.write(_dumps({"type": "ERROR", "object": exc.status()}) + b"\n")
            return response
        try:
            await response.prepare(request)
            if first:
                await response.write(b"".join(event.line(seen) for seen, event in first))
            if initial and bookmarks:
                await response.write(self._bookmark(rtype, initial_end=True))
            await self._stream(request, response, rtype, watcher, timeout, bookmarks)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(rtype, watcher)
        return response

    async def _stream(self, request: web.Request, response: web.StreamResponse, rtype: ResourceType,
                      watcher: Watcher, seconds: float, bookmarks: bool) -> None:  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        next_bookmark = loop.time() + self.bookmark_interval
        getter: asyncio.Future[Any] | None = None
        try:
            while True:
                now = loop.time()
                if now >= deadline:
                    pending: list[bytes] = []
                    while not watcher.queue.empty():  # deliver what is queued: the bookmark must not skip it
                        item = watcher.queue.get_nowait()
                        if item is not CLOSE:
                            pending.append(item[1].line(item[0]))
                    if bookmarks:
                        pending.append(self._bookmark(rtype))
                    if pending:
                        await response.write(b"".join(pending))
                    return
                wake = min(deadline, next_bookmark if bookmarks else deadline, now + 1.0)
                if getter is None:
                    getter = asyncio.ensure_future(watcher.queue.get())
                done, _ = await asyncio.wait({getter}, timeout=max(0.0, wake - now))
                if not done:
                    if request.transport is None or request.transport.is_closing():
                        return  # the client went away
                    if bookmarks and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + self.bookmark_interval
                        await response.write(self._bookmark(rtype))
                    continue
                item, getter = getter.result(), None
                chunks: list[bytes] = []
                closing = False
                while True:
                    if item is CLOSE:
                        closing = True
                        break
                    seen, event = item
                    chunks.append(event.line(seen))
                    try:
                        item = watcher.queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                if chunks:
                    await response.write(b"".join(chunks))
                if closing:
                    return
        finally:
            if getter is not None:
                getter.cancel()

    def _bookmark(self, rtype: ResourceType, *, initial_end: bool = False) -> bytes:
        meta: Obj = {"resourceVersion": str(self.store.rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}
        return _dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    # -- admin --------------------------------------------------------------------------------------------

    async def _admin(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        if parts == ["stats"] and request.method == "GET":
            counts: dict[str, dict[str, int]] = {}
            for (agent, verb, res), n in sorted(self.counts.items()):
                counts.setdefault(agent or "-", {})[f"{verb} {res}"] = n
            return _json({"resourceVersion": self.store.rv, "requests": counts})
        if parts == ["stats", "reset"] and request.method == "POST":
            self.counts.clear()
            return _json({"reset": True})
        raise ApiError(404, "NotFound", "no such admin route")


@contextlib.asynccontextmanager
async def serve(**kwargs: Any) -> AsyncIterator[FakeApi]:
    async with FakeApi(**kwargs) as api:
        yield api
