"""The Kubernetes side of a benchmark world: the in-memory API (``FakeSide``) or a real cluster (``ClusterSide``).

Both create the world's objects (namespaces, the token Secret, a ClusterVaultConnection, the VaultSecrets), report
changes to VaultSecrets and the measured side's Secrets to an ``observe(kind, type, object)`` callback, and count
the Kubernetes requests of the process under test (the operator or the naive baseline) as
``{"verb resource": count}``:

- ``FakeSide``: objects written through the fake API's store (never counted), changes from its listeners,
  requests counted by the server (every request, reads included).
- ``ClusterSide``: objects written with lightkube over HTTP, changes from lightkube watches. For the operator
  (``role="operator"``) its writes are counted by the operator itself (its ``/metrics``: ``secret_writes_total``,
  ``status_writes_total``, ``events_total``), scraped at each mark — reads and Kopf's own requests are not in
  these counts; with several operator processes (``bench.run --shards``) each one's ``/metrics``, summed. For the
  naive baseline (``role="baseline"``: its own namespaces in the same cluster, no CRDs, no VaultSecrets) every
  Kubernetes request it sends, counted by the baseline (``bench.naive --stats-port``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from lightkube import ApiError, AsyncClient, codecs
from lightkube.config.client_adapter import Client as HttpxClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import SingleConfig
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace, Secret

from bench.fakeapi import FakeApi, ResourceType, load_crds
from bench.naive import LABEL as BASELINE_LABEL
from bench.naive import MANAGED_BY as BASELINE_MANAGED_BY
from scaivault_operator._cogs.kube import ClusterVaultConnectionResource, VaultSecretResource
from scaivault_operator._cogs.kubeconfig import load as load_kubeconfig
from scaivault_operator._logic.manifests import CREDENTIALS_LABEL, MANAGED_BY, MANAGED_BY_LABEL

GROUP, VERSION = "scaivault.scailabs.ai", "v1alpha1"
TOKEN = "bench-read-token"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection", "recreate")
PROBE_TIMEOUT = 3.0
BENCH_LABEL = "svo-bench"

Observe = Callable[[str, str, dict[str, Any]], None]  # (kind: "VaultSecret" | "Secret", event type, object)


class Item(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...


class KubeSide(Protocol):
    api: str  # "fake" | "cluster"
    connection: str  # the ClusterVaultConnection's name
    namespace_prefix: str  # the VaultSecrets' namespaces start with it

    async def start(self, observe: Observe) -> None: ...
    async def stop(self) -> None: ...
    async def seed(self, items: Sequence[Item], vault_url: str, interval: float, *, connection: bool) -> None: ...
    async def create_vaultsecrets(self, items: Sequence[Item]) -> None: ...
    def operator_args(self, *, replace: bool = True) -> list[str]: ...
    def baseline_args(self) -> list[str]: ...
    async def operator_ready(self, limit: float, processes: int = 1) -> bool: ...
    def counts(self) -> dict[str, int]: ...
    def describe(self) -> dict[str, Any]: ...


def vaultsecret(item: Item, connection: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VaultSecret",
            "metadata": {"name": item.name, "namespace": item.namespace},
            "spec": {"path": item.path, "connectionRef": {"name": connection}}}  # fmt: skip


def connection_spec(vault_url: str, interval: float, token_ns: str, access: dict[str, Any]) -> dict[str, Any]:
    return {"url": vault_url, "pollInterval": f"{interval:g}s",
            "auth": {"tokenSecretRef": {"name": "scaivault-token", "namespace": token_ns, "key": "token"}},
            "access": [{**access, "pathPrefixes": ["bench/"]}]}  # fmt: skip


# -- the in-memory API ----------------------------------------------------------------------------------------


class FakeSide:
    """``bench.fakeapi`` in this process: objects written through its store, requests counted at the server."""

    api = "fake"
    connection = "default"
    namespace_prefix = "bench-"
    OP_NS = "scaivault-system"

    def __init__(self, *, crds: bool, history: int = 20_000) -> None:
        self.with_crds = crds
        self.history = history  # watch events kept per resource type (older resourceVersions: 410 Gone)
        self._api: FakeApi | None = None

    @property
    def fake(self) -> FakeApi:
        assert self._api is not None
        return self._api

    @property
    def url(self) -> str:
        return self.fake.url

    def rtype(self, group: str, version: str, plural: str) -> ResourceType:
        found = self.fake.store.resolve(group, version, plural)
        assert found is not None, plural
        return found

    async def start(self, observe: Observe) -> None:
        self._api = await FakeApi(crds=load_crds() if self.with_crds else (), history=self.history).start()

        def listener(rtype: ResourceType, type_: str, old: Any, new: dict[str, Any]) -> None:
            if rtype.kind == "VaultSecret" or (rtype.kind == "Secret" and rtype.group == ""):
                observe(rtype.kind, type_, new)

        self._api.store.listeners.append(listener)

    async def stop(self) -> None:
        if self._api is not None:
            await self._api.stop()

    async def seed(self, items: Sequence[Item], vault_url: str, interval: float, *, connection: bool) -> None:
        store, ns_type = self.fake.store, self.rtype("", "v1", "namespaces")
        names = sorted({item.namespace for item in items} | ({self.OP_NS} if connection else set()))
        for namespace in names:
            if ("", namespace) not in store.objects(ns_type):
                store.create(ns_type, None, {"metadata": {"name": namespace}})
        if connection:
            token = {"metadata": {"name": "scaivault-token", "labels": {CREDENTIALS_LABEL: "true"}}, "type": "Opaque",
                     "stringData": {"token": TOKEN}}  # fmt: skip
            store.create(self.rtype("", "v1", "secrets"), self.OP_NS, token)
            spec = connection_spec(vault_url, interval, self.OP_NS, {"namespaceSelector": {}})
            store.create(self.rtype(GROUP, VERSION, "clustervaultconnections"), None,
                         {"metadata": {"name": self.connection}, "spec": spec})  # fmt: skip

    async def create_vaultsecrets(self, items: Sequence[Item]) -> None:
        vs_type = self.rtype(GROUP, VERSION, "vaultsecrets")
        for index, item in enumerate(items):
            self.fake.store.create(vs_type, item.namespace, vaultsecret(item, self.connection))
            if index % 100 == 99:
                await asyncio.sleep(0)  # let the server stream the events meanwhile

    def operator_args(self, *, replace: bool = True) -> list[str]:
        """``replace``: ignored here (the fake API counts every process's requests at the server)."""
        return ["--server", self.fake.url]

    def baseline_args(self) -> list[str]:
        """The naive baseline's Kubernetes API; its requests are counted by the fake API."""
        return ["--api", self.fake.url]

    async def operator_ready(self, limit: float, processes: int = 1) -> bool:
        """Kopf watches both VaultSecrets and Secrets (each of ``processes`` operator processes its own)."""
        store = self.fake.store
        vs, secrets_ = self.rtype(GROUP, VERSION, "vaultsecrets"), self.rtype("", "v1", "secrets")
        deadline = time.monotonic() + limit
        while store.watcher_count(vs) < processes or store.watcher_count(secrets_) < processes:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for (_agent, verb, res), n in self.fake.counts.items():
            found[f"{verb} {res}"] = found.get(f"{verb} {res}", 0) + n
        return found

    def describe(self) -> dict[str, Any]:
        return {"api": "fake", "kubernetes": "bench.fakeapi"}


# -- a real cluster -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterInfo:
    config: SingleConfig
    server: str
    version: str


class ClusterUnavailable(Exception):
    pass


def probe_cluster(within: float = PROBE_TIMEOUT) -> ClusterInfo:
    """The cluster the operator would use (``kubeconfig.load``: ``$KUBECONFIG`` — a list, merged as kubectl does —,
    in-cluster, ``~/.kube/config``), if GET /version answers within ``within`` seconds (as tests/e2e's probe);
    ``ClusterUnavailable`` otherwise."""
    try:
        config = load_kubeconfig().config
        with HttpxClient(config, ConnectionParams(timeout=httpx.Timeout(within))) as http:
            response = http.get("/version")
            response.raise_for_status()
            version = str(response.json().get("gitVersion") or "unknown")
    except ClusterUnavailable:
        raise
    except Exception as exc:  # connection, TLS, credentials, HTTP status, not JSON...
        raise ClusterUnavailable(f"GET /version failed: {type(exc).__name__}: {exc}") from None
    return ClusterInfo(config=config, server=config.cluster.server, version=version)


_SAMPLE = re.compile(r"^scaivault_operator_(\w+?)(?:\{(.*)\})? ([0-9.eE+-]+)$")
_METRIC_KEYS = {"status_writes_total": "patch vaultsecrets/status", "events_total": "create events"}


def parse_metrics(text: str) -> dict[str, int]:
    """The operator's Kubernetes writes from its ``/metrics``, keyed like the fake API's counts."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        if name == "secret_writes_total":
            operation = re.search(r'operation="([^"]*)"', labels or "")
            key = f"{operation.group(1) if operation else 'write'} secrets"
        elif name in _METRIC_KEYS:
            key = _METRIC_KEYS[name]
        else:
            continue
        found[key] = found.get(key, 0) + round(float(value))
    return found


def metric_sum(text: str, name: str) -> float:
    """The sum over its labels of ``scaivault_operator_<name>`` in a ``/metrics`` text (e.g. ``vaultsecrets``: the
    VaultSecrets a process serves, by reason)."""
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is not None and match.group(1) == name:
            total += float(match.group(3))
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ClusterSide:
    """The cluster in the kubeconfig: a namespace set, a token Secret and a ClusterVaultConnection of this run
    (``svo-bench-<random>``), our CRDs installed when missing; all of it (and only that) deleted at the end.

    ``role="baseline"``: the naive baseline's world in the same cluster — namespaces of its own run only (no CRDs,
    no token, no connection, no VaultSecrets), its Secrets observed by their label, its requests counted by
    itself."""

    api = "cluster"

    def __init__(self, info: ClusterInfo, *, concurrency: int = 32, role: str = "operator") -> None:
        if role not in ("operator", "baseline"):
            raise ValueError(f"role: {role!r}")
        self.info = info
        self.role = role
        run = secrets.token_hex(3)
        self.connection = f"svo-bench-{run}"
        self.namespace_prefix = f"svo-bench-{run}-"
        self.op_ns = f"svo-bench-{run}-ops"
        self.concurrency = concurrency
        self.client = AsyncClient(info.config, field_manager="svo-bench")
        self.namespaces: list[str] = []
        self.created_crds: list[str] = []
        self.metrics_url: str | None = None  # the operator's /metrics, or the baseline's request counts (JSON)
        self.metrics_urls: list[str] = []  # the running operator processes' /metrics (several with --shards)
        self._tasks: list[asyncio.Task[None]] = []
        self._observe: Observe | None = None

    async def start(self, observe: Observe) -> None:
        self._observe = observe
        if self.role == "baseline":
            labels = {BASELINE_LABEL: BASELINE_MANAGED_BY}
            self._tasks = [asyncio.create_task(self._watch(Secret, "Secret", labels))]
            return
        await self._install_crds()
        self._tasks = [asyncio.create_task(self._watch(VaultSecretResource, "VaultSecret", None)),
                       asyncio.create_task(self._watch(Secret, "Secret", {MANAGED_BY_LABEL: MANAGED_BY}))]  # fmt: skip

    async def _install_crds(self, limit: float = 60.0, terminating_limit: float = 600.0) -> None:
        """Install the CRDs that are missing and wait until all are Established. A CRD still being deleted (a
        previous run's, its objects going away: "create not allowed while custom resource definition is
        terminating") is waited out first, then installed again."""
        bodies = load_crds()
        gone_by = time.monotonic() + terminating_limit
        for body in bodies:
            name = body["metadata"]["name"]  # type: ignore[index]
            try:
                while (await self.client.get(CustomResourceDefinition, name)).metadata.deletionTimestamp:
                    if time.monotonic() >= gone_by:
                        raise RuntimeError(f"CRD {name} still terminating after {terminating_limit:g} s")
                    await asyncio.sleep(1.0)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                await self.client.create(codecs.from_dict(body))
                self.created_crds.append(name)
        deadline = time.monotonic() + limit
        for body in bodies:
            name = body["metadata"]["name"]  # type: ignore[index]
            while True:
                crd = await self.client.get(CustomResourceDefinition, name)
                conditions = (crd.status.conditions if crd.status else None) or []
                if any(c.type == "Established" and c.status == "True" for c in conditions):
                    break
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"CRD {name} not Established within {limit:g} s")
                await asyncio.sleep(0.25)

    async def _watch(self, resource: Any, kind: str, labels: Any) -> None:
        while True:
            try:
                async for type_, obj in self.client.watch(resource, namespace="*", labels=labels):
                    body = obj.to_dict()
                    if (body.get("metadata") or {}).get("namespace", "").startswith(self.namespace_prefix):
                        assert self._observe is not None
                        self._observe(kind, type_, body)
            except (ApiError, httpx.HTTPError):
                await asyncio.sleep(0.5)  # start over: the first events (ADDED) repeat the current state

    async def seed(self, items: Sequence[Item], vault_url: str, interval: float, *, connection: bool) -> None:
        for namespace in [*sorted({item.namespace for item in items}), *([self.op_ns] if connection else [])]:
            if namespace not in self.namespaces:
                meta = {"name": namespace, "labels": {BENCH_LABEL: "true"}}
                await self.client.create(Namespace.from_dict({"metadata": meta}))
                self.namespaces.append(namespace)
        if connection:
            await self.client.create(Secret.from_dict({"metadata": {"name": "scaivault-token",
                                                                    "namespace": self.op_ns,
                                                                    "labels": {CREDENTIALS_LABEL: "true"}},
                                                       "type": "Opaque", "stringData": {"token": TOKEN}}))  # fmt: skip
            access = {"namespaces": sorted({item.namespace for item in items})}
            await self.client.create(codecs.from_dict({
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterVaultConnection",
                "metadata": {"name": self.connection, "labels": {BENCH_LABEL: "true"}},
                "spec": connection_spec(vault_url, interval, self.op_ns, access)}))  # fmt: skip

    async def create_vaultsecrets(self, items: Sequence[Item]) -> None:
        gate = asyncio.Semaphore(self.concurrency)

        async def create(item: Item) -> None:
            async with gate:
                await self.client.create(codecs.from_dict(vaultsecret(item, self.connection)))

        await asyncio.gather(*(create(item) for item in items))

    def operator_args(self, *, replace: bool = True) -> list[str]:
        """No ``--server``: the operator reads the kubeconfig, as ``scaivault-operator run`` does; /metrics on a
        fresh local port (each operator process counts from zero). ``replace``: a new set of processes (the counts
        start again from this one's); False: one more process of the same set (a shard), its counts added."""
        port = free_port()
        self.metrics_url = f"http://127.0.0.1:{port}/metrics"
        self.metrics_urls = [*([] if replace else self.metrics_urls), self.metrics_url]
        return ["--metrics-port", str(port)]

    def baseline_args(self) -> list[str]:
        """The naive baseline reads the same kubeconfig and serves its request counts on a fresh local port (each
        baseline process counts from zero)."""
        port = free_port()
        self.metrics_url = f"http://127.0.0.1:{port}/"
        return ["--kubeconfig", "--stats-port", str(port)]

    async def operator_ready(self, limit: float, processes: int = 1) -> bool:
        """Every operator process's /metrics answers (Kopf's watches are not visible from here; it lists before
        watching, so nothing is missed)."""
        deadline = time.monotonic() + limit
        waiting = list(self.metrics_urls or ([self.metrics_url] if self.metrics_url else []))
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                for url in list(waiting):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(url)).status_code == 200:
                            waiting.remove(url)
                if not waiting and len(self.metrics_urls) >= processes:
                    return True
                await asyncio.sleep(0.1)
        return False

    def counts(self) -> dict[str, int]:
        """The current operator's writes (the sum over its processes with ``--shards``), or the current baseline's
        requests (nothing while no such process runs: a new one counts from zero)."""
        if self.metrics_url is None:
            return {}
        if self.role == "baseline":
            try:
                response = httpx.get(self.metrics_url, timeout=10.0)
                response.raise_for_status()
            except httpx.HTTPError:
                return {}
            return {str(key): int(value) for key, value in response.json().items()}
        found: dict[str, int] = {}
        for url in self.metrics_urls or [self.metrics_url]:
            try:
                response = httpx.get(url, timeout=10.0)
                response.raise_for_status()
            except httpx.HTTPError:
                continue
            for key, value in parse_metrics(response.text).items():
                found[key] = found.get(key, 0) + value
        return found

    def describe(self) -> dict[str, Any]:
        return {"api": "cluster", "kubernetes": f"cluster {self.info.server} ({self.info.version})",
                "cluster": {"server": self.info.server, "version": self.info.version}}  # fmt: skip

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.role == "operator":
            with contextlib.suppress(ApiError, httpx.HTTPError):
                await self.client.delete(ClusterVaultConnectionResource, self.connection)
        for namespace in self.namespaces:
            with contextlib.suppress(ApiError, httpx.HTTPError):
                await self.client.delete(Namespace, namespace)
        for name in self.created_crds:  # only the CRDs this run installed
            with contextlib.suppress(ApiError, httpx.HTTPError):
                await self.client.delete(CustomResourceDefinition, name)
        await self.client.close()
