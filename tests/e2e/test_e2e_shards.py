"""Shards on a real API server (issue 14): two ``scaivault-operator run`` child processes share the VaultSecrets.

- **By label**: ``--selector shard=a`` and ``--selector shard!=a`` (the second with
  ``SCAIVAULT_OPERATOR_CONNECTION_STATUS=false``), both logged in as the chart's ServiceAccount of the test's namespace.
  The API server filters the first's VaultSecret watch (the emulator cannot): VaultSecrets labelled a, b or not at all
  become Ready, each synced by one process. One relabelled from a to b stays Ready, its Secret is neither deleted nor
  rewritten (same resourceVersion) and its status is not written again; the next version of its path is synced by
  the b process (its metrics say so, the a process wrote nothing).
- **By namespace**: the Deployments ``helm template --set shards=2`` renders, run as processes with the command lines
  the chart gives them (``--shard 0/2``, ``--shard 1/2``), logged in as the ServiceAccount with the RBAC the same
  rendering creates (shared by the shards): VaultSecrets in four namespaces, two of each shard, through one
  ClusterVaultConnection. Each is synced by exactly one process — the sums of ``secret_writes_total`` equal the
  number of VaultSecrets, at the first sync and at the next version — and only shard 0 writes the connection's status.

Counts come from each process's ``/metrics``; every wait has a deadline; a failure shows the tail of both logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import child_operator
import httpx
import pytest
import yaml
from chart_rbac import CHART, HELM, RBAC_KINDS, ChartIdentity, service_account_with_chart_rbac
from child_operator import free_port
from e2e_support import (
    E2E,
    ClusterAccess,
    ClusterConnectionFactory,
    decoded_data,
    namespace_manifest,
    ready_condition,
    unique_name,
    vaultsecret_manifest,
    wait_for,
)
from lightkube import AsyncClient, codecs
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ServiceAccount

from scaivault_operator._logic.sharding import shard_of

CONVERGE_TIMEOUT = 90.0
METRICS_PREFIX = "scaivault_operator_"
PER_NAMESPACE = 3


@pytest.fixture(autouse=True)
def _no_installed_operator() -> None:
    """``make e2e`` on kind installs an operator that serves every namespace: it would sync what the shards under test
    count, so these tests run only with the operators they start themselves."""
    if os.environ.get("SVO_E2E_OPERATOR") == "installed":
        pytest.skip("an installed operator (SVO_E2E_OPERATOR=installed) serves every namespace besides the shards")


# -- the processes ----------------------------------------------------------------------------------------------


def child_env(home: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KUBECONFIG", "SCAIVAULT_OPERATOR_"))}
    env.update({"HOME": str(home), "SCAIVAULT_OPERATOR_RETRY_MAX": "5", **settings})
    return env


class Shard:
    """One operator process: its log and metrics port."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.log = directory / f"operator-{name}.log"
        self.port = free_port()

    def flags(self, kubeconfig: Path) -> list[str]:
        """Flags after the others (argparse: the last one wins): our kubeconfig, ports and a small pool."""
        return ["--kubeconfig", str(kubeconfig), "--liveness", "", "--metrics-port", str(self.port), "--workers", "2",
                "--log-format", "plain"]  # fmt: skip

    async def metrics(self) -> dict[str, float]:
        """``{"name{labels}": value}`` without the prefix; empty while the process does not answer."""
        try:
            async with httpx.AsyncClient(timeout=3.0) as http:
                text = (await http.get(f"http://127.0.0.1:{self.port}/metrics")).text
        except httpx.HTTPError:
            return {}
        found = {}
        for line in text.splitlines():
            if line.startswith(METRICS_PREFIX):
                name, _, value = line.rpartition(" ")
                found[name.removeprefix(METRICS_PREFIX)] = float(value)
        return found

    async def total(self, prefix: str) -> float:
        """The sum of every series whose name (with labels) starts with ``prefix``."""
        return sum(value for name, value in (await self.metrics()).items() if name.startswith(prefix))

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


