"""Helpers for the operator's integration tests: object builders, a deadline-bound ``wait_until``, and ``OperatorEnv``.

The tests run the real operator (Kopf + our handlers) in-process against kmock's emulated Kubernetes API and the
local ScaiVault (``dev_vault``) over loopback HTTP. ``OperatorEnv`` bundles the two with the running operator
and the reads the tests need: VaultSecret status, managed Secrets, Events, and the requests each side received.

Requests the tests themselves send to the emulator carry the ``User-Agent`` ``TEST_AGENT``, so
``OperatorEnv.operator_requests`` can tell the operator's (lightkube's and Kopf's) requests apart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kmock

from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import ANNOTATION_VERSION, CREDENTIALS_LABEL
from scaivault_operator.devvault import DevVault
from scaivault_operator.testing import EmulatedCluster, running_operator

OP_NS = "scaivault-system"
TOKEN_SECRET = "scaivault-token"
CONN = "default"
POLL = "1s"
POLL_SECONDS = 1.0
TEST_AGENT = "scaivault-integration-test"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The default connection's access rule: every namespace may read these prefixes.
DEFAULT_PREFIXES = ("apps/", "shared/", "missing/")


T = TypeVar("T")

WATCH = kmock.action.WATCH
WATCHED = frozenset({"vaultsecrets", "clustervaultconnections", "vaultconnections", "secrets"})


def fast_settings(**overrides: Any) -> OperatorSettings:
    """Operator settings with short retries, so failure and recovery tests take seconds."""
    values: dict[str, Any] = {
        "liveness_endpoint": None,
        "workers": 4,
        "retry_base": 0.2,
        "retry_max": 2.0,
        "forbidden_retry": 2.0,
        "poll_jitter": 0.1,
        **overrides,
    }
    return OperatorSettings(**values)


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]], within: float = 10.0, *, interval: float = 0.1, what: str = ""
) -> T:
    """Poll ``predicate`` (sync or async) until it returns something truthy; return that. Fails at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()
        value: T = await result if inspect.isawaitable(result) else result  # type: ignore[assignment]
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"not true within {within}s: {what or predicate!r}; last value: {value!r}")
        await asyncio.sleep(interval)


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def unb64(text: str) -> str:
    return base64.b64decode(text).decode("utf-8")


def decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    return {key: unb64(value) for key, value in (secret.get("data") or {}).items()}


# -- builders ------------------------------------------------------------------------------------------------


def vaultsecret(
    name: str,
    path: str,
    *,
    namespace: str = "team-a",
    connection: str | None = CONN,
    connection_kind: str | None = None,
    version: int | None = None,
    keys: list[dict[str, str]] | None = None,
    target: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"path": path}
    if connection is not None:
        ref: dict[str, str] = {"name": connection}
        if connection_kind is not None:
            ref["kind"] = connection_kind
        spec["connectionRef"] = ref
    if version is not None:
        spec["version"] = version
    if keys is not None:
        spec["keys"] = keys
    if target is not None:
        spec["target"] = target
    return {"apiVersion": API_VERSION, "kind": "VaultSecret",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}  # fmt: skip


def workload(kind: str, name: str, *, namespace: str = "team-a", env: dict[str, tuple[str, str]] | None = None,
             env_from: str | None = None, volumes: list[dict[str, Any]] | None = None, pull: str | None = None,
             annotations: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """A Deployment, StatefulSet or DaemonSet with one container; ``env``: variable -> (secret, key); the container
    mounts every volume."""
    container: dict[str, Any] = {"name": "app", "image": "busybox"}
    if env:
        container["env"] = [{"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                            for var, (secret, key) in env.items()]  # fmt: skip
    if env_from:
        container["envFrom"] = [{"secretRef": {"name": env_from}}]
    pod: dict[str, Any] = {"containers": [container]}
    if volumes:
        pod["volumes"] = volumes
        container["volumeMounts"] = [{"name": v["name"], "mountPath": f"/etc/{v['name']}"} for v in volumes]
    if pull:
        pod["imagePullSecrets"] = [{"name": pull}]
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod}},
    }  # fmt: skip


