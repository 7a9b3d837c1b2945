"""The Kubernetes fault matrix (issue 10) on a real API server: what the emulator cannot show.

- **The API server down for 30 s and back**: ``scaivault-operator run`` as a child process, logged in as the chart's
  ServiceAccount through a TCP proxy on 127.0.0.1 (TLS passes through) that the test closes and reopens. Meanwhile
  ScaiVault moves, VaultSecrets are created and changed and a managed Secret is deleted — all of it converges after.
- **SIGKILL in the middle of a cold sync**: 200 VaultSecrets, the operator killed with ``SIGKILL`` once some but not
  all Secrets exist, and started again: every VaultSecret converges with one Secret create each and no other write.
- **410 Gone and a watch cut mid-event**: the operator (in-process, the chart's ServiceAccount) talks to the API
  server through ``FaultProxy``, an HTTP proxy that forwards everything and, on request, ends the live watches of a
  resource with ``ERROR 410 Expired`` (as the API server ends a watch whose resource version is gone) or resets a
  watch connection in the middle of one chosen event. Kopf's new list and resumed watch are the real server's.

Writes are counted by watches the test opens on the API server itself (never through a proxy) before the operator
starts: ADDED / MODIFIED / DELETED events per object. Every wait has a deadline; nothing asserts on durations. Each
test prints a ``fault-matrix-kubernetes: {...}`` line with what it observed (``-s``) for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiohttp.web
import child_operator
import httpx
import pytest
import yaml
from chart_rbac import ca_bytes, service_account_with_chart_rbac
from child_operator import TcpProxy, free_port, log_on_failure
from e2e_support import E2E, ClusterAccess, decoded_data, labels_of, ready_condition, wait_for
from lightkube.config.client_adapter import AsyncClient as HttpxAsyncClient
from lightkube.config.client_adapter import ConnectionParams

from scaivault_operator._cogs.api import GROUP, VERSION
from scaivault_operator._cogs.kubeconfig import load as load_kubeconfig
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import MANAGED_BY, MANAGED_BY_LABEL
from scaivault_operator.testing import running_operator

STARTUP_TIMEOUT = 60.0
CONVERGE_TIMEOUT = 90.0
COLD_SYNC_SIZE = 200
OUTAGE_SECONDS = 30.0
#: The operator's retry backoff tops out here (the default is 300 s): after the outage it comes back within this.
RETRY_MAX = "5"
SECRET_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
METRICS_PREFIX = "scaivault_operator_"


def report(fault: str, **observed: Any) -> None:
    print(f"fault-matrix-kubernetes: {json.dumps({'fault': fault, **observed})}")


# -- counting writes: the test's own watch on the API server ----------------------------------------------------


class WatchCounter:
    """Every event of one collection since the test opened it (before the operator starts): ``(type, name)``.

    A watch on the API server itself, from the resourceVersion of a list made at the start, resumed from the last
    resourceVersion after a disconnect: so each write to the collection is exactly one event here.
    """

    def __init__(self, cluster: ClusterAccess, path: str, label_selector: str | None = None) -> None:
        self.path = path
        self.params = {"labelSelector": label_selector} if label_selector else {}
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self._http = HttpxAsyncClient(cluster.config, ConnectionParams(timeout=httpx.Timeout(10.0, read=None)))
        self._task: asyncio.Task[None] | None = None
        self._error: str | None = None

    async def __aenter__(self) -> WatchCounter:
        # A CRD installed a moment ago may answer 429 ("storage is (re)initializing") for a while: retry.
        response = await wait_for(lambda: self._http.get(self.path, params=self.params),
                                  lambda r: r.status_code != 429, what=f"a list of {self.path}", within=60)  # fmt: skip
        response.raise_for_status()
        version = response.json()["metadata"]["resourceVersion"]
        self._task = asyncio.create_task(self._watch(version))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()

    async def _watch(self, version: str) -> None:
        while True:
            params = {**self.params, "watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true"}
            try:
                async with self._http.stream("GET", self.path, params=params) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            self._error = f"the test's own watch of {self.path} failed: {obj}"
                            return
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.events.append((event["type"], obj["metadata"]["name"], obj))
            except httpx.HTTPError:
                await asyncio.sleep(0.2)

    def count(self, type_: str | None = None, name: str | None = None, since: int = 0) -> int:
        assert self._error is None, self._error
        return sum(
            1 for t, n, _ in self.events[since:] if (type_ is None or t == type_) and (name is None or n == name)
        )

    def per_name(self, since: int = 0) -> dict[str, collections.Counter[str]]:
        """``{name: Counter({"ADDED": 1, ...})}`` of the events since ``since``."""
        assert self._error is None, self._error
        found: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for type_, name, _ in self.events[since:]:
            found[name][type_] += 1
        return found

    def mark(self) -> int:
        return len(self.events)


def secrets_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets"


def vaultsecrets_path(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/vaultsecrets"


# -- the operator as a child process ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def operator_process(
    kubeconfig: Path, namespace: str, log: Path, *, metrics_port: int, home: Path, workers: int = 2
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``scaivault-operator run --kubeconfig ...`` serving ``namespace`` (output appended to ``log``); terminated,
    then killed, at the end unless the test killed it already."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KUBECONFIG", "SCAIVAULT_OPERATOR_"))}
    env.update({"HOME": str(home), "SCAIVAULT_OPERATOR_RETRY_MAX": RETRY_MAX})
    args = ["--kubeconfig", str(kubeconfig), "--namespace", namespace, "--liveness", "",
            "--metrics-port", str(metrics_port), "--workers", str(workers)]  # fmt: skip
    async with child_operator.operator_process(args, env, log) as process:
        yield process


async def metrics(port: int) -> dict[str, float]:
    """The child's ``/metrics``: ``{"name{labels}": value}`` without the prefix; empty when it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.HTTPError:
        return {}
    found = {}
    for line in text.splitlines():
        if line.startswith(METRICS_PREFIX):
            name, _, value = line.rpartition(" ")
            found[name.removeprefix(METRICS_PREFIX)] = float(value)
    return found


