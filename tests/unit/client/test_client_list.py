"""``list_secrets`` follows cursors page by page and refuses to loop on a server that repeats one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from client_helpers import BASE_URL, TOKEN, ClientFactory, json_response
from hypothesis import given, settings
from hypothesis import strategies as st

from scaivault_operator._cogs.scaivault import (
    DEFAULT_PAGE_SIZE,
    ResponseError,
    ScaiVaultClient,
    ScaiVaultError,
    SecretPage,
    StaticToken,
)


def _page(paths: list[str], cursor: str | None, has_more: bool) -> dict[str, Any]:
    return {
        "secrets": [{"path": p, "version": 1, "updated_at": "2026-04-23T14:05:00Z", "tags": ["t"]} for p in paths],
        "cursor": cursor,
        "has_more": has_more,
    }


PAGES: dict[str | None, dict[str, Any]] = {
    None: _page(["apps/a", "apps/b"], "c1", True),
    "c1": _page(["apps/c", "apps/d"], "c2", True),
    "c2": _page(["apps/e", "apps/f"], "c3", True),
    "c3": _page(["apps/g"], None, False),
}


def _serve(pages: dict[str | None, dict[str, Any]]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(200, pages[request.url.params.get("cursor")])

    return handler


async def test_follows_cursors_across_pages(make_client: ClientFactory) -> None:
    client, requests = make_client(_serve(PAGES))
    pages = [page async for page in client.list_secrets("apps/", page_size=2)]
    assert all(isinstance(page, SecretPage) for page in pages)
    assert [s.path for page in pages for s in page.secrets] == [f"apps/{c}" for c in "abcdefg"]
    assert len(requests) == 4
    assert [r.url.params.get("cursor") for r in requests] == [None, "c1", "c2", "c3"]
    for request in requests:
        assert request.method == "GET"
        assert request.url.path == "/v1/secrets"
        assert request.url.params["limit"] == "2"
        assert request.url.params["prefix"] == "apps/"
    assert pages[-1].has_more is False


async def test_single_page(make_client: ClientFactory) -> None:
    client, requests = make_client(lambda request: json_response(200, _page(["x"], "ignored", False)))
    pages = [page async for page in client.list_secrets()]
    assert len(pages) == 1
    assert len(requests) == 1
    assert requests[0].url.params["prefix"] == ""
    assert requests[0].url.params["limit"] == str(DEFAULT_PAGE_SIZE)


async def test_page_size_none_sends_no_limit(make_client: ClientFactory) -> None:
    client, requests = make_client(lambda request: json_response(200, _page([], None, False)))
    pages = [page async for page in client.list_secrets("a/", page_size=None)]
    assert pages[0].secrets == ()
    assert "limit" not in requests[0].url.params


async def test_repeated_cursor_is_an_error_not_a_loop(make_client: ClientFactory) -> None:
    pages = {
        None: _page(["a"], "c1", True),
        "c1": _page(["b"], "c2", True),
        "c2": _page(["c"], "c1", True),  # back to an earlier cursor
    }
    client, requests = make_client(_serve(pages))
    seen: list[str] = []

    async def drain() -> None:
        async for page in client.list_secrets("", page_size=1):
            seen.extend(s.path for s in page.secrets)

    with pytest.raises(ResponseError, match="repeated a cursor"):
        await drain()
    assert seen == ["a", "b", "c"]
    assert len(requests) == 3


async def test_same_cursor_twice_in_a_row(make_client: ClientFactory) -> None:
    client, requests = make_client(lambda request: json_response(200, _page(["a"], "stuck", True)))
    with pytest.raises(ResponseError):
        async for _ in client.list_secrets():
            pass
    assert len(requests) == 2


async def test_has_more_without_cursor_mid_listing(make_client: ClientFactory) -> None:
    pages: dict[str | None, dict[str, Any]] = {None: _page(["a"], "c1", True), "c1": _page(["b"], None, True)}
    client, requests = make_client(_serve(pages))
    with pytest.raises(ResponseError, match="no cursor"):
        async for _ in client.list_secrets():
            pass
    assert len(requests) == 2


async def test_list_page_passes_cursor(make_client: ClientFactory) -> None:
    client, requests = make_client(_serve(PAGES))
    page = await client.list_page("apps/", cursor="c2", page_size=2)
    assert [s.path for s in page.secrets] == ["apps/e", "apps/f"]
    assert page.cursor == "c3"
    assert requests[0].url.params["cursor"] == "c2"


async def test_cursor_with_odd_characters_round_trips(make_client: ClientFactory) -> None:
    odd = "a b&c=d/é+%"
    pages: dict[str | None, dict[str, Any]] = {None: _page(["a"], odd, True), odd: _page(["b"], None, False)}
    client, requests = make_client(_serve(pages))
    paths = [s.path async for page in client.list_secrets() for s in page.secrets]
    assert paths == ["a", "b"]
    assert requests[1].url.params["cursor"] == odd


async def test_cursor_that_cannot_be_sent_back(make_client: ClientFactory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "cursor" in request.url.params:
            return json_response(200, _page([], None, False))
        return httpx.Response(200, content=b'{"secrets": [], "cursor": "\\ud800x", "has_more": true}')

    client, requests = make_client(handler)
    with pytest.raises(ResponseError, match="cursor"):
        async for _ in client.list_secrets():
            pass
    assert len(requests) == 1


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)
_entries = st.fixed_dictionaries(
    {"path": st.text(max_size=6), "version": st.integers(min_value=-1, max_value=3)},
    optional={"tags": st.one_of(st.lists(st.text(max_size=4)), _json), "updated_at": _json},
)
_pages = st.fixed_dictionaries(
    {},
    optional={
        "secrets": st.one_of(st.lists(_entries, max_size=3), _json),
        "cursor": st.one_of(st.sampled_from(["c1", "c2", "c3", "", "\ud800"]), _json),
        "has_more": st.one_of(st.booleans(), _json),
    },
)


@settings(max_examples=100, deadline=None)
@given(pages=st.lists(st.one_of(_pages, _json), min_size=1, max_size=4))
def test_arbitrary_listings_end_or_raise(pages: list[Any]) -> None:
    """Whatever the server pages say, listing ends (at most one request per page) or raises a ScaiVaultError."""
    served = iter(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(200, next(served, {"secrets": [], "has_more": False}))

    async def drain() -> int:
        count = 0
        async with ScaiVaultClient(BASE_URL, StaticToken(TOKEN), transport=httpx.MockTransport(handler)) as client:
            try:
                async for page in client.list_secrets():
                    assert isinstance(page, SecretPage)
                    count += 1
            except ScaiVaultError:
                pass
        return count

    assert asyncio.run(drain()) <= len(pages) + 1
