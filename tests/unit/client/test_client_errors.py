"""Non-2xx answers and transport failures map onto the exception tree; the status decides the class, not the body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from client_helpers import CALLS, NO_RETRY, TOKEN, ClientFactory, json_response

from scaivault_operator._cogs.scaivault import (
    APIError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ScaiVaultError,
    TransientError,
    UnauthenticatedError,
    UnavailableError,
)
from scaivault_operator._cogs.scaivault._exceptions import error_for_status, extract_error_code, parse_retry_after

#: What ``APIError.server_message`` holds when the server's message quoted a value the client knows to be secret.
WITHHELD = "server message withheld: it quoted a credential or secret value"

STATUS_TABLE: list[tuple[int, type[APIError]]] = [
    (400, BadRequestError),
    (409, BadRequestError),
    (413, BadRequestError),
    (418, BadRequestError),
    (422, BadRequestError),
    (401, UnauthenticatedError),
    (403, ForbiddenError),
    (404, NotFoundError),
    (429, RateLimitedError),
    (500, UnavailableError),
    (502, UnavailableError),
    (503, UnavailableError),
    (504, UnavailableError),
]

#: (name, body as bytes, content type, expected code, expected server message or None)
ERROR_BODIES: list[tuple[str, bytes, str, str | None, str | None]] = [
    ("flat", b'{"error": "flat_code", "message": "flat message"}', "application/json", "flat_code", "flat message"),
    (
        "nested",
        b'{"error": {"code": "nested_code", "message": "nested message"}}',
        "application/json",
        "nested_code",
        "nested message",
    ),
    ("code-only", b'{"code": "bare_code", "message": "bare message"}', "application/json", "bare_code", "bare message"),
    ("detail", b'{"detail": "detail message"}', "application/json", None, "detail message"),
    ("not-json", b"upstream exploded", "text/plain", None, None),
    ("html", b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html", None, None),
    ("empty", b"", "text/plain", None, None),
    ("json-array", b'["error", "x"]', "application/json", None, None),
    ("error-not-a-code", b'{"error": "has spaces in it", "message": "m"}', "application/json", None, "m"),
]


async def _error_of(make_client: ClientFactory, response: httpx.Response, call: str = "read") -> ScaiVaultError:
    client, requests = make_client(lambda request: response, retry=NO_RETRY)
    with pytest.raises(ScaiVaultError) as info:
        await CALLS[call](client)
    assert len(requests) == 1
    return info.value


@pytest.mark.parametrize(("status", "cls"), STATUS_TABLE)
@pytest.mark.parametrize("call", list(CALLS))
async def test_status_decides_the_class(
    make_client: ClientFactory, status: int, cls: type[APIError], call: str
) -> None:
    error = await _error_of(make_client, json_response(status, {"error": "some_code", "message": "m"}), call)
    assert type(error) is cls
    assert isinstance(error, APIError)
    assert error.status_code == status
    assert error.code == "some_code"
    assert f"HTTP {status}" in str(error)


@pytest.mark.parametrize(("status", "cls"), STATUS_TABLE)
@pytest.mark.parametrize(
    ("name", "content", "ctype", "code", "message"), ERROR_BODIES, ids=[b[0] for b in ERROR_BODIES]
)
async def test_every_error_body_shape(
    make_client: ClientFactory,
    status: int,
    cls: type[APIError],
    name: str,
    content: bytes,
    ctype: str,
    code: str | None,
    message: str | None,
) -> None:
    response = httpx.Response(status, content=content, headers={"Content-Type": ctype})
    error = await _error_of(make_client, response)
    assert type(error) is cls
    assert isinstance(error, APIError)
    assert error.status_code == status
    assert error.code == code
    text = str(error)
    assert text.startswith("GET secret 'a/b': HTTP ")
    assert error.server_message == message
    if message is not None:
        assert message not in text
    if name == "html":
        assert "<html>" not in text
        assert "Bad Gateway" not in text
    if name == "not-json":
        assert "exploded" not in text


def test_transient_classes() -> None:
    assert issubclass(RateLimitedError, TransientError)
    assert issubclass(UnavailableError, TransientError)
    for cls in (BadRequestError, UnauthenticatedError, ForbiddenError, NotFoundError):
        assert not issubclass(cls, TransientError)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("5", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 7 ", 7.0),
        (None, None),
        ("soon", None),
        ("", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("1e999", None),
    ],
)
async def test_429_retry_after(make_client: ClientFactory, header: str | None, expected: float | None) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    error = await _error_of(make_client, json_response(429, {"error": "rate_limited"}, headers))
    assert isinstance(error, RateLimitedError)
    assert error.status_code == 429
    assert error.code == "rate_limited"
    assert error.retry_after == expected
    if expected is not None:
        assert f"retry after {expected:g}s" in str(error)
    else:
        assert "retry after" not in str(error)


@pytest.mark.parametrize(("header", "expected"), [("12", 12.0), ("0.25", 0.25), ("x", None), (None, None)])
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": "access_denied", "message": "no scope"}, ("access_denied", "no scope")),
        ({"error": {"code": "not_found", "message": "gone"}}, ("not_found", "gone")),
        ({"error": {"type": "typed_code"}}, ("typed_code", None)),
        ({"code": "c1", "message": "m1"}, ("c1", "m1")),
        ({"detail": "only detail"}, (None, "only detail")),
        ({"detail": [{"loc": ["body"], "msg": "x"}]}, (None, None)),
        ({"error": 42}, (None, None)),
        ({"error": "bad code!"}, (None, None)),
        ({"message": 5}, (None, None)),
        ([], (None, None)),
        ("text", (None, None)),
        (None, (None, None)),
    ],
)
def test_extract_error_code(body: Any, expected: tuple[str | None, str | None]) -> None:
    assert extract_error_code(body) == expected


def test_server_message_is_clipped_and_sanitised() -> None:
    code, message = extract_error_code({"error": "e", "message": "line1\nline2\x00" + "x" * 500})
    assert code == "e"
    assert message is not None
    assert len(message) == 200
    assert message.endswith("…")
    assert "\n" not in message
    assert "\x00" not in message


def test_error_for_status_unknown_statuses() -> None:
    assert type(error_for_status(599, what="w")) is UnavailableError
    assert type(error_for_status(451, what="w")) is BadRequestError


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.RemoteProtocolError("server hung up"),
        httpx.ReadError("connection reset"),
    ],
    ids=lambda exc: type(exc).__name__,
)
@pytest.mark.parametrize("call", list(CALLS))
async def test_transport_errors_are_unavailable(make_client: ClientFactory, exc: httpx.HTTPError, call: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client, requests = make_client(handler, retry=NO_RETRY)
    with pytest.raises(UnavailableError) as info:
        await CALLS[call](client)
    assert len(requests) == 1
    assert info.value.status_code is None
    assert info.value.code is None
    assert type(exc).__name__ in str(info.value) or "timed out" in str(info.value)


# -- what the server quotes back ---------------------------------------------------------------------------------


async def test_message_quoting_the_token_is_withheld(make_client: ClientFactory) -> None:
    body = {"error": "invalid_token", "message": f"token {TOKEN} is not valid"}
    error = await _error_of(make_client, json_response(401, body), "whoami")
    assert isinstance(error, UnauthenticatedError)
    assert error.code == "invalid_token"
    assert error.server_message == WITHHELD
    assert TOKEN not in str(error)
    assert TOKEN not in error.server_message
    assert "withheld" not in str(error)


async def test_code_quoting_the_token_is_dropped(make_client: ClientFactory) -> None:
    error = await _error_of(make_client, json_response(401, {"error": TOKEN, "message": "nope"}), "whoami")
    assert isinstance(error, UnauthenticatedError)
    assert error.code is None
    assert TOKEN not in str(error)
    assert error.server_message == "nope"
    assert "nope" not in str(error)


def _leaf_values(value: Any) -> list[str]:
    """The values (not keys) inside a secret's data, as text."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaf_values(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaf_values(item)]
    return [str(value)]


