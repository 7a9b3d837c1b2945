"""ScaiVault connections: from ClusterVaultConnection/VaultConnection objects to ready clients, with a breaker.

Owned here: parsing connection specs, building one ``ScaiVaultClient`` per connection (token from a Kubernetes
Secret, or OAuth2 client credentials whose id/secret live in one — in either case only from a Secret labelled
``scaivault.scailabs.ai/credentials=true``, checked on every read: ``manifests.credentials_refusal``), and one
circuit breaker per connection (``breaker.Breaker``, also the client's ``RetryGate``): after a 401 (the client
already renewed the token once), a 403 on every listed prefix, or an outage (5xx, 429, timeouts, connection errors)
no request goes out on that connection until the breaker's backoff passed, and then the version watcher's poll is
the single probe; in-request retries are budgeted per connection. That is what keeps one bad token or one outage
from becoming a storm of requests from every VaultSecret (peers' pain #1 and #11; issue 10's budget).

Specs are read with the model of their kind (``api.CONNECTION_SPECS``): a ClusterVaultConnection whose credentials
Secret reference has no namespace is invalid (``api.ClusterConnectionSpec``), as the CRD's CEL rule says.

Plain HTTP: a spec whose ``url`` or ``auth.clientCredentials.tokenUrl`` is http:// to a host that is not loopback
is refused by ``ConnectionSpec`` itself unless ``insecureHTTP`` is true (the connection is then invalid: no client,
no request). When it is allowed, building the client posts one Warning Event (reason InsecureHTTP) on the
connection object — once per spec, as the client is built once per spec — and ``sync`` puts the Insecure condition
on every VaultSecret that uses it (``Connection.plain_http``).

Called by ``runtime`` (watch events), ``sync`` and ``watcher``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from scaivault_operator._cogs.api import API_VERSION, CONNECTION_SPECS, ConnectionSpec
from scaivault_operator._cogs.kube import Kube, secret_value
from scaivault_operator._cogs.metrics import Metrics
from scaivault_operator._cogs.scaivault import (
    ClientCredentials,
    ConfigurationError,
    RereadableToken,
    ScaiVaultClient,
    TokenProvider,
)
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._logic import conditions
from scaivault_operator._logic.breaker import Breaker
from scaivault_operator._logic.manifests import credentials_refusal
from scaivault_operator._logic.registry import ConnKey

__all__ = ["Breaker", "Connection", "Connections", "KubeSecretToken"]

logger = logging.getLogger(__name__)


async def read_credentials(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The Secret ``namespace/name`` for use as a connection's credentials; None when it does not exist.

    Raises ``ConfigurationError`` (→ InvalidSpec) when the Secret has not opted in with the credentials label.
    """
    secret = await kube.get_secret(namespace, name)
    if secret is None:
        return None
    refusal = credentials_refusal(secret, namespace, name)
    if refusal is not None:
        raise ConfigurationError(refusal)
    return secret


class KubeSecretToken(RereadableToken):
    """A static bearer token kept in a Kubernetes Secret; read on first use and again after a 401.

    Every read checks the Secret's credentials label: a label removed meanwhile makes the read after the next 401
    fail, and the refused token is then forgotten (``RereadableToken.renew``).
    """

    def __init__(self, kube: Kube, namespace: str, name: str, key: str) -> None:
        super().__init__()
        self._kube, self._namespace, self._name, self._key = kube, namespace, name, key

    def __repr__(self) -> str:
        return f"KubeSecretToken({self._namespace}/{self._name}[{self._key}])"

    async def _read(self) -> str:
        value = secret_value(await read_credentials(self._kube, self._namespace, self._name), self._key)
        if value is None:
            raise ConfigurationError(
                f"token Secret {self._namespace}/{self._name} is missing or has no key {self._key!r}"
            )
        return value


@dataclass
class Connection:
    key: ConnKey
    spec: ConnectionSpec | None
    error: str | None
    breaker: Breaker
    client: ScaiVaultClient | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    uid: str = ""
    #: ``metadata.generation`` of the object this spec came from (``status.observedGeneration``).
    generation: int | None = None
    #: The object's ``status`` as last seen when this spec arrived, then as the operator wrote it (``connstatus``).
    status: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def poll_seconds(self) -> float:
        """The spec's poll interval: also the breaker's shortest delay (a probe never comes sooner than a poll)."""
        return self.spec.poll_seconds if self.spec is not None else 30.0

    @property
    def plain_http(self) -> tuple[str, ...]:
        """The spec's URL fields that go over plain HTTP to a host that is not loopback (allowed by insecureHTTP)."""
        return self.spec.plain_http_fields if self.spec is not None else ()

    @property
    def label(self) -> str:
        """``Kind/[namespace/]name``: the connection in metrics labels and annotations."""
        kind, namespace, name = self.key
        return f"{kind}/{namespace + '/' if namespace else ''}{name}"

    @property
    def display(self) -> str:
        kind, namespace, name = self.key
        return f"{kind} {namespace + '/' if namespace else ''}{name}"


