"""Authentication: the bearer header, StaticToken (literal and file, re-read on 401) and ClientCredentials."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_helpers import BASE_URL, TOKEN, VALID_BODIES, ClientFactory, json_response
from hypothesis import given, settings
from hypothesis import strategies as st

from scaivault_operator._cogs.scaivault import (
    BadRequestError,
    ClientCredentials,
    ConfigurationError,
    Endpoint,
    NotFoundError,
    ResponseError,
    RetryPolicy,
    ScaiVaultClient,
    ScaiVaultError,
    StaticToken,
    TokenProvider,
    UnauthenticatedError,
    UnavailableError,
)

TOKEN_URL = "https://auth.test/oauth/token"
POLICY = RetryPolicy(max_attempts=3, base=0.0, cap=0.0, max_total=5.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _bearer(request: httpx.Request) -> str:
    header = request.headers.get("Authorization", "")
    assert header.startswith("Bearer ")
    return header.removeprefix("Bearer ")


def _count_reads(provider: StaticToken) -> list[str]:
    """Wrap the provider's file read so the test sees every read and what it returned."""
    reads: list[str] = []
    real_read = provider._read

    async def counting_read() -> str:
        token = await real_read()
        reads.append(token)
        return token

    provider._read = counting_read  # type: ignore[method-assign]
    return reads


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


# -- the header -------------------------------------------------------------------------------------------------


async def test_requests_carry_the_bearer_token(make_client: ClientFactory) -> None:
    client, requests = make_client(
        lambda request: json_response(200, VALID_BODIES["write" if request.method == "PUT" else "whoami"])
    )
    await client.whoami()
    await client.write("a/b", {"k": "v"})
    assert [r.headers["Authorization"] for r in requests] == [f"Bearer {TOKEN}"] * 2
    assert requests[0].headers["User-Agent"].startswith("scaivault-operator/")
    assert requests[0].headers["Accept"] == "application/json"
    assert json.loads(requests[1].content) == {"data": {"k": "v"}, "secret_type": "json"}


async def test_write_sends_metadata_and_type(make_client: ClientFactory) -> None:
    client, requests = make_client(lambda request: json_response(200, VALID_BODIES["write"]))
    result = await client.write("a/b", {"k": "v"}, secret_type="kv", metadata={"tags": ["x"]})
    assert result.created is True
    assert json.loads(requests[0].content) == {"data": {"k": "v"}, "secret_type": "kv", "metadata": {"tags": ["x"]}}
    assert requests[0].headers["Content-Type"] == "application/json"


async def test_literal_token_is_stripped(make_client: ClientFactory) -> None:
    client, requests = make_client(
        lambda request: json_response(200, VALID_BODIES["whoami"]), auth=StaticToken("  tok-x\n")
    )
    await client.whoami()
    assert _bearer(requests[0]) == "tok-x"


# -- StaticToken ------------------------------------------------------------------------------------------------