@contextlib.asynccontextmanager
async def running(shards: list[tuple[Shard, list[str], Mapping[str, str]]]) -> AsyncIterator[None]:
    """Every shard's process (``scaivault-operator run ARGS``), waited for until its ``/metrics`` answers; a failed
    assertion inside shows the tail of every log."""
    async with contextlib.AsyncExitStack() as stack:
        for shard, args, env in shards:
            await stack.enter_async_context(child_operator.operator_process(args, env, shard.log))
        try:
            for shard, _, _ in shards:
                await wait_for(shard.metrics, bool, what=f"operator {shard.name} serves /metrics", within=60)
            yield
        except AssertionError as exc:
            tails = "\n".join(f"--- operator {s.name} (tail) ---\n{s.text()[-child_operator.LOG_TAIL :]}"
                              for s, _, _ in shards)  # fmt: skip
            raise AssertionError(f"{exc}\n{tails}") from None


async def all_ready(env: E2E, keys: list[tuple[str, str]], version: int) -> bool:
    """Every VaultSecret (namespace, name) Ready at ``version`` for its generation, its Secret carrying it."""
    by_namespace: dict[str, dict[str, Any]] = {}
    for namespace in {namespace for namespace, _ in keys}:
        by_namespace[namespace] = {vs["metadata"]["name"]: vs for vs in await env.api.list("VaultSecret", namespace)}
    for namespace, name in keys:
        vs = by_namespace[namespace].get(name)
        status = (vs or {}).get("status") or {}
        if vs is None or (ready_condition(vs) or {}).get("status") != "True" or status.get("syncedVersion") != version:
            return False
        if status.get("observedGeneration") != vs["metadata"].get("generation"):
            return False
    return True


async def wait_all_ready(env: E2E, keys: list[tuple[str, str]], version: int) -> None:
    await wait_for(lambda: all_ready(env, keys, version), bool, what=f"{len(keys)} VaultSecrets Ready at v{version}",
                   within=CONVERGE_TIMEOUT, interval=0.5)  # fmt: skip


async def settle(*shards: Shard, within: float = 30.0) -> None:
    """Until every process's queue is empty and its sync count stays the same over two scrapes a second apart."""
    previous: list[float] = [-1.0] * len(shards)

    async def quiet() -> bool:
        nonlocal previous
        current = [await shard.total("syncs_total") for shard in shards]
        depths = [(await shard.metrics()).get("queue_depth") for shard in shards]
        done = current == previous and all(depth == 0 for depth in depths)
        previous = current
        return done

    await wait_for(quiet, bool, what="the operators are idle", within=within, interval=1.0)


# -- by label ---------------------------------------------------------------------------------------------------


