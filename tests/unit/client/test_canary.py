"""Canaries: a secret value, tokens and a client secret are planted everywhere a server could echo them back.

Every error path of the client is driven while every log record (DEBUG and up, every logger) is captured; then
no log text, no exception ``str``/``repr``/``args``/``code``, nothing in an exception's ``__cause__``/``__context__``
chain and no formatted traceback may contain a canary.

On a *read* the client does not know the stored values, so the server's free-text error ``message`` never enters
the exception text at all (it stays on ``APIError.server_message``, which nothing logs). A server *code* quoting a
stored value on a read is the one path the client cannot close, so bodies quoting the stored value go to writes only.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_helpers import VALID_BODIES, json_response, secret_body

from scaivault_operator._cogs.scaivault import (
    ClientCredentials,
    RetryPolicy,
    ScaiVaultClient,
    ScaiVaultError,
    StaticToken,
    TokenProvider,
)

CANARY_VALUE = "CANARY-VALUE-7f3a"
CANARY_TOKEN = "CANARY-TOKEN-91bd"
CANARY_TOKEN_2 = "CANARY-TOKEN-2e44"
CANARY_CLIENT_SECRET = "CANARY-CSECRET-c0de"
CANARY_ACCESS_TOKEN = "CANARY-ACCESS-5b77"
CANARIES = (CANARY_VALUE, CANARY_TOKEN, CANARY_TOKEN_2, CANARY_CLIENT_SECRET, CANARY_ACCESS_TOKEN)

DATA = {"password": CANARY_VALUE, "nested": {"list": [CANARY_VALUE, 1]}}
TOKEN_URL = "https://auth.test/oauth/token"
POLICY = RetryPolicy(max_attempts=3, base=0.0, cap=0.0, max_total=5.0)

ERROR_STATUSES = [400, 401, 403, 404, 409, 413, 418, 422, 429, 500, 502, 503, 504]

#: Error bodies that echo every canary in fields the client has no business reading.
ECHO_BODIES: list[Any] = [
    {
        "error": "invalid_request",
        "message": "rejected",
        "request": {"data": DATA, "headers": {"Authorization": f"Bearer {CANARY_TOKEN}"}},
        "input": CANARIES,
        "token": CANARY_TOKEN,
        "client_secret": CANARY_CLIENT_SECRET,
        "detail": [{"loc": ["body", "data", "password"], "input": CANARY_VALUE}],
    },
    {"error": {"code": "bad", "details": {"value": CANARY_VALUE, "token": CANARY_TOKEN, "cs": CANARY_CLIENT_SECRET}}},
    {"code": "x", "context": list(CANARIES)},
]

#: Error bodies that quote a canary the client itself sent, in the code or the message.
QUOTING_BODIES: list[Any] = [
    {"error": "invalid_token", "message": f"token {CANARY_TOKEN} is not valid"},
    {"error": {"code": "invalid", "message": f"value '{CANARY_VALUE}' is too weak"}},
    {"detail": f"cannot store {CANARY_VALUE}"},
    {"error": CANARY_TOKEN},
    {"error": CANARY_VALUE, "message": "m"},
    {"code": CANARY_TOKEN},
    {"error": "x", "message": "padding " * 30 + CANARY_TOKEN},  # would be clipped into a prefix of the canary
]


def _texts_of(exc: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(getattr(current, "code", None))
        yield repr(getattr(current, "request", None)) if isinstance(current, httpx.RequestError) else ""
        stack.extend([current.__cause__, current.__context__])
    yield "".join(traceback.format_exception(exc))


class Probe:
    """Runs scenarios, keeps every text they produced, and checks them for canaries at the end."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.texts: list[tuple[str, str]] = []
        self.errors = 0
        self.clients: list[ScaiVaultClient] = []

    def client(
        self,
        handler: Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]],
        auth: TokenProvider | None = None,
    ) -> ScaiVaultClient:
        async def run(request: httpx.Request) -> httpx.Response:
            result = handler(request)
            return await result if not isinstance(result, httpx.Response) else result

        client = ScaiVaultClient(
            "https://vault.test",
            auth if auth is not None else StaticToken(CANARY_TOKEN),
            transport=httpx.MockTransport(run),
            retry=POLICY,
        )
        self.clients.append(client)
        return client

    async def run(self, scenario: str, call: Awaitable[Any], *, expect_error: bool | None = True) -> None:
        """Await ``call`` and keep what it produced; ``expect_error`` None accepts either outcome."""
        outcome: str
        try:
            result = await call
        except ScaiVaultError as exc:
            self.errors += 1
            self.texts.extend((scenario, text) for text in _texts_of(exc))
            outcome = type(exc).__name__
        else:
            self.texts.append((scenario, repr(result)))
            self.texts.append((scenario, str(result)))
            outcome = "success"
        if expect_error is not None:
            assert (outcome != "success") == expect_error, f"{scenario}: unexpected {outcome}"

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()

    def leaks(self) -> list[str]:
        for record in self.caplog.records:
            self.texts.append((record.name, record.getMessage()))
            self.texts.append((record.name, repr(record.args)))
        self.texts.append(("caplog", self.caplog.text))
        return [f"{where}: {text[:300]!r}" for where, text in self.texts for canary in CANARIES if canary in text]