def write_metrics(scraped: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in scraped.items() if name.startswith(("secret_writes", "status_writes"))}


async def settled(port: int, *, within: float = 30.0) -> dict[str, float]:
    """Wait until the child's queue is empty and its sync count stays the same over two scrapes."""
    previous: dict[str, float] = {}

    async def scrape() -> bool:
        nonlocal previous
        current = await metrics(port)
        syncs = sum(v for k, v in current.items() if k.startswith("syncs_total"))
        quiet = current.get("queue_depth") == 0 and syncs == sum(
            v for k, v in previous.items() if k.startswith("syncs_total")
        )
        previous = current
        return bool(current) and quiet

    await wait_for(scrape, bool, what="the operator is idle (queue empty, no new sync)", within=within, interval=1.0)
    return previous


def service_account_kubeconfig(directory: Path, name: str, server: str, token: str, cluster: ClusterAccess,
                               *, tls: bool = True) -> Path:  # fmt: skip
    """A kubeconfig logging in with ``token`` at ``server`` (the cluster's CA when ``tls``)."""
    entry: dict[str, Any] = {"server": server}
    ca = ca_bytes(cluster)
    if tls and ca is not None:
        entry["certificate-authority-data"] = base64.b64encode(ca).decode()
    elif tls and cluster.config.cluster.insecure:
        entry["insecure-skip-tls-verify"] = True
    document = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "c", "cluster": entry}],
                "users": [{"name": "u", "user": {"token": token}}], "current-context": "x",
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}  # fmt: skip
    path = directory / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    path.chmod(0o600)
    return path


async def create_vaultsecrets(env: E2E, names_paths: list[tuple[str, str]], *, batch: int = 20) -> None:
    for start in range(0, len(names_paths), batch):
        await asyncio.gather(*(env.create_vaultsecret(name, path) for name, path in names_paths[start : start + batch]))


