"""ScaiVault connections: from ClusterVaultConnection/VaultConnection objects to ready clients, with a breaker.

Owned here: parsing connection specs, building one ``ScaiVaultClient`` per connection (token from a Kubernetes
Secret, or OAuth2 client credentials whose id/secret live in one — in either case only from a Secret labelled
``scaivault.scailabs.ai/credentials=true``, checked on every read: ``manifests.credentials_refusal``), and the
per-connection auth circuit breaker:
after a 401 (the client already renewed the token once) no request goes out on that connection until the
breaker's backoff passed, and then exactly one caller probes. That is what keeps one bad token from becoming
a storm of requests from every VaultSecret (peers' pain #1 and #11).

Called by ``runtime`` (watch events), ``sync`` and ``watcher``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from . import conditions
from .api import ConnectionSpec
from .kube import Kube, secret_value
from .manifests import credentials_refusal
from .registry import ConnKey
from .scaivault import ClientCredentials, ConfigurationError, RereadableToken, ScaiVaultClient, TokenProvider
from .settings import OperatorSettings

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
class Breaker:
    """Auth circuit breaker of one connection. Closed: requests flow. Open: none until ``until``, then one probe."""

    base: float
    cap: float
    clock: Callable[[], float] = time.monotonic
    failure: conditions.Failure | None = None
    until: float = 0.0
    opened: int = 0
    probing: bool = False

    @property
    def is_open(self) -> bool:
        return self.failure is not None

    def allow(self) -> bool:
        """May a request go out now? When open and due, only the first caller gets to probe."""
        if self.failure is None:
            return True
        if self.probing or self.clock() < self.until:
            return False
        self.probing = True
        return True

    def trip(self, failure: conditions.Failure) -> None:
        self.opened += 1
        self.failure = failure
        self.probing = False
        delay = min(self.cap, self.base * 2 ** (self.opened - 1))
        self.until = self.clock() + delay * random.uniform(0.8, 1.2)

    def reset(self) -> bool:
        """Close after a success; True when it was open (callers then re-sync what the outage hit)."""
        was_open = self.failure is not None
        self.failure, self.opened, self.probing, self.until = None, 0, False, 0.0
        return was_open

    def remaining(self) -> float:
        return max(0.0, self.until - self.clock())


@dataclass
class Connection:
    key: ConnKey
    spec: ConnectionSpec | None
    error: str | None
    breaker: Breaker
    client: ScaiVaultClient | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

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

    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self._kube = kube
        self._settings = settings
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
        try:
            spec: ConnectionSpec | None = ConnectionSpec.model_validate(body.get("spec") or {})
            error = None
        except ValidationError as exc:
            spec, error = None, conditions.classify(exc).message
        old = self._items.get(key)
        if old is not None and old.spec == spec and old.error == error:
            return False
        if old is not None:
            await self._close(old)
        breaker = Breaker(base=self._settings.retry_base * 5, cap=self._settings.retry_max)
        self._items[key] = Connection(key=key, spec=spec, error=error, breaker=breaker)
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
                )
            return conn.client

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
