"""Path and prefix validation happens before any request; what is valid travels percent-encoded, ``/`` kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from client_helpers import WRITE_BODY, ClientFactory, json_response, secret_body
from hypothesis import given
from hypothesis import strategies as st

from scaivault_operator._cogs.scaivault import (
    InvalidPathError,
    ScaiVaultClient,
    encode_path,
    validate_path,
    validate_prefix,
)
from scaivault_operator._cogs.scaivault._paths import MAX_PATH_LENGTH

INVALID_PATHS = [
    "",
    "/a",
    "a/",
    "/",
    "a//b",
    ".",
    "..",
    "a/.",
    "./a",
    "a/./b",
    "a/../b",
    "../a",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x00b",
    "a\x7fb",
    "a\x85b",
    "a/\ud800",
    "a" * (MAX_PATH_LENGTH + 1),
    "a/" * (MAX_PATH_LENGTH // 2) + "b",
]

INVALID_PREFIXES = [
    "/",
    "/a",
    "a//",
    "a//b",
    "./",
    "a/../",
    "a/./b/",
    "..",
    "a\nb/",
    "a\x00",
    "\udfff/",
    "x" * (MAX_PATH_LENGTH + 1),
]


PATH_CALLS: dict[str, Callable[[ScaiVaultClient, str], Awaitable[Any]]] = {
    "read": lambda client, path: client.read(path),
    "read-version": lambda client, path: client.read(path, version=1),
    "write": lambda client, path: client.write(path, {"k": "v"}),
}


def _never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request expected, got {request.method} {request.url}")


@pytest.mark.parametrize("path", INVALID_PATHS, ids=repr)
@pytest.mark.parametrize("call", list(PATH_CALLS))
async def test_invalid_path_sends_nothing(make_client: ClientFactory, path: str, call: str) -> None:
    client, requests = make_client(_never_called)
    with pytest.raises(InvalidPathError) as info:
        await PATH_CALLS[call](client, path)
    assert isinstance(info.value, ValueError)
    assert requests == []


@pytest.mark.parametrize("prefix", INVALID_PREFIXES, ids=repr)
async def test_invalid_prefix_sends_nothing(make_client: ClientFactory, prefix: str) -> None:
    client, requests = make_client(_never_called)
    with pytest.raises(InvalidPathError):
        await client.list_page(prefix)
    with pytest.raises(InvalidPathError):
        async for _ in client.list_secrets(prefix):
            pass
    assert requests == []


def test_non_string_paths_are_rejected() -> None:
    for value in (None, 5, b"a/b"):
        with pytest.raises(InvalidPathError):
            validate_path(value)  # type: ignore[arg-type]
        with pytest.raises(InvalidPathError):
            validate_prefix(value)  # type: ignore[arg-type]


def test_max_length_is_allowed() -> None:
    path = "a" * MAX_PATH_LENGTH
    assert validate_path(path) == path
    assert validate_prefix(path) == path


@pytest.mark.parametrize("prefix", ["", "apps", "apps/", "apps/web/", "apps/we", "a.b/c-d_e/", "...x/"])
def test_valid_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("environments/production/salesforce/api-credentials", b"environments/production/salesforce/api-credentials"),
        ("team a/db#1", b"team%20a/db%231"),
        ("q?x=1/y", b"q%3Fx%3D1/y"),
        ("100%/done", b"100%25/done"),
        ("%2F", b"%252F"),
        ("plus+amp&/semi;colon", b"plus%2Bamp%26/semi%3Bcolon"),
        ("ünï/日本/😀", b"%C3%BCn%C3%AF/%E6%97%A5%E6%9C%AC/%F0%9F%98%80"),
        ("a.b/..c/c..", b"a.b/..c/c.."),
        ("tilde~/under_score-dash", b"tilde~/under_score-dash"),
    ],
)
async def test_path_is_percent_encoded_on_the_wire(make_client: ClientFactory, path: str, raw: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return json_response(200, {**WRITE_BODY, "path": path})
        return json_response(200, secret_body(path))

    client, requests = make_client(handler)
    secret = await client.read(path)
    assert secret.path == path
    await client.write(path, {"k": "v"})
    assert len(requests) == 2
    for request in requests:
        assert request.url.raw_path == b"/v1/secrets/" + raw
        assert request.url.query == b""
    assert encode_path(path).encode() == raw


_segments = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="/"), min_size=1, max_size=8
).filter(lambda segment: segment not in (".", ".."))


@given(segments=st.lists(_segments, min_size=1, max_size=4))
def test_encode_path_round_trips(segments: list[str]) -> None:
    path = "/".join(segments)
    assert validate_path(path) == path
    encoded = encode_path(path)
    assert encoded.split("/") == [encode_path(segment) for segment in segments]
    assert all(33 <= ord(ch) < 127 and ch not in "#?" for ch in encoded)
    assert httpx.URL("https://x/" + encoded).path == "/" + path


@given(path=st.text(max_size=12))
def test_validate_path_either_accepts_or_raises_invalid_path(path: str) -> None:
    try:
        validate_path(path)
    except InvalidPathError:
        return
    assert encode_path(path).encode("ascii")  # whatever is accepted can be encoded into a URL


@pytest.mark.parametrize("prefix", ["", "apps/", "team a/", "ü"])
async def test_prefix_travels_as_query_parameter(make_client: ClientFactory, prefix: str) -> None:
    client, requests = make_client(lambda request: json_response(200, {"secrets": [], "has_more": False}))
    page = await client.list_page(prefix, page_size=7)
    assert page.secrets == ()
    (request,) = requests
    assert request.url.path == "/v1/secrets"
    assert request.url.params["prefix"] == prefix
    assert request.url.params["limit"] == "7"
    assert "cursor" not in request.url.params


@pytest.mark.parametrize("version", [0, -1, True, False, "2", 1.0, 2.5])
async def test_invalid_version_sends_nothing(make_client: ClientFactory, version: Any) -> None:
    client, requests = make_client(_never_called)
    with pytest.raises(ValueError, match="version"):
        await client.read("a/b", version=version)
    assert requests == []


@pytest.mark.parametrize("page_size", [0, -5])
async def test_invalid_page_size_sends_nothing(make_client: ClientFactory, page_size: int) -> None:
    client, requests = make_client(_never_called)
    with pytest.raises(ValueError, match="page_size"):
        await client.list_page("", page_size=page_size)
    assert requests == []


async def test_version_on_the_wire(make_client: ClientFactory) -> None:
    client, requests = make_client(
        lambda request: json_response(200, secret_body("a/b", int(request.url.params.get("version", "9"))))
    )
    pinned = await client.read("a/b", version=3)
    latest = await client.read("a/b")
    assert pinned.version == 3
    assert latest.version == 9
    assert requests[0].url.params["version"] == "3"
    assert requests[0].url.raw_path == b"/v1/secrets/a/b?version=3"
    assert "version" not in requests[1].url.params