async def all_synced(env: E2E, expected: dict[str, int]) -> bool:
    """Every VaultSecret in ``expected`` is Ready at its version (for its generation) and its Secret carries it."""
    vaultsecrets = {vs["metadata"]["name"]: vs for vs in await env.api.list("VaultSecret", env.namespace)}
    secrets = {s["metadata"]["name"]: s for s in await env.api.list("Secret", env.namespace)}
    for name, version in expected.items():
        vs = vaultsecrets.get(name)
        status = (vs or {}).get("status") or {}
        if vs is None or (ready_condition(vs) or {}).get("status") != "True" or status.get("syncedVersion") != version:
            return False
        if status.get("observedGeneration") != vs["metadata"].get("generation"):
            return False
        annotations = ((secrets.get(name) or {}).get("metadata") or {}).get("annotations") or {}
        if annotations.get(f"{GROUP}/version") != str(version):
            return False
    return True


async def wait_all_synced(env: E2E, expected: dict[str, int], *, within: float = CONVERGE_TIMEOUT) -> None:
    await wait_for(lambda: all_synced(env, expected), bool, what=f"{len(expected)} VaultSecrets synced",
                   within=within, interval=0.5)  # fmt: skip


def loopback_server(cluster: ClusterAccess) -> tuple[str, int]:
    """The API server's host and port, when a proxy on 127.0.0.1 can stand in for it with TLS passing through
    (its certificate must be valid for the loopback address the operator then dials); else skip."""
    server = urlsplit(str(cluster.config.cluster.server))
    if server.scheme != "https" or server.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip(f"the API server is at {server.scheme}://{server.hostname}: a TLS pass-through proxy on "
                    "127.0.0.1 would not match its certificate")  # fmt: skip
    return server.hostname, server.port or 443


# -- the API server down for 30 s ---------------------------------------------------------------------------


async def test_api_server_down_30s_and_back(cluster: ClusterAccess, env: E2E, tmp_path: Path) -> None:
    """The API server is unreachable for 30 s while ScaiVault moves on, VaultSecrets are created and changed and a
    managed Secret is deleted. The operator process keeps running and, once the API server is back, brings it all
    in line: one write per change, none for what did not change."""
    host, port = loopback_server(cluster)
    proxy = TcpProxy(host, port)
    await proxy.restore()
    log, metrics_port = tmp_path / "operator.log", free_port()
    names = [f"s{i:02d}" for i in range(20)]
    for name in names:
        env.write(f"apps/outage/{name}", {"password": f"{name}-v1"})
    async with (
        service_account_with_chart_rbac(cluster, env.namespace) as identity,
        WatchCounter(cluster, secrets_path(env.namespace), SECRET_SELECTOR) as secrets,
        WatchCounter(cluster, vaultsecrets_path(env.namespace)) as vaultsecrets,
    ):
        kubeconfig = service_account_kubeconfig(tmp_path, "via-proxy", f"https://{host}:{proxy.port}",
                                                identity.token, cluster)  # fmt: skip
        async with (
            operator_process(kubeconfig, env.namespace, log, metrics_port=metrics_port, home=tmp_path) as process,
            log_on_failure(log),
        ):
            await create_vaultsecrets(env, [(name, f"apps/outage/{name}") for name in names])
            await wait_all_synced(env, dict.fromkeys(names, 1))
            before = await settled(metrics_port)
            mark_s, mark_vs = secrets.mark(), vaultsecrets.mark()

            await proxy.cut()  # the API server goes away for the operator (the test still reaches it directly)
            moved = names[:5]
            for name in moved:  # new versions: the operator sees them in ScaiVault but cannot write them
                env.write(f"apps/outage/{name}", {"password": f"{name}-v2"})
            fresh = [f"n{i:02d}" for i in range(5)]
            for name in fresh:
                env.write(f"apps/outage/{name}", {"password": f"{name}-v1"})
            await create_vaultsecrets(env, [(name, f"apps/outage/{name}") for name in fresh])
            await env.api.delete("Secret", "s05", env.namespace)  # drift while the operator cannot see it
            await env.api.patch("VaultSecret", "s06", {"spec": {"target": {"labels": {"outage": "seen"}}}},
                                env.namespace)  # fmt: skip
            await asyncio.sleep(OUTAGE_SECONDS)
            writes_during = secrets.per_name(mark_s)
            await proxy.restore()

            expected = {**dict.fromkeys(names, 1), **dict.fromkeys(moved, 2), **dict.fromkeys(fresh, 1)}
            await wait_all_synced(env, expected)
            relabelled = await env.secret("s06")
            assert relabelled is not None
            assert labels_of(relabelled).get("outage") == "seen"
            final = await settled(metrics_port)
            assert process.returncode is None, "the operator process exited during the outage"
        await proxy.cut()

        text = await asyncio.to_thread(log.read_text, encoding="utf-8", errors="replace")
        per_secret, per_vs = secrets.per_name(mark_s), vaultsecrets.per_name(mark_vs)
        report("API server down 30 s (TCP proxy closed), then back",
               secret_events_during=sum(sum(c.values()) for c in writes_during.values()),
               secret_events_after={n: dict(c) for n, c in sorted(per_secret.items())},
               operator_writes_from_the_cut_on={k: v - before.get(k, 0.0) for k, v in write_metrics(final).items()},
               status_write_failures_logged=text.count("cannot write the status"),
               secret_write_failures_logged=text.count("writing the Secret of VaultSecret"))  # fmt: skip
    # Only the test's own deletion happened while the API server was away.
    assert {n: dict(c) for n, c in writes_during.items()} == {"s05": {"DELETED": 1}}
    for name in moved:
        assert per_secret[name] == {"MODIFIED": 1}, f"{name}: {per_secret[name]}"
        secret = await env.secret(name)
        assert secret is not None
        assert decoded_data(secret) == {"password": f"{name}-v2"}
    for name in fresh:
        assert per_secret[name] == {"ADDED": 1}, f"{name}: {per_secret[name]}"
    assert per_secret["s05"] == {"DELETED": 1, "ADDED": 1}
    assert per_secret["s06"] == {"MODIFIED": 1}
    for name in names[7:]:  # untouched: neither their Secret nor their status was written again
        assert name not in per_secret, f"{name} was written though nothing changed: {per_secret[name]}"
        assert name not in per_vs, f"status of {name} written though nothing changed"


