"""The ScaiVault client against the real local server (dev-vault) over loopback HTTP.

Every call, every error class the server can produce, retries driven by the server's fault injection, the token
file re-read on 401 and the OAuth client-credentials flow with expiry. Time never really passes: the client's
retry sleeps are recorded instead of slept, and token expiry moves fake clocks on both sides.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from scaivault_operator._cogs.scaivault import (
    BadRequestError,
    ClientCredentials,
    ConfigurationError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
    ScaiVaultClient,
    ScaiVaultError,
    StaticToken,
    TokenProvider,
    UnauthenticatedError,
    UnavailableError,
)

NO_RETRY = RetryPolicy(max_attempts=1)
RETRY = RetryPolicy(max_attempts=3, base=0.01, cap=0.05, max_total=10.0)


class Clock:
    def __init__(self, now: float = 5_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


MakeClient = Callable[..., ScaiVaultClient]


@pytest.fixture
async def make_client(dev_vault: Any) -> AsyncIterator[MakeClient]:
    """``make_client(auth=None, url=None, **kwargs)``: a client on the dev vault, closed at teardown."""
    clients: list[ScaiVaultClient] = []

    def make(auth: TokenProvider | None = None, url: str | None = None, **kwargs: Any) -> ScaiVaultClient:
        kwargs.setdefault("retry", RETRY)
        client = ScaiVaultClient(url or dev_vault.url, auth or StaticToken(dev_vault.rw_token), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


# -- every call --------------------------------------------------------------------------------------------------


async def test_whoami(dev_vault: Any, make_client: MakeClient) -> None:
    identity = await make_client().whoami()
    assert set(identity.scopes) == {"secrets:read", "secrets:write"}
    assert identity.identity_id
    noscope = await make_client(StaticToken(dev_vault.noscope_token)).whoami()
    assert noscope.scopes == ()
    assert dev_vault.vault.stats.count("whoami") == 2


async def test_write_read_versions(dev_vault: Any, make_client: MakeClient) -> None:
    client = make_client()
    first = await client.write(
        "environments/production/salesforce/api-credentials",
        {"client_id": "3MVG9", "client_secret": "one"},
        metadata={"description": "Salesforce OAuth credentials", "tags": ["salesforce", "production"]},
    )
    assert first.created is True
    assert first.version == 1
    assert first.previous_version is None
    second = await client.write("environments/production/salesforce/api-credentials", {"client_secret": "two"})
    assert second.created is False
    assert second.version == 2
    assert second.previous_version == 1

    latest = await client.read("environments/production/salesforce/api-credentials")
    assert latest.version == 2
    assert latest.data == {"client_secret": "two"}
    assert latest.path == "environments/production/salesforce/api-credentials"
    v1 = await client.read("environments/production/salesforce/api-credentials", version=1)
    assert v1.version == 1
    assert v1.data == {"client_id": "3MVG9", "client_secret": "one"}
    assert v1.metadata["tags"] == ["salesforce", "production"]
    assert v1.created_at is not None
    stats = dev_vault.vault.stats
    assert stats.count("write") == 2
    assert stats.count_reads("environments/production/salesforce/api-credentials", 1) == 1
    assert stats.count_reads("environments/production/salesforce/api-credentials", 2) == 1


async def test_list_follows_cursors_over_pages(dev_vault: Any, make_client: MakeClient) -> None:
    expected = [f"apps/svc-{i:02d}" for i in range(8)]
    for path in reversed(expected):
        dev_vault.vault.write(path, {"k": path}, metadata={"tags": ["t"]})
    dev_vault.vault.write("other/x", {"k": "x"})
    dev_vault.vault.write("apps/svc-03", {"k": "v2"})
    pages = [page async for page in make_client().list_secrets("apps/", page_size=3)]
    assert [len(page.secrets) for page in pages] == [3, 3, 2]
    assert [s.path for page in pages for s in page.secrets] == expected
    assert [page.has_more for page in pages] == [True, True, False]
    versions = {s.path: s.version for page in pages for s in page.secrets}
    assert versions["apps/svc-03"] == 2
    assert all(s.tags == ("t",) for s in pages[0].secrets)
    assert dev_vault.vault.stats.count("list") == 3
    everything = [s.path async for page in make_client().list_secrets(page_size=100) for s in page.secrets]
    assert everything == [*expected, "other/x"]


@pytest.mark.parametrize("path", ["team a/db#1", "q?x=1/100%", "ünï/日本/😀", "a.b/..c/tilde~"])
async def test_odd_paths_round_trip(dev_vault: Any, make_client: MakeClient, path: str) -> None:
    client = make_client()
    written = await client.write(path, {"value": path})
    assert written.path == path
    secret = await client.read(path)
    assert secret.data == {"value": path}
    prefix = path.rsplit("/", 1)[0] + "/"
    listed = [s.path async for page in client.list_secrets(prefix) for s in page.secrets]
    assert listed == [path]
    assert dev_vault.vault.stats.count_reads(path, 1) == 1


# -- errors from the real server ----------------------------------------------------------------------------------


async def test_unknown_token_is_401(dev_vault: Any, make_client: MakeClient) -> None:
    client = make_client(StaticToken("no-such-token"))
    with pytest.raises(UnauthenticatedError) as info:
        await client.whoami()
    assert info.value.status_code == 401
    assert info.value.code == "authentication_required"
    assert dev_vault.vault.stats.count_status(401) == 1


async def test_scopes_are_403(dev_vault: Any, make_client: MakeClient) -> None:
    dev_vault.vault.write("apps/db", {"k": "v"})
    with pytest.raises(ForbiddenError) as info:
        await make_client(StaticToken(dev_vault.ro_token)).write("apps/db", {"k": "w"})
    assert info.value.status_code == 403
    assert info.value.code == "access_denied"
    assert info.value.server_message is not None
    assert "secrets:write" in info.value.server_message
    assert "secrets:write" not in str(info.value)
    wo = make_client(StaticToken(dev_vault.wo_token))
    with pytest.raises(ForbiddenError):
        await wo.read("apps/db")
    with pytest.raises(ForbiddenError):
        await anext(aiter(wo.list_secrets()))
    assert (await wo.write("apps/db", {"k": "w"})).version == 2
    assert dev_vault.vault.stats.count_status(403) == 3  # never retried


async def test_missing_path_and_version_are_404(dev_vault: Any, make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(NotFoundError) as info:
        await client.read("apps/missing")
    assert info.value.code == "not_found"
    dev_vault.vault.write("apps/db", {"k": "v"})
    with pytest.raises(NotFoundError) as info:
        await client.read("apps/db", version=5)
    assert info.value.code == "version_not_found"
    assert dev_vault.vault.stats.count("read") == 2


async def test_bad_request_from_the_server(dev_vault: Any, make_client: MakeClient) -> None:
    dev_vault.vault.configure_faults(fail_next=[409, 422])
    client = make_client()
    for status in (409, 422):
        with pytest.raises(BadRequestError) as info:
            await client.whoami()
        assert info.value.status_code == status


async def test_injected_429_and_503(dev_vault: Any, make_client: MakeClient) -> None:
    dev_vault.vault.configure_faults(fail_next=[429, 503, 502, 504], retry_after=7)
    client = make_client(retry=NO_RETRY)
    with pytest.raises(RateLimitedError) as info:
        await client.read("apps/db")
    assert info.value.retry_after == 7.0
    assert info.value.code == "rate_limited"
    for status in (503, 502, 504):
        with pytest.raises(UnavailableError) as unavailable:
            await client.read("apps/db")
        assert unavailable.value.status_code == status


async def test_retry_then_success(dev_vault: Any, make_client: MakeClient, sleeps: list[float]) -> None:
    dev_vault.vault.write("apps/db", {"k": "v"})
    dev_vault.vault.configure_faults(fail_next=[503, 429], retry_after=2)
    secret = await make_client().read("apps/db")
    assert secret.data == {"k": "v"}
    stats = dev_vault.vault.stats
    assert stats.count("read") == 3
    assert stats.count_status(503) == 1
    assert stats.count_status(429) == 1
    assert stats.count_reads("apps/db", 1) == 1
    assert len(sleeps) == 2
    assert sleeps[0] <= RETRY.base
    assert sleeps[1] >= 2.0  # Retry-After honoured


async def test_retries_exhausted(dev_vault: Any, make_client: MakeClient, sleeps: list[float]) -> None:
    dev_vault.vault.configure_faults(error_rate=1.0, seed=1)
    with pytest.raises(UnavailableError) as info:
        await make_client().whoami()
    assert info.value.status_code == 503
    assert dev_vault.vault.stats.count("whoami") == RETRY.max_attempts
    assert len(sleeps) == RETRY.max_attempts - 1


async def test_retry_after_beyond_budget_is_not_waited_for(
    dev_vault: Any, make_client: MakeClient, sleeps: list[float]
) -> None:
    dev_vault.vault.configure_faults(fail_next=[429], retry_after=60)
    with pytest.raises(RateLimitedError) as info:
        await make_client().read("apps/db")
    assert info.value.retry_after == 60.0
    assert sleeps == []
    assert dev_vault.vault.stats.count("read") == 1


async def test_writes_are_not_retried(dev_vault: Any, make_client: MakeClient, sleeps: list[float]) -> None:
    dev_vault.vault.configure_faults(fail_next=[503])
    client = make_client()
    with pytest.raises(UnavailableError):
        await client.write("apps/db", {"k": "v"})
    assert dev_vault.vault.stats.count("write") == 1
    assert sleeps == []
    with pytest.raises(NotFoundError):
        await client.read("apps/db")


async def test_connection_refused_is_unavailable(make_client: MakeClient, sleeps: list[float]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(url=f"http://127.0.0.1:{port}")
    with pytest.raises(UnavailableError) as info:
        await client.whoami()
    assert info.value.status_code is None
    assert "ConnectError" in str(info.value)
    assert len(sleeps) == RETRY.max_attempts - 1


async def test_read_timeout_is_unavailable(dev_vault: Any, make_client: MakeClient) -> None:
    dev_vault.vault.configure_faults(latency=0.3)
    client = make_client(timeout=0.05, retry=NO_RETRY)
    with pytest.raises(UnavailableError) as info:
        await client.whoami()
    assert info.value.status_code is None
    assert "timed out" in str(info.value)


async def test_concurrency_limit_over_http(dev_vault: Any, make_client: MakeClient) -> None:
    dev_vault.vault.write("apps/db", {"k": "v"})
    dev_vault.vault.configure_faults(latency=0.05)  # requests overlap on the server
    client = make_client(max_concurrency=2)
    in_flight = 0
    peak = 0
    real_send = client._http.send  # every request goes out through send (streamed, for the answer size limit)

    async def counting_send(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await real_send(*args, **kwargs)
        finally:
            in_flight -= 1

    client._http.send = counting_send  # type: ignore[method-assign]
    results = await asyncio.gather(*(client.read("apps/db") for _ in range(6)))
    assert [r.version for r in results] == [1] * 6
    assert peak == 2
    assert dev_vault.vault.stats.count_reads("apps/db", 1) == 6


# -- the token file ------------------------------------------------------------------------------------------------


async def test_token_file_reread_on_401(dev_vault: Any, make_client: MakeClient, tmp_path: Path) -> None:
    dev_vault.vault.write("apps/db", {"k": "v"})
    dev_vault.vault.add_token("old-rotated-token", {"secrets:read"})
    token_file = tmp_path / "token"
    token_file.write_text("old-rotated-token\n")
    provider = StaticToken(path=token_file)
    client = make_client(provider)
    assert (await client.read("apps/db")).version == 1
    dev_vault.vault.revoke_token("old-rotated-token")
    token_file.write_text(f"{dev_vault.rw_token}\n")  # the mounted Secret was rotated
    before = dev_vault.vault.stats.snapshot().requests
    secret = await client.read("apps/db")
    assert secret.data == {"k": "v"}
    stats = dev_vault.vault.stats
    assert stats.snapshot().requests == before + 2  # the refused request and exactly one retry
    assert stats.count_status(401) == 1
    assert stats.count_reads("apps/db", 1) == 2
    await client.read("apps/db")
    assert stats.snapshot().requests == before + 3  # the new token is kept


async def test_token_file_unchanged_after_401(dev_vault: Any, make_client: MakeClient, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("revoked-token")
    client = make_client(StaticToken(path=token_file))
    with pytest.raises(UnauthenticatedError):
        await client.read("apps/db")
    assert dev_vault.vault.stats.snapshot().requests == 1


async def test_token_file_a_header_cannot_carry(dev_vault: Any, make_client: MakeClient, tmp_path: Path) -> None:
    """Over a real transport h11 would refuse the header and quote it, token included: the client refuses first."""
    token_file = tmp_path / "token"
    token_file.write_text(f"{dev_vault.rw_token}\nsecond-line-token\n")
    with pytest.raises(ConfigurationError) as info:
        await make_client(StaticToken(path=token_file)).whoami()
    assert "second-line-token" not in str(info.value)
    assert dev_vault.vault.stats.snapshot().requests == 0


# -- OAuth client credentials ---------------------------------------------------------------------------------------


def _credentials(dev_vault: Any, clock: Clock, **kwargs: Any) -> ClientCredentials:
    return ClientCredentials(
        f"{dev_vault.url}/oauth/token", dev_vault.client_id, dev_vault.client_secret, clock=clock, **kwargs
    )


async def test_client_credentials_flow(start_dev_vault: Any, fake_clock: Any) -> None:
    vault = start_dev_vault(clock=fake_clock, token_ttl=600)
    vault.vault.write("apps/db", {"k": "v"})
    clock = Clock()
    auth = _credentials(vault, clock, refresh_margin=30)
    stats = vault.vault.stats
    async with ScaiVaultClient(vault.url, auth, retry=RETRY) as client:
        identity = await client.whoami()
        assert identity.identity_id == f"client:{vault.client_id}"
        assert identity.scopes == ("secrets:read",)
        for _ in range(3):
            assert (await client.read("apps/db")).version == 1
        assert stats.count("token") == 1
        assert auth.fetch_count == 1

        # shortly before expiry (inside the refresh margin) the client fetches a new token before using it
        clock.now += 600 - 30
        fake_clock.advance(600 - 30)
        await client.read("apps/db")
        assert stats.count("token") == 2
        assert stats.count_status(401) == 0

        # the server expires the token early (its clock jumps): one 401, one new token, one retry
        fake_clock.advance(600)
        await client.read("apps/db")
        assert stats.count("token") == 3
        assert stats.count_status(401) == 1
        assert stats.count("read") == 6

        # a client id with only secrets:read cannot write
        with pytest.raises(ForbiddenError):
            await client.write("apps/db", {"k": "w"})


async def test_client_credentials_with_scope(dev_vault: Any) -> None:
    auth = _credentials(dev_vault, Clock(), scope="secrets:read")
    async with ScaiVaultClient(dev_vault.url, auth) as client:
        assert (await client.whoami()).scopes == ("secrets:read",)


async def test_client_credentials_scope_not_granted(dev_vault: Any) -> None:
    auth = _credentials(dev_vault, Clock(), scope="secrets:write")
    async with ScaiVaultClient(dev_vault.url, auth, retry=RETRY) as client:
        with pytest.raises(UnauthenticatedError) as info:
            await client.whoami()
    assert info.value.status_code == 400
    assert info.value.code == "invalid_scope"
    assert dev_vault.vault.stats.count("whoami") == 0


async def test_client_credentials_wrong_secret(dev_vault: Any) -> None:
    auth = ClientCredentials(f"{dev_vault.url}/oauth/token", dev_vault.client_id, "wrong-secret-value")
    async with ScaiVaultClient(dev_vault.url, auth, retry=RETRY) as client:
        with pytest.raises(UnauthenticatedError) as info:
            await client.whoami()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_client"
    assert "wrong-secret-value" not in str(info.value)
    assert dev_vault.vault.stats.count("token") == 1  # not retried
    assert dev_vault.vault.stats.count("whoami") == 0


async def test_client_credentials_every_token_refused(dev_vault: Any) -> None:
    dev_vault.vault.configure_faults(expire_tokens=True)
    auth = _credentials(dev_vault, Clock())
    async with ScaiVaultClient(dev_vault.url, auth, retry=RETRY) as client:
        with pytest.raises(UnauthenticatedError) as info:
            await client.whoami()
    assert info.value.code == "token_expired"
    assert dev_vault.vault.stats.count("token") == 2  # the first token, and one renewal
    assert dev_vault.vault.stats.count("whoami") == 2  # the first try, and one retry


async def test_token_endpoint_down(dev_vault: Any, sleeps: list[float]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    auth = ClientCredentials(f"http://127.0.0.1:{port}/oauth/token", "ci-client", "ci-secret")
    async with ScaiVaultClient(dev_vault.url, auth, retry=RETRY) as client:
        with pytest.raises(UnavailableError):
            await client.whoami()
    assert len(sleeps) == RETRY.max_attempts - 1
    assert dev_vault.vault.stats.snapshot().requests == 0


# -- canaries over a real transport ----------------------------------------------------------------------------------


async def test_no_canary_in_logs_or_errors_over_http(
    dev_vault: Any, make_client: MakeClient, caplog: pytest.LogCaptureFixture, sleeps: list[float], tmp_path: Path
) -> None:
    value, token = "CANARY-VALUE-7f3a", "CANARY-TOKEN-91bd"
    caplog.set_level(logging.DEBUG)
    dev_vault.vault.add_token(token, {"secrets:read", "secrets:write"})
    client = make_client(StaticToken(token))
    texts: list[str] = []

    async def attempt(call: Any) -> None:
        try:
            texts.append(repr(await call))
        except ScaiVaultError as exc:
            texts.extend([str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)])

    await attempt(client.write("apps/db", {"password": value}))
    await attempt(client.read("apps/db"))
    dev_vault.vault.configure_faults(fail_next=[503, 429, 500, 400, 401, 403, 404], retry_after=0)
    for _ in range(3):
        await attempt(client.read("apps/db"))
    await attempt(client.write("apps/db", {"password": value}))
    dev_vault.vault.reset_faults()
    dev_vault.vault.revoke_token(token)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    await attempt(make_client(StaticToken(path=token_file)).read("apps/db"))
    token_file.write_text(f"{token}\n{value}")
    await attempt(make_client(StaticToken(path=token_file)).read("apps/db"))
    await attempt(make_client(ClientCredentials(f"{dev_vault.url}/oauth/token", "ci-client", value)).whoami())

    assert dev_vault.vault.stats.snapshot().requests == 10
    assert dev_vault.vault.stats.count("token") == 1
    assert any(r.name.startswith("httpx") for r in caplog.records)  # the transport's own logging was captured
    everything = "\n".join([*texts, caplog.text, *(r.getMessage() for r in caplog.records)])
    assert value not in everything
    assert token not in everything