class Connections:
    """Every known connection, keyed by ``(kind, namespace or "", name)``."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._items: dict[ConnKey, Connection] = {}

    def get(self, key: ConnKey) -> Connection | None:
        return self._items.get(key)

    def keys(self) -> list[ConnKey]:
        return list(self._items)

    def all(self) -> list[Connection]:
        return list(self._items.values())

    async def upsert(self, kind: str, body: Mapping[str, Any]) -> bool:
        """Record a connection object; True when its spec changed (its users then need a re-sync)."""
        meta = body.get("metadata") or {}
        key: ConnKey = (kind, meta.get("namespace") or "", meta.get("name", ""))
        model = CONNECTION_SPECS.get(kind, ConnectionSpec)  # a ClusterVaultConnection's names its Secret's namespace
        try:
            spec: ConnectionSpec | None = model.model_validate(body.get("spec") or {})
            error = None
        except ValidationError as exc:
            spec, error = None, conditions.classify(exc).message
        old = self._items.get(key)
        if old is not None and old.spec == spec and old.error == error:
            return False
        if old is not None:
            await self._close(old)
        # 401/403: 10 s → 5 min (defaults); an outage: 5 s → 5 min, never sooner than the poll interval.
        breaker = Breaker(base=self._settings.retry_base * 5, cap=self._settings.retry_max,
                          outage_base=self._settings.retry_base * 2.5, clock=self._clock)  # fmt: skip
        uid, generation, status = meta.get("uid"), meta.get("generation"), body.get("status")
        self._items[key] = Connection(
            key=key, spec=spec, error=error, breaker=breaker, uid=uid if isinstance(uid, str) else "",
            generation=generation if isinstance(generation, int) and not isinstance(generation, bool) else None,
            status=dict(status) if isinstance(status, Mapping) else {},
        )  # fmt: skip
        logger.info("%s %s", "updated" if old else "registered", self._items[key].display)
        return True

    async def remove(self, key: ConnKey) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            await self._close(old)

    async def client(self, conn: Connection) -> ScaiVaultClient:
        """The connection's client, built on first use (once, however many workers ask at the same time).

        Raises ``ConfigurationError`` for a bad spec or unreadable credentials.
        """
        async with conn.lock:
            if conn.client is None:
                if conn.spec is None:
                    raise ConfigurationError(f"{conn.display} is invalid: {conn.error}")
                auth = await self._auth(conn, conn.spec)
                conn.client = ScaiVaultClient(
                    conn.spec.url,
                    auth,
                    ca_data=conn.spec.caBundle,
                    max_concurrency=self._settings.max_concurrency,
                    retry_gate=_CountedRetries(conn.breaker, self._metrics, conn.label),
                    # Each HTTP request's duration by endpoint and status class (the token endpoint's too).
                    on_request=self._metrics.observe_request if self._metrics is not None else None,
                )
                if conn.plain_http:
                    await self._warn_plain_http(conn)
            return conn.client

    async def _warn_plain_http(self, conn: Connection) -> None:
        """One Warning Event on the connection object: its client sends credentials over plain HTTP.

        A ClusterVaultConnection has no namespace: its Event goes where Kopf posts those about cluster-scoped
        objects, the operator's own namespace (the kubeconfig context's; in a pod, the service account's), with
        ``involvedObject.namespace`` set to it as well, which the API server requires of such Events.
        """
        kind, namespace, name = conn.key
        message = conditions.insecure_message(conn.display, conn.plain_http)
        logger.warning("%s", message)
        involved = {"apiVersion": API_VERSION, "kind": kind, "name": name,
                    "namespace": namespace or self._kube.default_namespace, "uid": conn.uid}  # fmt: skip
        if self._metrics is not None:
            self._metrics.inc("events_total", {"type": "Warning"})
        await self._kube.post_event(involved, type_="Warning", reason=conditions.INSECURE_HTTP, message=message)

    async def _auth(self, conn: Connection, spec: ConnectionSpec) -> TokenProvider:
        own_namespace = conn.key[1] or None
        ref = spec.auth.tokenSecretRef or (spec.auth.clientCredentials.secretRef
                                           if spec.auth.clientCredentials else None)  # fmt: skip
        if ref is None:
            raise ConfigurationError(f"{conn.display} has no auth method")
        namespace = ref.namespace or own_namespace
        if namespace is None:
            raise ConfigurationError(f"{conn.display}: the auth Secret reference needs a namespace")
        if own_namespace is not None and namespace != own_namespace:
            raise ConfigurationError(f"{conn.display}: its auth Secret must be in namespace {own_namespace}")
        if spec.auth.tokenSecretRef is not None:
            return KubeSecretToken(self._kube, namespace, ref.name, spec.auth.tokenSecretRef.key)
        creds = spec.auth.clientCredentials
        assert creds is not None
        secret = await read_credentials(self._kube, namespace, ref.name)
        client_id, client_secret = secret_value(secret, creds.clientIdKey), secret_value(secret, creds.clientSecretKey)
        if not client_id or not client_secret:
            raise ConfigurationError(
                f"{conn.display}: Secret {namespace}/{ref.name} needs keys {creds.clientIdKey!r} and "
                f"{creds.clientSecretKey!r}"
            )
        return ClientCredentials(creds.tokenUrl, client_id, client_secret, scope=creds.scope)

    async def _close(self, conn: Connection) -> None:
        if conn.client is not None:
            await conn.client.aclose()
            conn.client = None

    async def aclose(self) -> None:
        for conn in list(self._items.values()):
            await self._close(conn)


class _CountedRetries:
    """The client's ``RetryGate``: the connection's breaker, with its decisions counted in the metrics."""

    def __init__(self, breaker: Breaker, metrics: Metrics | None, label: str) -> None:
        self._breaker, self._metrics, self._label = breaker, metrics, label

    def allow_retry(self) -> bool:
        allowed = self._breaker.allow_retry()
        if self._metrics is not None:
            name = "backend_requests_total" if allowed else "backend_requests_suppressed_total"
            self._metrics.inc(name, {"connection": self._label, "call": "retry"})
        return allowed

    def record_success(self) -> None:
        self._breaker.record_success()
