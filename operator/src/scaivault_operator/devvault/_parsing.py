"""Turning untrusted request parts into checked values, or into a 4xx ``ApiError``.

Owns the secret path taken from the raw URL (strict percent-decoding, then the client's own ``validate_path``),
the query string (strict UTF-8, no repeated parameters), integer parameters, list cursors, bounded bodies,
JSON objects and form bodies. Called by the handlers in ``_app`` and ``_admin``, and by ``DevVault.write``
(``check_secret_path``). Nothing here can raise anything but ``ApiError`` on bad input.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any, overload
from urllib.parse import parse_qsl, unquote_to_bytes

from aiohttp import web

from scaivault_operator._cogs.scaivault._exceptions import InvalidPathError
from scaivault_operator._cogs.scaivault._paths import validate_path, validate_prefix

from ._errors import ApiError

__all__ = [
    "WriteRequest",
    "check_secret_path",
    "decode_cursor",
    "encode_cursor",
    "int_param",
    "parse_prefix",
    "parse_write_request",
    "query_params",
    "read_body",
    "read_form",
    "read_json_object",
    "secret_path_from_raw",
]

SECRETS_ROOT = "/v1/secrets/"
MAX_INT64 = 2**63 - 1
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DIGITS = re.compile(r"^[0-9]{1,19}$")


def _invalid_path(message: str) -> ApiError:
    return ApiError(400, "invalid_path", message)


def _invalid_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def _strict_unquote(text: str, what: str) -> str:
    """Percent-decode ``text``; malformed escapes and invalid UTF-8 raise ``invalid_path``."""
    if _BAD_ESCAPE.search(text):
        raise _invalid_path(f"{what} contains a malformed percent-escape")
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_path(f"{what} is not valid UTF-8 once percent-decoded") from None


def check_secret_path(path: str) -> str:
    """``validate_path`` plus what storage needs (encodable as UTF-8); raises ``InvalidPathError``."""
    validate_path(path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPathError("secret path contains an unpaired surrogate") from None
    return path


def secret_path_from_raw(raw_path: str) -> str:
    """The secret path of a ``/v1/secrets/...`` request, from the still percent-encoded URL path.

    Each ``/``-separated segment is decoded on its own, so ``%2F`` inside a segment is refused rather than
    turned into a separator, and ``%2E%2E`` is refused like ``..``.
    """
    if not raw_path.startswith(SECRETS_ROOT):
        raise _invalid_path("secret path is empty")
    segments = [_strict_unquote(seg, "secret path") for seg in raw_path[len(SECRETS_ROOT) :].split("/")]
    if any("/" in segment for segment in segments):
        raise _invalid_path("a secret path segment contains an encoded '/' (%2F)")
    try:
        return check_secret_path("/".join(segments))
    except InvalidPathError as exc:
        raise _invalid_path(str(exc)) from None


def parse_prefix(prefix: str) -> str:
    try:
        return validate_prefix(prefix)
    except InvalidPathError as exc:
        raise _invalid_path(str(exc)) from None


def query_params(request: web.Request) -> dict[str, str]:
    """The query string as a dict: strict UTF-8, and a parameter given twice is an error."""
    try:
        pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise _invalid_request("the query string is not valid UTF-8 once percent-decoded") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise _invalid_request(f"query parameter '{name}' is given more than once")
        params[name] = value
    return params


@overload
def int_param(params: dict[str, str], name: str, *, default: int, low: int, high: int) -> int: ...
@overload
def int_param(params: dict[str, str], name: str, *, default: None, low: int, high: int) -> int | None: ...
def int_param(params: dict[str, str], name: str, *, default: int | None, low: int, high: int) -> int | None:
    """An integer query parameter in ``low..high`` (decimal digits only), or ``default`` when absent."""
    raw = params.get(name)
    if raw is None:
        return default
    if not _DIGITS.match(raw) or not low <= int(raw) <= high:
        raise _invalid_request(f"'{name}' must be an integer between {low} and {high}")
    return int(raw)


def encode_cursor(last_path: str) -> str:
    """An opaque cursor continuing a list after ``last_path``."""
    return base64.urlsafe_b64encode(last_path.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The path a cursor continues after, or ``invalid_cursor``."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        return check_secret_path(raw.decode("utf-8"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and InvalidPathError are ValueErrors
        raise ApiError(400, "invalid_cursor", "the cursor is not one this server returned") from None


async def read_body(request: web.Request, max_body: int) -> bytes:
    """The request body, or 413 ``payload_too_large`` beyond ``max_body`` bytes."""
    too_large = ApiError(413, "payload_too_large", f"the request body is larger than {max_body} bytes")
    if request.content_length is not None and request.content_length > max_body:
        raise too_large
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(body) > max_body:
        raise too_large
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf, which JSON cannot represent
        raise ValueError("number out of range")
    return value


async def read_json_object(request: web.Request, max_body: int) -> dict[str, Any]:
    """The body as a JSON object: ``invalid_json`` when unparsable, ``invalid_request`` when not an object."""
    body = await read_body(request, max_body)
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise _invalid_request("the request body must be a JSON object")
    return value


async def read_form(request: web.Request, max_body: int) -> dict[str, str]:
    """A form-encoded body (``application/x-www-form-urlencoded``); repeated fields are an error."""
    body = await read_body(request, max_body)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise _invalid_request("the form body is not valid UTF-8") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _invalid_request(f"form field '{name}' is given more than once")
        form[name] = value
    return form


@dataclass(frozen=True)
class WriteRequest:
    """A checked ``PUT /v1/secrets/{path}`` body. ``None`` fields inherit from the previous version."""

    data: dict[str, Any]
    secret_type: str | None
    metadata: dict[str, Any] | None


def _is_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_write_request(body: dict[str, Any]) -> WriteRequest:
    """Check the fields of a write body (the JSON itself was parsed by ``read_json_object``)."""
    data = body.get("data")
    if not isinstance(data, dict):
        raise _invalid_request("'data' is required and must be a JSON object")
    secret_type = body.get("secret_type")
    if secret_type is not None and not _is_text(secret_type):
        raise _invalid_request("'secret_type' must be a string")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _invalid_request("'metadata' must be a JSON object")
    return WriteRequest(data=data, secret_type=secret_type, metadata=metadata)
