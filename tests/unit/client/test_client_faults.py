"""What the ScaiVault fault matrix (``tests/integration/test_fault_matrix_scaivault.py``) found in the client.

- The size limit on answers: a body larger than ``max_response_bytes`` is refused while it streams in. Without it
  the client buffered and parsed any answer: ~66 MiB of memory for one 20 MiB answer, ~500 MiB for eight workers.
- A connection reset in the middle of an answer said "ReadError: no detail"; it now names the cause the operating
  system gave ("Connection reset by peer"), never anything the peer sent.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from client_helpers import NO_RETRY, ClientFactory, json_response, secret_body

from scaivault_operator._cogs.scaivault import (
    ConfigurationError,
    RateLimitedError,
    ResponseError,
    ScaiVaultClient,
    StaticToken,
    UnavailableError,
)
from scaivault_operator._cogs.scaivault._client import DEFAULT_MAX_RESPONSE_BYTES

LIMIT = 1024


def _padded(size: int) -> bytes:
    """A valid secret answer of exactly ``size`` bytes (an unknown ``padding`` field fills it up)."""
    body = secret_body("a/b")
    base = len(json.dumps({**body, "padding": ""}).encode())
    encoded = json.dumps({**body, "padding": "x" * (size - base)}).encode()
    assert len(encoded) == size
    return encoded


class _Chunks(httpx.AsyncByteStream):
    """A body streamed in chunks without a Content-Length; records how much of it was pulled."""

    def __init__(self, total: int, chunk: int = 256) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            size = min(self.chunk, self.total - self.sent)
            self.sent += size
            yield b" " * size  # JSON whitespace: the body would parse if it were read to its end


def test_the_default_limit_is_4_mib():
    assert DEFAULT_MAX_RESPONSE_BYTES == 4 * 1024 * 1024


def test_a_limit_below_one_byte_is_refused():
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        ScaiVaultClient("https://vault.test", StaticToken("t"), max_response_bytes=0)


async def test_an_answer_at_the_limit_is_read(make_client: ClientFactory):
    client, _ = make_client(lambda r: httpx.Response(200, content=_padded(LIMIT)), max_response_bytes=LIMIT)
    secret = await client.read("a/b")
    assert secret.path == "a/b"


async def test_a_declared_length_over_the_limit_is_refused_unread(make_client: ClientFactory):
    client, requests = make_client(lambda r: httpx.Response(200, content=_padded(LIMIT + 1)), max_response_bytes=LIMIT)
    with pytest.raises(ResponseError, match=r"GET secret 'a/b': HTTP 200 answer is larger than 1 KiB") as caught:
        await client.read("a/b")
    assert "xxxx" not in str(caught.value)
    assert len(requests) == 1, "a ResponseError is not retried"


async def test_a_streamed_body_is_cut_off_at_the_limit(make_client: ClientFactory):
    stream = _Chunks(100 * LIMIT)
    client, _ = make_client(lambda r: httpx.Response(200, stream=stream), max_response_bytes=LIMIT)
    with pytest.raises(ResponseError, match="larger than 1 KiB"):
        await client.list_page("a/")
    assert stream.sent <= LIMIT + stream.chunk, "stopped reading as soon as the limit was passed"


async def test_the_limit_applies_to_the_decoded_body(make_client: ClientFactory):
    bomb = gzip.compress(b" " * (100 * LIMIT) + json.dumps(secret_body("a/b")).encode())
    assert len(bomb) < LIMIT

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})

    client, _ = make_client(handler, max_response_bytes=LIMIT)
    with pytest.raises(ResponseError, match="larger than"):
        await client.read("a/b")


async def test_an_error_answer_over_the_limit_keeps_its_status_class(make_client: ClientFactory):
    huge_error = json.dumps({"error": "unavailable", "message": "x" * (2 * LIMIT)}).encode()
    answers = iter(
        [
            httpx.Response(503, content=huge_error),
            httpx.Response(429, content=huge_error, headers={"Retry-After": "0"}),
            json_response(200, secret_body("a/b")),
        ]
    )
    client, requests = make_client(lambda r: next(answers), max_response_bytes=LIMIT)
    assert (await client.read("a/b")).path == "a/b"
    assert len(requests) == 3, "503 and 429 are retried as usual: the status decides"

    client, _ = make_client(lambda r: httpx.Response(503, content=huge_error), retry=NO_RETRY, max_response_bytes=LIMIT)
    with pytest.raises(UnavailableError) as caught:
        await client.read("a/b")
    assert caught.value.code is None, "the body was not read, so no server code"
    client, _ = make_client(
        lambda r: httpx.Response(429, content=huge_error, headers={"Retry-After": "7"}),
        retry=NO_RETRY,
        max_response_bytes=LIMIT,
    )
    with pytest.raises(RateLimitedError) as limited:
        await client.read("a/b")
    assert limited.value.retry_after == 7


async def test_a_connection_lost_mid_body_is_unavailable(make_client: ClientFactory):
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'{"path": "a/b", "data": {"k": "'
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    client, requests = make_client(lambda r: httpx.Response(200, stream=Broken()))
    with pytest.raises(UnavailableError, match="RemoteProtocolError"):
        await client.read("a/b")
    assert len(requests) == 3, "retried like any transient error (FAST_RETRY: 3 attempts)"


async def test_a_connection_reset_names_the_operating_systems_reason(make_client: ClientFactory):
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as exc:
            raise httpx.ReadError("") from exc

    client, _ = make_client(handler, retry=NO_RETRY)
    with pytest.raises(UnavailableError) as caught:
        await client.read("a/b")
    assert str(caught.value) == "GET secret 'a/b': ReadError: Connection reset by peer"


async def test_an_error_without_any_reason_still_says_so(make_client: ClientFactory):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("")

    client, _ = make_client(handler, retry=NO_RETRY)
    with pytest.raises(UnavailableError, match="ReadError: no detail"):
        await client.read("a/b")