@pytest.fixture
async def probe(caplog: pytest.LogCaptureFixture, sleeps: list[float]) -> Any:
    """A Probe with DEBUG logging everywhere; retries wait no real time (``sleeps``)."""
    caplog.set_level(logging.DEBUG)  # the root logger: every logger propagates here
    for name in ("httpx", "httpcore", "scaivault_operator", "scaivault_operator._cogs.scaivault._client"):
        caplog.set_level(logging.DEBUG, logger=name)  # in case a level was set on the way; restored afterwards
    p = Probe(caplog)
    yield p
    await p.close()


def _ok(request: httpx.Request) -> httpx.Response:
    return json_response(200, {})


READ_CALLS: dict[str, Callable[[ScaiVaultClient], Awaitable[Any]]] = {
    "whoami": lambda client: client.whoami(),
    "read": lambda client: client.read("apps/db"),
    "read-v": lambda client: client.read("apps/db", version=2),
    "list": lambda client: client.list_page("apps/"),
}


async def _every_call(
    probe: Probe, scenario: str, client: ScaiVaultClient, *, expect_error: bool | None = True
) -> None:
    for name, call in READ_CALLS.items():
        await probe.run(f"{scenario}/{name}", call(client), expect_error=expect_error)
    await probe.run(f"{scenario}/write", client.write("apps/db", DATA), expect_error=expect_error)


