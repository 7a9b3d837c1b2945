"""The operator as it runs in a pod: in-cluster login only, the chart's RBAC, readiness that follows the API server.

No kubelet is needed: the test gives the operator what a pod gets — ``KUBERNETES_SERVICE_HOST``/``_PORT``, and a
service-account directory holding a token the API server issued (TokenRequest) for a ServiceAccount bound to the
chart's own ClusterRole, the cluster CA and the namespace — and runs ``scaivault-operator run`` as a subprocess
with no kubeconfig at all. ``kubernetes.default.svc`` does not resolve here (no cluster DNS), so a client that
dials it (Kopf's default login) would never sync. The service address is a TCP proxy on 127.0.0.1 in front of the
API server, so the test can take the API server away and give it back while the operator runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from chart_rbac import ca_bytes, service_account_with_chart_rbac
from e2e_support import E2E, ClusterAccess, wait_for

STARTUP_TIMEOUT = 60.0
CANARY_PATH = "apps/in-pod/db"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpProxy:
    """127.0.0.1:<port> → the API server, byte for byte (TLS passes through). ``cut()`` closes the listener and
    every open connection, as an API server outage would; ``restore()`` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = _free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update({writer, up_writer})


@contextlib.asynccontextmanager
async def _operator_process(env: dict[str, str], log: Path, namespace: str, metrics_port: int) -> AsyncIterator[None]:
    """``scaivault-operator run`` as a child process (its output in ``log``); terminated, then killed, at the end."""
    command = ["-m", "scaivault_operator.cli", "run", "--namespace", namespace, "--liveness", "",
               "--metrics-port", str(metrics_port)]  # fmt: skip
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(sys.executable, *command, env=env, stdout=out,
                                                       stderr=asyncio.subprocess.STDOUT)  # fmt: skip
        try:
            yield
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def _log_on_failure(log: Path) -> AsyncIterator[None]:
    """A failed wait says what the operator logged (its log names objects, never values)."""
    try:
        yield
    except AssertionError as exc:
        tail = (await asyncio.to_thread(log.read_text, encoding="utf-8", errors="replace"))[-4000:]
        raise AssertionError(f"{exc}\n--- operator log (tail) ---\n{tail}") from None


async def _readyz(port: int) -> int | None:
    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code
    except httpx.HTTPError:
        return None


def _pod_environment(service_account_dir: Path, proxy: TcpProxy, home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KUBECONFIG", "SCAIVAULT_OPERATOR_"))}
    env.update({
        "HOME": str(home),  # no ~/.kube/config to fall back on
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(proxy.port),
        "SCAIVAULT_OPERATOR_SERVICE_ACCOUNT_DIR": str(service_account_dir),
        "SCAIVAULT_OPERATOR_WORKERS": "2",
    })  # fmt: skip
    return env


async def test_operator_in_a_pod_syncs_without_cluster_dns_and_readiness_follows_the_api_server(
    cluster: ClusterAccess, env: E2E, tmp_path: Path
) -> None:
    with contextlib.suppress(OSError):
        socket.getaddrinfo("kubernetes.default.svc", 443)
        pytest.skip("kubernetes.default.svc resolves here: this test shows the operator does not need it")
    server = urlsplit(str(cluster.config.cluster.server))
    if server.scheme != "https" or not server.hostname:
        pytest.skip(f"the API server is not served over https ({server.scheme}://): a pod always uses https")
    proxy = TcpProxy(server.hostname, server.port or 443)
    await proxy.restore()
    metrics_port = _free_port()
    log = tmp_path / "operator.log"
    ca = ca_bytes(cluster)
    if ca is None:
        pytest.skip("the kubeconfig's cluster has no CA (insecure-skip-tls-verify): a pod always verifies the server")
    async with service_account_with_chart_rbac(cluster, env.namespace) as identity:
        account, token = identity.name, identity.token
        mounted = tmp_path / "serviceaccount"
        mounted.mkdir()
        (mounted / "token").write_text(token, encoding="utf-8")
        (mounted / "ca.crt").write_bytes(ca)
        (mounted / "namespace").write_text(env.namespace, encoding="utf-8")
        env.vault.vault.write(CANARY_PATH, {"password": "in-pod-canary-value"})
        async with (
            _operator_process(_pod_environment(mounted, proxy, tmp_path), log, env.namespace, metrics_port),
            _log_on_failure(log),
        ):
            ready = functools.partial(_readyz, metrics_port)
            await wait_for(ready, lambda code: code == 200, within=STARTUP_TIMEOUT, what="/readyz answers 200")
            await env.create_vaultsecret("in-pod", CANARY_PATH)
            await env.wait_secret_data("in-pod", {"password": "in-pod-canary-value"})

            await proxy.cut()  # the API server goes away
            await wait_for(ready, lambda code: code == 503, within=30, what="/readyz answers 503 without the API")
            await proxy.restore()
            await wait_for(ready, lambda code: code == 200, within=30, what="/readyz answers 200 again")
            # And it still syncs after the outage (Kopf's watches came back through the same endpoint).
            env.vault.vault.write(CANARY_PATH, {"password": "in-pod-canary-value-2"})
            await env.wait_secret_data("in-pod", {"password": "in-pod-canary-value-2"})
        await proxy.cut()
    text = await asyncio.to_thread(log.read_text, encoding="utf-8", errors="replace")
    assert f"running as system:serviceaccount:{env.namespace}:{account}" in text, text[-2000:]
    assert f"https://127.0.0.1:{proxy.port}" in text  # the service env vars, not kubernetes.default.svc
    for secret in (token, "in-pod-canary-value"):
        assert secret not in text
