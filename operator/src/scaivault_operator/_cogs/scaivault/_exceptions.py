"""The ScaiVault client's exception tree, and the one table (per endpoint) that maps HTTP answers onto it.

    ScaiVaultError                  every error this client raises
    ├── InvalidPathError            a path/prefix rejected before any request was sent (also a ValueError)
    ├── ConfigurationError          the client or its auth was set up wrong (unreadable token file, bad CA)
    ├── ResponseError               the server answered something this client cannot parse
    └── APIError                    the server (or the network to it) refused the request
        ├── BadRequestError         400, 409, 413, 422 and any other 4xx not listed here
        ├── UnauthenticatedError    401 ``authentication_required``: token missing, wrong or expired
        │                           (token endpoint: 400, 401 or 403, the client credentials were refused)
        ├── ForbiddenError          403 ``access_denied``: valid token, scope or policy missing
        ├── NotFoundError           404: no secret at the path, or no such version
        └── TransientError          worth retrying later
            ├── RateLimitedError    429, carries ``retry_after`` (seconds) when the server sent one
            └── UnavailableError    5xx, timeouts and connection errors (``status_code`` is None for these)

Who uses it: ``_client`` translates every httpx error and every non-2xx answer into this tree (non-2xx through
``error_for_status``), and so does ``_auth`` for the OAuth token endpoint — through the same table, nowhere else.
Callers (the operator) catch the classes.

Which server failed: every error carries ``endpoint`` — ``Endpoint.SCAIVAULT`` (the ScaiVault API, the default) or
``Endpoint.TOKEN`` (the OAuth2 token endpoint of ``ClientCredentials``, a different server with a URL of its own).
The class says what went wrong, ``endpoint`` where: a 404 from the token endpoint is a ``NotFoundError`` too, but
it means a wrong token URL, not a missing secret. At the token endpoint 400, 401 and 403 are all an
``UnauthenticatedError`` (RFC 6749 answers a bad client or grant with 400 or 401; either way no token can be had
with these credentials).

Secrets never reach an exception: messages carry the method, the secret *path* (a name, not a value), the status
and the server's short error code and message (truncated). Response bodies, request bodies and tokens are never
included, and pydantic validation errors are reduced to field locations without their input values. The server's
free-text error message is kept out of the exception text altogether (a read cannot know which stored values it
might quote); it is available as ``APIError.server_message`` for interactive debugging — never log it. A server
code quoting a value the client knows to be secret (the token it sent, the client secret, the data of a write)
is withheld (``redact``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from enum import StrEnum
from typing import Any

__all__ = [
    "APIError",
    "BadRequestError",
    "ConfigurationError",
    "Endpoint",
    "ForbiddenError",
    "InvalidPathError",
    "NotFoundError",
    "RateLimitedError",
    "ResponseError",
    "ScaiVaultError",
    "TransientError",
    "UnauthenticatedError",
    "UnavailableError",
    "error_for_status",
]

_MAX_SERVER_MESSAGE = 200
_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class Endpoint(StrEnum):
    """The server an error came from."""

    #: The ScaiVault API (the client's ``base_url``).
    SCAIVAULT = "scaivault"
    #: The OAuth2 token endpoint of ``ClientCredentials`` (its ``token_url``; a connection's
    #: ``spec.auth.clientCredentials.tokenUrl``).
    TOKEN = "token"


class ScaiVaultError(Exception):
    """Base class of every error raised by the ScaiVault client.

    ``endpoint``: which server failed (``Endpoint``); ``Endpoint.SCAIVAULT`` unless the error came from the token
    endpoint.
    """

    endpoint: Endpoint = Endpoint.SCAIVAULT

    def __init__(self, *args: object, endpoint: Endpoint = Endpoint.SCAIVAULT) -> None:
        super().__init__(*args)
        self.endpoint = endpoint


class InvalidPathError(ScaiVaultError, ValueError):
    """A secret path or list prefix that the client refuses to send."""


class ConfigurationError(ScaiVaultError):
    """The client or its token provider is configured wrong (e.g. an unreadable token file)."""


class ResponseError(ScaiVaultError):
    """The server's answer could not be understood: not JSON, or missing/mistyped fields."""


class APIError(ScaiVaultError):
    """The request was answered with an error status, or could not reach the server at all."""

    #: The HTTP status, or None when no answer arrived (timeouts, connection errors).
    status_code: int | None
    #: The server's machine-readable error code (e.g. ``access_denied``), when it sent one.
    code: str | None
    #: The server's free-text message (clipped). Not part of ``str(error)``: it could quote anything. Never log it.
    server_message: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        endpoint: Endpoint = Endpoint.SCAIVAULT,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status_code = status_code
        self.code = code


class BadRequestError(APIError):
    """The server rejected the request as malformed (4xx other than 401/403/404/429)."""


