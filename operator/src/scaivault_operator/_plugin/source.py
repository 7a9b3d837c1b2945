"""Connections as the plugin sees them, and ScaiVault reached with a connection's credentials — read as the user.

``versions`` and ``render`` ask ScaiVault themselves, with the credentials the connection's ``spec.auth`` names (a
token Secret, or the client id and secret of OAuth2 client credentials). The plugin reads that Secret with the
*user's* rights: a user who may not read it gets ``ExitCode.FORBIDDEN`` and a message saying which Secret and which
right, and nothing is sent. As the operator does, it uses only a Secret labelled
``scaivault.scailabs.ai/credentials=true`` (``manifests.credentials_refusal``): whoever may create a connection must
not be able to make the plugin's user send some other Secret to a server of their choosing. The token never leaves
the client: not printed, not in a message.

ScaiVault errors become the operator's own words (``conditions.classify``) and an exit code (``vault_failure``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from scaivault_operator._cogs import scaivault
from scaivault_operator._cogs.api import CONNECTION_SPECS, ConnectionRef, ConnectionSpec, VaultSecretSpec
from scaivault_operator._cogs.kube import secret_value
from scaivault_operator._logic import conditions
from scaivault_operator._logic.manifests import credentials_refusal
from scaivault_operator._logic.policy import Decision, check_access
from scaivault_operator._plugin.cluster import Cluster
from scaivault_operator._plugin.output import ExitCode, PluginError, UsageError, mapping

__all__ = [
    "CLUSTER",
    "NAMESPACED",
    "Connection",
    "ConnectionKey",
    "check_path",
    "connection_key",
    "connection_keys",
    "get_connection",
    "open_client",
    "parse_connection",
    "parse_connection_arg",
    "plain_http_note",
    "vault_failure",
]

CLUSTER = "ClusterVaultConnection"
NAMESPACED = "VaultConnection"
_KIND_ALIASES = {
    "clustervaultconnection": CLUSTER,
    "clustervaultconnections": CLUSTER,
    "cvc": CLUSTER,
    "vaultconnection": NAMESPACED,
    "vaultconnections": NAMESPACED,
    "vconn": NAMESPACED,
}
#: The plugin asks once and retries a transient failure once: a person is waiting.
_RETRY = scaivault.RetryPolicy(max_attempts=2, max_total=5.0)


@dataclass(frozen=True)
class Connection:
    """A ClusterVaultConnection (``namespace`` None) or VaultConnection, its spec parsed as the operator parses it
    (``spec`` None and ``error`` the operator's InvalidSpec message when it is invalid)."""

    kind: str
    namespace: str | None
    name: str
    body: Mapping[str, Any]
    spec: ConnectionSpec | None
    error: str | None

    @property
    def label(self) -> str:
        """``Kind/[namespace/]name``: the connection, unambiguous across namespaces (reports)."""
        return f"{self.kind}/{self.namespace + '/' if self.namespace else ''}{self.name}"

    @property
    def annotation(self) -> str:
        """``Kind/name``, as the operator writes it in a Secret's ``scaivault.scailabs.ai/connection``."""
        return f"{self.kind}/{self.name}"

    @property
    def key(self) -> tuple[str, str | None, str]:
        """``(kind, namespace or None, name)``, as ``connection_key`` gives it."""
        return self.kind, self.namespace, self.name

    @property
    def display(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"

    @property
    def status(self) -> Mapping[str, Any]:
        return mapping(self.body.get("status"))


def parse_connection(kind: str, body: Mapping[str, Any]) -> Connection:
    meta = mapping(body.get("metadata"))
    namespace = meta.get("namespace") if kind == NAMESPACED else None
    model = CONNECTION_SPECS.get(kind, ConnectionSpec)
    try:
        spec: ConnectionSpec | None = model.model_validate(body.get("spec") or {})
        error = None
    except ValidationError as exc:
        spec, error = None, conditions.classify(exc).message
    return Connection(kind, namespace if isinstance(namespace, str) else None, str(meta.get("name") or "?"),
                      body, spec, error)  # fmt: skip


ConnectionKey = tuple[str, str | None, str]


def connection_key(spec: VaultSecretSpec, namespace: str, ref: ConnectionRef | None = None) -> ConnectionKey:
    """``(kind, namespace or None, name)`` of the connection a VaultSecret in ``namespace`` reads through: ``ref``
    (a source's own ``connectionRef``), else ``spec.connectionRef`` (else the ClusterVaultConnection ``default``)."""
    ref = ref or spec.connection
    return ref.kind, namespace if ref.kind == NAMESPACED else None, ref.name


def connection_keys(spec: VaultSecretSpec, namespace: str) -> list[ConnectionKey]:
    """Every connection a VaultSecret reads through, each once: ``spec.connectionRef``'s first when its path, a
    ``dataFrom`` or a source without its own ``connectionRef`` reads through it, then the sources' own, in order."""
    keys: dict[ConnectionKey, None] = {}
    if not spec.composite or spec.dataFrom or any(source.connectionRef is None for source in spec.sources or ()):
        keys[connection_key(spec, namespace)] = None
    for source in spec.sources or ():
        keys.setdefault(connection_key(spec, namespace, source.connectionRef), None)
    return list(keys)


def check_path(
    conn: Connection,
    namespace: str,
    labels: Mapping[str, str] | None,
    path: str,
    *,
    prefix: bool = False,
    field: str = "spec.path",
) -> Decision:
    """``policy.check_access``: may a VaultSecret in ``namespace`` (labels ``labels``, None when unknown) read
    ``path`` (``prefix``: list the dataFrom prefix ``path``) through ``conn``, as the operator decides before each
    read and list."""
    return check_access(connection_kind=conn.kind, connection_namespace=conn.namespace, connection_name=conn.name,
                        access=conn.spec.access if conn.spec is not None else None, namespace=namespace,
                        namespace_labels=labels, path=path, prefix=prefix, field=field)  # fmt: skip


def parse_connection_arg(value: str) -> tuple[str, str]:
    """``--connection``: ``NAME`` (a ClusterVaultConnection) or ``KIND/NAME``, the kind as kubectl knows it
    (``ClusterVaultConnection``, ``cvc``, ``VaultConnection``, ``vconn``, plural or not, any case)."""
    kind_text, slash, name = value.rpartition("/")
    kind = _KIND_ALIASES.get(kind_text.lower()) if slash else CLUSTER
    if kind is None or not name or "/" in kind_text:
        raise UsageError(
            f"--connection {value!r}: use NAME (a ClusterVaultConnection), ClusterVaultConnection/NAME or "
            "VaultConnection/NAME (or cvc/NAME, vconn/NAME)"
        )
    return kind, name


async def get_connection(cluster: Cluster, kind: str, namespace: str | None, name: str) -> Connection | None:
    body = await cluster.get(kind, name, namespace if kind == NAMESPACED else None)
    return parse_connection(kind, body) if body is not None else None


def _auth_secret(conn: Connection, spec: ConnectionSpec) -> tuple[str, str]:
    """``(namespace, name)`` of the Secret holding the connection's credentials, resolved as the operator does."""
    ref = spec.auth.tokenSecretRef or (spec.auth.clientCredentials.secretRef if spec.auth.clientCredentials else None)
    if ref is None:
        raise PluginError(f"{conn.display} has no auth method", ExitCode.NOT_READY)
    namespace = ref.namespace or conn.namespace
    if namespace is None:
        raise PluginError(f"{conn.display}: the auth Secret reference needs a namespace", ExitCode.NOT_READY)
    if conn.namespace is not None and namespace != conn.namespace:
        raise PluginError(f"{conn.display}: its auth Secret must be in namespace {conn.namespace}", ExitCode.NOT_READY)
    return namespace, ref.name


async def _read_credentials(cluster: Cluster, conn: Connection, namespace: str, name: str) -> Mapping[str, Any]:
    try:
        secret = await cluster.get("Secret", name, namespace)
    except PluginError as exc:
        if exc.code != ExitCode.FORBIDDEN:
            raise
        raise PluginError(
            f"you may not read Secret {namespace}/{name}, which holds the credentials of {conn.display}, so the "
            f"plugin cannot ask ScaiVault with them ({exc.message}); this needs get on secrets in namespace "
            f"{namespace} (kubectl auth can-i get secret/{name} -n {namespace}), or ask someone who may",
            ExitCode.FORBIDDEN,
        ) from None
    if secret is None:
        raise PluginError(f"Secret {namespace}/{name}, the credentials of {conn.display}, does not exist",
                          ExitCode.NOT_READY)  # fmt: skip
    refusal = credentials_refusal(secret, namespace, name)
    if refusal is not None:
        raise PluginError(refusal, ExitCode.NOT_READY)
    return secret


async def open_client(cluster: Cluster, conn: Connection) -> scaivault.ScaiVaultClient:
    """A ScaiVault client for ``conn`` with its credentials, read as the user; close it after use."""
    spec = conn.spec
    if spec is None:
        raise PluginError(f"{conn.display} is invalid: {conn.error}", ExitCode.NOT_READY)
    namespace, name = _auth_secret(conn, spec)
    secret = await _read_credentials(cluster, conn, namespace, name)
    auth: scaivault.TokenProvider
    try:
        if spec.auth.tokenSecretRef is not None:
            key = spec.auth.tokenSecretRef.key
            token = secret_value(secret, key)
            if token is None:
                raise PluginError(f"token Secret {namespace}/{name} of {conn.display} has no usable key {key!r}",
                                  ExitCode.NOT_READY)  # fmt: skip
            auth = scaivault.StaticToken(token)
        else:
            creds = spec.auth.clientCredentials
            assert creds is not None
            client_id = secret_value(secret, creds.clientIdKey)
            client_secret = secret_value(secret, creds.clientSecretKey)
            if not client_id or not client_secret:
                raise PluginError(
                    f"{conn.display}: Secret {namespace}/{name} needs keys {creds.clientIdKey!r} and "
                    f"{creds.clientSecretKey!r}",
                    ExitCode.NOT_READY,
                )
            auth = scaivault.ClientCredentials(creds.tokenUrl, client_id, client_secret, scope=creds.scope)
        return scaivault.ScaiVaultClient(spec.url, auth, ca_data=spec.caBundle, retry=_RETRY, max_concurrency=4)
    except scaivault.ConfigurationError as exc:  # its text names files and fields, never the token
        raise PluginError(f"{conn.display}: {exc}", ExitCode.NOT_READY) from None


def plain_http_note(conn: Connection) -> list[str]:
    """A note when ``conn`` sends its credentials over plain HTTP to a host that is not loopback (allowed by its
    ``insecureHTTP: true``), as the plugin just did."""
    if conn.spec is None or not conn.spec.plain_http_fields:
        return []
    fields = ", ".join(f"spec.{field}" for field in conn.spec.plain_http_fields)
    return [f"{conn.display} uses plain HTTP (insecureHTTP: true, {fields}): its credentials travelled unencrypted"]


def vault_failure(exc: scaivault.ScaiVaultError, *, via: str) -> PluginError:
    """A ScaiVault error met through the connection ``via`` (``Kind [namespace/]name``), with the plugin's exit code:
    401/403 (also from the token endpoint) ``FORBIDDEN`` in the operator's words (``conditions.classify``), 404
    ``NOT_READY`` (idem), outages and answers that cannot be understood ``UNREACHABLE``, anything else
    ``NOT_READY``. The error's text carries names, statuses and server codes, never a value or a token."""
    if isinstance(exc, scaivault.TransientError | scaivault.ResponseError):
        return PluginError(f"cannot reach ScaiVault through {via}: {exc}", ExitCode.UNREACHABLE)
    message = conditions.classify(exc).message
    if isinstance(exc, scaivault.UnauthenticatedError | scaivault.ForbiddenError):
        return PluginError(f"{via}: {message}", ExitCode.FORBIDDEN)
    return PluginError(f"{via}: {message}", ExitCode.NOT_READY)
