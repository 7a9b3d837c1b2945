"""The plugin's Kubernetes calls — made as the user, with the user's kubeconfig — and their errors as exit codes.

Not the operator's ``_cogs.kube.Kube``: each of that class's methods maps onto the operator's RBAC (and tests hold
it), while the plugin asks with whatever rights its user has. The API server and the credentials are found as the
operator finds them (``_cogs.kubeconfig.load``: ``--kubeconfig``, ``$KUBECONFIG``, in-cluster, ``~/.kube/config``;
``--context`` picks a context); lightkube's async client makes the calls. Objects travel as plain dicts, so the
operator's pure modules judge them exactly as they judge the operator's.

Errors (``failure``): 401 and 403 are ``ExitCode.FORBIDDEN``, other 4xx ``NOT_READY`` (a 404 is usually handled by
the caller: ``get`` returns None), 5xx, timeouts and network errors ``UNREACHABLE``. Messages name the call and
quote the API server's own message (which names users, verbs and resources, never data).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx
from lightkube import ALL_NS, ApiError, AsyncClient
from lightkube.core.exceptions import ConfigError
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.resources.apps_v1 import DaemonSet, Deployment, StatefulSet
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
from lightkube.resources.core_v1 import Namespace, Secret
from lightkube.types import PatchType

from scaivault_operator._cogs.kube import ClusterVaultConnectionResource, VaultConnectionResource, VaultSecretResource
from scaivault_operator._cogs.kubeconfig import KubeAccess, KubeConfigError, load
from scaivault_operator._plugin.output import ExitCode, PluginError, short

__all__ = ["FIELD_MANAGER", "WORKLOAD_KINDS", "Cluster", "failure", "where"]

FIELD_MANAGER = "kubectl-scaivault"
#: Kinds the plugin reads, by the name it uses for them.
_RESOURCES: dict[str, Any] = {
    "VaultSecret": VaultSecretResource,
    "ClusterVaultConnection": ClusterVaultConnectionResource,
    "VaultConnection": VaultConnectionResource,
    "Secret": Secret,
    "Namespace": Namespace,
    "Deployment": Deployment,
    "StatefulSet": StatefulSet,
    "DaemonSet": DaemonSet,
}
#: The workload kinds ``why`` looks through for users of a Secret.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
_CLUSTER_SCOPED = frozenset({"ClusterVaultConnection", "Namespace"})


def where(namespace: str | None, name: str) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object."""
    return f"{namespace}/{name}" if namespace else name


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, ApiError) and exc.status.code:
        return int(exc.status.code)
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    return None


def failure(what: str, exc: BaseException) -> PluginError:
    """The ``PluginError`` for a failed call ``what`` (e.g. ``get Secret a/b``)."""
    status = _status(exc)
    if status is None:
        if isinstance(exc, ConfigError | KubeConfigError):
            return PluginError(f"{what}: cannot log in to the API server: {short(exc, 160)}", ExitCode.UNREACHABLE)
        return PluginError(f"{what}: cannot reach the API server ({type(exc).__name__}: {short(exc, 160)})",
                           ExitCode.UNREACHABLE)  # fmt: skip
    message = short(exc.status.message, 240) if isinstance(exc, ApiError) and exc.status.message else ""
    detail = f"HTTP {status}" + (f": {message}" if message else "")
    if status == 401:
        return PluginError(f"{what}: the API server refused your credentials ({detail})", ExitCode.FORBIDDEN)
    if status == 403:
        return PluginError(f"{what}: forbidden ({detail})", ExitCode.FORBIDDEN)
    if status == 429 or status >= 500:
        return PluginError(f"{what}: the API server cannot answer now ({detail})", ExitCode.UNREACHABLE)
    return PluginError(f"{what}: {detail}", ExitCode.NOT_READY)


_CALL_ERRORS = (ApiError, httpx.HTTPError, ConfigError)