class UnauthenticatedError(APIError):
    """401: the token is missing, wrong or expired. From the token endpoint (``endpoint`` is ``Endpoint.TOKEN``):
    400, 401 or 403, the client credentials were refused."""


class ForbiddenError(APIError):
    """403: the token is valid but lacks the scope (or access) the call needs."""


class NotFoundError(APIError):
    """404: no secret at the path, or the requested version does not exist."""


class TransientError(APIError):
    """A failure that may go away by itself; reads are retried on these."""


class RateLimitedError(TransientError):
    """429: too many requests. ``retry_after`` is the server's hint in seconds, if any."""

    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 429,
        code: str | None = None,
        retry_after: float | None = None,
        endpoint: Endpoint = Endpoint.SCAIVAULT,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, endpoint=endpoint)
        self.retry_after = retry_after


class UnavailableError(TransientError):
    """5xx, a timeout or a connection failure."""


#: The status → class table. Anything 4xx not listed is a BadRequestError, anything 5xx an UnavailableError.
STATUS_TO_ERROR: dict[int, type[APIError]] = {
    401: UnauthenticatedError,
    403: ForbiddenError,
    404: NotFoundError,
    429: RateLimitedError,
}
#: The same for the OAuth2 token endpoint: a refused client or grant (RFC 6749 section 5.2: 400 ``invalid_client``,
#: ``invalid_grant``, ``unauthorized_client``...; 401 ``invalid_client``; 403 from servers and proxies that refuse
#: the client) all mean that these credentials get no token.
TOKEN_STATUS_TO_ERROR: dict[int, type[APIError]] = {
    **STATUS_TO_ERROR,
    400: UnauthenticatedError,
    403: UnauthenticatedError,
}
_TABLES: dict[Endpoint, dict[int, type[APIError]]] = {
    Endpoint.SCAIVAULT: STATUS_TO_ERROR,
    Endpoint.TOKEN: TOKEN_STATUS_TO_ERROR,
}


def parse_retry_after(value: str | None) -> float | None:
    """Read a ``Retry-After`` header given in seconds; HTTP dates and garbage give None."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative, infinite
        return None
    return seconds


def extract_error_code(body: Any) -> tuple[str | None, str | None]:
    """Pull ``(code, message)`` out of an error body of any of the shapes servers commonly use.

    Accepted: ``{"error": "code", "message": "..."}`` (what the local server sends),
    ``{"error": {"code": "...", "message": "..."}}``, ``{"code": "...", "message": "..."}`` and
    ``{"detail": "..."}``. Anything else yields ``(None, None)``: the status code alone decides the class.
    """
    code, message = _raw_code_and_message(body)
    clean_code = code if isinstance(code, str) and _CODE_RE.match(code) else None
    clean_message = _clip(message) if isinstance(message, str) else None
    return clean_code, clean_message


def _raw_code_and_message(body: Any) -> tuple[Any, Any]:
    if not isinstance(body, dict):
        return None, None
    err = body.get("error")
    code: Any = None
    message: Any = body.get("message") or body.get("detail")
    if isinstance(err, dict):
        code = err.get("code") or err.get("type")
        message = err.get("message") or message
    elif isinstance(err, str):
        code = err
    else:
        code = body.get("code")
    return code, message


def _quotes(text: Any, redact: Collection[str]) -> bool:
    return isinstance(text, str) and any(secret and secret in text for secret in redact)


def _clip(text: str) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    if len(text) > _MAX_SERVER_MESSAGE:
        text = text[: _MAX_SERVER_MESSAGE - 1] + "…"
    return text


def error_for_status(
    status_code: int,
    *,
    what: str,
    body: Any = None,
    retry_after: str | None = None,
    redact: Collection[str] = (),
    endpoint: Endpoint = Endpoint.SCAIVAULT,
) -> APIError:
    """Build the exception for a non-2xx answer. ``what`` names the call, e.g. ``GET secret 'a/b'``.

    ``redact``: values the caller knows to be secret; a server code or message quoting one is left out.
    ``endpoint``: the server that answered; it picks the status table and is carried by the error.
    """
    code, server_message = extract_error_code(body)
    raw_code, raw_message = _raw_code_and_message(body)
    if _quotes(raw_code, redact):
        code = None
    if _quotes(raw_message, redact):
        server_message = "server message withheld: it quoted a credential or secret value"
    detail = f"{what}: HTTP {status_code}"
    if code:
        detail += f" {code}"
    cls = _TABLES[endpoint].get(status_code)
    error: APIError
    if cls is RateLimitedError or status_code == 429:
        seconds = parse_retry_after(retry_after)
        if seconds is not None:
            detail += f"; retry after {seconds:g}s"
        error = RateLimitedError(detail, status_code=status_code, code=code, retry_after=seconds, endpoint=endpoint)
    else:
        if cls is None:
            cls = UnavailableError if status_code >= 500 else BadRequestError
        error = cls(detail, status_code=status_code, code=code, endpoint=endpoint)
    error.server_message = server_message
    return error
