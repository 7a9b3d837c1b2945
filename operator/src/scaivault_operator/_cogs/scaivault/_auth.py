"""Token providers: where the client's bearer token comes from, and how it is renewed.

The client asks its provider for a token before each request and tells it when the server answered 401.
A provider then renews at most once per stale token: concurrent 401s for the same token cause one renewal,
not a login storm.

- ``StaticToken``: a token given directly, or read from a file (a mounted Kubernetes Secret). On 401 the file
  is read again, so a rotated token is picked up without a restart.
- ``ClientCredentials``: OAuth2 client credentials against ScaiKey's token endpoint. The token is cached
  until shortly before it expires and fetched again after that, or after a 401. Every error of the token endpoint
  carries ``endpoint=Endpoint.TOKEN`` (a 404 there is a wrong token URL, not a missing secret).

Tokens never appear in ``repr``, ``str``, log lines or exception messages.

``RequestObserver``: what the client (and ``ClientCredentials``, for the token endpoint) tell of each HTTP request
once it is over — a fixed endpoint name, the status (None: no answer) and the seconds it took; the operator turns it
into a metric. Defined here, beside the token endpoint's requests, so that the client imports no metrics.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from ._exceptions import (
    ConfigurationError,
    Endpoint,
    ResponseError,
    UnavailableError,
    error_for_status,
)

__all__ = [
    "ClientCredentials",
    "RequestObserver",
    "RereadableToken",
    "StaticToken",
    "TokenProvider",
    "is_sendable_token",
    "notify_observer",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
#: ``on_request(endpoint, status, seconds)``: an HTTP request is over. ``endpoint``: ``whoami``, ``read``, ``list``,
#: ``write`` or ``token`` (never a path); ``status``: the HTTP status, None when no answer came.
RequestObserver = Callable[[str, int | None, float], None]


def notify_observer(observer: RequestObserver | None, endpoint: str, status: int | None, seconds: float) -> None:
    """Tell ``observer`` of a request; an observer that raises is logged and ignored (never fails the request)."""
    if observer is None:
        return
    try:
        observer(endpoint, status, max(0.0, seconds))
    except Exception:
        logger.exception("the request observer failed on a %s request", endpoint)


#: Visible ASCII only. A bearer token (RFC 6750) holds no whitespace, and control characters or non-ASCII cannot
#: travel in an HTTP header at all: httpx/h11 would refuse them with an error quoting the header, token included.
_SENDABLE_TOKEN = re.compile(r"[\x21-\x7e]+")


def is_sendable_token(token: str) -> bool:
    """Whether ``token`` can be sent as ``Authorization: Bearer <token>``."""
    return _SENDABLE_TOKEN.fullmatch(token) is not None


_UNSENDABLE = "characters an HTTP header cannot carry (inner whitespace, control characters or non-ASCII)"


@runtime_checkable
class TokenProvider(Protocol):
    """What the client needs from an authentication method."""

    async def token(self) -> str:
        """Return the bearer token to send now."""
        ...

    async def renew(self, stale: str) -> bool:
        """The server refused ``stale`` with 401: get a fresh token if one can be had.

        Return True when the next ``token()`` differs from ``stale`` (worth one retry), False otherwise.
        """
        ...


class RereadableToken:
    """A bearer token read from somewhere (``_read``) on first use, and read again after a 401.

    Renewal happens once per stale token: concurrent 401s for the same token cause one read, and a request that
    finds the token already replaced retries with it. A re-read that fails forgets the refused token, so it is
    never sent again and the next use reads afresh. Subclasses say where the token comes from.
    """

    def __init__(self) -> None:
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if self._token is None:
            async with self._lock:
                if self._token is None:
                    self._token = await self._read()
        return self._token

    async def renew(self, stale: str) -> bool:
        async with self._lock:
            if self._token is not None and self._token != stale:
                return True  # another request already read the new one
            try:
                self._token = await self._read()
            except BaseException:
                self._token = None  # refused and unreadable: never send it again; the next use reads afresh
                raise
            return self._token != stale

    async def _read(self) -> str:
        raise NotImplementedError


class StaticToken(RereadableToken):
    """A fixed bearer token, or one read from ``path`` (and read again after a 401)."""

    def __init__(self, token: str | None = None, *, path: str | Path | None = None) -> None:
        super().__init__()
        if (token is None) == (path is None):
            raise ConfigurationError("StaticToken needs exactly one of a token or a token file path")
        self._path = Path(path) if path is not None else None
        self._token = token.strip() if token is not None else None
        if self._token == "":
            raise ConfigurationError("StaticToken was given an empty token")
        if self._token is not None and not is_sendable_token(self._token):
            raise ConfigurationError(f"StaticToken was given a token with {_UNSENDABLE}")

    def __repr__(self) -> str:
        source = f"path={str(self._path)!r}" if self._path else "token=<redacted>"
        return f"StaticToken({source})"

    async def renew(self, stale: str) -> bool:
        if self._path is None:
            return False  # a token given directly cannot change
        return await super().renew(stale)

    async def _read(self) -> str:
        assert self._path is not None
        path = self._path
        problem: str | None = None
        text = ""
        try:
            text = await asyncio.to_thread(path.read_text, "utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = type(exc).__name__
        if problem is not None:
            # Raised outside the except block: a UnicodeDecodeError holds the file's bytes (the token), and would
            # stay reachable as ``__context__`` even with ``from None``.
            raise ConfigurationError(f"cannot read token file {str(path)!r}: {problem}")
        token = text.strip()
        if not token:
            raise ConfigurationError(f"token file {str(path)!r} is empty")
        if not is_sendable_token(token):
            raise ConfigurationError(f"token file {str(path)!r} holds {_UNSENDABLE}")
        return token


class ClientCredentials:
    """OAuth2 client-credentials grant: ``POST token_url`` with the client id and secret.

    The access token is reused until ``refresh_margin`` before it expires (``expires_in`` from the answer, else
    the JWT's ``exp`` claim, else ``default_lifetime``). One fetch at a time; waiters share its result.
    ``on_request`` is told of each token request (endpoint ``token``); without one, the observer of the
    ``ScaiVaultClient`` it is bound to.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        refresh_margin: float = 30.0,
        default_lifetime: float = 300.0,
        http: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        on_request: RequestObserver | None = None,
    ) -> None:
        if not token_url or not client_id or not client_secret:
            raise ConfigurationError("ClientCredentials needs a token URL, a client id and a client secret")
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._margin = refresh_margin
        self._default_lifetime = default_lifetime
        self._http = http
        self._clock = clock
        self._on_request = on_request
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        #: How many tokens were fetched; the client's tests and metrics read it.
        self.fetch_count = 0

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self._token_url!r}, client_id={self._client_id!r})"

    def bind(self, http: httpx.AsyncClient, *, on_request: RequestObserver | None = None) -> None:
        """Use the ScaiVault client's HTTP pool (TLS settings, timeouts) and request observer unless given ones."""
        if self._http is None:
            self._http = http
        if self._on_request is None:
            self._on_request = on_request

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at - self._margin

    async def token(self) -> str:
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if not self._fresh():
                await self._fetch()
            assert self._token is not None
            return self._token

    async def renew(self, stale: str) -> bool:
        async with self._lock:
            if self._token is not None and self._token != stale and self._fresh():
                return True
            await self._fetch()
            return self._token != stale

    async def _fetch(self) -> None:
        if self._http is None:
            raise ConfigurationError("ClientCredentials is not bound to an HTTP client")
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        what = f"POST token endpoint for client {self._client_id!r}"
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            response = await self._http.post(
                self._token_url,
                data=form,
                auth=httpx.BasicAuth(self._client_id, self._client_secret),
                headers={"Accept": "application/json"},
            )
        except httpx.TimeoutException:
            notify_observer(self._on_request, "token", None, loop.time() - started)
            raise UnavailableError(f"{what}: timed out", endpoint=Endpoint.TOKEN) from None
        except httpx.HTTPError as exc:
            notify_observer(self._on_request, "token", None, loop.time() - started)
            raise UnavailableError(f"{what}: {type(exc).__name__}", endpoint=Endpoint.TOKEN) from None
        notify_observer(self._on_request, "token", response.status_code, loop.time() - started)
        body = _json_or_none(response)
        if not response.is_success:
            # The token endpoint's own table: a 400/401/403 (RFC 6749: ``invalid_client``, ``invalid_grant``...)
            # is an UnauthenticatedError — the credentials are what the operator must fix.
            raise error_for_status(
                response.status_code,
                what=what,
                body=body,
                retry_after=response.headers.get("Retry-After"),
                redact=(self._client_secret,),
                endpoint=Endpoint.TOKEN,
            )
        token, lifetime = _parse_token_answer(body, what)
        self.fetch_count += 1
        self._token = token
        self._expires_at = self._clock() + (lifetime if lifetime is not None else self._default_lifetime)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser's stack
        return None


def _parse_token_answer(body: Any, what: str) -> tuple[str, float | None]:
    if not isinstance(body, dict):
        raise ResponseError(f"{what}: answer is not a JSON object", endpoint=Endpoint.TOKEN)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise ResponseError(f"{what}: answer has no access_token", endpoint=Endpoint.TOKEN)
    if not is_sendable_token(token):
        raise ResponseError(f"{what}: the access_token has {_UNSENDABLE}", endpoint=Endpoint.TOKEN)
    expires_in = _finite_seconds(body.get("expires_in"))
    if expires_in is not None and expires_in > 0:
        return token, expires_in
    return token, _jwt_lifetime(token)


def _finite_seconds(value: Any) -> float | None:
    """``value`` as a finite float, or None (not a number, a bool, infinite, NaN, or too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # JSON integers have no size limit
        return None
    return seconds if math.isfinite(seconds) else None


def _jwt_lifetime(token: str) -> float | None:
    """Seconds until the JWT's ``exp`` claim (unverified: only used to schedule a refresh), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    exp = _finite_seconds(payload.get("exp") if isinstance(payload, dict) else None)
    if exp is None:
        return None
    remaining = exp - time.time()
    return remaining if remaining > 0 else 0.0
