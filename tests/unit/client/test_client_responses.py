"""Malformed 2xx answers become ``ResponseError``; arbitrary JSON never escapes as anything but a ScaiVaultError."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from client_helpers import (
    BASE_URL,
    CALLS,
    IDENTITY_BODY,
    NO_RETRY,
    TOKEN,
    VALID_BODIES,
    WRITE_BODY,
    ClientFactory,
    json_response,
    secret_body,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from scaivault_operator._cogs.scaivault import (
    Identity,
    ResponseError,
    ScaiVaultClient,
    ScaiVaultError,
    Secret,
    SecretPage,
    StaticToken,
    WriteResult,
)

RESULT_TYPES: dict[str, type[BaseModel]] = {
    "whoami": Identity,
    "read": Secret,
    "read-version": Secret,
    "list": SecretPage,
    "write": WriteResult,
}


def _with(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    result = dict(body)
    for key, value in changes.items():
        if value is _DROP:
            result.pop(key, None)
        else:
            result[key] = value
    return result


_DROP = object()

MALFORMED: list[tuple[str, str, Any]] = [
    # (call, case id, body: bytes are sent raw, anything else JSON-encoded)
    *[(call, "not-json", b"<html>ok</html>") for call in CALLS],
    *[(call, "empty", b"") for call in CALLS],
    *[(call, "truncated-json", b'{"path": "a/b", "vers') for call in CALLS],
    *[(call, "array", [VALID_BODIES[call]]) for call in CALLS],
    *[(call, "null", None) for call in CALLS],
    *[(call, "string", "ok") for call in CALLS],
    *[(call, "empty-object", {}) for call in CALLS],
    ("whoami", "identity_id-int", _with(IDENTITY_BODY, identity_id=5)),
    ("whoami", "scopes-string", _with(IDENTITY_BODY, scopes="secrets:read")),
    ("whoami", "scopes-object", _with(IDENTITY_BODY, scopes={"a": 1})),
    ("read", "no-data", _with(secret_body("a/b"), data=_DROP)),
    ("read", "no-path", _with(secret_body("a/b"), path=_DROP)),
    ("read", "no-version", _with(secret_body("a/b"), version=_DROP)),
    ("read", "version-abc", _with(secret_body("a/b"), version="abc")),
    ("read", "version-zero", _with(secret_body("a/b"), version=0)),
    ("read", "version-float", _with(secret_body("a/b"), version=1.5)),
    ("read", "data-list", _with(secret_body("a/b"), data=["k", "v"])),
    ("read", "data-string", _with(secret_body("a/b"), data="k=v")),
    ("read", "metadata-list", _with(secret_body("a/b"), metadata=[1])),
    ("read", "created_at-garbage", _with(secret_body("a/b"), created_at="yesterday")),
    ("read", "other-path", secret_body("a/c")),
    ("read", "other-path-prefix", secret_body("a/b/c")),
    ("read-version", "other-version", secret_body("a/b", 3)),
    ("read-version", "latest-instead", secret_body("a/b", 1)),
    ("list", "secrets-not-list", {"secrets": "a/b", "has_more": False}),
    ("list", "secrets-object", {"secrets": {"path": "a/b", "version": 1}, "has_more": False}),
    ("list", "no-secrets", {"cursor": None, "has_more": False}),
    ("list", "entry-no-path", {"secrets": [{"version": 1}], "has_more": False}),
    ("list", "entry-version-abc", {"secrets": [{"path": "a/b", "version": "abc"}], "has_more": False}),
    ("list", "has_more-no-cursor", {"secrets": [], "has_more": True}),
    ("list", "has_more-null-cursor", {"secrets": [], "cursor": None, "has_more": True}),
    ("list", "has_more-empty-cursor", {"secrets": [], "cursor": "", "has_more": True}),
    ("list", "cursor-int", {"secrets": [], "cursor": 5, "has_more": True}),
    ("write", "no-created", _with(WRITE_BODY, created=_DROP)),
    ("write", "version-abc", _with(WRITE_BODY, version="abc")),
    ("write", "created-garbage", _with(WRITE_BODY, created="maybe")),
    ("write", "no-version", _with(WRITE_BODY, version=_DROP)),
]


def _respond(status: int, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.Response(status, content=body)
    return json_response(status, body)


@pytest.mark.parametrize(("call", "case", "body"), MALFORMED, ids=[f"{m[0]}-{m[1]}" for m in MALFORMED])
async def test_malformed_answer_is_response_error(make_client: ClientFactory, call: str, case: str, body: Any) -> None:
    client, requests = make_client(lambda request: _respond(200, body))
    with pytest.raises(ResponseError) as info:
        await CALLS[call](client)
    error = info.value
    assert not isinstance(error, ValidationError)
    assert error.__cause__ is None  # pydantic's error (which holds the input values) is not chained...
    assert error.__context__ is None  # ...not even implicitly
    assert "validation error" not in str(error).lower()
    assert len(requests) == 1  # a malformed answer is not retried


@pytest.mark.parametrize("call", list(CALLS))
async def test_valid_answers_parse(make_client: ClientFactory, call: str) -> None:
    client, _ = make_client(lambda request: json_response(200, VALID_BODIES[call]))
    result = await CALLS[call](client)
    assert isinstance(result, RESULT_TYPES[call])


async def test_unknown_fields_are_ignored(make_client: ClientFactory) -> None:
    body = {**secret_body("a/b"), "new_field": {"x": 1}, "rotation": None}
    client, _ = make_client(lambda request: json_response(200, body))
    secret = await client.read("a/b")
    assert secret.data == {"k": "v"}
    assert secret.version == 1


async def test_validation_message_names_fields_not_values(make_client: ClientFactory) -> None:
    body = _with(secret_body("a/b"), version="VALUE-NOT-SHOWN", data=["ALSO-NOT-SHOWN"])
    client, _ = make_client(lambda request: json_response(200, body))
    with pytest.raises(ResponseError) as info:
        await client.read("a/b")
    text = str(info.value)
    assert "version" in text
    assert "data" in text
    assert "NOT-SHOWN" not in text


@pytest.mark.parametrize("depth", [5_000, 100_000])
@pytest.mark.parametrize("call", list(CALLS))
async def test_deeply_nested_json_is_response_error(make_client: ClientFactory, call: str, depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    client, _ = make_client(lambda request: httpx.Response(200, content=body))
    with pytest.raises(ResponseError):
        await CALLS[call](client)


async def test_deeply_nested_error_body_keeps_the_status_class(make_client: ClientFactory) -> None:
    body = b'{"error": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    client, _ = make_client(lambda request: httpx.Response(404, content=body), retry=NO_RETRY)
    with pytest.raises(ScaiVaultError) as info:
        await client.read("a/b")
    assert type(info.value).__name__ == "NotFoundError"


# -- arbitrary JSON ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
dates = st.one_of(st.datetimes().map(lambda d: d.isoformat()), json_values)


def _near(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the endpoint's field names, each either absent, of a plausible value or arbitrary JSON."""
    return st.fixed_dictionaries(
        {}, optional={name: st.one_of(strategy, json_values) for name, strategy in fields.items()}
    )