async def test_selector_shards_split_by_label_and_a_relabelled_vaultsecret_moves(
    cluster: ClusterAccess, env: E2E, tmp_path: Path
) -> None:
    a, b = Shard("a", tmp_path), Shard("b", tmp_path)
    labels = {"a1": "a", "a2": "a", "b1": "b", "n1": None}
    for name in labels:
        env.write(f"apps/shards/{name}", {"password": f"{name}-v1"})
    async with service_account_with_chart_rbac(cluster, env.namespace) as identity:
        identity.access(cluster, tmp_path)
        kubeconfig = tmp_path / "chart-rbac.kubeconfig"
        serve = ["--namespace", env.namespace]
        processes = [
            (a, [*serve, "--selector", "shard=a", *a.flags(kubeconfig)], child_env(tmp_path)),
            (b, [*serve, "--selector", "shard!=a", *b.flags(kubeconfig)],
             child_env(tmp_path, SCAIVAULT_OPERATOR_CONNECTION_STATUS="false")),
        ]  # fmt: skip
        async with running(processes):
            for name, label in labels.items():
                manifest = vaultsecret_manifest(
                    name, env.namespace, {"path": f"apps/shards/{name}", "connectionRef": env.connection_ref}
                )
                if label is not None:
                    manifest["metadata"]["labels"] = {"shard": label}
                await env.api.create(manifest)
            keys = [(env.namespace, name) for name in labels]
            await wait_all_ready(env, keys, 1)
            await settle(a, b)
            assert await a.total("vaultsecrets{") == 2  # a1, a2
            assert await b.total("vaultsecrets{") == 2  # b1 and n1 (shard!=a matches a VaultSecret without it)
            assert await a.total("secret_writes_total") == 2
            assert await b.total("secret_writes_total") == 2
            assert await a.total("connection_status_writes_total") >= 1
            assert await b.total("connection_status_writes_total") == 0
            connection = await env.api.get("VaultConnection", "vault", env.namespace)
            assert connection is not None
            assert (ready_condition(connection) or {}).get("status") == "True"

            # a1 moves to b: the API server sends DELETED to a's watch and ADDED to b's.
            secret_before = await env.secret("a1")
            vs_before = await env.vaultsecret("a1")
            assert secret_before is not None
            assert vs_before is not None
            await env.api.patch("VaultSecret", "a1", {"metadata": {"labels": {"shard": "b"}}}, env.namespace)

            async def moved() -> bool:
                return await a.total("vaultsecrets{") == 1 and await b.total("vaultsecrets{") == 3

            await wait_for(moved, bool, what="a1 forgotten by a and served by b", within=30)
            await asyncio.sleep(3.0)  # three polls: whatever either would write now, it would have
            await settle(a, b)
            secret_after, vs_after = await env.secret("a1"), await env.vaultsecret("a1")
            assert secret_after is not None
            assert vs_after is not None
            assert secret_after["metadata"]["resourceVersion"] == secret_before["metadata"]["resourceVersion"]
            assert vs_after["status"] == vs_before["status"]  # still Ready at v1, not written again
            assert await a.total("secret_writes_total") == 2
            assert await b.total("secret_writes_total") == 2
            assert await a.total("status_writes_total") == 2
            assert await b.total("status_writes_total") == 2

            # The next version of a1's path: b syncs it, a does nothing.
            env.write("apps/shards/a1", {"password": "a1-v2"})
            await env.wait_ready("a1", version=2, within=CONVERGE_TIMEOUT)
            secret = await env.wait_secret_data("a1", {"password": "a1-v2"})
            assert secret["metadata"]["resourceVersion"] != secret_before["metadata"]["resourceVersion"]
            await settle(a, b)
            assert (await b.metrics()).get('secret_writes_total{operation="patch"}') == 1
            assert await a.total("secret_writes_total") == 2
            assert await a.total("status_writes_total") == 2
            for name in ("a2", "b1", "n1"):
                still = await env.secret(name)
                assert still is not None
                assert decoded_data(still) == {"password": f"{name}-v1"}


# -- by namespace, as the chart deploys them ---------------------------------------------------------------------


