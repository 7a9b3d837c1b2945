"""The HTTP transport beneath the operator's httpx clients: aiohttp's connection pool and HTTP parser.

Owned here: sending an ``httpx.Request`` through an ``aiohttp.ClientSession`` and handing back an ``httpx.Response``
whose body streams from aiohttp's, and the translation of aiohttp's errors into httpx's — only here, so ``kube`` and
``scaivault`` go on translating httpx errors into their own exactly as before. Everything above the wire stays
httpx's: auth flows, redirects (none), timeouts (read from the request), decoding of ``Content-Encoding`` (aiohttp's
own decompression is off), ``httpx.MockTransport`` as the unit tests' seam. Used by ``kube.Kube`` (lightkube's
client and the plain one) and ``scaivault.ScaiVaultClient`` unless a test gives another transport.

Why: httpx's default transport (httpcore on anyio) took ~2.0 ms of CPU per request on a 2-core VM, the same
requests through aiohttp ~0.7 ms (docs/performance.md), and a cold sync is three requests per VaultSecret. aiohttp
is in the process anyway: Kopf talks to the API server with it.

Error messages are our words or the operating system's — never a header (the bearer token) or a line of an answer.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import yarl
from multidict import CIMultiDict

__all__ = ["AiohttpTransport"]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (opened at the first request, on the running loop) with at most ``limit`` connections.
    ``ssl``: an ``SSLContext`` (CA and client certificate), True for the system's CAs, False for no verification.
    ``trust_env``: the proxies of ``HTTP(S)_PROXY`` / ``NO_PROXY``, as httpx's own transport used them."""

    def __init__(self, *, ssl: ssl.SSLContext | bool = True, limit: int = 100, trust_env: bool = True) -> None:
        self._ssl = ssl
        self._limit = limit
        # Read once, as httpx does when its client is made. Not aiohttp's own trust_env: that also reads ~/.netrc,
        # in a thread, for every request, and would put its credentials on requests that carry no Authorization.
        found = urllib.request.getproxies() if trust_env else {}
        self._proxies = {scheme: url for scheme, url in found.items() if scheme in ("http", "https")}
        self._bypass = {"no": found["no"]} if "no" in found else {}
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __deepcopy__(self, memo: dict[int, Any]) -> AiohttpTransport:
        # lightkube copies its connection parameters (``dataclasses.asdict``), transport included: a pool of
        # connections is shared, never copied (an SSLContext cannot be copied either).
        return self

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the HTTP transport was closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl),
                auto_decompress=False,  # httpx decodes, from the Content-Encoding header it is given
                cookie_jar=aiohttp.DummyCookieJar(),  # no cookies: neither API sets any that matter
                trust_env=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        limits: dict[str, float | None] = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(total=None, connect=limits.get("pool"), sock_connect=limits.get("connect"),
                                        sock_read=limits.get("read"))  # fmt: skip
        body = await request.aread()
        headers = CIMultiDict((key.decode("latin-1"), value.decode("latin-1")) for key, value in request.headers.raw)
        try:
            response = await session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # httpx quoted it already: sent as it is
                headers=headers,
                data=body or None,
                timeout=timeout,
                allow_redirects=False,
                proxy=self._proxy(request.url) if self._proxies else None,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode("latin-1")},
        )

    def _proxy(self, url: httpx.URL) -> str | None:
        """The proxy of ``HTTP_PROXY`` / ``HTTPS_PROXY`` for ``url``, unless ``NO_PROXY`` exempts its host."""
        proxy = self._proxies.get(url.scheme)
        if proxy is None or urllib.request.proxy_bypass_environment(url.host, self._bypass):  # type: ignore[attr-defined]
            return None
        return proxy

    async def aclose(self) -> None:
        """Close the session; again is a no-op (lightkube's client and the plain one share a transport)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _Body(httpx.AsyncByteStream):
    """An aiohttp response body as httpx reads it: chunks as they arrive; closing a body read to its end gives the
    connection back to the pool, closing one cut short (a watch) closes the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc, self._request) from exc

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


def _translate(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx error a failure of aiohttp's stands for — the class httpx's own transport raises in the same case —
    with a message of our own words or the operating system's (never a line of the answer, which may hold data)."""
    cls: Any
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        cls, message = httpx.ConnectTimeout, "timed out connecting"
    elif isinstance(exc, TimeoutError | asyncio.TimeoutError):  # aiohttp's socket and server timeouts are ones
        cls, message = httpx.ReadTimeout, "timed out reading"
    elif isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake and certificate failures
        cls, message = httpx.ConnectError, str(exc)
    elif isinstance(exc, aiohttp.ClientPayloadError) and "ConnectionResetError" in str(exc):
        cls, message = httpx.ReadError, "Connection reset by peer"
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        cls, message = httpx.RemoteProtocolError, "the server closed the connection before the answer was complete"
    elif isinstance(exc, aiohttp.ClientResponseError):  # a malformed status line, header or chunk
        cls, message = httpx.RemoteProtocolError, "a malformed answer"
    elif isinstance(exc, aiohttp.InvalidURL):
        cls, message = httpx.UnsupportedProtocol, "not a URL aiohttp can send to"
    elif isinstance(exc, OSError) and exc.strerror:  # aiohttp.ClientOSError: a reset connection, ...
        cls, message = httpx.ReadError, exc.strerror
    else:
        cls, message = httpx.ReadError, type(exc).__name__
    error: httpx.TransportError = cls(message, request=request)
    return error
