"""Typed helpers of the end-to-end tests: cluster access, one builder per object kind, one wait helper.

Test modules import from here (``from e2e_support import ...``); ``conftest.py`` turns these into fixtures.
Objects travel as plain dicts, as the operator's own ``kube`` module does, so a test reads like the YAML a
user would apply. Every call goes through ``KubeApi``, a thin wrapper over lightkube's ``AsyncClient`` that
turns API errors into ``ApiFailure`` (HTTP status + the API server's message).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import yaml
from lightkube import ApiError, AsyncClient
from lightkube.config.client_adapter import AsyncClient as HttpxAsyncClient
from lightkube.config.client_adapter import Client as HttpxClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core.resource import NamespacedResource
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import ConfigMap, Event, Namespace, Secret
from lightkube.types import PatchType

from scaivault_operator._cogs.api import API_VERSION, GROUP, VERSION, is_plain_http
from scaivault_operator._cogs.kube import ClusterVaultConnectionResource, VaultConnectionResource, VaultSecretResource
from scaivault_operator._cogs.kubeconfig import DEFAULT_KUBECONFIG, KubeConfigError
from scaivault_operator._cogs.kubeconfig import load as load_kubeconfig
from scaivault_operator._logic.manifests import ANNOTATION_VERSION, CREDENTIALS_LABEL
from scaivault_operator.devvault import DevVault

JsonDict = dict[str, Any]
#: The ``Warning`` headers of an API response.
Warnings = list[str]
T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"
EXAMPLES_DIR = CRD_DIR / "examples"

NAMESPACE_PREFIX = "svo-e2e-"
#: Put on every namespace the tests create, so leftovers are easy to find: kubectl get ns -l svo-e2e=true
E2E_LABEL = "svo-e2e"
TOKEN_SECRET = "scaivault-token"
TOKEN_KEY = "token"
CONNECTION = "vault"
FIELD_MANAGER = "svo-e2e"

#: How long to wait for a reachable API server before skipping.
PROBE_TIMEOUT = 3.0
#: How long the operator may take to react (sync, retry, poll at 1s): generous for a loaded CI cluster.
SYNC_TIMEOUT = 30.0
#: CRDs becoming Established, and the garbage collector deleting dependents.
CLUSTER_TIMEOUT = 60.0
POLL_INTERVAL = 0.25

#: kind → lightkube resource class (typed Any: lightkube's overloads cannot express one call for every kind).
_RESOURCES: dict[str, Any] = {
    "Namespace": Namespace,
    "Secret": Secret,
    "ConfigMap": ConfigMap,
    "Event": Event,
    "CustomResourceDefinition": CustomResourceDefinition,
    "VaultSecret": VaultSecretResource,
    "VaultConnection": VaultConnectionResource,
    "ClusterVaultConnection": ClusterVaultConnectionResource,
    "Deployment": Deployment,
    "ReplicaSet": ReplicaSet,
}


class DevVaultLike(Protocol):
    """What the tests use of the ``dev_vault`` fixture (tests/conftest.py's ``DevVaultFixture``)."""

    @property
    def url(self) -> str: ...
    @property
    def vault(self) -> DevVault: ...
    @property
    def ro_token(self) -> str: ...
    @property
    def noscope_token(self) -> str: ...


#: ``await cluster_connection(access_rules)`` (a fixture) → the name of a new ClusterVaultConnection.
ClusterConnectionFactory = Callable[[Sequence[Mapping[str, Any]]], Awaitable[str]]


def unique_name(prefix: str = NAMESPACE_PREFIX) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# -- cluster access ---------------------------------------------------------------------------------------


class ClusterUnavailable(Exception):
    """No usable cluster: the message says which configuration was tried and what went wrong."""


@dataclass(frozen=True)
class ClusterAccess:
    config: SingleConfig  # the current context
    source: str  # "in-cluster service account", the kubeconfig path, or the private control plane
    version: str  # the API server's gitVersion
    #: ``KUBECONFIG`` for kubectl and helm (one file or a list, as the operator read it); None: in-cluster.
    kubeconfig: str | None = None
    #: Whether a garbage collector (kube-controller-manager) runs: False on a private control plane started from
    #: binaries without one. A real cluster always has one.
    garbage_collector: bool = True


def load_cluster_config(kubeconfig: Path | None = None) -> tuple[SingleConfig, str]:
    """The configuration the operator would use (``scaivault_operator._cogs.kubeconfig.load``: ``$KUBECONFIG`` — a list,
    merged as kubectl does —, the in-cluster service account, ``~/.kube/config``), and where it came from; with
    ``kubeconfig``, that file."""
    try:
        access = load_kubeconfig(kubeconfig)
    except KubeConfigError as exc:
        raise ClusterUnavailable(str(exc)) from None
    return access.config, access.source


def probe_cluster(
    within: float = PROBE_TIMEOUT,
    *,
    kubeconfig: Path | None = None,
    source: str | None = None,
    garbage_collector: bool = True,
) -> ClusterAccess:
    """Load the configuration (``kubeconfig``, else as the operator would) and GET /version within ``within``
    seconds; raise ``ClusterUnavailable`` otherwise. ``source`` overrides how the result names the cluster."""
    config, found = load_cluster_config(kubeconfig)
    source = source or found
    if kubeconfig is not None:
        tools_kubeconfig: str | None = str(kubeconfig)
    elif found.startswith("in-cluster"):
        tools_kubeconfig = None
    else:
        tools_kubeconfig = os.environ.get("KUBECONFIG") or str(DEFAULT_KUBECONFIG.expanduser())
    try:
        with HttpxClient(config, ConnectionParams(timeout=httpx.Timeout(within))) as http:
            response = http.get("/version")
            response.raise_for_status()
            version = str(response.json().get("gitVersion") or "unknown")
    except Exception as exc:  # connection, TLS, credentials (exec plugins), HTTP status, not JSON...
        raise ClusterUnavailable(f"{source}: GET /version failed: {type(exc).__name__}: {exc}") from None
    return ClusterAccess(
        config=config, source=source, version=version, kubeconfig=tools_kubeconfig, garbage_collector=garbage_collector
    )


class ApiFailure(Exception):
    """A Kubernetes API call was refused: ``status`` is the HTTP status, ``message`` the server's explanation."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {message}")
        self.status = status
        self.message = message


@contextlib.contextmanager
def _api_call(what: str) -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        raise ApiFailure(what, int(exc.status.code or 0), exc.status.message or "") from None
    except httpx.HTTPStatusError as exc:  # lightkube raises ApiError only for an exact application/json answer
        try:
            message = str(exc.response.json().get("message", exc.response.text))
        except ValueError:
            message = exc.response.text
        raise ApiFailure(what, exc.response.status_code, message) from None


class KubeApi:
    """The tests' Kubernetes calls, on plain dicts. ``kind`` is one of the kinds in ``_RESOURCES``."""

    def __init__(self, access: ClusterAccess) -> None:
        self._client = AsyncClient(access.config, field_manager=FIELD_MANAGER)
        # Plain HTTP for what lightkube has no call for (Table output); same credentials.
        self._http = HttpxAsyncClient(access.config, ConnectionParams(timeout=httpx.Timeout(10.0)))

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()

    async def create(self, body: Mapping[str, Any], *, dry_run: bool = False) -> JsonDict:
        """Create ``body``; with ``dry_run`` the API server validates and defaults it but stores nothing."""
        meta = body["metadata"]
        with _api_call(f"create {body['kind']} {meta.get('namespace', '')}/{meta['name']}"):
            obj = await self._client.create(_RESOURCES[body["kind"]].from_dict(dict(body)), dry_run=dry_run)
        return _as_dict(obj)

    async def replace(self, body: Mapping[str, Any]) -> JsonDict:
        meta = body["metadata"]
        with _api_call(f"replace {body['kind']} {meta.get('namespace', '')}/{meta['name']}"):
            obj = await self._client.replace(_RESOURCES[body["kind"]].from_dict(dict(body)))
        return _as_dict(obj)

    async def get(self, kind: str, name: str, namespace: str | None = None) -> JsonDict | None:
        try:
            with _api_call(f"get {kind} {namespace or ''}/{name}"):
                obj = await self._client.get(_RESOURCES[kind], name, namespace=namespace)
        except ApiFailure as exc:
            if exc.status == 404:
                return None
            raise
        return _as_dict(obj)

    async def patch(self, kind: str, name: str, patch: Mapping[str, Any], namespace: str | None = None) -> JsonDict:
        """A JSON merge patch (RFC 7386)."""
        with _api_call(f"patch {kind} {namespace or ''}/{name}"):
            obj = await self._client.patch(
                _RESOURCES[kind], name, dict(patch), namespace=namespace, patch_type=PatchType.MERGE
            )
        return _as_dict(obj)

    async def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        """Request deletion (without waiting for it); an absent object is fine."""
        try:
            with _api_call(f"delete {kind} {namespace or ''}/{name}"):
                await self._client.delete(_RESOURCES[kind], name, namespace=namespace)
        except ApiFailure as exc:
            if exc.status != 404:
                raise

    async def list(
        self, kind: str, namespace: str | None = None, fields: Mapping[str, str] | None = None
    ) -> list[JsonDict]:
        selector: dict[str, Any] | None = dict(fields) if fields else None
        with _api_call(f"list {kind} in {namespace or 'the cluster'}"):
            items = self._client.list(_RESOURCES[kind], namespace=namespace, fields=selector)
            return [_as_dict(obj) async for obj in items]

    async def create_raw(
        self, body: Mapping[str, Any], *, field_validation: str | None = None
    ) -> tuple[JsonDict, Warnings]:
        """POST ``body`` as is (unknown fields included) with ``?fieldValidation=`` (Strict, Warn, Ignore; None:
        the server's default); the created object and the texts of the API server's ``Warning`` headers."""
        meta = body["metadata"]
        path = resource_path(body["kind"], meta.get("namespace"))
        params = {"fieldValidation": field_validation} if field_validation else {}
        response = await self._request(f"create {body['kind']} {meta['name']}", "POST", path, params, body)
        return response.json(), _warnings(response)

    async def patch_status(
        self,
        kind: str,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = None,
        *,
        field_validation: str | None = None,
    ) -> tuple[JsonDict, Warnings]:
        """A JSON merge patch of the ``status`` subresource; the object and the ``Warning`` headers."""
        path = resource_path(kind, namespace, name) + "/status"
        params = {"fieldValidation": field_validation} if field_validation else {}
        response = await self._request(
            f"patch {kind} {namespace or ''}/{name}/status",
            "PATCH",
            path,
            params,
            patch,
            content_type="application/merge-patch+json",
        )
        return response.json(), _warnings(response)

    async def _request(
        self,
        what: str,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: Mapping[str, Any],
        *,
        content_type: str = "application/json",
    ) -> httpx.Response:
        response = await self._http.request(
            method, path, params=dict(params), content=json.dumps(body), headers={"Content-Type": content_type}
        )
        with _api_call(what):
            response.raise_for_status()
        return response

    async def printer_columns(self, namespace: str | None, name: str, plural: str = "vaultsecrets") -> dict[str, Any]:
        """An object (a VaultSecret by default) as ``kubectl get`` shows it: the API server's Table, as ``{column
        name: cell}``; ``namespace`` None for a cluster-scoped kind."""
        where = f"namespaces/{namespace}/" if namespace else ""
        url = f"/apis/{GROUP}/{VERSION}/{where}{plural}/{name}"
        response = await self._http.get(url, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
        response.raise_for_status()
        table = response.json()
        assert table.get("kind") == "Table", f"the API server did not answer with a Table: {table}"
        columns = [column["name"] for column in table["columnDefinitions"]]
        (row,) = table["rows"]
        return dict(zip(columns, row["cells"], strict=True))


def _warnings(response: httpx.Response) -> Warnings:
    """The texts of the response's ``Warning: 299 - "text"`` headers (RFC 7234), quotes unescaped."""
    texts = []
    for header in response.headers.get_list("warning"):
        match = re.match(r'^\d{3} \S+ "((?:[^"\\]|\\.)*)"', header)
        texts.append(re.sub(r"\\(.)", r"\1", match[1]) if match else header)
    return texts


def resource_path(kind: str, namespace: str | None = None, name: str | None = None) -> str:
    """The API path of ``kind`` (one of ``_RESOURCES``): its collection, or object ``name``."""
    resource = _RESOURCES[kind]
    info = resource._api_info
    group, version = info.resource.group, info.resource.version
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace is not None and issubclass(resource, NamespacedResource):
        path += f"/namespaces/{namespace}"
    path += f"/{info.plural}"
    return f"{path}/{name}" if name else path


def _as_dict(obj: Any) -> JsonDict:
    result: JsonDict = obj.to_dict()
    return result


# -- builders: one per kind ---------------------------------------------------------------------------------


def namespace_manifest(name: str, labels: Mapping[str, str] | None = None) -> JsonDict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {E2E_LABEL: "true", **(labels or {})}},
    }


