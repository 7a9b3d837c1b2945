"""Who is calling: static bearer tokens, OAuth2 client-credentials clients, and the JWTs issued to them.

Owns token → identity resolution (expiry against an injectable clock, revocation, the ``expire_issued``
fault), the checks of the token
endpoint (client secret, requested scopes) and the minting of HS256 JWTs with a random per-process key, so a
token from an earlier run of the server is simply unknown. Static tokens are held only as SHA-256 digests.

Called by the API handlers in ``_app`` (``identify``, ``authenticate_client``, ``issue``), by ``_admin`` and
``DevVault`` (``add_token``, ``revoke_token``). Nothing here logs, returns or puts into an error message a token
or a client secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._time import Clock

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "ClientError",
    "Identity",
    "IssuedToken",
    "OAuthClient",
    "check_client",
    "check_scopes",
    "check_token",
]

_TOKEN_RE = re.compile(r"^[\x21-\x7e]{1,4096}$")
_SCOPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._/*-]{0,127}$")
_CLIENT_ID_RE = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,256}$")  # visible ASCII except ':'
_JWT_HEADER = {"alg": "HS256", "typ": "JWT"}


@dataclass(frozen=True)
class Identity:
    """The caller behind a valid token."""

    identity_id: str
    identity_type: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class OAuthClient:
    """A client allowed to use the client-credentials grant."""

    client_id: str
    secret: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scopes: frozenset[str]


class AuthenticationError(Exception):
    """The bearer token is not (or no longer) valid. ``code`` is the API error code to answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ClientError(Exception):
    """The token endpoint refuses the request. ``code`` is the OAuth error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_token(token: str) -> str:
    """Return ``token`` if it can be sent as a bearer token (visible ASCII, 1..4096 chars), else ValueError."""
    if not isinstance(token, str) or not _TOKEN_RE.match(token):
        raise ValueError("a token must be 1 to 4096 visible ASCII characters (no spaces)")
    return token


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Return ``scopes`` as a frozenset if every name is well formed (like ``secrets:read``), else ValueError."""
    checked = frozenset(scopes)
    for scope in checked:
        if not isinstance(scope, str) or not _SCOPE_RE.match(scope):
            raise ValueError("a scope name must be 1 to 128 of the characters A-Z a-z 0-9 : . _ / * -")
    return checked


def check_client(client_id: str, secret: str) -> None:
    """Raise ValueError unless ``client_id`` (visible ASCII, no ``:``) and ``secret`` (non-empty) are usable."""
    if not isinstance(client_id, str) or not _CLIENT_ID_RE.match(client_id):
        raise ValueError("a client id must be 1 to 256 visible ASCII characters other than ':'")
    if not isinstance(secret, str) or secret == "":
        raise ValueError("a client secret must be a non-empty string")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


