"""Outage simulation: the real ``Runtime`` (workers, version watcher, sync, breaker) in virtual time.

- ``VirtualTimeLoop``: an asyncio event loop whose clock jumps to the next timer whenever nothing is ready, so a
  10-minute outage takes milliseconds and every ``sleep``/``timeout`` keeps its meaning. Nothing here does real I/O.
- ``SimVault``: ScaiVault's list and read endpoints on ``httpx.MockTransport``, with a switchable fault (503, 429
  with or without ``Retry-After``, connection refused, a read that times out after 15 virtual seconds) and a log of
  every request with its virtual time.
- ``SimKube``: the Kubernetes calls ``Runtime`` makes, in memory; each Secret write is handed back to the runtime
  as its watch event (as Kopf would), and connection status patches are recorded.
- ``Sim``: builds all three around one ``Runtime(clock=loop.time)`` with a real ``ScaiVaultClient`` (its default
  retry policy, transport replaced), and answers "is everything converged?".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import selectors
import urllib.parse
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from kube_fakes import QuietSecretWatch

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._cogs.kube import Conflict, KubeError
from scaivault_operator._cogs.scaivault import ScaiVaultClient
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core import connections as connections_module
from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import ANNOTATION_VERSION, CREDENTIALS_LABEL, merge_patch
from scaivault_operator._logic.registry import ConnKey

T = TypeVar("T")

OP_NS = "scaivault-system"
CONN = "default"
CONN_KEY: ConnKey = ("ClusterVaultConnection", "", CONN)
#: What the sim's ScaiVault can be told to do to every request.
FAULTS = ("503", "429-retry-after", "429", "connect", "timeout")
#: The client's read timeout (``DEFAULT_TIMEOUT``): a ``timeout`` fault answers after this long.
READ_TIMEOUT = 15.0


# -- virtual time -----------------------------------------------------------------------------------------------


class _FastForward(selectors.BaseSelector):
    """Wraps the loop's real selector: when nothing is ready and a timer is due in ``timeout`` seconds, jump."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only real I/O (none here) could wake us
            return self._real.select(None)
        self._loop.advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock that starts at 0 and moves only when the loop would otherwise wait."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(selector=_FastForward(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def wait_for(predicate: Callable[[], bool], *, within: float, step: float = 0.1, what: str = "") -> float:
    """Sleep in ``step``s of virtual time until ``predicate()``; return the virtual time it became true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {within} virtual seconds: {what}")
        await asyncio.sleep(step)
    return loop.time()


# -- ScaiVault ---------------------------------------------------------------------------------------------------


@dataclass
class Request:
    at: float
    kind: str  # "list" or "read"
    target: str  # the prefix or the path
    ok: bool


@dataclass
class SimVault:
    versions: dict[str, int] = field(default_factory=dict)
    fault: str | None = None
    retry_after: float = 30.0
    log: list[Request] = field(default_factory=list)
    #: Serve this many more requests, then switch ``fault_after`` on (an outage that starts in the middle of work).
    serve: int | None = None
    fault_after: str | None = None
    #: When the fault was switched on by ``serve`` running out, and the index of the first faulted request in ``log``.
    faulted_at: float | None = None
    faulted_index: int = 0

    def write(self, path: str, version: int | None = None) -> None:
        self.versions[path] = version if version is not None else self.versions.get(path, 0) + 1

    @staticmethod
    def data(path: str, version: int) -> dict[str, str]:
        return {"password": f"{path}@{version}"}

    def between(self, start: float, end: float) -> list[Request]:
        return [r for r in self.log if start <= r.at < end]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        if self.serve is not None:
            if self.serve == 0:
                self.fault, self.serve, self.faulted_at = self.fault_after, None, loop.time()
                self.faulted_index = len(self.log)
            else:
                self.serve -= 1
        path = request.url.path
        listing = path == "/v1/secrets"
        whoami = path == "/v1/auth/whoami"  # the connection's health check (connstatus): at start, not per poll
        target = request.url.params.get("prefix", "") if listing else urllib.parse.unquote(path[len("/v1/secrets/") :])
        kind = "whoami" if whoami else "list" if listing else "read"
        entry = Request(loop.time(), kind, target, ok=self.fault is None)
        self.log.append(entry)
        if self.fault == "timeout":
            await asyncio.sleep(READ_TIMEOUT)
            raise httpx.ReadTimeout("timed out", request=request)
        if self.fault == "connect":
            raise httpx.ConnectError("Connection refused", request=request)
        if self.fault == "503":
            return httpx.Response(503, json={"error": "unavailable", "message": "down"})
        if self.fault is not None:
            headers = {"Retry-After": f"{self.retry_after:g}"} if self.fault == "429-retry-after" else {}
            return httpx.Response(429, json={"error": "rate_limited", "message": "slow down"}, headers=headers)
        if whoami:
            return httpx.Response(200, json={"identity_id": "sim-reader", "scopes": ["secrets:read"]})
        if listing:
            return self._list(target, request.url.params)
        version_param = request.url.params.get("version")
        current = self.versions.get(target)
        version = int(version_param) if version_param else current
        if current is None or version is None or version > current:
            return httpx.Response(404, json={"error": "not_found", "message": "no such secret"})
        return httpx.Response(200, json={"path": target, "version": version, "data": self.data(target, version)})

    def _list(self, prefix: str, params: Mapping[str, str]) -> httpx.Response:
        limit = int(params.get("limit", "500"))
        start = int(params.get("cursor", "0"))
        matches = sorted(p for p in self.versions if p.startswith(prefix))
        page = matches[start : start + limit]
        more = start + limit < len(matches)
        body = {"secrets": [{"path": p, "version": self.versions[p]} for p in page], "has_more": more,
                "cursor": str(start + limit) if more else None}  # fmt: skip
        return httpx.Response(200, json=body)


@contextlib.contextmanager
def scaivault_on(vault: SimVault) -> Iterator[None]:
    """Every ``ScaiVaultClient`` the operator builds talks to ``vault`` (its retry policy stays the default)."""
    original = connections_module.ScaiVaultClient

    class Simulated(ScaiVaultClient):
        def __init__(self, base_url: str, auth: Any, **kwargs: Any) -> None:
            super().__init__(base_url, auth, **kwargs, transport=httpx.MockTransport(vault.handle))

    connections_module.ScaiVaultClient = Simulated  # type: ignore[misc]
    try:
        yield
    finally:
        connections_module.ScaiVaultClient = original  # type: ignore[misc]


# -- Kubernetes --------------------------------------------------------------------------------------------------


class SimKube(QuietSecretWatch):
    """What ``Runtime`` calls of ``kube.Kube``, in memory."""

    default_namespace = OP_NS

    def __init__(self, connection: Mapping[str, Any], token: str = "sim-token") -> None:
        self.connection = dict(connection)
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.statuses: dict[tuple[str, str], dict[str, Any]] = {}
        self.vaultsecrets: dict[tuple[str, str], dict[str, Any]] = {}  # what exists (``Sim.add``)
        self.connection_status_patches: list[tuple[float, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        self.runtime: Runtime | None = None
        self.secrets[(OP_NS, "scaivault-token")] = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "scaivault-token", "namespace": OP_NS, "labels": {CREDENTIALS_LABEL: "true"}},
            "data": {"token": base64.b64encode(token.encode()).decode()},
        }  # fmt: skip

    def _deliver(self, event: str, body: Mapping[str, Any]) -> None:
        if self.runtime is not None:
            self.runtime.on_secret(event, copy.deepcopy(dict(body)))

    async def server_version(self) -> str:
        return "v1.36.2"

    async def whoami(self) -> None:
        return None

    async def list_connections(self, namespaces: Any) -> list[tuple[str, dict[str, Any]]]:
        return [("ClusterVaultConnection", copy.deepcopy(self.connection))]

    async def namespace_labels(self, namespace: str) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": namespace}

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def create_secret(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        key = (meta["namespace"], meta["name"])
        if key in self.secrets:
            raise Conflict(f"create Secret {key}: HTTP 409", 409)
        self.secrets[key] = copy.deepcopy(dict(manifest))
        self._deliver("ADDED", self.secrets[key])
        return copy.deepcopy(self.secrets[key])

    async def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        if (namespace, name) not in self.secrets:
            raise KubeError(f"patch Secret {namespace}/{name}: HTTP 404", 404)
        self.secrets[(namespace, name)] = merge_patch(self.secrets[(namespace, name)], patch)
        self._deliver("MODIFIED", self.secrets[(namespace, name)])
        return copy.deepcopy(self.secrets[(namespace, name)])

    async def delete_secret(self, namespace: str, name: str) -> None:
        body = self.secrets.pop((namespace, name), None)
        if body is not None:
            self._deliver("DELETED", body)

    async def get_vaultsecret(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.vaultsecrets.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def patch_vaultsecret_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        self.statuses[(namespace, name)] = merge_patch(self.statuses.get((namespace, name), {}), status)
        return True

    async def patch_connection_status(
        self, kind: str, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> None:
        self.connection_status_patches.append((asyncio.get_running_loop().time(), copy.deepcopy(dict(status))))
        self.connection["status"] = merge_patch(self.connection.get("status") or {}, status)

    async def post_event(self, involved: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        self.events.append({"name": involved["name"], "type": type_, "reason": reason})


# -- the operator ------------------------------------------------------------------------------------------------


def connection(poll: str = "2s") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "ClusterVaultConnection",
        "metadata": {"name": CONN, "uid": "uid-conn", "generation": 1},
        "spec": {"url": "https://scaivault.sim", "pollInterval": poll,
                 "auth": {"tokenSecretRef": {"namespace": OP_NS, "name": "scaivault-token", "key": "token"}},
                 "access": [{"namespaceSelector": {}, "pathPrefixes": [""]}]},
    }  # fmt: skip


def vaultsecret(index: int, path: str, *, version: int | None = None, labels: dict[str, str] | None = None) -> dict:
    spec: dict[str, Any] = {"path": path, "connectionRef": {"name": CONN}}
    if version is not None:
        spec["version"] = version
    if labels:
        spec["target"] = {"labels": labels}
    return {"apiVersion": API_VERSION, "kind": "VaultSecret",
            "metadata": {"name": f"vs-{index}", "namespace": f"ns-{index % 10}", "uid": f"uid-{index}",
                         "generation": 2 if labels else 1},
            "spec": spec}  # fmt: skip


def spread_paths(count: int, prefixes: int = 16) -> list[str]:
    """``count`` paths in their own directories under ``prefixes`` top-level trees: a poll lists ``prefixes``
    prefixes (``covering_prefixes`` merges each tree's directories into the tree)."""
    return [f"t{i % prefixes:02d}/svc{i:04d}/db" for i in range(count)]


@dataclass
class Sim:
    vault: SimVault
    kube: SimKube
    runtime: Runtime
    bodies: dict[tuple[str, str], dict[str, Any]]

    async def add(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        self.bodies[(meta["namespace"], meta["name"])] = body
        self.kube.vaultsecrets[(meta["namespace"], meta["name"])] = body
        await self.runtime.on_vaultsecret("ADDED", copy.deepcopy(body))

    async def delete_secret_by_hand(self, namespace: str, name: str) -> None:
        await self.kube.delete_secret(namespace, name)

    def unconverged(self) -> list[str]:
        """VaultSecrets not Ready at the version they should hold, or whose Secret does not hold it."""
        wrong = []
        for (namespace, name), body in self.bodies.items():
            spec = body["spec"]
            want = spec.get("version") or self.vault.versions.get(spec["path"])
            status = self.kube.statuses.get((namespace, name)) or {}
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
            secret = self.kube.secrets.get((namespace, name)) or {}
            annotations = (secret.get("metadata") or {}).get("annotations") or {}
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            labels = (secret.get("metadata") or {}).get("labels") or {}
            if (
                ready.get("status") != "True"
                or status.get("syncedVersion") != want
                or annotations.get(ANNOTATION_VERSION) != str(want)
                or data != SimVault.data(spec["path"], want)
                or any(labels.get(k) != v for k, v in ((spec.get("target") or {}).get("labels") or {}).items())
            ):
                wrong.append(f"{namespace}/{name}")
        return wrong


@contextlib.asynccontextmanager
async def simulation(settings: OperatorSettings, *, poll: str = "2s") -> Any:
    vault = SimVault()
    kube = SimKube(connection(poll))
    with scaivault_on(vault):
        runtime = Runtime(kube, settings, clock=asyncio.get_running_loop().time)  # type: ignore[arg-type]
        kube.runtime = runtime
        await runtime.start()
        try:
            yield Sim(vault, kube, runtime, {})
        finally:
            await runtime.stop()