def deployment_manifest(name: str, namespace: str, secret: str, key: str) -> JsonDict:
    """A Deployment whose container reads one key of ``secret`` as an environment variable. Its pods never run in a
    private control plane (no scheduler, no kubelet): the Deployment controller and its ReplicaSets are what the
    rollout tests look at."""
    env = [{"name": "VALUE", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}]
    container = {"name": "app", "image": "registry.k8s.io/pause:3.10", "env": env}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def secret_manifest(
    name: str, namespace: str, data: Mapping[str, str], *, labels: Mapping[str, str] | None = None
) -> JsonDict:
    """A v1 Secret holding ``data`` (plain strings; base64-encoded here)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "data": {key: base64.b64encode(value.encode()).decode("ascii") for key, value in data.items()},
    }


def credentials_secret_manifest(name: str, namespace: str, data: Mapping[str, str]) -> JsonDict:
    """A Secret a connection may read its token or client credentials from: it opts in with the label
    ``scaivault.scailabs.ai/credentials=true`` (the operator refuses any other Secret as credentials)."""
    return secret_manifest(name, namespace, data, labels={CREDENTIALS_LABEL: "true"})


def connection_manifest(
    kind: str,
    name: str,
    *,
    url: str,
    token_secret: tuple[str, str],
    namespace: str | None = None,
    access: Sequence[Mapping[str, Any]] | None = None,
    poll_interval: str = "1s",
) -> JsonDict:
    """A VaultConnection (``namespace`` given) or ClusterVaultConnection reading a token from ``token_secret``
    = (namespace, name). A plain-HTTP ``url`` to a host that is not loopback (``SVO_E2E_VAULT_HOST``, where pods
    reach the dev vault) gets ``insecureHTTP: true``, without which the CRD refuses it."""
    spec: JsonDict = {
        "url": url,
        "auth": {"tokenSecretRef": {"namespace": token_secret[0], "name": token_secret[1], "key": TOKEN_KEY}},
        "pollInterval": poll_interval,
    }
    if is_plain_http(url):
        spec["insecureHTTP"] = True
    if access is not None:
        spec["access"] = [dict(rule) for rule in access]
    return custom_resource_manifest(kind, name, namespace, spec)


def vaultsecret_manifest(name: str, namespace: str, spec: Mapping[str, Any]) -> JsonDict:
    return custom_resource_manifest("VaultSecret", name, namespace, spec)


def custom_resource_manifest(kind: str, name: str, namespace: str | None, spec: Mapping[str, Any]) -> JsonDict:
    """Any of our custom resources with ``spec`` as given (valid or not); ``namespace`` None: cluster-scoped."""
    metadata: JsonDict = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": dict(spec)}


def load_manifests(directory: Path) -> list[JsonDict]:
    """Every YAML document in ``directory/*.yaml``, in file-name order."""
    documents: list[JsonDict] = []
    for path in sorted(directory.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    return documents


@dataclass(frozen=True)
class CelRule:
    """One ``x-kubernetes-validations`` rule of a CRD in ``crds/``."""

    kind: str
    #: Where the API server reports a failure, e.g. ``spec.access[*]`` (``[*]``: any item of a list or map).
    path: str
    rule: str
    #: What the API server says when the rule fails (``failed rule: <rule>`` without a message).
    message: str


def cel_rules(directory: Path = CRD_DIR) -> list[CelRule]:
    """Every CEL rule of every CRD in ``directory``, in schema order."""
    found: list[CelRule] = []

    def walk(kind: str, schema: Mapping[str, Any], path: str) -> None:
        for rule in schema.get("x-kubernetes-validations") or []:
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            found.append(CelRule(kind=kind, path=path, rule=rule["rule"], message=message))
        for name, child in (schema.get("properties") or {}).items():
            walk(kind, child, f"{path}.{name}" if path else name)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), Mapping):
                walk(kind, schema[key], f"{path}[*]")

    for crd in load_manifests(directory):
        for version in crd["spec"]["versions"]:
            walk(crd["spec"]["names"]["kind"], version["schema"]["openAPIV3Schema"], "")
    return found


# -- reading objects ----------------------------------------------------------------------------------------


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def decoded_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's ``data``, base64-decoded."""
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}


def _as_text(value: Any) -> str:
    """How the operator stores a JSON value in a Secret: strings as-is, anything else as compact sorted JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)


def ready_condition(vaultsecret: Mapping[str, Any]) -> JsonDict | None:
    conditions = (vaultsecret.get("status") or {}).get("conditions") or []
    return next((dict(c) for c in conditions if c.get("type") == "Ready"), None)


def condition_established(crd: Mapping[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _summary(obj: Any) -> str:
    """An observation for a timeout message; a Secret is shown by its keys and metadata, never its values."""
    if isinstance(obj, Mapping) and obj.get("kind") == "Secret":
        obj = {"metadata": obj.get("metadata"), "keys": sorted(obj.get("data") or {})}
    elif isinstance(obj, Mapping) and "status" in obj:
        obj = {"generation": (obj.get("metadata") or {}).get("generation"), "status": obj.get("status")}
    text = json.dumps(obj, default=str, sort_keys=True)
    return text if len(text) <= 2000 else text[:1999] + "…"


# -- waiting ---------------------------------------------------------------------------------------------


async def wait_for(
    fetch: Callable[[], Awaitable[T]],
    predicate: Callable[[T], bool],
    *,
    what: str,
    within: float = SYNC_TIMEOUT,
    interval: float = POLL_INTERVAL,
) -> T:
    """Fetch until ``predicate`` holds on the result; return it, or fail after ``within`` seconds saying
    ``what`` was awaited and what was seen last."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        observed = await fetch()
        if predicate(observed):
            return observed
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}; last seen: {_summary(observed)}")
        await asyncio.sleep(interval)


# -- CRDs ---------------------------------------------------------------------------------------------


async def install_crds(api: KubeApi, created: list[str]) -> list[str]:
    """Create the CRDs of ``crds/`` (or replace the existing ones) and wait until each is Established.

    The names of the CRDs this call created are appended to ``created`` as they are created, so a caller can
    remove exactly those even when a later step fails. Returns every CRD name.
    """
    names: list[str] = []
    for body in load_manifests(CRD_DIR):
        name = body["metadata"]["name"]
        names.append(name)
        if await _create_or_replace_crd(api, body):
            created.append(name)
    for name in names:
        await wait_for(
            functools.partial(api.get, "CustomResourceDefinition", name),
            lambda crd: crd is not None and condition_established(crd),
            what=f"CRD {name} to be Established",
            within=CLUSTER_TIMEOUT,
        )
    return names


async def _create_or_replace_crd(api: KubeApi, body: JsonDict) -> bool:
    """True when this call created the CRD; False when it replaced an existing one."""
    name = body["metadata"]["name"]
    for _ in range(5):
        existing = await api.get("CustomResourceDefinition", name)
        if existing is not None and existing["metadata"].get("deletionTimestamp"):
            # Still terminating (e.g. removed at the end of the previous run): replacing it would not stop that.
            await wait_for(
                functools.partial(api.get, "CustomResourceDefinition", name),
                lambda crd: crd is None,
                what=f"CRD {name} to finish terminating",
                within=CLUSTER_TIMEOUT,
            )
            existing = None
        try:
            if existing is None:
                await api.create(body)
                return True
            version = existing["metadata"]["resourceVersion"]
            await api.replace({**body, "metadata": {**body["metadata"], "resourceVersion": version}})
            return False
        except ApiFailure as exc:
            if exc.status != 409:  # 409: created or changed by someone else meanwhile: look again
                raise
    raise AssertionError(f"CRD {name} kept changing while it was being installed")


# -- one test's world ------------------------------------------------------------------------------------


@dataclass
class E2E:
    """A test's namespace, its dev vault and its VaultConnection ``CONNECTION`` (token ``TOKEN_SECRET``)."""

    api: KubeApi
    namespace: str
    vault: DevVaultLike

    @property
    def connection_ref(self) -> JsonDict:
        return {"kind": "VaultConnection", "name": CONNECTION}

    def write(self, path: str, data: Mapping[str, Any]) -> int:
        """Write the next version of ``path`` in the dev vault; its version number."""
        return self.vault.vault.write(path, dict(data)).version

    async def create_synced(self, name: str, path: str, data: Mapping[str, Any], **spec: Any) -> JsonDict:
        """Write ``data`` as the next version of ``path``, create VaultSecret ``name`` for it and wait until it is
        synced; the Secret."""
        version = self.write(path, data)
        await self.create_vaultsecret(name, path, **spec)
        await self.wait_ready(name, version=spec.get("version", version))
        target = (spec.get("target") or {}).get("name", name)
        return await self.wait_secret_data(target, {key: _as_text(value) for key, value in data.items()})

    async def assert_secret_intact(self, name: str, data: Mapping[str, str], version: int) -> None:
        """Secret ``name`` still holds ``data`` of ``version`` (after a failure, the operator must not touch it)."""
        secret = await self.secret(name)
        assert secret is not None, f"Secret {name} is gone"
        assert decoded_data(secret) == dict(data), f"Secret {name} changed: keys {sorted(decoded_data(secret))}"
        assert annotations_of(secret).get(ANNOTATION_VERSION) == str(version)

    async def create_vaultsecret(self, name: str, path: str, **spec: Any) -> JsonDict:
        """A VaultSecret in this namespace reading ``path`` through this test's VaultConnection by default."""
        body = {"path": path, "connectionRef": self.connection_ref, **spec}
        return await self.api.create(vaultsecret_manifest(name, self.namespace, body))

    async def replica_sets(self, owner: str) -> list[JsonDict]:
        """The ReplicaSets of Deployment ``owner`` in this namespace (one per pod template it has had)."""
        found = await self.api.list("ReplicaSet", self.namespace)
        return [
            rs for rs in found if any(ref.get("name") == owner for ref in rs["metadata"].get("ownerReferences") or [])
        ]

    async def vaultsecret(self, name: str) -> JsonDict | None:
        return await self.api.get("VaultSecret", name, self.namespace)

    async def secret(self, name: str) -> JsonDict | None:
        return await self.api.get("Secret", name, self.namespace)

    async def wait_ready(
        self, name: str, *, reason: str = "Synced", version: int | None = None, within: float = SYNC_TIMEOUT
    ) -> JsonDict:
        """Wait until VaultSecret ``name``'s Ready condition has ``reason`` (status True for Synced, else False)
        for its current generation, and ``status.syncedVersion`` is ``version`` when given."""
        want = "True" if reason == "Synced" else "False"

        def done(vs: JsonDict | None) -> bool:
            if vs is None:
                return False
            ready, status = ready_condition(vs) or {}, vs.get("status") or {}
            return (
                ready.get("status") == want
                and ready.get("reason") == reason
                and status.get("observedGeneration") == vs["metadata"].get("generation")
                and (version is None or status.get("syncedVersion") == version)
            )

        expected = f"Ready={want} reason={reason}" + (f" syncedVersion={version}" if version is not None else "")
        result = await wait_for(
            lambda: self.vaultsecret(name), done, what=f"VaultSecret {name} {expected}", within=within
        )
        assert result is not None
        return result

    async def wait_secret(
        self, name: str, predicate: Callable[[JsonDict], bool], *, what: str, within: float = SYNC_TIMEOUT
    ) -> JsonDict:
        """Wait until Secret ``name`` exists and ``predicate`` holds on it."""
        result = await wait_for(
            lambda: self.secret(name),
            lambda s: s is not None and predicate(s),
            what=f"Secret {name}: {what}",
            within=within,
        )
        assert result is not None
        return result

    async def wait_secret_data(self, name: str, data: Mapping[str, str], *, within: float = SYNC_TIMEOUT) -> JsonDict:
        return await self.wait_secret(
            name, lambda s: decoded_data(s) == dict(data), what=f"data with keys {sorted(data)}", within=within
        )

    async def wait_gone(self, kind: str, name: str, *, within: float = SYNC_TIMEOUT) -> None:
        await wait_for(
            lambda: self.api.get(kind, name, self.namespace),
            lambda obj: obj is None,
            what=f"{kind} {name} to be deleted",
            within=within,
        )
