"""The aiohttp application: the ScaiVault API handlers, the token endpoint and the middleware chain.

Owns routing, authentication of bearer tokens and the scope check (``_SecretsApi._authorize``, the only place
scopes are checked), the answer shapes of the quickstart, and four middlewares, outermost first:

1. ``access log``: one line per request (method, path, route, status, duration). The query keeps only
   ``prefix``, ``limit``, ``cursor`` and ``version`` values; headers and bodies are never logged.
2. ``stats``: counts ``/v1`` and ``/oauth`` answers in ``DevVaultStats``.
3. ``errors``: turns ``ApiError``, aiohttp's ``HTTPException`` (404, 405, 413) and any unexpected exception
   (500 ``internal_error``, logged without its message) into the JSON error shape.
4. ``faults``: for ``/v1`` requests of the faulted call kinds (``FaultInjector``): the expiry countdown, latency,
   injected errors, and ``body_fault`` on the handler's successful answer (a reset connection, truncated or
   malformed JSON, a 20 MiB body, a wrong content type, an HTML page). ``expire_tokens`` acts in ``_authorize``
   and ``list_version_lag`` in the list handler.

Built by ``DevVault.app()`` from a ``Services`` bundle; ``POST /oauth/token`` comes from ``_oauth``, the
``/_dev`` routes from ``_admin``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import traceback
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ._admin import AdminApi
from ._auth import AuthenticationError, Authenticator, Identity
from ._errors import ApiError, json_error, unauthenticated
from ._faults import HUGE_BODY_BYTES, FaultInjector
from ._oauth import TokenApi
from ._parsing import (
    MAX_INT64,
    decode_cursor,
    encode_cursor,
    int_param,
    parse_prefix,
    parse_write_request,
    query_params,
    read_json_object,
    secret_path_from_raw,
)
from ._stats import CALL_KINDS, DevVaultStats
from ._store import SecretNotFoundError, SecretStore, StoredVersion, VersionNotFoundError
from ._time import Clock, rfc3339

__all__ = ["Services", "build_app"]

logger = logging.getLogger("scaivault_operator.devvault")
access_logger = logging.getLogger("scaivault_operator.devvault.access")

READ_SCOPE = "secrets:read"
WRITE_SCOPE = "secrets:write"
TENANT_ID = "tnt_dev"
PARTNER_ID = "ptn_dev"

_HTTP_ERROR_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}
# Any path below /v1/secrets/, newlines included (``.`` would miss them and answer 404 instead of 400).
_SECRET_ROUTE = r"/v1/secrets/{path:[\s\S]*}"
_LOGGED_QUERY_PARAMS = frozenset({"prefix", "limit", "cursor", "version"})


@dataclass(frozen=True)
class Services:
    """Everything the handlers use; owned by ``DevVault``."""

    store: SecretStore
    auth: Authenticator
    faults: FaultInjector
    stats: DevVaultStats
    clock: Clock
    max_body: int
    list_default_limit: int
    list_max_limit: int


# -- handlers ------------------------------------------------------------------------------------------


def _secret_json(stored: StoredVersion) -> dict[str, Any]:
    return {
        "path": stored.path,
        "secret_type": stored.secret_type,
        "version": stored.version,
        "data": stored.data,
        "metadata": stored.metadata,
        "created_at": rfc3339(stored.created_at),
        "updated_at": rfc3339(stored.updated_at),
    }


def _write_json(stored: StoredVersion) -> tuple[int, dict[str, Any]]:
    if stored.version == 1:
        return 201, {
            "path": stored.path,
            "secret_type": stored.secret_type,
            "version": 1,
            "created": True,
            "created_at": rfc3339(stored.created_at),
        }
    return 200, {
        "path": stored.path,
        "version": stored.version,
        "created": False,
        "previous_version": stored.version - 1,
        "updated_at": rfc3339(stored.updated_at),
    }


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class _SecretsApi:
    """``/v1/auth/whoami`` and ``/v1/secrets``."""

    def __init__(self, services: Services) -> None:
        self._s = services

    def _authorize(self, request: web.Request, scope: str | None) -> Identity:
        """The caller's identity, or 401; 403 when ``scope`` is given and the token lacks it."""
        token = _bearer_token(request)
        if token is None:
            raise unauthenticated("authentication_required", "send a token as 'Authorization: Bearer <token>'")
        if self._s.faults.config.expire_tokens and self._s.faults.applies(request.match_info.route.name):
            self._s.stats.record_injected("expire_tokens")
            raise unauthenticated("token_expired", "the bearer token has expired (injected fault)")
        try:
            identity = self._s.auth.identify(token)
        except AuthenticationError as exc:
            raise unauthenticated(exc.code, exc.message) from None
        if scope is not None and scope not in identity.scopes:
            raise ApiError(403, "access_denied", f"the token lacks the scope '{scope}'")
        return identity

    async def whoami(self, request: web.Request) -> web.Response:
        identity = self._authorize(request, None)
        return web.json_response(
            {
                "identity_id": identity.identity_id,
                "identity_type": identity.identity_type,
                "tenant_id": TENANT_ID,
                "partner_id": PARTNER_ID,
                "scopes": sorted(identity.scopes),
            }
        )

    async def read_secret(self, request: web.Request) -> web.Response:
        self._authorize(request, READ_SCOPE)
        path = secret_path_from_raw(request.rel_url.raw_path)
        version = int_param(query_params(request), "version", default=None, low=1, high=MAX_INT64)
        try:
            stored = self._s.store.get(path, version)
        except SecretNotFoundError:
            raise ApiError(404, "not_found", f"no secret at path '{path}'") from None
        except VersionNotFoundError:
            raise ApiError(404, "version_not_found", f"secret '{path}' has no version {version}") from None
        self._s.stats.record_read(path, stored.version)
        return web.json_response(_secret_json(stored))

    async def list_secrets(self, request: web.Request) -> web.Response:
        self._authorize(request, READ_SCOPE)
        params = query_params(request)
        prefix = parse_prefix(params.get("prefix", ""))
        limit = int_param(params, "limit", default=self._s.list_default_limit, low=1, high=self._s.list_max_limit)
        cursor = params.get("cursor")
        after = decode_cursor(cursor) if cursor else None
        heads = self._s.store.list_after(prefix, after, limit + 1)
        has_more = len(heads) > limit
        heads = heads[:limit]
        lag = self._s.faults.config.list_version_lag if self._s.faults.applies("list") else 0
        if lag:
            self._s.stats.record_injected("list_version_lag")
        items = [
            {
                "path": head.path,
                "secret_type": head.secret_type,
                "version": max(1, head.version - lag),
                "updated_at": rfc3339(head.updated_at),
                "tags": list(head.tags),
            }
            for head in heads
        ]
        next_cursor = encode_cursor(heads[-1].path) if has_more else None
        return web.json_response({"secrets": items, "cursor": next_cursor, "has_more": has_more})

    async def write_secret(self, request: web.Request) -> web.Response:
        self._authorize(request, WRITE_SCOPE)
        path = secret_path_from_raw(request.rel_url.raw_path)
        write = parse_write_request(await read_json_object(request, self._s.max_body))
        try:
            stored = self._s.store.put(
                path,
                write.data,
                secret_type=write.secret_type,
                metadata=write.metadata,
                now=int(self._s.clock()),
            )
        except (ValueError, RecursionError):
            raise ApiError(400, "invalid_request", "the secret cannot be stored as JSON") from None
        status, body = _write_json(stored)
        return web.json_response(body, status=status)


