"""Shared fixtures for the ScaiVault client's unit tests: a client on ``httpx.MockTransport``.

``make_client(handler)`` builds a ``ScaiVaultClient`` whose network is ``handler`` (sync or async, returning an
``httpx.Response`` or raising an httpx error); it returns the client and the list of requests the handler saw.
``sleeps`` (tests/conftest.py, shared with the integration tests) replaces ``asyncio.sleep`` in the client and
records every wait it asked for, so retry tests never really wait.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from client_helpers import BASE_URL, FAST_RETRY, TOKEN, ClientFactory, Handler

from scaivault_operator._cogs.scaivault import RetryPolicy, ScaiVaultClient, StaticToken, TokenProvider


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
