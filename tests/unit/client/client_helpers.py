"""Constants and answer builders shared by the client's unit tests (imported by ``conftest`` and the tests)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from scaivault_operator._cogs.scaivault import RetryPolicy, ScaiVaultClient

Call = Callable[[ScaiVaultClient], Awaitable[Any]]

BASE_URL = "https://vault.test"
TOKEN = "test-token-0001"

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]
ClientFactory = Callable[..., tuple[ScaiVaultClient, list[httpx.Request]]]

#: Retries without real waiting: delays are at most 2 ms.
FAST_RETRY = RetryPolicy(max_attempts=3, base=0.001, cap=0.002, max_total=5.0)
NO_RETRY = RetryPolicy(max_attempts=1)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )


def secret_body(path: str, version: int = 1, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "path": path,
        "secret_type": "json",
        "version": version,
        "data": data if data is not None else {"k": "v"},
        "metadata": {"tags": ["t"]},
        "created_at": "2026-04-23T14:00:00Z",
        "updated_at": "2026-04-23T14:00:00Z",
    }


IDENTITY_BODY = {
    "identity_id": "user:alice@acme.example",
    "identity_type": "user",
    "tenant_id": "tnt_acme_prod",
    "partner_id": "ptn_acme",
    "scopes": ["secrets:read", "secrets:write"],
}

WRITE_BODY = {"path": "a/b", "secret_type": "json", "version": 1, "created": True, "created_at": "2026-04-23T14:00:00Z"}


#: One of each API call, on the paths the canned answers above describe.
CALLS: dict[str, Call] = {
    "whoami": lambda c: c.whoami(),
    "read": lambda c: c.read("a/b"),
    "read-version": lambda c: c.read("a/b", version=2),
    "list": lambda c: c.list_page("a/"),
    "write": lambda c: c.write("a/b", {"k": "v"}),
}

#: A valid answer for each of ``CALLS``.
VALID_BODIES: dict[str, Any] = {
    "whoami": IDENTITY_BODY,
    "read": secret_body("a/b"),
    "read-version": secret_body("a/b", 2),
    "list": {"secrets": [{"path": "a/b", "version": 1}], "cursor": None, "has_more": False},
    "write": WRITE_BODY,
}
