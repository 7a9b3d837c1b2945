"""Shared reads: one ScaiVault GET per (connection, path, version), however many sync jobs need it.

Owned here: the single flight and the cache of immutable versions. A VaultSecret with several sources
(``spec.sources``, ``spec.dataFrom``) is its own sync job, so the jobs that need the same version of a path —
other VaultSecrets with sources, or the job of the path's single-path VaultSecrets — would each send a GET; here
the second one waits for the first one's answer (a failure reaches both) or takes it from the cache. A version is
immutable in ScaiVault, so a cached answer for an explicit version is the answer; a read of the latest version
(``version`` None) always goes out and is cached under the version it returned.

Two kinds of entries, both in memory only, never written anywhere, counted together against ``max_bytes`` (their
JSON size, 16 MiB by default, the setting ``source_cache_bytes``):

* *recent* — every answer, for ``ttl`` seconds (10): the jobs of one burst (a new version seen by a poll) share it;
* *kept* — the versions that VaultSecrets with several sources hold (``keep=True``), least recently used dropped
  first: a Secret built from many secrets must be built again from all of them when one changes, and without them
  a new version of one source would cost a GET of every other. With them it costs one GET; beyond the bound, the
  evicted ones are read again.

``fresh`` reads (a refresh asked with the annotation, a secret re-created at the same version) skip the cache.

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
    def __init__(self, *, ttl: float = 10.0, max_bytes: int = 16 * 1024 * 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._ttl = ttl
        self._max_bytes = max_bytes
        self._clock = clock
        self._flights: dict[ReadKey, asyncio.Future[Secret]] = {}
        #: recent answers in the order they expire (the ttl is constant), and kept ones least recently used first.
        self._recent: OrderedDict[ReadKey, tuple[float, int, Secret]] = OrderedDict()  # expiry, size, answer
        self._kept: OrderedDict[ReadKey, tuple[int, Secret]] = OrderedDict()  # size, answer
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
        keep: bool = False,
    ) -> Secret:
        """The secret at ``path`` and ``version`` (None: the latest); ``keep``: a version a VaultSecret with several
        sources holds (kept until the bound needs the room). Raises what ``client.read`` raises."""
        key: ReadKey = (conn, path, version)
        if not fresh and version is not None:
            cached = self._cached(key, keep=keep)
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
            if keep:
                self._store((conn, path, secret.version), secret, keep=True)
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
        self._store((conn, path, secret.version), secret, keep=keep)
        return secret

    @property
    def size(self) -> int:
        """Bytes (JSON) held now, recent and kept."""
        return self._bytes

    def _cached(self, key: ReadKey, *, keep: bool) -> Secret | None:
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            return kept[1]
        found = self._recent.get(key)
        if found is None:
            return None
        if found[0] <= self._clock():
            self._drop_recent(key)
            return None
        if keep:
            self._store(key, found[2], keep=True)
        return found[2]

    def _store(self, key: ReadKey, secret: Secret, *, keep: bool) -> None:
        if key in self._kept:
            self._kept.move_to_end(key)
            return
        try:
            size = len(json.dumps(secret.data, separators=(",", ":"), default=str))
        except (TypeError, ValueError, RecursionError):
            return
        if size > self._max_bytes:
            return
        if key in self._recent:
            self._drop_recent(key)
        now = self._clock()
        while self._recent and next(iter(self._recent.values()))[0] <= now:
            self._drop_recent(next(iter(self._recent)))
        while self._bytes + size > self._max_bytes and (self._recent or self._kept):
            if self._recent:
                self._drop_recent(next(iter(self._recent)))
            else:
                dropped, _ = self._kept.popitem(last=False)[1]
                self._bytes -= dropped
        if keep:
            self._kept[key] = (size, secret)
        else:
            self._recent[key] = (now + self._ttl, size, secret)
        self._bytes += size

    def _drop_recent(self, key: ReadKey) -> None:
        _, size, _ = self._recent.pop(key)
        self._bytes -= size