versions = st.integers(min_value=-2, max_value=4)
summaries = _near({"path": st.just("a/b"), "version": versions, "updated_at": dates, "tags": st.lists(st.text())})
NEAR_BODIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "whoami": _near({"identity_id": st.text(), "scopes": st.lists(st.text()), "tenant_id": st.text()}),
    "read": _near(
        {
            "path": st.sampled_from(["a/b", "a/c"]),
            "version": versions,
            "data": st.dictionaries(st.text(), json_values),
            "metadata": st.dictionaries(st.text(), json_values),
            "created_at": dates,
        }
    ),
    "list": _near(
        {"secrets": st.lists(summaries, max_size=3), "cursor": st.text(max_size=3), "has_more": st.booleans()}
    ),
    "write": _near(
        {"path": st.just("a/b"), "version": versions, "created": st.booleans(), "previous_version": versions}
    ),
}
NEAR_BODIES["read-version"] = NEAR_BODIES["read"]


async def _outcome(call: str, status: int, content: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"Content-Type": "application/json"})

    async with ScaiVaultClient(
        BASE_URL, StaticToken(TOKEN), transport=httpx.MockTransport(handler), retry=NO_RETRY
    ) as client:
        try:
            result = await CALLS[call](client)
        except ScaiVaultError:
            return
        assert 200 <= status < 300
        assert isinstance(result, RESULT_TYPES[call])


_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("call", list(CALLS))
@_settings
@given(data=st.data())
def test_arbitrary_json_answers(call: str, data: st.DataObject) -> None:
    body = data.draw(st.one_of(json_values, NEAR_BODIES[call]), label="body")
    status = data.draw(st.sampled_from([200, 201, 200, 400, 401, 404, 429, 500]), label="status")
    asyncio.run(_outcome(call, status, json.dumps(body).encode()))


@pytest.mark.parametrize("call", list(CALLS))
@_settings
@given(content=st.binary(max_size=64), status=st.sampled_from([200, 204, 403, 503]))
def test_arbitrary_bytes_answers(call: str, content: bytes, status: int) -> None:
    asyncio.run(_outcome(call, status, content))
