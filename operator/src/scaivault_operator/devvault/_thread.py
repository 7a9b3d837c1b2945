"""``run_in_thread``: a dev vault on its own event loop in a daemon thread.

So that code under test talks to the server over real loopback HTTP and never shares its event loop (a
blocked or slow test loop cannot stall the server, and vice versa). Used by the ``dev_vault`` test fixture,
by benchmarks and by the demo. The in-process API of the vault (``write``, ``add_token``, ``faults``,
``stats``) is thread-safe and may be used from the caller's thread while the server runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ._config import DevVaultConfig
from ._time import Clock
from ._vault import DevVault

__all__ = ["RunningDevVault", "run_in_thread"]

STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class RunningDevVault:
    """What ``run_in_thread`` yields: the base URL and the vault itself."""

    url: str
    vault: DevVault


class _ServerThread(threading.Thread):
    def __init__(self, vault: DevVault) -> None:
        super().__init__(name="dev-vault", daemon=True)
        self.vault = vault
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        try:
            await self.vault.start()
        except BaseException as exc:
            self.error = exc
            self.vault.store.close()
            return
        finally:
            self.ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await self.vault.stop()

    def request_stop(self) -> None:
        if self._loop is not None and self._stop_event is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop_event.set)


@contextmanager
def run_in_thread(config: DevVaultConfig, *, clock: Clock | None = None) -> Iterator[RunningDevVault]:
    """Start a ``DevVault`` for ``config`` in a daemon thread; stop it when the block exits.

    Errors at startup (port in use, bad config) are raised here, in the caller's thread.
    """
    thread = _ServerThread(DevVault(config, clock=clock))
    thread.start()
    if not thread.ready.wait(STARTUP_TIMEOUT):
        thread.request_stop()
        raise RuntimeError(f"dev-vault did not start within {STARTUP_TIMEOUT:g}s")
    if thread.error is not None:
        thread.join(STOP_TIMEOUT)
        raise thread.error
    assert thread.vault.url is not None
    try:
        yield RunningDevVault(url=thread.vault.url, vault=thread.vault)
    finally:
        thread.request_stop()
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"dev-vault did not stop within {STOP_TIMEOUT:g}s")
