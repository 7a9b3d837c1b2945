"""Shared fixtures for the ScaiVault client's unit tests: a client on ``httpx.MockTransport`` and a sleep recorder.

``make_client(handler)`` builds a ``ScaiVaultClient`` whose network is ``handler`` (sync or async, returning an
``httpx.Response`` or raising an httpx error); it returns the client and the list of requests the handler saw.
``sleeps`` replaces ``asyncio.sleep`` for the test and records every wait the client asked for, so retry tests
never really wait.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from client_helpers import BASE_URL, FAST_RETRY, TOKEN, ClientFactory, Handler

from scaivault_operator.scaivault import RetryPolicy, ScaiVaultClient, StaticToken, TokenProvider
from scaivault_operator.scaivault import _client as _client_module


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[ScaiVaultClient] = []

    def factory(
        handler: Handler,
        *,
        auth: TokenProvider | None = None,
        retry: RetryPolicy | None = FAST_RETRY,
        **kwargs: Any,
    ) -> tuple[ScaiVaultClient, list[httpx.Request]]:
        requests: list[httpx.Request] = []

        async def recording(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            result = handler(request)
            if inspect.isawaitable(result):
                result = await result
            return result

        client = ScaiVaultClient(
            BASE_URL,
            auth if auth is not None else StaticToken(TOKEN),
            transport=httpx.MockTransport(recording),
            retry=retry,
            **kwargs,
        )
        clients.append(client)
        return client, requests

    yield factory
    for client in clients:
        await client.aclose()


class _AsyncioWithRecordedSleep:
    """Stands in for the ``asyncio`` module inside the client module only: ``sleep`` records, the rest delegates."""

    def __init__(self, recorded: list[float]) -> None:
        self._recorded = recorded

    async def sleep(self, delay: float, result: Any = None) -> Any:
        self._recorded.append(delay)
        return await asyncio.sleep(0, result)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``asyncio.sleep`` the client requests, in order; the sleep itself only yields to the loop."""
    recorded: list[float] = []
    monkeypatch.setattr(_client_module, "asyncio", _AsyncioWithRecordedSleep(recorded))
    return recorded
