"""Request parsing: secret paths from raw URLs, integer parameters, cursors, write bodies."""

from __future__ import annotations

import pytest

from scaivault_operator._cogs.scaivault._exceptions import InvalidPathError
from scaivault_operator.devvault._errors import ApiError
from scaivault_operator.devvault._parsing import (
    check_secret_path,
    decode_cursor,
    encode_cursor,
    int_param,
    parse_prefix,
    parse_write_request,
    secret_path_from_raw,
)


def _code(call, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(ApiError) as raised:
        call(*args, **kwargs)
    return raised.value.status, raised.value.code


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/v1/secrets/a", "a"),
        ("/v1/secrets/a/b/c", "a/b/c"),
        ("/v1/secrets/a%20b/c", "a b/c"),
        ("/v1/secrets/%C3%A9", "é"),
        ("/v1/secrets/a+b", "a+b"),
        ("/v1/secrets/%2E%2E%2E", "..."),
        ("/v1/secrets/%25", "%"),
    ],
)
def test_secret_path_from_raw(raw, path):
    assert secret_path_from_raw(raw) == path


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("/v1/secrets/", "empty"),
        ("/v1/secrets", "empty"),
        ("/v1/secrets/a%2Fb", "encoded '/'"),
        ("/v1/secrets/a/%2E%2E/b", "'..'"),
        ("/v1/secrets/%2e", "'.'"),
        ("/v1/secrets/a%zz", "malformed percent-escape"),
        ("/v1/secrets/a%", "malformed percent-escape"),
        ("/v1/secrets/%FF", "UTF-8"),
        ("/v1/secrets/%ED%A0%80", "UTF-8"),  # an encoded surrogate is not UTF-8
        ("/v1/secrets/a%7F", "control character"),
        ("/v1/secrets/a//b", "empty segment"),
    ],
)
def test_secret_path_from_raw_rejects(raw, fragment):
    with pytest.raises(ApiError) as raised:
        secret_path_from_raw(raw)
    assert (raised.value.status, raised.value.code) == (400, "invalid_path")
    assert fragment in raised.value.message


def test_check_secret_path_refuses_surrogates():
    with pytest.raises(InvalidPathError):
        check_secret_path("a\ud800")


def test_parse_prefix():
    assert parse_prefix("") == ""
    assert parse_prefix("apps/") == "apps/"
    assert _code(parse_prefix, "a//") == (400, "invalid_path")


@pytest.mark.parametrize(("raw", "value"), [(None, 7), ("1", 1), ("10", 10), ("010", 10)])
def test_int_param_accepts(raw, value):
    params = {} if raw is None else {"n": raw}
    assert int_param(params, "n", default=7, low=1, high=10) == value


@pytest.mark.parametrize("raw", ["0", "11", "-1", "+1", " 1", "1 ", "1.0", "", "x", "\u0661"])
def test_int_param_rejects(raw):
    assert _code(int_param, {"n": raw}, "n", default=None, low=1, high=10) == (400, "invalid_request")


@pytest.mark.parametrize("path", ["a", "apps/web/db", "café/\U0001f600", "x" * 1024])
def test_cursor_round_trip(path):
    cursor = encode_cursor(path)
    assert "=" not in cursor
    assert decode_cursor(cursor) == path


@pytest.mark.parametrize("cursor", ["!", "a", "====", "Y=Q", "_w", "AA"])
def test_garbage_cursor(cursor):
    assert _code(decode_cursor, cursor) == (400, "invalid_cursor")


def test_parse_write_request():
    assert parse_write_request({"data": {}}).secret_type is None
    parsed = parse_write_request({"data": {"k": 1}, "secret_type": "env", "metadata": {"m": 1}, "extra": True})
    assert (parsed.data, parsed.secret_type, parsed.metadata) == ({"k": 1}, "env", {"m": 1})


@pytest.mark.parametrize(
    "body",
    [{}, {"data": None}, {"data": []}, {"data": {}, "secret_type": 1}, {"data": {}, "metadata": [1]}],
)
def test_parse_write_request_rejects(body):
    assert _code(parse_write_request, body) == (400, "invalid_request")
