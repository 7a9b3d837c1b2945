"""Shared reads: one ScaiVault GET per (connection, path, version), however many sync jobs need it at once.

Owned here: the single flight and a short-lived cache of immutable versions. A VaultSecret with several sources
(``spec.sources``, ``spec.dataFrom``) is its own sync job, so the jobs that need the same version of a path —
other VaultSecrets with sources, or the job of the path's single-path VaultSecrets — would each send a GET; here
the second one waits for the first one's answer (a failure reaches both) or, within ``ttl`` seconds after it,
takes it from the cache. A version is immutable in ScaiVault, so a cached answer for an explicit version is the
answer; a read of the latest version (``version`` None) always goes out and is cached under the version it
returned.

The cache holds secret data in memory, as a sync job does while it runs: at most ``ttl`` seconds (10) and
``max_bytes`` of JSON (8 MiB) in all, the oldest dropped first; nothing else keeps it. ``fresh`` reads (a refresh
asked with the annotation) skip the cache.

Called by ``_core/sync``; ``count`` is told of every GET that really goes out (``backend_requests_total``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable

from scaivault_operator._cogs.scaivault import ScaiVaultClient, Secret

__all__ = ["SharedReads"]

ReadKey = tuple[tuple[str, str, str], str, int | None]  # (connection, path, version or None: the latest)


class SharedReads:
    def __init__(self, *, ttl: float = 10.0, max_bytes: int = 8 * 1024 * 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._ttl = ttl
        self._max_bytes = max_bytes
        self._clock = clock
        self._flights: dict[ReadKey, asyncio.Future[Secret]] = {}
        self._cache: OrderedDict[ReadKey, tuple[float, int, Secret]] = OrderedDict()  # expiry, size, answer
        self._bytes = 0
        #: GETs sent, and reads answered by another job's GET or the cache (tests and benchmarks count them).
        self.sent = 0
        self.shared = 0

    async def read(
        self,
        conn: tuple[str, str, str],
        client: ScaiVaultClient,
        path: str,
        version: int | None,
        *,
        count: Callable[[], None],
        fresh: bool = False,
    ) -> Secret:
        """The secret at ``path`` and ``version`` (None: the latest). Raises what ``client.read`` raises."""
        key: ReadKey = (conn, path, version)
        if not fresh and version is not None:
            cached = self._cached(key)
            if cached is not None:
                self.shared += 1
                return cached
        while (flight := self._flights.get(key)) is not None:
            try:
                secret = await asyncio.shield(flight)
            except asyncio.CancelledError:
                if flight.cancelled():
                    continue  # the job that sent it was cancelled, not this one: send it here
                raise
            self.shared += 1
            return secret
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            count()
            self.sent += 1
            secret = await client.read(path, version)
        except Exception as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        except BaseException:
            flight.cancel()
            raise
        finally:
            del self._flights[key]
        flight.set_result(secret)
        self._store((conn, path, secret.version), secret)
        return secret

    def _cached(self, key: ReadKey) -> Secret | None:
        found = self._cache.get(key)
        if found is None:
            return None
        if found[0] <= self._clock():
            self._drop(key)
            return None
        return found[2]

    def _store(self, key: ReadKey, secret: Secret) -> None:
        try:
            size = len(json.dumps(secret.data, separators=(",", ":"), default=str))
        except (TypeError, ValueError, RecursionError):
            return
        if size > self._max_bytes:
            return
        if key in self._cache:
            self._drop(key)
        now = self._clock()
        while self._cache and (self._bytes + size > self._max_bytes or next(iter(self._cache.values()))[0] <= now):
            self._drop(next(iter(self._cache)))
        self._cache[key] = (now + self._ttl, size, secret)
        self._bytes += size

    def _drop(self, key: ReadKey) -> None:
        _, size, _ = self._cache.pop(key)
        self._bytes -= size
