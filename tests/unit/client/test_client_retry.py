"""Retries of reads (never writes), Retry-After, the RetryPolicy's arithmetic, and the concurrency limit."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import httpx
import pytest
from client_helpers import CALLS, VALID_BODIES, ClientFactory, json_response
from hypothesis import given
from hypothesis import strategies as st

from scaivault_operator._cogs.scaivault import (
    BadRequestError,
    ConfigurationError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
    ScaiVaultError,
    UnauthenticatedError,
    UnavailableError,
)

READS = ["whoami", "read", "read-version", "list"]

Failure = Callable[[httpx.Request], httpx.Response]


def _status(status: int, headers: dict[str, str] | None = None) -> Failure:
    return lambda request: json_response(status, {"error": "e"}, headers)


def _raise(exc_type: type[httpx.TransportError]) -> Failure:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc_type("boom", request=request)

    return fail


TRANSIENT: dict[str, tuple[Failure, type[ScaiVaultError]]] = {
    "500": (_status(500), UnavailableError),
    "502": (_status(502), UnavailableError),
    "503": (_status(503), UnavailableError),
    "504": (_status(504), UnavailableError),
    "429": (_status(429), RateLimitedError),
    "429-retry-after-0": (_status(429, {"Retry-After": "0"}), RateLimitedError),
    "ConnectError": (_raise(httpx.ConnectError), UnavailableError),
    "ReadTimeout": (_raise(httpx.ReadTimeout), UnavailableError),
    "ConnectTimeout": (_raise(httpx.ConnectTimeout), UnavailableError),
}

PERMANENT: dict[int, type[ScaiVaultError]] = {
    400: BadRequestError,
    401: UnauthenticatedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: BadRequestError,
    422: BadRequestError,
}

POLICY = RetryPolicy(max_attempts=4, base=0.01, cap=0.05, max_total=10.0, rng=random.Random(7))


def _answer(call: str) -> httpx.Response:
    return json_response(200, VALID_BODIES[call])


@pytest.mark.parametrize("failure", list(TRANSIENT))
@pytest.mark.parametrize("call", READS)
async def test_reads_retry_up_to_max_attempts(
    make_client: ClientFactory, sleeps: list[float], call: str, failure: str
) -> None:
    fail, error_class = TRANSIENT[failure]
    client, requests = make_client(fail, retry=POLICY)
    with pytest.raises(error_class):
        await CALLS[call](client)
    assert len(requests) == POLICY.max_attempts
    assert len(sleeps) == POLICY.max_attempts - 1
    for attempt, wait in enumerate(sleeps, start=1):
        assert 0 <= wait <= min(POLICY.cap, POLICY.base * 2 ** (attempt - 1))


@pytest.mark.parametrize("failure", list(TRANSIENT))
@pytest.mark.parametrize("call", READS)
async def test_reads_recover_after_transient_failures(
    make_client: ClientFactory, sleeps: list[float], call: str, failure: str
) -> None:
    fail, _ = TRANSIENT[failure]

    def handler(request: httpx.Request) -> httpx.Response:
        return fail(request) if len(requests) <= 2 else _answer(call)

    client, requests = make_client(handler, retry=POLICY)
    result = await CALLS[call](client)
    assert result is not None
    assert len(requests) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", list(PERMANENT))
@pytest.mark.parametrize("call", READS)
async def test_reads_do_not_retry_permanent_errors(
    make_client: ClientFactory, sleeps: list[float], call: str, status: int
) -> None:
    client, requests = make_client(_status(status), retry=POLICY)
    with pytest.raises(PERMANENT[status]):
        await CALLS[call](client)
    assert len(requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("failure", list(TRANSIENT))
async def test_writes_are_never_retried(make_client: ClientFactory, sleeps: list[float], failure: str) -> None:
    fail, error_class = TRANSIENT[failure]
    client, requests = make_client(fail, retry=POLICY)
    with pytest.raises(error_class):
        await client.write("a/b", {"k": "v"})
    assert len(requests) == 1
    assert requests[0].method == "PUT"
    assert sleeps == []


async def test_retry_after_is_honoured(make_client: ClientFactory, sleeps: list[float]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if len(requests) == 1:
            return json_response(429, {"error": "rate_limited"}, {"Retry-After": "3"})
        return _answer("read")

    client, requests = make_client(handler, retry=POLICY)
    secret = await client.read("a/b")
    assert secret.path == "a/b"
    assert len(requests) == 2
    assert len(sleeps) == 1
    assert sleeps[0] >= 3.0


async def test_retry_after_beyond_max_total_raises_at_once(make_client: ClientFactory, sleeps: list[float]) -> None:
    policy = RetryPolicy(max_attempts=5, base=0.01, cap=0.05, max_total=15.0)
    client, requests = make_client(_status(429, {"Retry-After": "120"}), retry=policy)
    with pytest.raises(RateLimitedError) as info:
        await client.read("a/b")
    assert info.value.retry_after == 120.0
    assert len(requests) == 1
    assert sleeps == []


async def test_retry_after_within_budget_then_beyond(make_client: ClientFactory, sleeps: list[float]) -> None:
    """The server's hints are followed while they fit; the one that does not fit ends the retries."""
    hints = iter(["2", "30"])
    client, requests = make_client(
        lambda request: json_response(429, {}, {"Retry-After": next(hints)}),
        retry=RetryPolicy(max_attempts=5, base=0.0, cap=0.0, max_total=15.0),
    )
    with pytest.raises(RateLimitedError) as info:
        await client.whoami()
    assert info.value.retry_after == 30.0
    assert sleeps == [2.0]
    assert len(requests) == 2