def access_rule(prefixes: list[str] | tuple[str, ...], namespaces: list[str] | None = None) -> dict[str, Any]:
    """A rule for the listed ``namespaces``, or for every namespace (``namespaceSelector: {}``) when None."""
    rule: dict[str, Any] = {"pathPrefixes": list(prefixes)}
    if namespaces is None:
        rule["namespaceSelector"] = {}
    else:
        rule["namespaces"] = namespaces
    return rule


def connection_spec(
    url: str,
    *,
    token_secret: str = TOKEN_SECRET,
    token_namespace: str | None = OP_NS,
    access: list[dict[str, Any]] | None = None,
    poll: str = POLL,
) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": token_secret, "key": "token"}
    if token_namespace is not None:
        ref["namespace"] = token_namespace
    spec: dict[str, Any] = {"url": url, "auth": {"tokenSecretRef": ref}, "pollInterval": poll}
    if access is not None:
        spec["access"] = access
    return spec


def cluster_connection(name: str, url: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("access", [access_rule(DEFAULT_PREFIXES)])
    return {"apiVersion": API_VERSION, "kind": "ClusterVaultConnection", "metadata": {"name": name},
            "spec": connection_spec(url, **kwargs)}  # fmt: skip


def vault_connection(name: str, namespace: str, url: str, *, token_secret: str, **kwargs: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "VaultConnection", "metadata": {"name": name, "namespace": namespace},
            "spec": connection_spec(url, token_secret=token_secret, token_namespace=None, **kwargs)}  # fmt: skip


def opaque_secret(
    name: str, namespace: str, data: Mapping[str, str], *, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A plain Secret with ``data`` given as clear text."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "data": {key: b64(value) for key, value in data.items()}}  # fmt: skip


def credentials_secret(name: str, namespace: str, data: Mapping[str, str]) -> dict[str, Any]:
    """A Secret a connection may read its credentials from: labelled ``scaivault.scailabs.ai/credentials=true``."""
    return opaque_secret(name, namespace, data, labels={CREDENTIALS_LABEL: "true"})


def ready_condition(body: Mapping[str, Any] | None) -> dict[str, Any]:
    for condition in ((body or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


# -- the environment -----------------------------------------------------------------------------------------


@dataclass
class OperatorEnv:
    """The emulated cluster, the dev vault and (while running) the operator."""

    cluster: EmulatedCluster
    vault: DevVault
    settings: OperatorSettings
    runtime: Runtime | None = None
    #: Start the operator as ``scaivault-operator run`` does (``$KUBECONFIG`` etc.) instead of pointing it at the
    #: emulator's URL: the test sets ``KUBECONFIG`` to a file naming the emulator.
    via_kubeconfig: bool = False
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    # lifecycle

    async def start_operator(self) -> Runtime:
        """Start the operator and wait until Kopf watches every resource we create (kmock replays what exists)."""
        assert self.runtime is None, "the operator is already running"
        mark = self.mark()
        self._stack = contextlib.AsyncExitStack()
        server = None if self.via_kubeconfig else self.cluster.url
        operator = running_operator(self.settings, server=server, settle=0.0)
        self.runtime = await self._stack.enter_async_context(operator)

        def watching() -> bool:
            seen = {r.resource.plural for r in list(self.cluster.emulator)[mark:]
                    if r.resource is not None and r.action == WATCH}  # fmt: skip
            return seen >= WATCHED

        await wait_until(watching, 10, interval=0.01, what="Kopf watches its resources")
        return self.runtime

    async def stop_operator(self) -> None:
        try:
            await self._stack.aclose()
        finally:
            self.runtime = None

    # objects

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.cluster.create(body)

    async def token_secret(
        self, token: str, *, name: str = TOKEN_SECRET, namespace: str = OP_NS, labelled: bool = True
    ) -> None:
        """The token Secret, labelled as credentials (``labelled=False``: as a Secret that did not opt in)."""
        data = {"token": token}
        await self.create(
            credentials_secret(name, namespace, data) if labelled else opaque_secret(name, namespace, data)
        )

    async def vs(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.cluster.get("VaultSecret", namespace, name)

    async def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.cluster.get("Secret", namespace, name)

    async def list_all(self, kind_path: str) -> list[dict[str, Any]]:
        """Every object at a cluster-wide list path, e.g. ``/api/v1/events``."""
        response = await self.cluster.http.get(kind_path)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json().get("items") or []
        return items

    async def events(self) -> list[dict[str, Any]]:
        return await self.list_all("/api/v1/events")

    async def vaultsecrets(self) -> list[dict[str, Any]]:
        return await self.list_all(f"/apis/{API_VERSION}/vaultsecrets")

    async def secrets(self) -> list[dict[str, Any]]:
        return await self.list_all("/api/v1/secrets")

    # waiting

    async def wait_gone(self, kind: str, namespace: str | None, name: str, *, within: float = 10.0) -> None:
        async def gone() -> bool:
            return await self.cluster.get(kind, namespace, name) is None

        await wait_until(gone, within, what=f"{kind} {namespace}/{name} is gone")

    async def wait_synced(
        self, namespace: str, name: str, version: int | None = None, *, within: float = 10.0
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Wait until the VaultSecret is Ready (at ``version`` when given) and its Secret carries that version."""

        async def check() -> tuple[dict[str, Any], dict[str, Any]] | None:
            body = await self.vs(namespace, name)
            ready = ready_condition(body)
            if not body or ready.get("status") != "True":
                return None
            status = body["status"]
            if version is not None and status.get("syncedVersion") != version:
                return None
            secret = await self.secret(namespace, status.get("secretName") or name)
            if secret is None or secret["metadata"].get("annotations", {}).get(ANNOTATION_VERSION) != str(
                status.get("syncedVersion")
            ):
                return None
            return body, secret

        return await wait_until(check, within, what=f"VaultSecret {namespace}/{name} synced (version {version})")

    async def wait_all_synced(self, keys: list[tuple[str, str]], version: int, *, within: float = 10.0) -> None:
        """Wait until every VaultSecret in ``keys`` (namespace, name) is Ready at ``version``, its Secret too.

        Two list requests per check, however many objects: the emulator's cost grows with its request log.
        """

        async def check() -> bool:
            bodies = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in await self.vaultsecrets()}
            for key in keys:
                body = bodies.get(key)
                status = (body or {}).get("status") or {}
                if ready_condition(body).get("status") != "True" or status.get("syncedVersion") != version:
                    return False
            secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in await self.secrets()}
            for namespace, name in keys:
                secret_name = bodies[(namespace, name)]["status"].get("secretName") or name
                annotations = (secrets.get((namespace, secret_name)) or {}).get("metadata", {}).get("annotations")
                if (annotations or {}).get(ANNOTATION_VERSION) != str(version):
                    return False
            return True

        await wait_until(check, within, interval=0.1, what=f"{len(keys)} VaultSecrets synced at version {version}")

    async def wait_all_reason(self, keys: list[tuple[str, str]], reason: str, *, within: float = 10.0) -> None:
        """Wait until every VaultSecret in ``keys`` is Ready=False with ``reason`` (one list request per check)."""

        async def check() -> bool:
            bodies = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in await self.vaultsecrets()}
            return all(ready_condition(bodies.get(key)).get("reason") == reason for key in keys)

        await wait_until(check, within, interval=0.1, what=f"{len(keys)} VaultSecrets {reason}")

    async def wait_reason(
        self, namespace: str, name: str, reason: str, *, status: str = "False", within: float = 10.0
    ) -> dict[str, Any]:
        """Wait until Ready has ``status`` and ``reason``; return the VaultSecret."""

        async def check() -> dict[str, Any] | None:
            body = await self.vs(namespace, name)
            ready = ready_condition(body)
            return body if ready.get("status") == status and ready.get("reason") == reason else None

        return await wait_until(check, within, what=f"VaultSecret {namespace}/{name} Ready={status} {reason}")

    # requests

    def mark(self) -> int:
        """A position in the emulator's request log, for ``operator_requests(since=...)``."""
        return len(list(self.cluster.emulator))

    def operator_requests(self, since: int = 0) -> list[Any]:
        """kmock ``Request``s since ``since`` that the operator (not the test) sent."""
        requests = list(self.cluster.emulator)[since:]
        return [r for r in requests if r.headers.get("User-Agent") != TEST_AGENT]

    def operator_writes(self, since: int = 0) -> list[str]:
        """``METHOD path`` of every write the operator sent since ``since``. The SelfSubjectReview at start is a POST
        that stores nothing (a question: who am I?), so it is not a write."""
        return [
            f"{r.method.value} {r.url.path}"
            for r in self.operator_requests(since)
            if r.method.value in WRITE_METHODS and not r.url.path.endswith("/selfsubjectreviews")
        ]
