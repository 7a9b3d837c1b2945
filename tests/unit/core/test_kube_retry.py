"""kube: start-up lists ride out transient API server failures (a 429 while a new CRD's storage initializes)."""

from __future__ import annotations

import httpx
import pytest

from scaivault_operator._cogs import kube
from scaivault_operator._cogs.kube import Kube, KubeError


def _status_error(code: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://api.example/apis/x")
    response = httpx.Response(code, headers=headers or {}, request=request, text="{}")
    return httpx.HTTPStatusError("failed", request=request, response=response)


def test_translation_keeps_retry_after() -> None:
    error = kube._translate("list connections", _status_error(429, {"Retry-After": "1"}))
    assert (error.status, error.retry_after, error.transient) == (429, 1.0, True)
    assert kube._translate("x", _status_error(503)).retry_after is None
    assert kube._translate("x", _status_error(429, {"Retry-After": "soon"})).retry_after is None


async def test_transient_failures_are_retried_honouring_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(kube.asyncio, "sleep", sleep)
    failures = [KubeError("429", 429, retry_after=2.0), KubeError("net", None), KubeError("503", 503)]

    async def call() -> str:
        if failures:
            raise failures.pop(0)
        return "listed"

    assert await kube._retrying("list", call) == "listed"
    assert len(slept) == 3
    assert slept[0] == 2.0  # the server's Retry-After beats the first backoff step (0.25 s)
    assert all(0.0 < delay <= 5.0 * 1.2 for delay in slept)


async def test_permanent_failures_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise KubeError("forbidden", 403)

    with pytest.raises(KubeError, match="forbidden"):
        await kube._retrying("list", call)
    assert calls == 1


async def test_retries_stop_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    async def call() -> None:
        raise KubeError("429", 429, retry_after=30.0)

    with pytest.raises(KubeError, match="429"):
        await kube._retrying("list", call, deadline=10.0)  # the first wait alone would pass the deadline


async def test_start_up_lists_retry_a_storage_initializing_429() -> None:
    """Against a served API: the first list of connections answers 429 with Retry-After, as a real API server
    does for a CRD created a moment ago; the second answers."""
    status = {"kind": "Status", "code": 429, "reason": "TooManyRequests"}
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}, json=status)])

    def handler(request: httpx.Request) -> httpx.Response:
        response = next(answers, None)
        if response is not None:
            return response
        return httpx.Response(200, json={"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []})

    client = Kube.for_server("http://api.test")
    transport = httpx.MockTransport(handler)
    client._client._client._client._transport = transport  # type: ignore[attr-defined]  # lightkube's httpx client
    try:
        assert await client.list_connections(["team"]) == []
        assert next(answers, None) is None, "the 429 was served (and retried)"
    finally:
        await client.aclose()
