"""``DevVault``: one local ScaiVault server: its store, tokens, faults, statistics and HTTP listener.

Owns the lifecycle (``start`` binds and returns the base URL, ``stop`` closes the listener and the store) and
the in-process operations tests and the demo use instead of HTTP: seeding secrets, deleting them or rolling them
back (semantic faults: a secret re-created at version 1, a restore from a backup), adding and revoking tokens,
switching faults, reading statistics. Used by the CLI (``scaivault-operator dev-vault``), by ``run_in_thread``
and by tests directly on their own event loop.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from ._app import Services, build_app
from ._auth import Authenticator, Identity
from ._config import DevVaultConfig
from ._faults import FaultConfig, FaultInjector
from ._parsing import check_secret_path
from ._stats import DevVaultStats
from ._store import StoredVersion, open_store
from ._time import Clock

__all__ = ["DevVault"]

logger = logging.getLogger("scaivault_operator.devvault")

SHUTDOWN_TIMEOUT = 2.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    """The host to put in a URL: wildcard binds are reached over loopback; IPv6 literals get brackets."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - recognising the wildcard, not binding to it
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class DevVault:
    """A local ScaiVault server. Create, optionally seed with ``write``, then ``await start()``.

    A stopped vault cannot be started again (its store is closed); start a new one on the same
    ``data_file`` to check persistence. Also an async context manager (``async with DevVault(cfg) as v``).
    """

    def __init__(self, config: DevVaultConfig, *, clock: Clock | None = None) -> None:
        config.validate()
        self.config = config
        self.clock: Clock = clock or time.time
        self.stats = DevVaultStats()
        self.auth = Authenticator(
            tokens=config.tokens, clients=config.clients, token_ttl=config.token_ttl, clock=self.clock
        )
        self._injector = FaultInjector(config.faults.copy())
        self.store = open_store(config.data_file)
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    # -- faults ----------------------------------------------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        """The live fault switches; mutate fields directly or use ``configure_faults`` (validated)."""
        return self._injector.config

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self._injector.update(config.to_json())

    def configure_faults(self, **changes: Any) -> FaultConfig:
        """Merge ``changes`` into the fault switches, like ``PUT /_dev/faults`` (ValueError on bad values)."""
        return self._injector.update(changes)

    def reset_faults(self) -> FaultConfig:
        return self._injector.reset()

    # -- tokens and secrets ----------------------------------------------------------------------------

    def add_token(self, token: str, scopes: set[str] | frozenset[str] | list[str]) -> Identity:
        """Accept a static bearer token with ``scopes``."""
        return self.auth.add_token(token, scopes)

    def revoke_token(self, token: str) -> bool:
        """Stop accepting a static or issued token; True if it was valid."""
        return self.auth.revoke_token(token)

    def write(
        self,
        path: str,
        data: dict[str, Any],
        secret_type: str | None = "json",
        metadata: dict[str, Any] | None = None,
    ) -> StoredVersion:
        """Write the next version of ``path`` without HTTP (not counted in stats). None fields inherit."""
        check_secret_path(path)
        return self.store.put(path, data, secret_type=secret_type, metadata=metadata, now=int(self.clock()))

    def delete(self, path: str) -> int:
        """Delete the secret at ``path`` with every version (not counted in stats); return how many versions went.

        The next ``write`` creates it again at version 1. ``LookupError`` when there is no secret at ``path``.
        """
        check_secret_path(path)
        return self.store.truncate(path, 0)

    def roll_back(self, path: str, version: int) -> int:
        """Drop every version of ``path`` after ``version``: its current version goes back to ``version``, as after
        a restore from a backup. Returns how many versions went (0 when ``version`` is current or later)."""
        check_secret_path(path)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError("version must be an integer >= 1")
        return self.store.truncate(path, version)

    # -- lifecycle -------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A new aiohttp application serving this vault (for ``aiohttp.test_utils`` or custom runners)."""
        services = Services(
            store=self.store,
            auth=self.auth,
            faults=self._injector,
            stats=self.stats,
            clock=self.clock,
            max_body=self.config.max_body,
            list_default_limit=self.config.list_default_limit,
            list_max_limit=self.config.list_max_limit,
        )
        return build_app(services)

    async def start(self) -> str:
        """Listen on the configured host and port and return the base URL, e.g. ``http://127.0.0.1:8200``."""
        if self._runner is not None:
            raise RuntimeError("this DevVault is already started")
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        self.url = f"http://{_url_host(self.config.host)}:{port}"
        self._log_started()
        return self.url

    def _log_started(self) -> None:
        store = f"sqlite {self.config.data_file}" if self.config.data_file else "memory"
        logger.info(
            "dev-vault listening on %s (store: %s; %d static token(s), %d OAuth client(s))",
            self.url,
            store,
            self.auth.static_token_count,
            self.auth.client_count,
        )
        if not _is_loopback(self.config.host):
            logger.warning(
                "dev-vault is bound to %s, beyond loopback: its /_dev admin endpoints are unauthenticated",
                self.config.host,
            )
        if self.faults.active:
            logger.warning("dev-vault fault injection is on: %s", self.faults.to_json())

    async def stop(self) -> None:
        """Stop listening (in-flight requests get ``SHUTDOWN_TIMEOUT`` seconds) and close the store."""
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                await runner.cleanup()
                logger.info("dev-vault on %s stopped", self.url)
        finally:
            self.store.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