def _json_segment(value: Mapping[str, Any]) -> str:
    return _b64encode(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


class Authenticator:
    """Static tokens, OAuth clients and the JWT key of one dev-vault process."""

    def __init__(
        self,
        *,
        tokens: Mapping[str, Iterable[str]],
        clients: Mapping[str, tuple[str, Iterable[str]]],
        token_ttl: int,
        clock: Clock,
    ) -> None:
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)
        self._static: dict[str, Identity] = {}
        self._revoked: set[str] = set()
        self._clients: dict[str, OAuthClient] = {}
        self._issued: set[str] = set()  # jti of every token issued and not yet force-expired
        self._expired: set[str] = set()  # jti of tokens expired by ``expire_issued``
        self.token_ttl = token_ttl
        self.clock = clock
        for token, scopes in tokens.items():
            self.add_token(token, scopes)
        for client_id, (secret, scopes) in clients.items():
            self.add_client(client_id, secret, scopes)

    # -- static tokens ---------------------------------------------------------------------------------

    def add_token(self, token: str, scopes: Iterable[str]) -> Identity:
        """Accept ``token`` as a bearer token with ``scopes`` (replacing its scopes if it exists)."""
        digest = _digest(check_token(token))
        identity = Identity(f"token:{digest[:12]}", "service", check_scopes(scopes))
        with self._lock:
            self._static[digest] = identity
            self._revoked.discard(digest)
        return identity

    def revoke_token(self, token: str) -> bool:
        """Stop accepting ``token`` (static or issued). True if it was valid until now."""
        if not isinstance(token, str) or not _TOKEN_RE.match(token):
            return False
        digest = _digest(token)
        with self._lock:
            if self._static.pop(digest, None) is not None:
                return True
            try:
                self._verify_jwt(token)
            except AuthenticationError:
                return False
            self._revoked.add(digest)
            return True

    def expire_issued(self) -> int:
        """Expire every token issued so far, as if its ``exp`` had passed (tokens issued later stay valid).

        The ``expire_issued_after`` fault; returns how many tokens it expired.
        """
        with self._lock:
            count = len(self._issued)
            self._expired |= self._issued
            self._issued = set()
            return count

    @property
    def static_token_count(self) -> int:
        with self._lock:
            return len(self._static)

    # -- bearer token resolution -----------------------------------------------------------------------

    def identify(self, token: str) -> Identity:
        """The identity behind a bearer token, or ``AuthenticationError``."""
        if not _TOKEN_RE.match(token):
            raise AuthenticationError("authentication_required", "the bearer token is not valid")
        digest = _digest(token)
        with self._lock:
            identity = self._static.get(digest)
            if identity is not None:
                return identity
            if digest in self._revoked:
                raise AuthenticationError("authentication_required", "the bearer token has been revoked")
            return self._verify_jwt(token)

    def _verify_jwt(self, token: str) -> Identity:
        claims = self._decode_jwt(token)
        if claims is None:
            raise AuthenticationError("authentication_required", "the bearer token is not valid")
        if self.clock() >= claims["exp"] or claims["jti"] in self._expired:
            raise AuthenticationError("token_expired", "the bearer token has expired")
        return Identity(f"client:{claims['sub']}", "client", frozenset(claims["scope"].split()))

    def _decode_jwt(self, token: str) -> dict[str, Any] | None:
        """The claims of a JWT signed with this process's key, or None for anything else."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        signature = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(signature, _b64decode(parts[2]))
            claims = json.loads(_b64decode(parts[1])) if valid else None
        except (binascii.Error, ValueError):
            return None
        # Only this module signs with the key, so a valid signature means well-formed claims.
        return claims if isinstance(claims, dict) else None

    # -- OAuth clients ---------------------------------------------------------------------------------

    def add_client(self, client_id: str, secret: str, scopes: Iterable[str]) -> None:
        """Register an OAuth client for the client-credentials grant."""
        check_client(client_id, secret)
        with self._lock:
            self._clients[client_id] = OAuthClient(client_id, secret, check_scopes(scopes))

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def authenticate_client(self, client_id: str, secret: str) -> OAuthClient:
        """The client if ``secret`` is its secret, else ``ClientError('invalid_client')``."""
        with self._lock:
            client = self._clients.get(client_id)
        if client is None or not hmac.compare_digest(client.secret.encode(), secret.encode()):
            raise ClientError("invalid_client", "unknown client or wrong client secret")
        return client

    def issue(self, client: OAuthClient, requested: frozenset[str] | None) -> IssuedToken:
        """Mint an access token for ``client`` with ``requested`` scopes (all of its scopes when None)."""
        scopes = client.scopes if requested is None else requested
        missing = scopes - client.scopes
        if missing:
            names = " ".join(sorted(missing))
            raise ClientError("invalid_scope", f"scope not granted to this client: {names[:200]}")
        issued_at = int(self.clock())
        claims = {
            "sub": client.client_id,
            "scope": " ".join(sorted(scopes)),
            "iat": issued_at,
            "exp": issued_at + self.token_ttl,
            "jti": secrets.token_hex(16),
        }
        signing_input = f"{_json_segment(_JWT_HEADER)}.{_json_segment(claims)}"
        signature = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        with self._lock:
            self._issued.add(str(claims["jti"]))
        return IssuedToken(f"{signing_input}.{_b64encode(signature)}", self.token_ttl, scopes)