async def test_default_policy_retries(make_client: ClientFactory, sleeps: list[float]) -> None:
    client, requests = make_client(_status(503), retry=None)
    with pytest.raises(UnavailableError):
        await client.whoami()
    assert len(requests) == RetryPolicy().max_attempts
    assert len(sleeps) == RetryPolicy().max_attempts - 1


# -- RetryPolicy.delay ------------------------------------------------------------------------------------------


def _unavailable() -> UnavailableError:
    return UnavailableError("x", status_code=503)


@given(
    seed=st.integers(),
    base=st.floats(min_value=0, max_value=10),
    cap=st.floats(min_value=0, max_value=60),
    attempt=st.integers(min_value=1, max_value=40),
)
def test_delay_is_full_jitter_within_bounds(seed: int, base: float, cap: float, attempt: int) -> None:
    policy = RetryPolicy(max_attempts=50, base=base, cap=cap, max_total=1e9, rng=random.Random(seed))
    wait = policy.delay(attempt, _unavailable(), 0.0)
    assert wait is not None
    assert 0.0 <= wait <= min(cap, base * 2 ** (attempt - 1))


def test_delay_is_jittered_and_reproducible() -> None:
    def waits(seed: int) -> list[float]:
        policy = RetryPolicy(max_attempts=10, base=1.0, cap=4.0, max_total=1e9, rng=random.Random(seed))
        return [policy.delay(3, _unavailable(), 0.0) or -1.0 for _ in range(200)]

    first = waits(42)
    assert first == waits(42)
    assert first != waits(43)
    assert min(first) >= 0.0
    assert max(first) <= 4.0
    assert len(set(first)) > 150  # jitter, not a constant
    assert min(first) < 0.5
    assert max(first) > 3.5  # spread over the whole window


def test_delay_stops_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, base=0.1, cap=1.0, max_total=100.0, rng=random.Random(1))
    assert policy.delay(1, _unavailable(), 0.0) is not None
    assert policy.delay(2, _unavailable(), 0.0) is not None
    assert policy.delay(3, _unavailable(), 0.0) is None
    assert policy.delay(4, _unavailable(), 0.0) is None
    assert RetryPolicy(max_attempts=1).delay(1, _unavailable(), 0.0) is None


@given(elapsed=st.floats(min_value=0, max_value=20), seed=st.integers())
def test_delay_respects_max_total(elapsed: float, seed: int) -> None:
    policy = RetryPolicy(max_attempts=10, base=1.0, cap=4.0, max_total=10.0, rng=random.Random(seed))
    wait = policy.delay(4, _unavailable(), elapsed)
    if wait is not None:
        assert elapsed + wait <= policy.max_total
    else:
        assert elapsed > policy.max_total - 4.0  # refused only when a wait of up to 4 s (cap) can overshoot


def test_delay_gives_up_once_budget_is_spent() -> None:
    policy = RetryPolicy(max_attempts=10, base=1.0, cap=4.0, max_total=10.0, rng=random.Random(3))
    assert policy.delay(1, _unavailable(), 10.5) is None


@given(retry_after=st.floats(min_value=0, max_value=20), seed=st.integers())
def test_delay_honours_retry_after(retry_after: float, seed: int) -> None:
    policy = RetryPolicy(max_attempts=10, base=0.1, cap=1.0, max_total=15.0, rng=random.Random(seed))
    error = RateLimitedError("x", retry_after=retry_after)
    wait = policy.delay(1, error, 0.0)
    if retry_after > policy.max_total:
        assert wait is None
    else:
        assert wait is not None
        assert retry_after <= wait <= max(retry_after, 0.1)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"max_attempts": -1}, {"base": -0.1}, {"cap": -1.0}, {"max_total": -1.0}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# -- concurrency ------------------------------------------------------------------------------------------------


async def test_at_most_max_concurrency_requests_in_flight(make_client: ClientFactory) -> None:
    release = asyncio.Event()
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await release.wait()
        finally:
            in_flight -= 1
        return _answer("read")

    client, requests = make_client(handler, max_concurrency=2)
    tasks = [asyncio.create_task(client.read("a/b")) for _ in range(6)]
    for _ in range(50):
        await asyncio.sleep(0)
    assert in_flight == 2
    assert len(requests) == 2
    release.set()
    secrets = await asyncio.gather(*tasks)
    assert [s.path for s in secrets] == ["a/b"] * 6
    assert peak == 2
    assert len(requests) == 6


async def test_concurrency_slot_is_released_on_errors(make_client: ClientFactory) -> None:
    client, requests = make_client(_raise(httpx.ConnectError), max_concurrency=1, retry=RetryPolicy(max_attempts=1))
    for _ in range(3):
        with pytest.raises(UnavailableError):
            await asyncio.wait_for(client.read("a/b"), timeout=2)
    assert len(requests) == 3


@pytest.mark.parametrize("limit", [0, -1])
def test_max_concurrency_must_be_positive(limit: int) -> None:
    from scaivault_operator._cogs.scaivault import ScaiVaultClient, StaticToken

    with pytest.raises(ConfigurationError):
        ScaiVaultClient("https://vault.test", StaticToken("t"), max_concurrency=limit)