class Cluster:
    """The user's view of the cluster. Use as ``async with Cluster.open(...) as cluster:``."""

    def __init__(self, access: KubeAccess, *, timeout: float = 10.0) -> None:
        self.access = access
        self._client = AsyncClient(access.config, timeout=httpx.Timeout(timeout), field_manager=FIELD_MANAGER)

    @classmethod
    def open(
        cls,
        kubeconfig: str | None = None,
        *,
        context: str | None = None,
        timeout: float = 10.0,
        environ: Mapping[str, str] | None = None,
    ) -> Cluster:
        """The cluster of ``kubeconfig`` (else found as the operator finds it); ``UNREACHABLE`` when there is none."""
        try:
            access = load(kubeconfig, context=context, environ=os.environ if environ is None else environ)
            return cls(access, timeout=timeout)
        except KubeConfigError as exc:
            raise PluginError(f"no usable Kubernetes configuration: {exc}", ExitCode.UNREACHABLE) from None
        except (ConfigError, OSError, ValueError) as exc:
            raise PluginError(f"no usable Kubernetes configuration: {type(exc).__name__}: {short(exc, 160)}",
                              ExitCode.UNREACHABLE) from None  # fmt: skip

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.close()

    @property
    def namespace(self) -> str:
        """The kubeconfig context's namespace (in a pod: the service account's), else ``default``."""
        namespace: str = self._client.namespace
        return namespace

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist; ``PluginError`` on any other failure."""
        namespace = None if kind in _CLUSTER_SCOPED else namespace
        try:
            obj = await self._client.get(_RESOURCES[kind], name, namespace=namespace)
        except _CALL_ERRORS as exc:
            if _status(exc) == 404:
                return None
            raise failure(f"get {kind} {where(namespace, name)}", exc) from None
        return _with_kind(obj.to_dict(), kind)

    async def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of ``kind`` in ``namespace`` (None: all namespaces; ignored for cluster-scoped kinds), in
        500-item pages, each with its ``kind`` set. A 404 (the kind is not served) is an empty list."""
        scope: str | None = None if kind in _CLUSTER_SCOPED else (namespace or ALL_NS)
        found: list[dict[str, Any]] = []
        try:
            async for obj in self._client.list(_RESOURCES[kind], namespace=scope, chunk_size=500):
                found.append(_with_kind(obj.to_dict(), kind))
        except _CALL_ERRORS as exc:
            if _status(exc) == 404:
                return []
            scope_text = "" if kind in _CLUSTER_SCOPED else f" in {namespace}" if namespace else " in all namespaces"
            raise failure(f"list {kind}s{scope_text}", exc) from None
        return found

    async def merge_patch(
        self, kind: str, name: str, namespace: str | None, patch: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """A JSON merge patch of the object; None when it does not exist."""
        try:
            obj = await self._client.patch(_RESOURCES[kind], name, dict(patch), namespace=namespace,
                                           patch_type=PatchType.MERGE)  # fmt: skip
        except _CALL_ERRORS as exc:
            if _status(exc) == 404:
                return None
            raise failure(f"patch {kind} {where(namespace, name)}", exc) from None
        return _with_kind(obj.to_dict(), kind)

    async def can_i(self, verb: str, resource: str, namespace: str | None, name: str | None = None) -> bool:
        """Whether the user may ``verb`` the ``resource`` (core group) ``name`` in ``namespace``: a
        SelfSubjectAccessReview, as ``kubectl auth can-i`` asks."""
        attributes = ResourceAttributes(verb=verb, resource=resource, namespace=namespace, name=name, group="")
        review = SelfSubjectAccessReview(spec=SelfSubjectAccessReviewSpec(resourceAttributes=attributes))
        try:
            answer = await self._client.create(review)
        except _CALL_ERRORS as exc:
            raise failure(f"ask whether you may {verb} {resource} {where(namespace, name or '*')}", exc) from None
        return bool(answer.status is not None and answer.status.allowed)


def _with_kind(body: dict[str, Any], kind: str) -> dict[str, Any]:
    body.setdefault("kind", kind)  # list items come without one
    return body