# -- SIGKILL in the middle of a cold sync ---------------------------------------------------------------------


async def test_sigkill_mid_cold_sync_then_restart(cluster: ClusterAccess, env: E2E, tmp_path: Path) -> None:
    """200 VaultSecrets; the operator is killed (SIGKILL) once some but not all of their Secrets exist, and started
    again. Every VaultSecret converges; each Secret was created exactly once and never modified or deleted; each
    VaultSecret's status was written once; the restart read from ScaiVault only what was not done yet."""
    log, metrics_port = tmp_path / "operator.log", free_port()
    names = [f"c{i:03d}" for i in range(COLD_SYNC_SIZE)]
    for name in names:
        env.write(f"apps/cold/{name}", {"password": f"{name}-v1"})
    # ScaiVault answers each read after 50 ms, so the cold sync lasts a few seconds and the kill lands in it.
    env.vault.vault.configure_faults(latency=0.05, calls=["read"])
    async with (
        service_account_with_chart_rbac(cluster, env.namespace) as identity,
        WatchCounter(cluster, secrets_path(env.namespace), SECRET_SELECTOR) as secrets,
        WatchCounter(cluster, vaultsecrets_path(env.namespace)) as vaultsecrets,
    ):
        identity.access(cluster, tmp_path)
        kubeconfig = tmp_path / "chart-rbac.kubeconfig"
        await create_vaultsecrets(env, [(name, f"apps/cold/{name}") for name in names])
        stats = env.vault.vault.stats
        reads_before = stats.count("read")
        async with (
            operator_process(kubeconfig, env.namespace, log, metrics_port=metrics_port, home=tmp_path) as first,
            log_on_failure(log),
        ):
            await wait_for(lambda: asyncio.sleep(0, secrets.count("ADDED")), lambda n: n >= 30, within=STARTUP_TIMEOUT,
                           what="30 Secrets created", interval=0.02)  # fmt: skip
            first.send_signal(signal.SIGKILL)
            await first.wait()
        await asyncio.sleep(1.0)  # requests the killed process had sent have landed (their events with them)
        created_at_kill = secrets.count("ADDED")
        ready_at_kill = sum(1 for counts in vaultsecrets.per_name().values() if counts["MODIFIED"])
        reads_first = stats.count("read") - reads_before
        assert 0 < created_at_kill < COLD_SYNC_SIZE, f"the kill did not land mid cold sync ({created_at_kill})"

        reads_before = stats.count("read")
        async with (
            operator_process(kubeconfig, env.namespace, log, metrics_port=metrics_port, home=tmp_path),
            log_on_failure(log),
        ):
            await wait_all_synced(env, dict.fromkeys(names, 1))
            final = await settled(metrics_port)
        reads_second = stats.count("read") - reads_before
        per_secret, per_vs = secrets.per_name(), vaultsecrets.per_name()
        events = [e for e in await env.api.list("Event", env.namespace) if e.get("reason") == "Synced"]
        per_event = collections.Counter(e["involvedObject"]["name"] for e in events)
        report("SIGKILL mid cold sync (200 VaultSecrets), restarted", secrets_at_kill=created_at_kill,
               statuses_at_kill=ready_at_kill, scaivault_reads_first_run=reads_first,
               scaivault_reads_after_restart=reads_second,
               secret_events=dict(collections.Counter(t for c in per_secret.values() for t in c.elements())),
               status_writes=sum(c["MODIFIED"] for c in per_vs.values()), synced_events=len(events),
               restart_metrics=write_metrics(final))  # fmt: skip
    assert sorted(per_secret) == names
    for name in names:
        assert per_secret[name] == {"ADDED": 1}, f"Secret {name}: {dict(per_secret[name])}"
        assert per_vs[name]["MODIFIED"] == 1, f"VaultSecret {name}: {dict(per_vs[name])}"  # (ADDED: the test's)
    assert per_event == {}, "a first sync posts no Event: two writes per VaultSecret (the Secret, its status)"
    # The restarted operator created exactly the Secrets that were missing, wrote no other Secret, and read from
    # ScaiVault only for the VaultSecrets whose status was not written yet.
    assert {k: v for k, v in final.items() if k.startswith("secret_writes")} == {
        'secret_writes_total{operation="create"}': COLD_SYNC_SIZE - created_at_kill
    }
    assert reads_second <= COLD_SYNC_SIZE - ready_at_kill
    for name in names[:3] + names[-3:]:
        secret = await env.secret(name)
        assert secret is not None
        assert decoded_data(secret) == {"password": f"{name}-v1"}