def chart_shards(release: str, namespace: str, served: list[str], shards: int) -> list[dict[str, Any]]:
    """``helm template --set shards=N --set watchNamespaces={...}``: the RBAC objects and the Deployments."""
    if not HELM.exists():
        pytest.skip(f"no helm binary at {HELM}: run `make install`")
    text = subprocess.run(
        [str(HELM), "template", release, str(CHART), "--namespace", namespace, "--set", f"shards={shards}",
         "--set", f"watchNamespaces={{{','.join(served)}}}"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    return [doc for doc in yaml.safe_load_all(text) if doc]


@contextlib.asynccontextmanager
async def chart_identity(
    cluster: ClusterAccess, docs: list[dict[str, Any]], namespace: str, directory: Path
) -> AsyncIterator[Path]:
    """The rendered ServiceAccount and RBAC, created; yields a kubeconfig (in ``directory``) logging in as the
    ServiceAccount. The cluster-scoped objects are deleted at the end (the namespaced ones go with their namespaces)."""
    client = AsyncClient(cluster.config, field_manager="svo-e2e")
    created: list[Any] = []
    try:
        for doc in docs:
            if doc["kind"] in RBAC_KINDS:
                created.append(await client.create(codecs.from_dict(doc)))
        [account] = [obj for obj in created if isinstance(obj, ServiceAccount)]
        name = account.metadata.name
        request = ServiceAccount.Token(metadata=ObjectMeta(name=name, namespace=namespace),
                                       spec=TokenRequestSpec(audiences=[], expirationSeconds=3600))  # fmt: skip
        issued = await client.create(request, name=name, namespace=namespace)
        identity = ChartIdentity(namespace=namespace, name=name, token=issued.status.token)
        identity.access(cluster, directory)  # writes directory/chart-rbac.kubeconfig
        yield directory / "chart-rbac.kubeconfig"
    finally:
        for obj in created:
            if obj.metadata is not None and obj.metadata.namespace is None:
                with contextlib.suppress(Exception):
                    await client.delete(type(obj), obj.metadata.name)
        await client.close()


async def test_hash_shards_from_the_chart_sync_each_vaultsecret_exactly_once(
    cluster: ClusterAccess, env: E2E, cluster_connection: ClusterConnectionFactory, tmp_path: Path
) -> None:
    # Four more namespaces, two hashing to each shard (random names: drawn until both shards have two).
    chosen: dict[int, list[str]] = {0: [], 1: []}
    while min(len(names) for names in chosen.values()) < 2:
        name = unique_name()
        if len(chosen[shard_of(name, 2)]) < 2:
            chosen[shard_of(name, 2)].append(name)
    extra = chosen[0] + chosen[1]
    served = [env.namespace, *extra]
    for name in extra:
        await env.api.create(namespace_manifest(name))
    try:
        connection = await cluster_connection([{"namespaces": served, "pathPrefixes": ["apps/"]}])
        keys = []
        for namespace in extra:
            for i in range(PER_NAMESPACE):
                path = f"apps/{namespace}/s{i}"
                env.write(path, {"password": f"{path}-v1"})
                keys.append((namespace, f"s{i}", path))

        docs = chart_shards(unique_name("e2e"), env.namespace, served, 2)
        deployments = [doc for doc in docs if doc["kind"] == "Deployment"]
        assert len(deployments) == 2
        shards = [Shard(str(i), tmp_path) for i in range(2)]
        async with chart_identity(cluster, docs, env.namespace, tmp_path) as kubeconfig:
            processes = []
            for shard, deployment in zip(shards, deployments, strict=True):
                [box] = deployment["spec"]["template"]["spec"]["containers"]
                args = box["args"][1:]  # after "run": --namespace ..., --shard=i/2, ... as the chart renders them
                assert f"--shard={shard.name}/2" in args
                processes.append((shard, [*args, *shard.flags(kubeconfig)], child_env(tmp_path)))
            async with running(processes):
                for namespace, name, path in keys:
                    spec = {"path": path, "connectionRef": {"kind": "ClusterVaultConnection", "name": connection}}
                    await env.api.create(vaultsecret_manifest(name, namespace, spec))
                pairs = [(namespace, name) for namespace, name, _ in keys]
                await wait_all_ready(env, pairs, 1)
                await settle(*shards)
                for index, shard in enumerate(shards):
                    mine = len(chosen[index]) * PER_NAMESPACE
                    assert await shard.total("vaultsecrets{") == mine, f"shard {index}"
                    assert (await shard.metrics()).get('secret_writes_total{operation="create"}') == mine
                    assert await shard.total("status_writes_total") == mine
                    assert f"serving shard {index}/2 (by namespace)" in shard.text()
                assert sum([await shard.total("secret_writes_total") for shard in shards]) == len(keys)
                assert await shards[0].total("connection_status_writes_total") >= 1
                assert await shards[1].total("connection_status_writes_total") == 0
                status = await env.api.get("ClusterVaultConnection", connection)
                assert status is not None
                assert (ready_condition(status) or {}).get("status") == "True"

                for _, _, path in keys:
                    env.write(path, {"password": f"{path}-v2"})
                await wait_all_ready(env, pairs, 2)
                await settle(*shards)
                patches = [(await shard.metrics()).get('secret_writes_total{operation="patch"}', 0.0)
                           for shard in shards]  # fmt: skip
                assert patches == [len(chosen[i]) * PER_NAMESPACE for i in range(2)]
                assert sum([await shard.total("secret_writes_total") for shard in shards]) == 2 * len(keys)
                for namespace, name, path in keys[::PER_NAMESPACE]:
                    secret = await env.api.get("Secret", name, namespace)
                    assert secret is not None
                    assert decoded_data(secret) == {"password": f"{path}-v2"}
    finally:
        for name in extra:
            await env.api.delete("Namespace", name)
