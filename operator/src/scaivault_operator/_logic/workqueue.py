"""A deduplicating priority work queue with delayed entries — the operator's only scheduler.

Owned here: ordering and timing of work, nothing about what the work is. A key is queued at most once (a second
``push`` keeps the earlier due time and the more urgent priority), is never handed to two workers at once (a push
while it runs is deferred until ``done``), and ready keys come out by priority, then first-come. Delayed keys
(retries, backoff) wait in a timer heap. No task per key: a fixed set of workers call ``get`` (or ``take``, which
also tells how long the key waited once due: pushed, or its delay elapsed — ``queue_wait_seconds``; a key pushed
while it ran is due when it is done). The queue only measures, on its clock; the caller observes.

Used by ``runtime`` (pushes from watch events and the version watchers, workers pop).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["WorkQueue"]

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Keys with a priority (lower runs first) and an earliest start time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seq = itertools.count()
        self._ready: list[tuple[int, int, K]] = []
        self._delayed: list[tuple[float, int, K]] = []
        self._queued: dict[K, tuple[int, float]] = {}  # key -> (priority, due)
        self._running: set[K] = set()
        self._deferred: dict[K, tuple[int, float]] = {}
        self._wakeup = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queued) + len(self._deferred)

    def __contains__(self, key: object) -> bool:
        return key in self._queued or key in self._deferred

    @property
    def running(self) -> frozenset[K]:
        return frozenset(self._running)

    def push(self, key: K, priority: int, delay: float = 0.0) -> None:
        """Queue ``key`` to run in ``delay`` seconds (or earlier if it is already queued sooner)."""
        due = self._clock() + max(0.0, delay)
        target = self._deferred if key in self._running else self._queued
        old = target.get(key)
        if old is not None:
            priority, due = min(old[0], priority), min(old[1], due)
            if (priority, due) == old:
                return
        target[key] = (priority, due)
        if target is self._queued:
            self._enqueue(key, priority, due)

    def _enqueue(self, key: K, priority: int, due: float) -> None:
        if due <= self._clock():
            heapq.heappush(self._ready, (priority, next(self._seq), key))
        else:
            heapq.heappush(self._delayed, (due, next(self._seq), key))
        self._wakeup.set()

    def _promote_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            state = self._queued.get(key)
            if state is not None and state[1] == due:
                heapq.heappush(self._ready, (state[0], next(self._seq), key))

    def _pop_ready(self) -> tuple[K, float] | None:
        while self._ready:
            priority, _, key = heapq.heappop(self._ready)
            state = self._queued.get(key)
            now = self._clock()
            if state is None or state[0] != priority or state[1] > now:
                continue  # stale heap entry: the key was re-pushed with other terms
            del self._queued[key]
            self._running.add(key)
            return key, max(0.0, now - state[1])
        return None

    async def get(self) -> K:
        """Wait for the most urgent due key and mark it running."""
        key, _ = await self.take()
        return key

    async def take(self) -> tuple[K, float]:
        """``get``, and the seconds the key waited since it was due (pushed, or its delay elapsed)."""
        while True:
            self._promote_due()
            found = self._pop_ready()
            if found is not None:
                return found
            self._wakeup.clear()
            timeout = max(0.0, self._delayed[0][0] - self._clock()) if self._delayed else None
            # asyncio.timeout, not wait_for: on 3.11 a cancel that lands as wait_for times out is turned into
            # TimeoutError, which this loop would swallow — the worker then never stops (seen in the test suite).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()

    def done(self, key: K) -> None:
        """The worker finished ``key``; a push that came in meanwhile is queued now."""
        self._running.discard(key)
        deferred = self._deferred.pop(key, None)
        if deferred is not None:
            self.push(key, deferred[0], max(0.0, deferred[1] - self._clock()))

    def discard(self, key: K) -> None:
        """Forget a queued key (its object is gone); stale heap entries are skipped lazily."""
        self._queued.pop(key, None)
        self._deferred.pop(key, None)