# -- an HTTP proxy that can expire and cut watches ---------------------------------------------------------------

_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-encoding",
                         "accept-encoding", "keep-alive"})  # fmt: skip
_EXPIRE = object()
GONE_EVENT = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": "too old resource version: 1 (2)", "reason": "Expired", "code": 410}}  # fmt: skip


@dataclass(eq=False)
class _Watch:
    path: str
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


@dataclass
class FaultProxy:
    """Plain HTTP on 127.0.0.1 → the API server over TLS (the cluster's CA): every request forwarded as it is (the
    operator's token included), every answer streamed back. The operator talks to it through a kubeconfig that
    names it. Faults, on request: ``expire(plural)`` ends the open watches of a resource with ``ERROR 410``;
    ``hold_next_list(plural, hook)`` runs ``hook`` before forwarding the next list of it; ``cut_next(plural,
    predicate)`` resets the connection of a watch in the middle of the next event ``predicate`` accepts."""

    upstream: str
    ssl_context: ssl.SSLContext | bool
    port: int = field(default_factory=free_port)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _watches: set[_Watch] = field(default_factory=set)
    _holds: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    _cuts: dict[str, Callable[[dict[str, Any]], bool]] = field(default_factory=dict)
    cut_done: list[str] = field(default_factory=list)

    async def __aenter__(self) -> FaultProxy:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl_context))
        self._server = aiohttp.web.Server(self._handle)
        self._runner = aiohttp.web.ServerRunner(self._server)
        await self._runner.setup()
        await aiohttp.web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for watch in list(self._watches):
            watch.queue.put_nowait(None)
        await self._runner.cleanup()
        await self._session.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def expire(self, plural: str) -> int:
        """End every open watch of ``plural`` with ``ERROR 410 Expired``; how many there were."""
        found = [watch for watch in self._watches if watch.path.endswith(f"/{plural}")]
        for watch in found:
            watch.queue.put_nowait(_EXPIRE)
        return len(found)

    def hold_next_list(self, plural: str, hook: Callable[[], Awaitable[None]]) -> None:
        self._holds[plural] = hook

    def cut_next(self, plural: str, predicate: Callable[[dict[str, Any]], bool]) -> None:
        self._cuts[plural] = predicate

    def lists(self, plural: str, since: int = 0) -> list[dict[str, str]]:
        return [q for m, p, q in self.requests[since:] if m == "GET" and p.endswith(f"/{plural}") and "watch" not in q]

    def watches(self, plural: str, since: int = 0) -> list[dict[str, str]]:
        return [q for m, p, q in self.requests[since:] if m == "GET" and p.endswith(f"/{plural}") and "watch" in q]

    async def _handle(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        query = dict(request.query)
        self.requests.append((request.method, request.path, query))
        plural = request.path.rsplit("/", 1)[-1]
        watching = query.get("watch") in ("true", "1")
        if request.method == "GET" and not watching and plural in self._holds:
            await self._holds.pop(plural)()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        upstream = await self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                               data=body or None, allow_redirects=False,
                                               timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))  # fmt: skip
        answer_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        if not watching or upstream.status != 200:
            async with upstream:
                return aiohttp.web.Response(status=upstream.status, headers=answer_headers, body=await upstream.read())
        response = aiohttp.web.StreamResponse(status=200, headers=answer_headers)
        await response.prepare(request)
        watch = _Watch(request.path)
        self._watches.add(watch)

        async def pump() -> None:
            with contextlib.suppress(aiohttp.ClientError, asyncio.CancelledError):
                async for chunk in upstream.content.iter_any():
                    watch.queue.put_nowait(chunk)
            watch.queue.put_nowait(None)

        reader = asyncio.create_task(pump())
        buffer = b""
        try:
            while (item := await watch.queue.get()) is not None:
                if item is _EXPIRE:
                    await response.write(json.dumps(GONE_EVENT).encode() + b"\n")
                    break
                buffer += item
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    cut = self._cuts.get(plural)
                    if cut is not None and line.strip() and cut(json.loads(line)):
                        del self._cuts[plural]
                        self.cut_done.append(plural)
                        await response.write(line[: len(line) // 2])
                        assert request.transport is not None
                        request.transport.abort()  # reset in the middle of the event
                        return response
                    await response.write(line + b"\n")
            await response.write_eof()
            return response
        except ConnectionError:
            return response
        finally:
            self._watches.discard(watch)
            reader.cancel()
            upstream.close()


def _upstream_tls(cluster: ClusterAccess) -> ssl.SSLContext | bool:
    ca = ca_bytes(cluster)
    if ca is not None:
        return ssl.create_default_context(cadata=ca.decode())
    return False if cluster.config.cluster.insecure else ssl.create_default_context()


@contextlib.asynccontextmanager
async def operator_behind_proxy(cluster: ClusterAccess, env: E2E, tmp_path: Path) -> AsyncIterator[
    tuple[FaultProxy, Runtime]
]:  # fmt: skip
    """The operator in-process, as the chart's ServiceAccount, reaching the API server only through a FaultProxy."""
    server = str(cluster.config.cluster.server).rstrip("/")
    async with (
        service_account_with_chart_rbac(cluster, env.namespace) as identity,
        FaultProxy(server, _upstream_tls(cluster)) as proxy,
    ):
        kubeconfig = service_account_kubeconfig(tmp_path, "via-fault-proxy", proxy.url, identity.token, cluster,
                                                tls=False)  # fmt: skip
        settings = OperatorSettings(namespaces=(env.namespace,), liveness_endpoint=None, retry_base=0.5, retry_max=5)
        async with running_operator(settings, access=load_kubeconfig(kubeconfig)) as runtime:
            yield proxy, runtime


async def idle(runtime: Runtime) -> None:
    queue = runtime.queue
    await wait_for(lambda: asyncio.sleep(0, len(queue) == 0 and not queue.running), bool, what="no sync job",
                   within=30)  # fmt: skip


async def test_watch_410_gone_on_a_real_server(cluster: ClusterAccess, env: E2E, tmp_path: Path) -> None:
    """The live VaultSecret watch ends with ERROR 410. Before Kopf's new list reaches the real API server, a
    VaultSecret is created and another's spec changes: the list and the watch from its resourceVersion carry them,
    and they converge with one write each; the unchanged one gets none."""
    for name in ("a", "b", "c"):
        env.write(f"apps/gone/{name}", {"password": f"{name}-v1"})
    async with (
        WatchCounter(cluster, secrets_path(env.namespace), SECRET_SELECTOR) as secrets,
        operator_behind_proxy(cluster, env, tmp_path) as (proxy, runtime),
    ):
        await create_vaultsecrets(env, [("a", "apps/gone/a"), ("b", "apps/gone/b")])
        await wait_all_synced(env, {"a": 1, "b": 1}, within=30)
        await idle(runtime)
        mark, requests = secrets.mark(), len(proxy.requests)

        async def meanwhile() -> None:
            await env.create_vaultsecret("c", "apps/gone/c")
            await env.api.patch("VaultSecret", "b", {"spec": {"target": {"labels": {"gone": "seen"}}}}, env.namespace)

        proxy.hold_next_list("vaultsecrets", meanwhile)
        assert proxy.expire("vaultsecrets") == 1
        await wait_all_synced(env, {"a": 1, "b": 1, "c": 1}, within=30)
        await wait_for(lambda: env.secret("b"), lambda s: s is not None and labels_of(s).get("gone") == "seen",
                       what="the label change of b in its Secret")  # fmt: skip
        # The operator's own list comes once Kopf's listing has been quiet for relist_quiet (2 s): everything may be
        # in sync before it (since the HTTP transport got faster, it is).
        await wait_for(lambda: asyncio.sleep(0, runtime._relist), lambda task: task is None, within=30,
                       what="the operator's check of the re-list")  # fmt: skip
        await idle(runtime)
        per_secret = {n: dict(c) for n, c in secrets.per_name(mark).items()}
        relists, rewatches = proxy.lists("vaultsecrets", requests), proxy.watches("vaultsecrets", requests)
        report(
            "410 Gone on the live VaultSecret watch (real server; changes made before the new list)",
            relists=len(relists),
            rewatches=len(rewatches),
            secret_events=per_secret,
        )
    assert len(relists) == 2, "Kopf's new list, and the operator's own list that finds what was deleted meanwhile"
    assert rewatches
    assert rewatches[0].get("resourceVersion"), "the new watch starts from the new list's resourceVersion"
    assert per_secret == {"c": {"ADDED": 1}, "b": {"MODIFIED": 1}}


async def test_vaultsecret_deleted_while_the_watch_was_expired(
    cluster: ClusterAccess, env: E2E, tmp_path: Path, garbage_collector: None
) -> None:
    """A VaultSecret deleted between the 410 and Kopf's new list: its Secret is garbage-collected and the operator
    does not bring it back."""
    env.write("apps/gone/d", {"password": "d-v1"})
    async with (
        WatchCounter(cluster, secrets_path(env.namespace), SECRET_SELECTOR) as secrets,
        operator_behind_proxy(cluster, env, tmp_path) as (proxy, runtime),
    ):
        await create_vaultsecrets(env, [("d", "apps/gone/d")])
        await wait_all_synced(env, {"d": 1}, within=30)
        await idle(runtime)

        async def meanwhile() -> None:
            await env.api.delete("VaultSecret", "d", env.namespace)

        proxy.hold_next_list("vaultsecrets", meanwhile)
        assert proxy.expire("vaultsecrets") == 1
        await wait_for(lambda: asyncio.sleep(0, secrets.count("DELETED", "d")), bool, within=60,
                       what="the garbage collector deleted the Secret of d")  # fmt: skip
        with contextlib.suppress(AssertionError):  # give a re-creation time to show (5 s), else it did not happen
            await wait_for(lambda: asyncio.sleep(0, secrets.count("ADDED", "d")), lambda n: n >= 2, within=5,
                           what="the Secret of d created again")  # fmt: skip
        stale = (env.namespace, "d") in runtime.registry.entries
        report(
            "410 Gone: a VaultSecret deleted before the new list (real server, garbage collector)",
            secret_events=dict(secrets.per_name()["d"]),
            stale_registry_entry=stale,
        )
    assert secrets.count("ADDED", "d") == 1, f"the Secret of the deleted VaultSecret d came back: {secrets.per_name()}"
    assert not stale


async def test_watch_cut_mid_event_on_a_real_server(cluster: ClusterAccess, env: E2E, tmp_path: Path) -> None:
    """The connection of a watch is reset in the middle of an event: of the deletion of a managed Secret (drift),
    and of a VaultSecret's spec change. Kopf resumes each watch from the last resourceVersion it got — no new
    list — the real server sends the cut event again, and each change is applied with one write."""
    for name in ("x", "y"):
        env.write(f"apps/cut/{name}", {"password": f"{name}-v1"})
    async with (
        WatchCounter(cluster, secrets_path(env.namespace), SECRET_SELECTOR) as secrets,
        operator_behind_proxy(cluster, env, tmp_path) as (proxy, runtime),
    ):
        await create_vaultsecrets(env, [("x", "apps/cut/x"), ("y", "apps/cut/y")])
        await wait_all_synced(env, {"x": 1, "y": 1}, within=30)
        await idle(runtime)
        mark, requests = secrets.mark(), len(proxy.requests)

        proxy.cut_next("secrets", lambda e: e["type"] == "DELETED" and e["object"]["metadata"]["name"] == "x")
        await env.api.delete("Secret", "x", env.namespace)
        await wait_for(lambda: env.secret("x"), lambda s: s is not None, what="the Secret x re-created")
        proxy.cut_next("vaultsecrets", lambda e: e["type"] == "MODIFIED" and e["object"]["metadata"]["name"] == "y"
                       and e["object"]["metadata"].get("generation") == 2)  # fmt: skip
        await env.api.patch("VaultSecret", "y", {"spec": {"target": {"labels": {"cut": "seen"}}}}, env.namespace)
        await wait_for(lambda: env.secret("y"), lambda s: s is not None and labels_of(s).get("cut") == "seen",
                       what="the label change of y in its Secret")  # fmt: skip
        await wait_all_synced(env, {"x": 1, "y": 1}, within=30)
        await idle(runtime)
        per_secret = {n: dict(c) for n, c in secrets.per_name(mark).items()}
        resumed = {plural: [q.get("resourceVersion") for q in proxy.watches(plural, requests)]
                   for plural in ("secrets", "vaultsecrets")}  # fmt: skip
        relists = {plural: len(proxy.lists(plural, requests)) for plural in ("secrets", "vaultsecrets")}
        report(
            "watch reset mid-event (real server): a Secret's DELETED, a VaultSecret's MODIFIED",
            cuts=proxy.cut_done,
            relists=relists,
            resumed_from=resumed,
            secret_events=per_secret,
        )
    assert sorted(proxy.cut_done) == ["secrets", "vaultsecrets"]
    assert relists == {"secrets": 0, "vaultsecrets": 0}, "a cut watch resumes, it does not list again"
    assert all(resumed[plural] and all(resumed[plural]) for plural in resumed)
    assert per_secret == {"x": {"DELETED": 1, "ADDED": 1}, "y": {"MODIFIED": 1}}
    secret = await env.secret("x")
    assert secret is not None
    assert decoded_data(secret) == {"password": "x-v1"}
