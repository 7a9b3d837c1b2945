"""The dev vault's configuration: ``DevVaultConfig`` and the parsers of the CLI's token and client specs.

Owns the defaults and the validation of everything the server is started with. Built by the CLI
(``scaivault-operator dev-vault``) from its flags, or directly by tests and the demo; consumed by ``DevVault``.
Validation messages never quote a token or a client secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ._auth import check_client, check_scopes, check_token
from ._faults import FaultConfig

__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_PORT", "DevVaultConfig", "parse_client_spec", "parse_token_spec"]

DEFAULT_PORT = 8200
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_TOKEN_TTL = 3600


@dataclass
class DevVaultConfig:
    """How to run a dev vault. ``port=0`` picks a free port (``DevVault.start`` returns the URL)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: static bearer token → scopes
    tokens: dict[str, set[str]] = field(default_factory=dict)
    #: OAuth client id → (client secret, scopes the client may request)
    clients: dict[str, tuple[str, set[str]]] = field(default_factory=dict)
    #: lifetime in seconds of tokens issued by ``POST /oauth/token``
    token_ttl: int = DEFAULT_TOKEN_TTL
    #: SQLite file to persist secrets in; None keeps them in memory
    data_file: Path | None = None
    #: largest accepted request body, in bytes
    max_body: int = DEFAULT_MAX_BODY
    #: faults active from the start (copied: run-time changes go to ``DevVault.faults``)
    faults: FaultConfig = field(default_factory=FaultConfig)
    list_default_limit: int = 100
    list_max_limit: int = 1000

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if not isinstance(self.token_ttl, int) or self.token_ttl < 1:
            raise ValueError("token_ttl must be a positive number of seconds")
        if not isinstance(self.max_body, int) or self.max_body < 1:
            raise ValueError("max_body must be a positive number of bytes")
        if not self.list_max_limit >= 1 or not 1 <= self.list_default_limit <= self.list_max_limit:
            raise ValueError("need 1 <= list_default_limit <= list_max_limit")
        for token, scopes in self.tokens.items():
            check_token(token)
            check_scopes(scopes)
        for client_id, (secret, scopes) in self.clients.items():
            check_client(client_id, secret)
            check_scopes(scopes)
        self.faults.validate()


def _split_scopes(text: str) -> set[str]:
    return set(check_scopes(scope.strip() for scope in text.split(",") if scope.strip()))


def parse_token_spec(spec: str) -> tuple[str, set[str]]:
    """``TOKEN=scope1,scope2`` (scopes may be empty: ``TOKEN=``) → ``(token, scopes)``.

    The token ends at the last ``=``, so base64 padding inside a token is fine.
    """
    token, equals, scopes = spec.rpartition("=")
    if not equals or not token:
        raise ValueError("expected TOKEN=SCOPES, e.g. dev-token=secrets:read,secrets:write")
    return check_token(token), _split_scopes(scopes)


def parse_client_spec(spec: str) -> tuple[str, str, set[str]]:
    """``CLIENT_ID:SECRET=scope1,scope2`` → ``(client_id, secret, scopes)``; the id ends at the first ``:``."""
    credentials, equals, scopes = spec.rpartition("=")
    client_id, colon, secret = credentials.partition(":")
    if not equals or not colon or not client_id or not secret:
        raise ValueError("expected CLIENT_ID:SECRET=SCOPES, e.g. ci-client:ci-secret=secrets:read")
    return client_id, secret, _split_scopes(scopes)