async def test_no_canary_escapes(probe: Probe, tmp_path: Path) -> None:
    # 1. every error status, with bodies that echo the canaries in unrelated fields or quote what the client sent
    for status in ERROR_STATUSES:
        for index, body in enumerate(ECHO_BODIES + QUOTING_BODIES):
            headers = {"Retry-After": "0"} if status == 429 else {}
            client = probe.client(lambda request, s=status, b=body, h=headers: json_response(s, b, h))
            if body in QUOTING_BODIES and CANARY_VALUE in repr(body):
                # the client knows the data it writes; a read's stored values it cannot know (see the docstring)
                await probe.run(f"status {status} body {index}/write", client.write("apps/db", DATA))
            else:
                await _every_call(probe, f"status {status} body {index}", client)
        for raw in (f"<html>{CANARY_VALUE} {CANARY_TOKEN}</html>".encode(), CANARY_CLIENT_SECRET.encode()):
            client = probe.client(lambda request, s=status, r=raw: httpx.Response(s, content=r))
            await _every_call(probe, f"status {status} raw", client)

    # 2. transport errors, retried for reads
    for exc_type in (httpx.ConnectError, httpx.ReadTimeout, httpx.ConnectTimeout, httpx.RemoteProtocolError):

        def fail(request: httpx.Request, exc_type: type[httpx.TransportError] = exc_type) -> httpx.Response:
            raise exc_type("network trouble", request=request)

        await _every_call(probe, exc_type.__name__, probe.client(fail))

    # 3. malformed 2xx answers carrying the canaries in the wrong places
    malformed: list[tuple[str, Any]] = [
        ("data-list", {**secret_body("apps/db"), "data": [CANARY_VALUE, CANARY_TOKEN]}),
        ("data-string", {**secret_body("apps/db"), "data": CANARY_VALUE}),
        ("version-canary", {**secret_body("apps/db", data=DATA), "version": CANARY_VALUE}),
        ("created_at-canary", {**secret_body("apps/db", data=DATA), "created_at": CANARY_VALUE}),
        ("metadata-canary", {**secret_body("apps/db", data=DATA), "metadata": [CANARY_VALUE]}),
        ("other-version", secret_body("apps/db", version=7, data=DATA)),
        ("identity-canary", {"identity_id": [CANARY_TOKEN], "scopes": CANARY_VALUE}),
        ("page-canary", {"secrets": [{"path": "p", "version": CANARY_VALUE, "tags": CANARY_TOKEN}], "has_more": 1}),
        ("page-no-cursor", {"secrets": [], "has_more": True, "next": CANARY_VALUE}),
        ("write-canary", {"path": "apps/db", "version": CANARY_VALUE, "created": CANARY_TOKEN}),
        ("array", [DATA, CANARY_TOKEN]),
    ]
    for name, body in malformed:
        client = probe.client(lambda request, b=body: json_response(200, b))
        await _every_call(probe, f"malformed {name}", client, expect_error=None)  # some are fine for some calls
    for raw in (f"{CANARY_VALUE} not json".encode(), b"[" * 10_000):
        await _every_call(probe, "malformed raw", probe.client(lambda request, r=raw: httpx.Response(200, content=r)))

    # 4. retries that end in success: the secret is read, logged about, and still not shown
    attempts: dict[str, int] = {}

    def flaky(request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url}"
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] < 3:
            return json_response(503, ECHO_BODIES[0])
        return json_response(200, secret_body("apps/db", data=DATA))

    await probe.run("retry then success", probe.client(flaky).read("apps/db"), expect_error=False)

    # 5. a 401 and a token file re-read, with and without a rotated token
    token_file = tmp_path / "token"
    token_file.write_text(CANARY_TOKEN)
    provider = StaticToken(path=token_file)
    await provider.token()
    token_file.write_text(CANARY_TOKEN_2 + "\n")

    def only_second_token(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {CANARY_TOKEN_2}":
            return json_response(200, secret_body("apps/db", data=DATA))
        return json_response(401, QUOTING_BODIES[0])

    await probe.run("401 renew", probe.client(only_second_token, provider).read("apps/db"), expect_error=False)
    quoting_both = {"error": CANARY_TOKEN_2, "message": f"neither {CANARY_TOKEN} nor {CANARY_TOKEN_2} is valid"}
    refused = probe.client(lambda request: json_response(401, quoting_both), StaticToken(path=token_file))
    await _every_call(probe, "401 no renew", refused)
    for bad in (f"{CANARY_TOKEN}\n{CANARY_TOKEN_2}", f"{CANARY_TOKEN} x", f"{CANARY_TOKEN}\x00"):
        token_file.write_text(bad)
        await _every_call(probe, "bad token file", probe.client(_ok, StaticToken(path=token_file)))
    token_file.write_bytes(CANARY_TOKEN.encode() + b"\xff\xfe")  # not UTF-8: the decode error holds the bytes
    await _every_call(probe, "token file not utf-8", probe.client(_ok, StaticToken(path=token_file)))
    token_file.unlink()
    await _every_call(probe, "missing token file", probe.client(_ok, StaticToken(path=token_file)))

    # 6. client credentials: the token endpoint fails in every way, and echoes the client secret
    def credentials() -> ClientCredentials:
        return ClientCredentials(TOKEN_URL, "ci-client", CANARY_CLIENT_SECRET, scope="secrets:read")

    token_answers: list[httpx.Response] = [
        json_response(401, {"error": "invalid_client", "message": f"bad secret {CANARY_CLIENT_SECRET}"}),
        json_response(400, {"error": "invalid_client", "error_description": CANARY_CLIENT_SECRET}),
        json_response(400, {"error": CANARY_CLIENT_SECRET}),
        json_response(503, {"error": "unavailable", "detail": f"for {CANARY_CLIENT_SECRET}"}),
        json_response(429, {"error": "slow_down", "client_secret": CANARY_CLIENT_SECRET}, {"Retry-After": "0"}),
        httpx.Response(200, content=f"<html>{CANARY_CLIENT_SECRET}</html>".encode()),
        json_response(200, {"access_token": f"{CANARY_ACCESS_TOKEN}\n{CANARY_CLIENT_SECRET}"}),
        json_response(200, {"access_token": [CANARY_ACCESS_TOKEN]}),
        json_response(200, {"token": CANARY_ACCESS_TOKEN}),
    ]
    for index, answer in enumerate(token_answers):
        await _every_call(probe, f"token endpoint {index}", probe.client(lambda request, a=answer: a, credentials()))

    def token_endpoint_down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url.host}", request=request)

    await _every_call(probe, "token endpoint down", probe.client(token_endpoint_down, credentials()))

    def api_refuses(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return json_response(200, {"access_token": CANARY_ACCESS_TOKEN, "expires_in": 60})
        return json_response(401, {"error": "invalid_token", "message": f"{CANARY_ACCESS_TOKEN} expired"})

    await _every_call(probe, "api refuses access token", probe.client(api_refuses, credentials()))

    issued: list[str] = []

    def api_accepts_second(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            issued.append(f"{CANARY_ACCESS_TOKEN}-{len(issued)}")
            return json_response(200, {"access_token": issued[-1], "expires_in": 60})
        if request.headers["Authorization"].endswith("-1"):
            return json_response(200, VALID_BODIES["whoami"])
        return json_response(401, {"error": "expired", "token": issued[0]})

    await probe.run("cc renew", probe.client(api_accepts_second, credentials()).whoami(), expect_error=False)

    # the scenarios really ran, and really produced errors and log lines to inspect
    assert probe.errors > 700
    assert any(r.levelno == logging.DEBUG for r in probe.caplog.records)  # retry lines
    assert any("renewed token" in r.getMessage() for r in probe.caplog.records)
    assert probe.leaks() == []


async def test_canary_in_the_message_of_a_read_error(probe: Probe) -> None:
    # The client cannot know which stored values a read's error message might quote, so the server's free text
    # never enters the exception text (it stays on ``server_message``, which nothing logs).
    body = {"error": "decrypt_failed", "message": f"cannot decrypt value {CANARY_VALUE}"}
    await probe.run("read message echo", probe.client(lambda request: json_response(500, body)).read("apps/db"))
    assert probe.errors == 1
    assert probe.leaks() == []