# -- middlewares ---------------------------------------------------------------------------------------


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "-"


def _loggable_target(request: web.Request) -> str:
    """The raw path, and the query with values of unexpected parameters (tokens, say) redacted."""
    target = request.rel_url.raw_path
    query = request.rel_url.raw_query_string
    if not query:
        return target
    items = []
    for item in query.split("&"):
        name = item.partition("=")[0]
        items.append(item if name in _LOGGED_QUERY_PARAMS else f"{name}=<redacted>")
    return f"{target}?{'&'.join(items)}"


@web.middleware
async def _access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = "cancelled"
    try:
        response = await handler(request)
        status = str(response.status)
        return response
    finally:
        access_logger.info(
            "%s %s route=%s status=%s duration_ms=%.1f",
            request.method,
            _loggable_target(request),
            _route_template(request),
            status,
            (time.perf_counter() - started) * 1000,
        )


def _http_exception_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = _HTTP_ERROR_CODES.get(exc.status, "http_error")
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    if exc.status == 404:
        message = f"no endpoint at {request.rel_url.raw_path}"
    elif exc.status == 405:
        message = f"method {request.method} is not allowed here (allowed: {exc.headers.get('Allow', '')})"
    else:
        message = exc.reason
    return json_error(exc.status, code, message, headers=headers)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_exception_response(request, exc)
    except Exception as exc:
        # The exception's message might quote request data: log its type and stack only.
        logger.error(
            "internal error in %s %s: %s\n%s",
            request.method,
            _route_template(request),
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return json_error(500, "internal_error", "internal server error")


def _stats_middleware(services: Services) -> Middleware:
    @web.middleware
    async def stats(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        path = request.rel_url.raw_path
        if path.startswith(("/v1/", "/oauth/")):
            name = request.match_info.route.name
            services.stats.record_request(name if name in CALL_KINDS else None, response.status)
        return response

    return stats


_SIGN_IN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
    b"<body><h1>Sign in to continue</h1><p>(injected fault)</p></body></html>\n"
)


def _spoiled(response: web.Response, mode: str) -> web.Response:
    """``response`` (a successful JSON answer) spoiled by ``body_fault`` ``mode`` (every mode but ``reset``)."""
    body = bytes(response.body) if isinstance(response.body, bytes | bytearray) else b""
    status = response.status
    if mode == "truncate":
        return web.Response(status=status, body=body[: len(body) // 2], content_type="application/json")
    if mode == "malformed":
        stripped = body.rstrip()
        spoiled = stripped[:-1] + b",}" if stripped.endswith(b"}") else stripped + b","
        return web.Response(status=status, body=spoiled, content_type="application/json")
    if mode == "huge":
        inner = body.strip()[1:-1].strip()
        head, tail = b'{"padding": "', b'"' + (b", " + inner if inner else b"") + b"}"
        padding = b"x" * max(0, HUGE_BODY_BYTES - len(head) - len(tail))
        return web.Response(status=status, body=head + padding + tail, content_type="application/json")
    if mode == "content_type":
        return web.Response(status=status, body=body, headers={"Content-Type": "text/html; charset=utf-8"})
    return web.Response(status=200, body=_SIGN_IN_PAGE, content_type="text/html")  # "html"


async def _reset_mid_body(request: web.Request, response: web.Response) -> web.StreamResponse:
    """Send the status, the headers (full ``Content-Length``) and half of the body, then reset the connection."""
    body = bytes(response.body) if isinstance(response.body, bytes | bytearray) else b""
    stream = web.StreamResponse(status=response.status, headers={"Content-Type": "application/json"})
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    transport = request.transport
    if transport is not None:
        for _ in range(100):  # let the half body reach the socket before the reset discards the buffer
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        transport.abort()
    return stream


def _fault_middleware(services: Services) -> Middleware:
    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        injector = services.faults
        if not request.rel_url.raw_path.startswith("/v1/") or not injector.applies(request.match_info.route.name):
            return await handler(request)
        if injector.take_expiry():
            services.auth.expire_issued()
            services.stats.record_injected("expire_issued")
        latency = injector.config.latency
        if latency > 0:
            services.stats.record_injected("latency")
            await asyncio.sleep(latency)
        fault = injector.next_fault()
        if fault is not None:
            services.stats.record_injected(str(fault.status))
            return json_error(fault.status, fault.code, fault.message, headers=fault.headers)
        response = await handler(request)
        mode = injector.config.body_fault
        if mode is None or not isinstance(response, web.Response) or not 200 <= response.status < 300:
            return response
        services.stats.record_injected(mode)
        if mode == "reset":
            return await _reset_mid_body(request, response)
        return _spoiled(response, mode)

    return faults


# -- assembly ------------------------------------------------------------------------------------------


def build_app(services: Services) -> web.Application:
    """The complete application: API, token endpoint, ``/_dev`` admin routes and middlewares."""
    app = web.Application(
        middlewares=[
            _access_log,
            _stats_middleware(services),
            _errors,
            _fault_middleware(services),
        ],
        client_max_size=services.max_body,
    )
    secrets_api = _SecretsApi(services)
    token_api = TokenApi(services.auth, services.max_body)
    app.router.add_get("/v1/auth/whoami", secrets_api.whoami, name="whoami", allow_head=False)
    app.router.add_get("/v1/secrets", secrets_api.list_secrets, name="list", allow_head=False)
    app.router.add_get(_SECRET_ROUTE, secrets_api.read_secret, name="read", allow_head=False)
    app.router.add_put(_SECRET_ROUTE, secrets_api.write_secret, name="write")
    app.router.add_post("/oauth/token", token_api.token, name="token")
    AdminApi(services.faults, services.stats, services.auth, services.store, services.max_body).register(app.router)
    return app
