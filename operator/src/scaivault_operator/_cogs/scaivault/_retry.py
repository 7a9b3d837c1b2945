"""Retry timing for idempotent reads: jittered exponential backoff with a bounded total.

Pure: ``RetryPolicy.delay`` computes how long to wait before the next attempt, or None to give up. The client
owns the loop and the sleeping; nothing here does I/O, so the policy is unit-tested without a clock.

``RetryGate``: what the client asks, beyond the policy, before each retry — a budget shared by every request of one
client (the operator's: the connection's breaker, which allows a few retries between two successes and none while
it is open), so that retries inside requests cannot multiply an outage's requests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from ._exceptions import RateLimitedError, TransientError

__all__ = ["RetryGate", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry a read that failed with a ``TransientError``.

    Attempt ``n`` (1-based) that failed waits a uniformly random time in ``[0, min(cap, base * 2**(n-1))]``
    ("full jitter"), or at least the server's ``Retry-After``. No retry once ``max_attempts`` were made, or when
    the wait would push the time spent past ``max_total`` seconds: the caller gets the last error instead and
    can schedule its own retry (the error of a 429 still carries ``retry_after``).
    """

    max_attempts: int = 4
    base: float = 0.2
    cap: float = 5.0
    max_total: float = 15.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base < 0 or self.cap < 0 or self.max_total < 0:
            raise ValueError("base, cap and max_total must not be negative")

    def delay(self, attempt: int, error: TransientError, elapsed: float) -> float | None:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one, or None to stop."""
        if attempt >= self.max_attempts:
            return None
        wait = self.rng.uniform(0.0, min(self.cap, self.base * 2 ** (attempt - 1)))
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        if elapsed + wait > self.max_total:
            return None
        return wait


class RetryGate(Protocol):
    """A retry budget shared by a client's requests. ``allow_retry`` is asked before each retry the policy would
    make (False: the caller gets the error now); ``record_success`` is told of every successful answer."""

    def allow_retry(self) -> bool: ...

    def record_success(self) -> None: ...


#: A policy that never retries (for writes, and for callers that do their own scheduling).
NO_RETRY = RetryPolicy(max_attempts=1)