@pytest.mark.parametrize(
    ("data", "message", "withheld"),
    [
        ({"password": "hunter2-long"}, "value 'hunter2-long' is too weak", True),
        ({"nested": {"list": ["in-a-list-value"]}}, "cannot store in-a-list-value", True),
        ({"pin": 123456}, "pin 123456 rejected", True),
        ({"password": "hunter2-long"}, "x" * 195 + "hunter2-long", True),  # would be clipped to a prefix
        ({"flag": "w"}, "the token lacks the scope 'secrets:write'", False),  # too short to look for
        ({"password": "hunter2-long"}, "payload too large", False),
    ],
)
async def test_write_error_quoting_the_data(
    make_client: ClientFactory, data: dict[str, Any], message: str, withheld: bool
) -> None:
    client, _ = make_client(lambda request: json_response(422, {"error": "invalid", "message": message}))
    with pytest.raises(BadRequestError) as info:
        await client.write("a/b", data)
    text = str(info.value)
    server_message = info.value.server_message
    assert server_message is not None
    assert info.value.code == "invalid"
    assert "withheld" not in text
    assert (server_message == WITHHELD) == withheld
    assert (message[:150] in server_message) != withheld
    assert message[:150] not in text
    if withheld:
        for value in _leaf_values(data):
            assert value not in text
            assert value not in server_message


def test_error_for_status_redact() -> None:
    body = {"error": "bad", "message": "a long message quoting s3cr3t-token"}
    plain = error_for_status(400, what="w", body=body)
    assert plain.server_message is not None
    assert "s3cr3t-token" in plain.server_message
    assert "s3cr3t-token" not in str(plain)
    redacted = error_for_status(400, what="w", body=body, redact=["s3cr3t-token", ""])
    assert redacted.server_message == WITHHELD
    assert "s3cr3t" not in str(redacted)
    assert "s3cr3t" not in redacted.server_message
    assert redacted.code == "bad"
    empty_redact = error_for_status(400, what="w", body=body, redact=[""])
    assert empty_redact.server_message is not None
    assert "a long message" in empty_redact.server_message
    assert "a long message" not in str(empty_redact)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
@pytest.mark.parametrize("call", list(CALLS))
async def test_server_message_never_in_the_text(make_client: ClientFactory, status: int, call: str) -> None:
    message = "server said: stored value s3cr3t-stored-value cannot be used"
    body = {"error": "some_code", "message": message}
    error = await _error_of(make_client, json_response(status, body, {"Retry-After": "1"}), call)
    assert isinstance(error, APIError)
    assert error.status_code == status
    assert error.code == "some_code"
    assert error.server_message == message
    for text in (str(error), repr(error), repr(error.args)):
        assert "some_code" in text
        assert "s3cr3t-stored-value" not in text
        assert "server said" not in text
    direct = error_for_status(status, what="w", body=body, retry_after="1")
    assert direct.server_message == message
    assert "s3cr3t-stored-value" not in str(direct)
    assert "some_code" in str(direct)
