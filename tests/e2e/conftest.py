"""Fixtures of the end-to-end tests: a real cluster, our CRDs on it, a namespace per test, the operator in-process.

The cluster is the one of ``$KUBECONFIG`` when it is set. Otherwise, when ``$KUBEBUILDER_ASSETS`` holds an etcd
and a kube-apiserver (``setup-envtest use -p path``), a private control plane started for the session on 127.0.0.1
(``controlplane.py``; ``$KUBECONFIG`` points at it meanwhile). Otherwise the one the operator itself would use:
the in-cluster service account, else ``~/.kube/config``. ``cluster`` probes its ``/version`` once per session
(3 s timeout) and skips every test when there is none; set ``SVO_E2E_REQUIRE_CLUSTER=1`` to fail instead (a CI
job that brought up a cluster). Tests that need the garbage collector ask for ``garbage_collector``: it skips them
on a private control plane without kube-controller-manager.

Per test: a fresh namespace ``svo-e2e-<random>`` (deleted at teardown, not waited for) holding the token Secret
``scaivault-token`` (the dev vault's read-only token, labelled ``scaivault.scailabs.ai/credentials=true``) and the
VaultConnection ``vault`` to ``dev_vault`` polling every second (``env``), and, for the tests that ask for
``operator``, the real operator running on the test's event loop and restricted to that namespace — it never
touches anything else on the cluster, except that it watches the cluster-scoped ClusterVaultConnections (read
only). It logs in as the chart's ServiceAccount, bound to the chart's own RBAC (``chart_rbac.py``), never as the
tests' admin: every scenario also proves the chart grants what the operator needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest
import pytest_asyncio
from chart_rbac import service_account_with_chart_rbac
from controlplane import (
    ASSETS_ENV,
    HOW_TO_GET_BINARIES,
    KUBE_CONTROLLER_MANAGER,
    Binaries,
    ControlPlaneError,
    private_control_plane,
    sigterm_as_interrupt,
)
from e2e_support import (
    CONNECTION,
    E2E,
    TOKEN_KEY,
    TOKEN_SECRET,
    ClusterAccess,
    ClusterConnectionFactory,
    ClusterUnavailable,
    DevVaultLike,
    KubeApi,
    connection_manifest,
    credentials_secret_manifest,
    install_crds,
    namespace_manifest,
    probe_cluster,
    unique_name,
)

from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.runtime import Runtime
from scaivault_operator.testing import running_operator

REQUIRE_CLUSTER_ENV = "SVO_E2E_REQUIRE_CLUSTER"
#: ``installed``: the operator deployed by the chart does the work (``make e2e`` on kind); start none in-process.
OPERATOR_ENV = "SVO_E2E_OPERATOR"
#: Address the dev vaults bind to, and the host pods use to reach them (the kind network's gateway).
VAULT_BIND_ENV = "SVO_E2E_VAULT_BIND"
VAULT_HOST_ENV = "SVO_E2E_VAULT_HOST"


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterAccess]:
    """The cluster of the session, or a skip (cached by pytest: set up once per session).

    ``$KUBECONFIG`` given: that cluster. Else ``$KUBEBUILDER_ASSETS`` holding etcd and kube-apiserver: a private
    control plane (``controlplane.py``) for the session, with ``$KUBECONFIG`` pointing at it meanwhile (the
    in-process operator reads it). Else the in-cluster service account or ``~/.kube/config``, if they answer.
    """
    if os.environ.get("KUBECONFIG"):
        yield _probe_or_skip(f"point KUBECONFIG at a reachable cluster, or unset it and set {ASSETS_ENV}")
        return
    try:
        binaries = Binaries.from_environment()
    except ControlPlaneError as exc:
        _skip_or_fail(str(exc))
    if binaries is None:
        yield _probe_or_skip(
            f"point KUBECONFIG at a cluster, or get a kube-apiserver and an etcd for a private control plane: "
            f"{HOW_TO_GET_BINARIES}"
        )
        return
    failure = None
    try:
        with (
            sigterm_as_interrupt(),  # a CI job's SIGTERM still runs the teardown
            private_control_plane(binaries) as plane,
            _environment("KUBECONFIG", str(plane.kubeconfig)),
        ):
            source = f"private control plane ({binaries.describe()}) at {plane.url}"
            try:
                access = probe_cluster(
                    kubeconfig=plane.kubeconfig, source=source, garbage_collector=plane.garbage_collector
                )
            except ClusterUnavailable as exc:
                raise ControlPlaneError(f"{exc}\n{plane.logs()}") from None
            yield access
            plane.check_running()  # a component that died during the session fails the last test's teardown
    except ControlPlaneError as exc:
        failure = f"private control plane from {ASSETS_ENV}: {exc}"
    if failure:  # outside the except block: the message is the whole story, no chained traceback
        pytest.fail(failure, pytrace=False)


def _probe_or_skip(hint: str) -> ClusterAccess:
    try:
        return probe_cluster()
    except ClusterUnavailable as exc:
        _skip_or_fail(f"no reachable Kubernetes cluster — {exc}; {hint}")


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_CLUSTER_ENV):
        pytest.fail(f"{reason} ({REQUIRE_CLUSTER_ENV} is set)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` inside the block; the previous value (or its absence) restored after."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _needs_controller_manager(cluster: ClusterAccess, what: str) -> None:
    """Skips the test when no kube-controller-manager runs (a private control plane from binaries without one)."""
    if not cluster.garbage_collector:
        pytest.skip(
            f"needs {what}: {ASSETS_ENV} has no {KUBE_CONTROLLER_MANAGER} (setup-envtest ships none), so the private "
            "control plane runs without one; add the binary there or use a real cluster"
        )


@pytest.fixture
def garbage_collector(cluster: ClusterAccess) -> None:
    """Skips the test when nothing collects garbage."""
    _needs_controller_manager(cluster, "the garbage collector")


@pytest.fixture
def deployment_controller(cluster: ClusterAccess) -> None:
    """Skips the test when no Deployment controller runs."""
    _needs_controller_manager(cluster, "the Deployment controller")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def crds(cluster: ClusterAccess) -> AsyncIterator[list[str]]:
    """The three CRDs, Established. Removed at the end only if this session created them: deleting a CRD deletes
    every object of its kind on the cluster."""
    api = KubeApi(cluster)
    created: list[str] = []
    try:
        yield await install_crds(api, created)
    finally:
        for name in created:
            await api.delete("CustomResourceDefinition", name)
        await api.aclose()


@pytest_asyncio.fixture
async def api(cluster: ClusterAccess, crds: list[str]) -> AsyncIterator[KubeApi]:
    client = KubeApi(cluster)
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def namespace(api: KubeApi) -> AsyncIterator[str]:
    """A fresh namespace; deletion is requested at teardown and not waited for."""
    name = unique_name()
    await api.create(namespace_manifest(name))
    try:
        yield name
    finally:
        await api.delete("Namespace", name)


@pytest.fixture
def dev_vault(start_dev_vault: Any) -> DevVaultLike:
    """tests/conftest.py's dev vault; with ``SVO_E2E_VAULT_BIND``/``_HOST`` bound where pods can reach it."""
    bind = os.environ.get(VAULT_BIND_ENV)
    running = start_dev_vault(host=bind) if bind else start_dev_vault()
    host = os.environ.get(VAULT_HOST_ENV)
    if not host:
        return running  # type: ignore[no-any-return]
    port = running.url.rsplit(":", 1)[1]
    return dataclasses.replace(running, url=f"http://{host}:{port}")  # type: ignore[no-any-return]


