"""``ScaiVaultClient``: the async client for the whole documented ScaiVault API.

Owns the HTTP pool (httpx), timeouts, the per-client concurrency limit, the size limit on answers,
authentication (via a ``TokenProvider``), retries of idempotent reads, and the translation of every httpx error
and every non-2xx answer of the ScaiVault API into the ``_exceptions`` tree — this module is the only place where
that translation happens (the OAuth token endpoint's answers are translated by ``_auth.ClientCredentials``, through
the same ``error_for_status``, marked ``Endpoint.TOKEN``).

Called by the operator's sync code and by tests; the request/response shapes are documented in
``docs/scaivault-api.md``.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import ssl
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from scaivault_operator import __version__
from scaivault_operator._cogs.transport import AiohttpTransport

from ._auth import ClientCredentials, RequestObserver, TokenProvider, is_sendable_token, notify_observer
from ._exceptions import (
    ConfigurationError,
    ResponseError,
    TransientError,
    UnavailableError,
    error_for_status,
)
from ._models import Identity, Secret, SecretPage, WriteResult
from ._paths import encode_path, validate_prefix
from ._retry import NO_RETRY, RetryGate, RetryPolicy

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_PAGE_SIZE", "DEFAULT_TIMEOUT", "RequestObserver", "ScaiVaultClient"]

logger = logging.getLogger(__name__)

#: Connect fast, give the server time to answer; ``pool`` bounds the wait for a free connection.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=15.0, pool=30.0)
DEFAULT_PAGE_SIZE = 500
#: A list follows at most this many items' worth of pages (and at least 1,000 pages): a server that keeps answering
#: has_more with fresh cursors must not keep a poll running forever. A million secrets under one prefix is far
#: beyond any tenant (and the operator lists the parent directories of the paths it follows, not the root).
MAX_LIST_ITEMS = 1_000_000
MIN_LIST_PAGES = 1_000
#: Largest answer body the client reads (after content decoding): 4 MiB. A Kubernetes Secret holds at most 1 MiB
#: and a list page of 1000 items stays far below; a bigger answer is refused while it streams in. Without a bound a
#: broken proxy or server could make the operator buffer and parse tens of MiB per request — eight workers reading
#: a 20 MiB answer at once take ~500 MiB, the chart's memory limit.
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_NO_BODY = object()
M = TypeVar("M", bound=BaseModel)


class ScaiVaultClient:
    """Async client for one ScaiVault endpoint with one identity.

    ``base_url`` is the service root (``https://scaivault.example``; ``/v1/...`` is appended). TLS is verified
    by default; ``ca_file``/``ca_data`` add a custom CA bundle. At most ``max_concurrency`` requests are in flight
    at once. An answer body larger than ``max_response_bytes`` is not read to its end: a ``ResponseError`` (or, for
    an error status, the error of that status without the body's detail). Reads (whoami, read, list) are retried
    on transient errors per ``retry``; writes never are, since a PUT that timed out may still have created a
    version. A 401 makes the token provider renew once and the request is repeated once with the new token.
    ``retry_gate`` (optional) is asked before each retry and told of each success: a budget shared by all requests
    of the client (the operator passes the connection's breaker).

    ``on_request`` (optional) is told of every HTTP request sent, once it is over: ``on_request(endpoint, status,
    seconds)`` with ``endpoint`` one of ``whoami``, ``read``, ``list``, ``write`` (and ``token``, for a
    ``ClientCredentials`` provider that has no observer of its own), ``status`` the HTTP status or None when no
    answer came (a timeout, a connection error), and the seconds from sending to the answer read. Every attempt
    counts (retries, the repeat after a renewed token); never a path, a token or data. An observer that raises
    is logged and ignored (the operator's metrics must not fail a request).

    ``transport`` replaces the network (``httpx.MockTransport`` in unit tests).
    """

    def __init__(
        self,
        base_url: str,
        auth: TokenProvider,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        verify: bool = True,
        ca_file: str | Path | None = None,
        ca_data: str | None = None,
        max_concurrency: int = 16,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        retry: RetryPolicy | None = None,
        retry_gate: RetryGate | None = None,
        on_request: RequestObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigurationError("max_concurrency must be at least 1")
        if max_response_bytes < 1:
            raise ConfigurationError("max_response_bytes must be at least 1")
        self._max_response_bytes = max_response_bytes
        self._base = _service_url(base_url)
        self._auth = auth
        self._retry = retry if retry is not None else RetryPolicy()
        self._retry_gate = retry_gate
        self._on_request = on_request
        self._semaphore = asyncio.Semaphore(max_concurrency)
        tls = _ssl_context(verify, ca_file, ca_data)
        if transport is None:  # aiohttp's connections beneath httpx (transport.py: a third of the CPU per request)
            transport = AiohttpTransport(ssl=tls, limit=max_concurrency)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            verify=tls,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            headers={"User-Agent": f"scaivault-operator/{__version__}", "Accept": "application/json"},
            transport=transport,
            follow_redirects=False,
        )
        if isinstance(auth, ClientCredentials):
            auth.bind(self._http, on_request=on_request)

    def __repr__(self) -> str:
        return f"ScaiVaultClient({self._base!r}, auth={self._auth!r})"

    @property
    def base_url(self) -> str:
        return self._base

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the API ------------------------------------------------------------------------------------------

    async def whoami(self) -> Identity:
        """``GET /v1/auth/whoami``: the identity and scopes of the current token."""
        what = "GET whoami"
        body = await self._call("GET", "/v1/auth/whoami", what=what, endpoint="whoami")
        return _parse(Identity, body, what)

    async def read(self, path: str, version: int | None = None) -> Secret:
        """``GET /v1/secrets/{path}``: the latest version, or ``version`` when given (≥ 1)."""
        encoded = encode_path(path)
        params: dict[str, str] | None = None
        what = f"GET secret {path!r}"
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise ValueError("version must be an integer >= 1")
            params = {"version": str(version)}
            what += f" version {version}"
        body = await self._call("GET", f"/v1/secrets/{encoded}", what=what, endpoint="read", params=params)
        secret = _parse(Secret, body, what)
        if secret.path != path or (version is not None and secret.version != version):
            raise ResponseError(f"{what}: answer is for another path or version ({secret.path!r} v{secret.version})")
        return secret

    async def list_page(
        self, prefix: str = "", *, cursor: str | None = None, page_size: int | None = DEFAULT_PAGE_SIZE
    ) -> SecretPage:
        """One page of ``GET /v1/secrets?prefix=``; pass the previous page's ``cursor`` to continue."""
        validate_prefix(prefix)
        params = {"prefix": prefix}
        if page_size is not None:
            if page_size < 1:
                raise ValueError("page_size must be at least 1")
            params["limit"] = str(page_size)
        if cursor is not None:
            params["cursor"] = cursor
        what = f"LIST secrets with prefix {prefix!r}"
        body = await self._call("GET", "/v1/secrets", what=what, endpoint="list", params=params)
        page = _parse(SecretPage, body, what)
        if page.has_more and not page.cursor:
            raise ResponseError(f"{what}: has_more is true but no cursor was given")
        if page.cursor is not None and not _is_utf8(page.cursor):  # "\ud800" in JSON: it could not be sent back
            raise ResponseError(f"{what}: the cursor is not valid UTF-8 text")
        return page

    async def list_secrets(
        self, prefix: str = "", *, page_size: int | None = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[SecretPage]:
        """Every page under ``prefix``, following ``cursor`` until ``has_more`` is false.

        Yields pages (each with its ``secrets``) so callers can count requests; a cursor that repeats, or more
        pages than ``MAX_LIST_ITEMS`` items need (at least ``MIN_LIST_PAGES``), is a ``ResponseError`` instead of
        an endless loop.
        """
        max_pages = max(MIN_LIST_PAGES, MAX_LIST_ITEMS // (page_size or DEFAULT_PAGE_SIZE))
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await self.list_page(prefix, cursor=cursor, page_size=page_size)
            yield page
            if not page.has_more:
                return
            if len(seen) + 1 >= max_pages:
                raise ResponseError(f"LIST secrets with prefix {prefix!r}: more than {max_pages} pages, still has_more")
            assert page.cursor is not None  # list_page checked it
            if page.cursor in seen:
                raise ResponseError(f"LIST secrets with prefix {prefix!r}: the server repeated a cursor")
            seen.add(page.cursor)
            cursor = page.cursor

    async def write(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        secret_type: str = "json",
        metadata: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        """``PUT /v1/secrets/{path}``: store ``data`` as a new version. Never retried (not idempotent)."""
        encoded = encode_path(path)
        payload: dict[str, Any] = {"data": dict(data), "secret_type": secret_type}
        if metadata is not None:
            payload["metadata"] = dict(metadata)
        what = f"PUT secret {path!r}"
        body = await self._call(
            "PUT",
            f"/v1/secrets/{encoded}",
            what=what,
            endpoint="write",
            json=payload,
            retry=NO_RETRY,
            redact=_leaf_strings(data),
        )
        return _parse(WriteResult, body, what)

    # -- plumbing -----------------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        url_path: str,
        *,
        what: str,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        retry: RetryPolicy | None = None,
        redact: Collection[str] = (),
    ) -> Any:
        """Send with auth and retries; return the decoded JSON of a 2xx answer or raise from the tree.

        ``redact``: secret values of the request; an error answer quoting one (or the token) is not repeated.
        ``endpoint``: what ``on_request`` is told (a fixed name, never the path).
        """
        policy = retry if retry is not None else self._retry
        loop = asyncio.get_running_loop()  # its clock, as its sleeps: a test's virtual time moves both
        started = loop.time()
        attempt = 0
        while True:
            attempt += 1
            try:
                body = await self._authenticated(
                    method, url_path, what=what, endpoint=endpoint, params=params, json=json, redact=redact
                )
            except TransientError as exc:
                wait = policy.delay(attempt, exc, loop.time() - started)
                if wait is None or (self._retry_gate is not None and not self._retry_gate.allow_retry()):
                    raise
                logger.debug(
                    "%s failed (%s); retry %d of %d in %.2fs",
                    what, type(exc).__name__, attempt, policy.max_attempts - 1, wait,
                )  # fmt: skip
                await asyncio.sleep(wait)
            else:
                if self._retry_gate is not None:
                    self._retry_gate.record_success()
                return body

    async def _authenticated(
        self,
        method: str,
        url_path: str,
        *,
        what: str,
        endpoint: str,
        params: Mapping[str, str] | None,
        json: Any,
        redact: Collection[str],
    ) -> Any:
        token = await self._auth.token()
        answer = await self._send(method, url_path, token, what=what, endpoint=endpoint, params=params, json=json)
        tokens = [token]
        if answer.status_code == 401 and await self._auth.renew(token):
            logger.info("%s: token refused with 401; retrying once with a renewed token", what)
            token = await self._auth.token()
            tokens.append(token)
            answer = await self._send(method, url_path, token, what=what, endpoint=endpoint, params=params, json=json)
        return _decode(answer, what, redact=[*tokens, *redact])

    async def _send(
        self,
        method: str,
        url_path: str,
        token: str,
        *,
        what: str,
        endpoint: str,
        params: Mapping[str, str] | None,
        json: Any,
    ) -> _Answer:
        if not is_sendable_token(token):
            # Checked here for every provider: httpx would raise an error quoting the header, token and all.
            raise ConfigurationError(f"{what}: the token provider returned a token no HTTP header can carry")
        async with self._semaphore:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                request = self._http.build_request(
                    method,
                    self._base + url_path,
                    params=params,
                    json=json,
                    headers={"Authorization": f"Bearer {token}"},
                )
                response = await self._http.send(request, stream=True)
                try:
                    content = await _read_limited(response, self._max_response_bytes)
                finally:
                    await response.aclose()
            except httpx.TimeoutException as exc:
                notify_observer(self._on_request, endpoint, None, loop.time() - started)
                raise UnavailableError(f"{what}: timed out ({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                notify_observer(self._on_request, endpoint, None, loop.time() - started)
                raise UnavailableError(f"{what}: {type(exc).__name__}: {_short(exc)}") from exc
            notify_observer(self._on_request, endpoint, response.status_code, loop.time() - started)
        return _Answer(response.status_code, response.headers, content, self._max_response_bytes)


@dataclass(frozen=True)
class _Answer:
    """An answer read as far as the size limit allows. ``content`` is None when the body was larger than ``limit``
    (it was not read to its end)."""

    status_code: int
    headers: httpx.Headers
    content: bytes | None
    limit: int

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


async def _read_limited(response: httpx.Response, limit: int) -> bytes | None:
    """The decoded body of a streamed ``response``, or None as soon as it proves longer than ``limit`` bytes."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit and not response.headers.get("Content-Encoding"):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _service_url(base_url: str) -> str:
    """Check the service root and return it without a trailing ``/``; never echo credentials it may hold."""
    try:
        url = httpx.URL(base_url)
        port = url.port
    except (httpx.InvalidURL, TypeError):
        raise ConfigurationError("ScaiVault URL is not a valid URL") from None
    if url.userinfo:
        raise ConfigurationError("ScaiVault URL must not contain user:password@; the token provider authenticates")
    # The URL itself is never quoted: a query may carry a token (``?token=...``), and these messages reach status.
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError("ScaiVault URL must be http(s)://host[:port][/base]")
    if url.query or url.fragment:
        raise ConfigurationError("ScaiVault URL must not have a query (?...) or a fragment (#...)")
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError("ScaiVault URL has an invalid port")
    return str(url).rstrip("/")


def _ssl_context(verify: bool, ca_file: str | Path | None, ca_data: str | None) -> ssl.SSLContext | bool:
    if not verify:
        if ca_file or ca_data:
            raise ConfigurationError("a CA bundle was given but TLS verification is off")
        return False
    if ca_file is None and ca_data is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None, cadata=ca_data or None)
    except (OSError, ssl.SSLError, ValueError, TypeError) as exc:  # TypeError: cadata that is not ASCII PEM
        raise ConfigurationError(f"cannot load the CA bundle: {type(exc).__name__}") from None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(exc: BaseException) -> str:
    text = str(exc) or _os_reason(exc) or "no detail"
    return text if len(text) <= 200 else text[:199] + "…"


def _os_reason(exc: BaseException) -> str | None:
    """The operating system's words for the network failure behind ``exc`` (``Connection reset by peer``).

    httpx's ``ReadError`` for a connection reset in the middle of an answer has no text of its own; its cause chain
    ends in the ``OSError``. Only ``strerror`` is used: the C library's fixed text, never data from the peer.
    """
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return None


#: Shorter data values are not looked for in error messages: they match ordinary words by chance
#: (``"w"`` in "secrets:write") and would withhold every message, while revealing little themselves.
_MIN_REDACTED_LENGTH = 4


def _leaf_strings(value: Any) -> set[str]:
    """Every string and number inside ``value`` (the values of a secret's data, not its keys), as text."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            found.add(str(item))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return {text for text in found if len(text) >= _MIN_REDACTED_LENGTH}


def _decode(answer: _Answer, what: str, *, redact: Collection[str] = ()) -> Any:
    body: Any = _NO_BODY
    if answer.content is not None:
        try:
            body = jsonlib.loads(answer.content)
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser's stack
            body = _NO_BODY
    if not answer.is_success:
        raise error_for_status(
            answer.status_code,
            what=what,
            body=None if body is _NO_BODY else body,
            retry_after=answer.headers.get("Retry-After"),
            redact=redact,
        )
    if answer.content is None:
        raise ResponseError(
            f"{what}: HTTP {answer.status_code} answer is larger than {_size(answer.limit)}; not read to its end"
        )
    if body is _NO_BODY:
        raise ResponseError(f"{what}: HTTP {answer.status_code} answer is not JSON")
    return body


def _size(limit: int) -> str:
    """``4 MiB``, ``1.5 KiB``, ``300 bytes``."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit >= factor:
            return f"{limit / factor:g} {unit}"
    return f"{limit} bytes"


def _parse(model: type[M], body: Any, what: str) -> M:
    """Validate an answer; on failure name the fields and error kinds, never the values."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'body'} ({error['type']})"
            for error in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
    # Raised outside the except block: even with ``from None`` the ValidationError (which holds the input,
    # secret data included) would stay reachable as ``__context__``.
    shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
    raise ResponseError(f"{what}: unexpected answer: {shown}")
