"""The dev vault's error answers: one exception type and one builder for every JSON error body.

Every error the server sends is ``{"error": "<code>", "message": "<human text>"}`` built by ``json_error``.
Handlers and parsers raise ``ApiError``; the error middleware in ``_app`` turns it (and aiohttp's own
``HTTPException``s, and anything unexpected) into a response. Messages name paths, scopes and limits, never a
secret value or a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

__all__ = ["ApiError", "json_error", "unauthenticated"]


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    """Build the JSON error response ``{"error": code, "message": message, **extra}``."""
    body: dict[str, Any] = {"error": code, "message": message}
    if extra:
        body.update(extra)
    return web.json_response(body, status=status, headers=dict(headers) if headers else None)


class ApiError(Exception):
    """An error answer, raised anywhere below a handler and rendered by the error middleware."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers) if headers else {}
        self.extra = dict(extra) if extra else {}

    def response(self) -> web.Response:
        return json_error(self.status, self.code, self.message, headers=self.headers, extra=self.extra)


def unauthenticated(code: str, message: str) -> ApiError:
    """A 401 for a bearer-token API call (``authentication_required`` or ``token_expired``)."""
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})