async def test_token_file_is_read_once(make_client: ClientFactory, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    provider = StaticToken(path=token_file)
    reads = _count_reads(provider)
    client, requests = make_client(lambda request: json_response(200, VALID_BODIES["whoami"]), auth=provider)
    for _ in range(3):
        await client.whoami()
    assert reads == ["file-token"]
    assert [_bearer(r) for r in requests] == ["file-token"] * 3


async def test_token_file_is_reread_on_401(make_client: ClientFactory, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token")
    provider = StaticToken(path=token_file)
    reads = _count_reads(provider)

    def handler(request: httpx.Request) -> httpx.Response:
        if _bearer(request) == "new-token":
            return json_response(200, VALID_BODIES["read"])
        return json_response(401, {"error": "authentication_required"})

    client, requests = make_client(handler, auth=provider)
    assert await provider.token() == "old-token"
    token_file.write_text("new-token\n")  # the kubelet rotated the mounted Secret
    secret = await client.read("a/b")
    assert secret.path == "a/b"
    assert [_bearer(r) for r in requests] == ["old-token", "new-token"]
    assert reads == ["old-token", "new-token"]
    await client.read("a/b")  # the new token sticks
    assert len(requests) == 3
    assert len(reads) == 2


async def test_unchanged_token_file_means_no_retry(make_client: ClientFactory, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("revoked-token")
    provider = StaticToken(path=token_file)
    reads = _count_reads(provider)
    client, requests = make_client(
        lambda request: json_response(401, {"error": "authentication_required"}), auth=provider, retry=POLICY
    )
    with pytest.raises(UnauthenticatedError) as info:
        await client.read("a/b")
    assert info.value.status_code == 401
    assert info.value.code == "authentication_required"
    assert len(requests) == 1
    assert reads == ["revoked-token", "revoked-token"]  # the first load, and the one re-read after the 401


async def test_rotated_token_refused_too_gives_401(make_client: ClientFactory, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token")
    provider = StaticToken(path=token_file)
    client, requests = make_client(lambda request: json_response(401, {}), auth=provider, retry=POLICY)
    await provider.token()
    token_file.write_text("also-bad")
    with pytest.raises(UnauthenticatedError):
        await client.whoami()
    assert [_bearer(r) for r in requests] == ["old-token", "also-bad"]


async def test_literal_token_401_is_not_retried(make_client: ClientFactory) -> None:
    client, requests = make_client(lambda request: json_response(401, {}), retry=POLICY)
    with pytest.raises(UnauthenticatedError):
        await client.read("a/b")
    assert len(requests) == 1
    assert await StaticToken("x").renew("x") is False


async def test_concurrent_401s_reread_the_file_once(make_client: ClientFactory, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token")
    provider = StaticToken(path=token_file)
    both_arrived = asyncio.Event()
    stale_requests = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal stale_requests
        if _bearer(request) == "new-token":
            return json_response(200, VALID_BODIES["read"])
        stale_requests += 1
        if stale_requests == 2:
            both_arrived.set()
        await both_arrived.wait()  # both requests hold the stale token before either is refused
        return json_response(401, {})

    client, requests = make_client(handler, auth=provider)
    await provider.token()
    token_file.write_text("new-token")
    reads = _count_reads(provider)
    first, second = await asyncio.wait_for(asyncio.gather(client.read("a/b"), client.read("a/b")), timeout=5)
    assert first.path == second.path == "a/b"
    assert reads == ["new-token"]
    assert sorted(_bearer(r) for r in requests) == ["new-token", "new-token", "old-token", "old-token"]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"token": "t", "path": "/x"}, {"token": ""}, {"token": "  \n"}],
    ids=["neither", "both", "empty", "blank"],
)
def test_static_token_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        StaticToken(**kwargs)


@pytest.mark.parametrize("content", [None, "", " \n", b"\xff\xfe"], ids=["missing", "empty", "blank", "not-utf8"])
async def test_unusable_token_file(make_client: ClientFactory, tmp_path: Path, content: str | bytes | None) -> None:
    token_file = tmp_path / "token"
    if isinstance(content, bytes):
        token_file.write_bytes(content)
    elif content is not None:
        token_file.write_text(content)
    client, requests = make_client(lambda request: json_response(200, {}), auth=StaticToken(path=token_file))
    with pytest.raises(ConfigurationError) as info:
        await client.whoami()
    assert str(token_file) in str(info.value)
    assert requests == []


async def test_token_path_is_a_directory(make_client: ClientFactory, tmp_path: Path) -> None:
    client, requests = make_client(lambda request: json_response(200, {}), auth=StaticToken(path=tmp_path))
    with pytest.raises(ConfigurationError):
        await client.whoami()
    assert requests == []


BAD_TOKENS = ["two\nlines", "tab\tinside", "nul\x00", "del\x7f", "sp ace", "ünicode", "line\r\nbreak"]


@pytest.mark.parametrize("token", BAD_TOKENS, ids=repr)
def test_literal_token_with_characters_a_header_cannot_carry(token: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        StaticToken(token)
    assert token.strip() not in str(info.value)


@pytest.mark.parametrize("token", BAD_TOKENS, ids=repr)
async def test_token_file_with_characters_a_header_cannot_carry(
    make_client: ClientFactory, tmp_path: Path, token: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    client, requests = make_client(lambda request: json_response(200, {}), auth=StaticToken(path=token_file))
    with pytest.raises(ConfigurationError) as info:
        await client.whoami()
    assert token.strip() not in str(info.value)
    assert requests == []


class _OddProvider:
    """A third-party provider handing out a token no HTTP header can carry."""

    async def token(self) -> str:
        return "abc\ndef"

    async def renew(self, stale: str) -> bool:
        return False


async def test_custom_provider_with_bad_token(make_client: ClientFactory) -> None:
    provider: TokenProvider = _OddProvider()
    client, requests = make_client(lambda request: json_response(200, {}), auth=provider)
    with pytest.raises(ConfigurationError) as info:
        await client.whoami()
    assert "abc" not in str(info.value)
    assert requests == []


# -- ClientCredentials ------------------------------------------------------------------------------------------


class TokenEndpoint:
    """A token endpoint handing out ``tok-1``, ``tok-2``, ... and an API that accepts the tokens in ``accepted``."""

    def __init__(self, *, expires_in: Any = 100, accept: set[str] | None = None) -> None:
        self.expires_in = expires_in
        self.accept = accept
        self.issued: list[str] = []
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.answer: httpx.Response | None = None
        self.next_token: str | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.token_requests.append(request)
            if self.answer is not None:
                return self.answer
            token = self.next_token or f"tok-{len(self.issued) + 1}"
            self.issued.append(token)
            body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return json_response(200, body)
        self.api_requests.append(request)
        if self.accept is not None and _bearer(request) not in self.accept:
            return json_response(401, {"error": "authentication_required"})
        return json_response(200, VALID_BODIES["whoami"])


def _credentials(clock: FakeClock | None = None, **kwargs: Any) -> ClientCredentials:
    return ClientCredentials(TOKEN_URL, "ci-client", "ci-secret", clock=clock or FakeClock(), **kwargs)


async def test_token_is_fetched_once_and_cached(make_client: ClientFactory) -> None:
    endpoint = TokenEndpoint()
    auth = _credentials()
    client, _ = make_client(endpoint, auth=auth)
    for _ in range(3):
        await client.whoami()
    assert auth.fetch_count == 1
    assert len(endpoint.token_requests) == 1
    assert [_bearer(r) for r in endpoint.api_requests] == ["tok-1"] * 3


async def test_token_request_shape(make_client: ClientFactory) -> None:
    endpoint = TokenEndpoint()
    client, _ = make_client(endpoint, auth=_credentials(scope="secrets:read"))
    await client.whoami()
    (request,) = endpoint.token_requests
    assert request.method == "POST"
    assert str(request.url) == TOKEN_URL
    expected = base64.b64encode(b"ci-client:ci-secret").decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {"grant_type": "client_credentials", "scope": "secrets:read"}


async def test_no_scope_when_not_given(make_client: ClientFactory) -> None:
    endpoint = TokenEndpoint()
    client, _ = make_client(endpoint, auth=_credentials())
    await client.whoami()
    assert dict(httpx.QueryParams(endpoint.token_requests[0].content.decode())) == {"grant_type": "client_credentials"}


async def test_token_is_fetched_again_after_expiry(make_client: ClientFactory) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(expires_in=100)
    auth = _credentials(clock, refresh_margin=30)
    client, _ = make_client(endpoint, auth=auth)
    await client.whoami()
    clock.now += 69.9  # still more than the margin left
    await client.whoami()
    assert auth.fetch_count == 1
    clock.now += 0.2  # now within 30 s of expiry: refresh before use
    await client.whoami()
    assert auth.fetch_count == 2
    clock.now += 1000  # long expired
    await client.whoami()
    assert auth.fetch_count == 3
    assert [_bearer(r) for r in endpoint.api_requests] == ["tok-1", "tok-1", "tok-2", "tok-3"]


async def test_zero_margin(make_client: ClientFactory) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(expires_in=10)
    auth = _credentials(clock, refresh_margin=0)
    client, _ = make_client(endpoint, auth=auth)
    await client.whoami()
    clock.now += 9.9
    await client.whoami()
    assert auth.fetch_count == 1
    clock.now += 0.1
    await client.whoami()
    assert auth.fetch_count == 2


async def test_jwt_exp_is_used_without_expires_in(make_client: ClientFactory) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(expires_in=None)
    endpoint.next_token = _jwt({"sub": "ci-client", "exp": int(time.time()) + 200})
    auth = _credentials(clock, refresh_margin=30, default_lifetime=10_000)
    client, _ = make_client(endpoint, auth=auth)
    await client.whoami()
    clock.now += 160
    await client.whoami()
    assert auth.fetch_count == 1
    clock.now += 15  # past exp - margin (about 170 s), far below the default lifetime
    await client.whoami()
    assert auth.fetch_count == 2


async def test_expired_jwt_is_not_reused(make_client: ClientFactory) -> None:
    endpoint = TokenEndpoint(expires_in=None)
    endpoint.next_token = _jwt({"exp": int(time.time()) - 10})
    auth = _credentials(default_lifetime=10_000)
    client, _ = make_client(endpoint, auth=auth)
    await client.whoami()
    await client.whoami()
    assert auth.fetch_count == 2


@pytest.mark.parametrize(
    "token",
    [
        "opaque-token",
        "a.b.c",
        _jwt({"sub": "no-exp"}),
        _jwt({"exp": "tomorrow"}),
        _jwt({"exp": True}),
        "e30." + base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode().rstrip("=") + ".c2ln",
        "e30." + base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("=") + ".c2ln",
    ],
    ids=["opaque", "not-base64", "no-exp", "exp-string", "exp-bool", "deeply-nested", "not-utf8"],
)
@pytest.mark.parametrize("expires_in", [None, 0, -5, "3600", True])
async def test_default_lifetime_without_usable_expiry(make_client: ClientFactory, token: str, expires_in: Any) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(expires_in=expires_in)
    endpoint.next_token = token
    auth = _credentials(clock, refresh_margin=30, default_lifetime=300)
    client, _ = make_client(endpoint, auth=auth)
    await client.whoami()
    clock.now += 269
    await client.whoami()
    assert auth.fetch_count == 1
    clock.now += 2
    await client.whoami()
    assert auth.fetch_count == 2


async def test_api_401_refetches_once_and_retries_once(make_client: ClientFactory) -> None:
    endpoint = TokenEndpoint(accept={"tok-2"})
    auth = _credentials()
    client, _ = make_client(endpoint, auth=auth, retry=POLICY)
    identity = await client.whoami()
    assert identity.identity_id
    assert auth.fetch_count == 2
    assert [_bearer(r) for r in endpoint.api_requests] == ["tok-1", "tok-2"]


async def test_api_401_with_every_token(make_client: ClientFactory) -> None:
    endpoint = TokenEndpoint(accept=set())
    auth = _credentials()
    client, _ = make_client(endpoint, auth=auth, retry=POLICY)
    with pytest.raises(UnauthenticatedError) as info:
        await client.whoami()
    assert info.value.endpoint is Endpoint.SCAIVAULT  # ScaiVault refused the token, not the token endpoint
    assert auth.fetch_count == 2
    assert len(endpoint.api_requests) == 2


async def test_api_401_and_the_endpoint_returns_the_same_token(make_client: ClientFactory) -> None:
    endpoint = TokenEndpoint(accept=set())
    endpoint.next_token = "same-token"
    auth = _credentials()
    client, _ = make_client(endpoint, auth=auth, retry=POLICY)
    with pytest.raises(UnauthenticatedError):
        await client.whoami()
    assert len(endpoint.token_requests) == 2
    assert len(endpoint.api_requests) == 1  # the same token again is not worth a retry


async def test_concurrent_callers_share_one_fetch(make_client: ClientFactory) -> None:
    gate = asyncio.Event()
    endpoint = TokenEndpoint()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            await gate.wait()
        return endpoint(request)

    auth = _credentials()
    client, _ = make_client(handler, auth=auth)
    tasks = [asyncio.create_task(client.whoami()) for _ in range(5)]
    for _ in range(20):
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert auth.fetch_count == 1
    assert len(endpoint.token_requests) == 1


async def test_concurrent_401s_refetch_once(make_client: ClientFactory) -> None:
    endpoint = TokenEndpoint(accept={"tok-2"})
    both_arrived = asyncio.Event()
    stale = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal stale
        if request.url.path != "/oauth/token" and _bearer(request) == "tok-1":
            stale += 1
            if stale == 2:
                both_arrived.set()
            await both_arrived.wait()
        return endpoint(request)

    auth = _credentials()
    client, _ = make_client(handler, auth=auth)
    await auth.token()
    await asyncio.wait_for(asyncio.gather(client.whoami(), client.whoami()), timeout=5)
    assert auth.fetch_count == 2
    assert sorted(_bearer(r) for r in endpoint.api_requests) == ["tok-1", "tok-1", "tok-2", "tok-2"]


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_invalid_client(make_client: ClientFactory, status: int) -> None:
    endpoint = TokenEndpoint()
    endpoint.answer = json_response(status, {"error": "invalid_client", "error_description": "bad secret"})
    client, _ = make_client(endpoint, auth=_credentials(), retry=POLICY)
    with pytest.raises(UnauthenticatedError) as info:
        await client.whoami()
    assert info.value.status_code == status
    assert info.value.code == "invalid_client"
    assert info.value.endpoint is Endpoint.TOKEN
    assert "ci-client" in str(info.value)
    assert "ci-secret" not in str(info.value)
    assert len(endpoint.token_requests) == 1  # not retried
    assert endpoint.api_requests == []


@pytest.mark.parametrize(("status", "error"), [(404, NotFoundError), (301, BadRequestError), (405, BadRequestError)])
async def test_token_endpoint_refusal_is_marked_as_the_token_endpoints(
    make_client: ClientFactory, status: int, error: type[ScaiVaultError]
) -> None:
    """A wrong token URL (404, a redirect, 405) raises the status's class, marked ``Endpoint.TOKEN``: the caller
    must not read it as ScaiVault's answer about a secret."""
    endpoint = TokenEndpoint()
    endpoint.answer = json_response(status, {"error": "not_found"})
    client, _ = make_client(endpoint, auth=_credentials(), retry=POLICY)
    with pytest.raises(error) as info:
        await client.read("a/b")
    assert type(info.value) is error
    assert info.value.endpoint is Endpoint.TOKEN
    assert str(info.value).startswith("POST token endpoint for client 'ci-client'")
    assert len(endpoint.token_requests) == 1  # not retried
    assert endpoint.api_requests == []


async def test_token_endpoint_unavailable(make_client: ClientFactory, sleeps: list[float]) -> None:
    endpoint = TokenEndpoint()
    endpoint.answer = json_response(503, {"error": "unavailable"})
    client, _ = make_client(endpoint, auth=_credentials(), retry=POLICY)
    with pytest.raises(UnavailableError) as info:
        await client.whoami()
    assert info.value.status_code == 503
    assert info.value.endpoint is Endpoint.TOKEN
    assert len(endpoint.token_requests) == POLICY.max_attempts  # a read retries, fetching again each time
    assert endpoint.api_requests == []
    with pytest.raises(UnavailableError):
        await client.write("a/b", {"k": "v"})
    assert len(endpoint.token_requests) == POLICY.max_attempts + 1  # a write does not


async def test_token_endpoint_transport_error(make_client: ClientFactory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, requests = make_client(handler, auth=_credentials(), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(UnavailableError) as info:
        await client.whoami()
    assert info.value.status_code is None
    assert info.value.endpoint is Endpoint.TOKEN
    assert len(requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=b"<html>login</html>"),
        json_response(200, ["access_token"]),
        json_response(200, {"token_type": "Bearer"}),
        json_response(200, {"access_token": ""}),
        json_response(200, {"access_token": 12345}),
        json_response(200, {"access_token": "two\nlines"}),
        json_response(200, {"access_token": "ünicode"}),
        httpx.Response(200, content=b"[" * 50_000),
    ],
    ids=["html", "array", "no-token", "empty-token", "int-token", "newline-token", "unicode-token", "deep"],
)
async def test_token_endpoint_malformed_answer(make_client: ClientFactory, answer: httpx.Response) -> None:
    endpoint = TokenEndpoint()
    endpoint.answer = answer
    auth = _credentials()
    client, _ = make_client(endpoint, auth=auth, retry=POLICY)
    with pytest.raises(ResponseError) as info:
        await client.whoami()
    assert info.value.endpoint is Endpoint.TOKEN
    assert endpoint.api_requests == []
    assert auth.fetch_count == 0


@pytest.mark.parametrize(
    "args", [("", "id", "secret"), (TOKEN_URL, "", "secret"), (TOKEN_URL, "id", "")], ids=["url", "id", "secret"]
)
def test_client_credentials_configuration(args: tuple[str, str, str]) -> None:
    with pytest.raises(ConfigurationError):
        ClientCredentials(*args)


async def test_unbound_client_credentials() -> None:
    with pytest.raises(ConfigurationError):
        await _credentials().token()


async def test_explicit_http_client_is_kept() -> None:
    endpoint = TokenEndpoint()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as own_http:
        auth = _credentials(http=own_http)

        def api(request: httpx.Request) -> httpx.Response:
            return json_response(200, VALID_BODIES["whoami"])

        async with ScaiVaultClient(BASE_URL, auth, transport=httpx.MockTransport(api)) as client:
            await client.whoami()
    assert len(endpoint.token_requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "tok-big", "expires_in": 10**400},
        {"access_token": _jwt({"exp": 10**400})},
        {"access_token": _jwt({"exp": -(10**400)})},
        {"access_token": "tok-inf", "expires_in": float("inf")},
        {"access_token": "tok-nan", "expires_in": float("nan")},
        {"access_token": _jwt({"exp": float("inf")})},
    ],
    ids=["expires_in-huge", "exp-huge", "exp-huge-negative", "expires_in-inf", "expires_in-nan", "exp-inf"],
)
async def test_absurd_lifetimes(make_client: ClientFactory, body: dict[str, Any]) -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint()
    endpoint.answer = httpx.Response(200, content=json.dumps(body).encode())
    auth = _credentials(clock, default_lifetime=300)
    client, _ = make_client(endpoint, auth=auth)
    await client.whoami()
    clock.now += 10**7  # no lifetime, however large, keeps a token forever
    await client.whoami()
    assert auth.fetch_count == 2


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
_token_answers = st.one_of(
    _json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "access_token": st.one_of(st.text(max_size=12), st.builds(_jwt, st.dictionaries(st.text(), _json_values))),
            "expires_in": st.one_of(st.integers(), st.floats(), _json_values),
            "error": st.one_of(st.text(max_size=12), _json_values),
        },
    ),
)


@settings(max_examples=100, deadline=None)
@given(body=_token_answers, status=st.sampled_from([200, 200, 400, 401, 429, 500]))
def test_arbitrary_token_endpoint_answers(body: Any, status: int) -> None:
    async def run() -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/oauth/token":
                return httpx.Response(status, content=json.dumps(body).encode())
            return json_response(200, VALID_BODIES["whoami"])

        auth = _credentials()
        async with ScaiVaultClient(
            BASE_URL, auth, transport=httpx.MockTransport(handler), retry=RetryPolicy(max_attempts=1)
        ) as client:
            try:
                await client.whoami()
            except ScaiVaultError:
                assert auth.fetch_count == 0
            else:
                assert status == 200
                assert auth.fetch_count == 1

    asyncio.run(run())