@pytest_asyncio.fixture
async def env(api: KubeApi, namespace: str, dev_vault: DevVaultLike) -> E2E:
    """The namespace with the token Secret and the VaultConnection to ``dev_vault`` (no operator yet)."""
    await api.create(credentials_secret_manifest(TOKEN_SECRET, namespace, {TOKEN_KEY: dev_vault.ro_token}))
    await api.create(
        connection_manifest(
            "VaultConnection",
            CONNECTION,
            url=dev_vault.url,
            namespace=namespace,
            token_secret=(namespace, TOKEN_SECRET),
        )
    )
    return E2E(api=api, namespace=namespace, vault=dev_vault)


@pytest_asyncio.fixture
async def operator(cluster: ClusterAccess, env: E2E, tmp_path: Path) -> AsyncIterator[Runtime | None]:
    """The real operator (Kopf and our handlers) on this test's event loop, serving only the test namespace and
    logged in as the chart's ServiceAccount with exactly the chart's RBAC for that mode (``chart_rbac``): what
    the chart does not grant fails the test. With ``SVO_E2E_OPERATOR=installed``, nothing: the operator installed
    by the chart serves every namespace."""
    if os.environ.get(OPERATOR_ENV) == "installed":
        yield None
        return
    settings = OperatorSettings(namespaces=(env.namespace,), liveness_endpoint=None)
    async with (
        service_account_with_chart_rbac(cluster, env.namespace) as identity,
        running_operator(settings, access=identity.access(cluster, tmp_path)) as runtime,
    ):
        yield runtime


@pytest_asyncio.fixture
async def cluster_connection(env: E2E) -> AsyncIterator[ClusterConnectionFactory]:
    """Creates ClusterVaultConnections (unique names) reading the test namespace's token; deleted at teardown."""
    names: list[str] = []

    async def create(access: Sequence[Mapping[str, Any]]) -> str:
        name = unique_name()
        names.append(name)
        await env.api.create(
            connection_manifest(
                "ClusterVaultConnection",
                name,
                url=env.vault.url,
                access=access,
                token_secret=(env.namespace, TOKEN_SECRET),
            )
        )
        return name

    try:
        yield create
    finally:
        for name in names:
            await env.api.delete("ClusterVaultConnection", name)
