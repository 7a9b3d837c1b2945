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
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from chart_rbac import ca_bytes, service_account_with_chart_rbac
from child_operator import TcpProxy, free_port, log_on_failure, operator_process
from e2e_support import E2E, ClusterAccess, wait_for

STARTUP_TIMEOUT = 60.0
CANARY_PATH = "apps/in-pod/db"


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
    metrics_port = free_port()
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
            operator_process(
                ["--namespace", env.namespace, "--liveness", "", "--metrics-port", str(metrics_port)],
                _pod_environment(mounted, proxy, tmp_path),
                log,
            ),
            log_on_failure(log),
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
