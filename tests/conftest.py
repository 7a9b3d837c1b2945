"""Shared fixtures: a local ScaiVault ("dev-vault") over real loopback HTTP, a fake clock, an HTTP client.

``dev_vault`` is a running server with fixed credentials exposed as attributes, so test modules never import
this file::

    def test_read(dev_vault, dev_vault_http):
        dev_vault.vault.write("apps/db", {"password": "pw"})
        resp = dev_vault_http.get("/v1/secrets/apps/db", headers=dev_vault.headers(dev_vault.ro_token))

``start_dev_vault`` starts more servers (own config, own clock) and stops them at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from scaivault_operator._cogs.scaivault import _client as _client_module
from scaivault_operator.devvault import DevVault, DevVaultConfig, run_in_thread

RW_TOKEN = "rw-token"
RO_TOKEN = "ro-token"
WO_TOKEN = "wo-token"
NOSCOPE_TOKEN = "noscope-token"
CLIENT_ID = "ci-client"
CLIENT_SECRET = "ci-secret"
READ = "secrets:read"
WRITE = "secrets:write"


@dataclass(frozen=True)
class DevVaultFixture:
    """A running dev vault (``url``, ``vault``) and the credentials it was configured with."""

    url: str
    vault: DevVault
    rw_token: str = RW_TOKEN
    ro_token: str = RO_TOKEN
    wo_token: str = WO_TOKEN
    noscope_token: str = NOSCOPE_TOKEN
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    token_ttl: int = 3600

    def headers(self, token: str | None = None) -> dict[str, str]:
        """``Authorization: Bearer`` headers for ``token`` (the read-write token by default)."""
        return {"Authorization": f"Bearer {token if token is not None else self.rw_token}"}


class FakeClock:
    """A settable clock for ``DevVault(clock=...)``: tokens expire and timestamps move without sleeping."""

    def __init__(self, now: float = 1_776_952_800.0) -> None:  # 2026-04-23T14:00:00Z
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def base_config(**overrides: Any) -> DevVaultConfig:
    """The ``dev_vault`` fixture's configuration, on a free port, with ``overrides`` applied."""
    config = DevVaultConfig(
        host="127.0.0.1",
        port=0,
        tokens={
            RW_TOKEN: {READ, WRITE},
            RO_TOKEN: {READ},
            WO_TOKEN: {WRITE},
            NOSCOPE_TOKEN: set(),
        },
        clients={CLIENT_ID: (CLIENT_SECRET, {READ})},
        token_ttl=3600,
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


StartDevVault = Callable[..., DevVaultFixture]


@pytest.fixture
def make_dev_vault_config() -> Callable[..., DevVaultConfig]:
    """``make_dev_vault_config(**overrides)`` → the ``dev_vault`` configuration with ``overrides`` applied."""
    return base_config


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start_dev_vault() -> Iterator[StartDevVault]:
    """``start_dev_vault(clock=None, **config_overrides)`` → a running ``DevVaultFixture``, stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(clock: Callable[[], float] | None = None, **overrides: Any) -> DevVaultFixture:
            config = base_config(**overrides)
            running = stack.enter_context(run_in_thread(config, clock=clock))
            return DevVaultFixture(url=running.url, vault=running.vault, token_ttl=config.token_ttl)

        yield start


@pytest.fixture
def dev_vault(start_dev_vault: StartDevVault) -> DevVaultFixture:
    """A dev vault on a free loopback port with the tokens and client named in ``DevVaultFixture``."""
    return start_dev_vault()


@pytest.fixture
def dev_vault_http(dev_vault: DevVaultFixture) -> Iterator[httpx.Client]:
    """A plain httpx client on ``dev_vault``'s base URL (no default auth header)."""
    with httpx.Client(base_url=dev_vault.url, timeout=10.0) as client:
        yield client


class _AsyncioWithRecordedSleep:
    """Stands in for the ``asyncio`` module inside the client module only: ``sleep`` records, the rest delegates
    (a dev vault's server thread keeps the real module)."""

    def __init__(self, recorded: list[float]) -> None:
        self._recorded = recorded

    async def sleep(self, delay: float, result: Any = None) -> Any:
        self._recorded.append(delay)
        return await asyncio.sleep(0, result)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``asyncio.sleep`` the ScaiVault client requests, in order; the sleep itself only yields to the loop."""
    recorded: list[float] = []
    monkeypatch.setattr(_client_module, "asyncio", _AsyncioWithRecordedSleep(recorded))
    return recorded
