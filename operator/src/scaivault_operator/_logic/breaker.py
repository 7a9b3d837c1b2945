"""The circuit breaker of one ScaiVault connection, and the backoff it waits by: what bounds an outage's requests.

Pure: the clock, the wall clock (only for ``retryAt``) and the random source are injected, so the request budget
of an outage is proven by simulation and arithmetic, never by waiting (``worst_case_requests``).

States of one connection's ``Breaker``::

    Closed ──► Open      a poll fails (401; 403 on every prefix; 5xx, 429, timeout, connection error), a sync read
                         gets a 401, or reads of ``sources_to_trip`` different sources fail transiently with no
                         success between them
    Open ──► probing     ``retryAt`` passed: the version watcher's next poll is the single probe (``begin_probe``)
    probing ──► Closed   the probe succeeded (``reset``): the users that are not Ready re-sync
    probing ──► Open     the probe failed: the next, longer delay

While open, sync jobs send nothing (``allow``) and the client retries nothing inside a request
(``allow_retry``). Delays: ``Backoff`` — exponential from ``base``, capped, jittered, never shorter than the poll
interval (``floor``) nor than the server's ``Retry-After``. 401/403 keep their own, slower schedule (``auth``);
transient failures use ``outage``. The exponent counts the trips since the breaker last stayed closed for ``cap``
seconds, so an outage that flaps does not restart at the shortest delay.

In-request retries (``RetryGate`` of the client): at most ``retry_tokens`` between two successful requests on the
connection, none while open or probing. Together: ``worst_case_requests``.

Used by ``connections`` (one per connection), ``watcher`` (probes, trips on failed polls), ``sync`` (holds jobs,
counts failed reads) and ``connstatus`` (what ``status.breaker`` says).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from scaivault_operator._logic import conditions

__all__ = [
    "CLOSED",
    "MAX_RETRY_AFTER",
    "OPEN",
    "Backoff",
    "Breaker",
    "probes_within",
    "worst_case_requests",
]

OPEN: Final = "Open"
CLOSED: Final = "Closed"
#: The longest ``Retry-After`` honoured (s): a broken proxy asking for a day must not silence a connection that long.
MAX_RETRY_AFTER: Final = 3600.0
#: Exponents beyond this add nothing (every cap is reached long before) and would overflow a float.
_MAX_EXPONENT = 60


@dataclass(frozen=True)
class Backoff:
    """Attempt ``n`` (1-based) waits ``max(floor, min(cap, base * 2**(n-1)))`` times a factor drawn uniformly from
    ``[1 - jitter, 1 + jitter]``, and at least the server's ``Retry-After`` (up to ``MAX_RETRY_AFTER``)."""

    base: float
    cap: float
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0 or not 0 <= self.jitter < 1:
            raise ValueError("base and cap must be positive, jitter in [0, 1)")

    def nominal(self, attempt: int, floor: float = 0.0) -> float:
        exponent = min(max(0, attempt - 1), _MAX_EXPONENT)
        return max(floor, min(self.cap, math.ldexp(self.base, exponent)))

    def delay(self, attempt: int, rng: random.Random, *, floor: float = 0.0, retry_after: float | None = None) -> float:
        wait = self.nominal(attempt, floor) * rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None and math.isfinite(retry_after):
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
        return wait

    def shortest(self, attempt: int, floor: float = 0.0) -> float:
        """The least ``delay`` can be for ``attempt``: what bounds the number of probes from above."""
        return self.nominal(attempt, floor) * (1 - self.jitter)


def probes_within(backoff: Backoff, seconds: float, *, floor: float = 0.0) -> int:
    """The most probes that can go out in ``seconds`` after the breaker opened: probe ``k`` waits for the first
    ``k`` delays, each at least ``backoff.shortest``."""
    elapsed, probes = 0.0, 0
    while True:
        elapsed += backoff.shortest(probes + 1, floor)
        if elapsed >= seconds:
            return probes
        probes += 1


def worst_case_requests(backoff: Backoff, seconds: float, *, floor: float = 0.0, retries: int = 3) -> int:
    """Requests one connection sends during a full outage of ``seconds`` that starts while no sync job of it is
    in flight: the poll that fails first (one request and at most ``retries`` in-request retries, then the breaker
    opens) and one request per probe (no in-request retries while open)."""
    return 1 + retries + probes_within(backoff, seconds, floor=floor)


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(math.ceil(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Breaker:
    """The circuit breaker of one connection (see the module docstring).

    ``base``/``cap`` are the 401/403 schedule (jitter ±20 %); ``outage_base`` (default ``base / 2``) the schedule
    of transient failures (jitter ±10 %), with the same cap. ``clock`` is monotonic seconds; ``wall`` Unix time,
    only for ``retry_at``.
    """

    base: float
    cap: float
    clock: Callable[[], float] = time.monotonic
    outage_base: float | None = None
    wall: Callable[[], float] = time.time
    #: Seeded from the global random source: ``random.seed`` makes a simulation repeatable.
    rng: random.Random = field(default_factory=lambda: random.Random(random.random()), repr=False)
    #: Transient read failures of this many different sources, with no success between them, open the breaker.
    sources_to_trip: int = 3
    #: In-request retries allowed between two successful requests on the connection.
    retry_tokens: int = 3
    failure: conditions.Failure | None = None
    until: float = 0.0
    #: Trips counted for the backoff's exponent (see ``trip``).
    opened: int = 0
    probing: bool = False
    #: Consecutive failed requests on the connection since the last success (polls, reads, probes).
    failures: int = 0
    #: Whether the last ``trip`` opened a closed breaker (not a failed probe, not a new reason).
    just_opened: bool = False
    tokens: int = field(init=False)
    auth: Backoff = field(init=False)
    outage: Backoff = field(init=False)
    closed_at: float = field(init=False, default=-math.inf)
    _failed_sources: set[object] = field(init=False, default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.tokens = self.retry_tokens
        self.auth = Backoff(self.base, self.cap, jitter=0.2)
        self.outage = Backoff(self.outage_base if self.outage_base is not None else self.base / 2, self.cap, 0.1)

    # -- state -----------------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.failure is not None

    @property
    def state(self) -> str:
        return OPEN if self.failure is not None else CLOSED

    @property
    def outage_open(self) -> bool:
        """Open on a transient failure (an outage), not on a refused token or scope."""
        return self.failure is not None and self.failure.transient

    def remaining(self) -> float:
        return max(0.0, self.until - self.clock())

    def due(self) -> bool:
        """Open, not probing, and its delay has passed: the next poll probes."""
        return self.failure is not None and not self.probing and self.clock() >= self.until

    def retry_at(self) -> str | None:
        """When the next probe may go out (RFC 3339, UTC, rounded up to the second); None while closed."""
        return _rfc3339(self.wall() + self.remaining()) if self.failure is not None else None

    # -- who may send --------------------------------------------------------------------------------------------

    def allow(self) -> bool:
        """May a sync job send a request? Only while closed: the version watcher probes."""
        return self.failure is None

    def begin_probe(self) -> bool:
        """May the version watcher poll now? Closed: yes. Open: only once due, and then it is the probe."""
        if self.failure is None:
            return True
        if not self.due():
            return False
        self.probing = True
        return True

    def allow_retry(self) -> bool:
        """The client's ``RetryGate``: may a failed request be repeated inside the same call?"""
        if self.failure is not None or self.probing or self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    # -- outcomes --------------------------------------------------------------------------------------------

    def record_success(self) -> None:
        """A request on the connection succeeded (the client's ``RetryGate``): the failure streak ends, the retry
        tokens are back. Closing is ``reset``'s, after the probe as a whole succeeded."""
        self.tokens = self.retry_tokens
        self.failures = 0
        self._failed_sources.clear()

    def count_failure(self, source: object) -> bool:
        """A sync read of ``source`` failed transiently; True when that opens the breaker (``sources_to_trip``
        different sources failed with no success between them)."""
        self.failures += 1
        self._failed_sources.add(source)
        return len(self._failed_sources) >= self.sources_to_trip

    def trip(self, failure: conditions.Failure, *, floor: float = 0.0, counted: bool = False) -> bool:
        """Open (again) after ``failure``; the delay grows with each trip. True on a transition: it was closed, or
        the reason changed (what ``status.breaker`` reports; a failed probe with the same reason is no news).

        ``floor``: the shortest delay (the connection's poll interval). ``counted``: the failed request was already
        counted (``count_failure``)."""
        now = self.clock()
        self.just_opened = self.failure is None
        changed = self.just_opened or (self.failure is not None and self.failure.reason != failure.reason)
        if not counted:
            self.failures += 1
        if self.failure is None and now - self.closed_at >= self.cap:
            self.opened = 0  # closed long enough: a new outage starts at the shortest delay
        self.opened += 1
        self.failure = failure
        self.probing = False
        backoff = self.outage if failure.transient else self.auth
        self.until = now + backoff.delay(self.opened, self.rng, floor=floor, retry_after=failure.retry_after)
        return changed

    def reset(self) -> bool:
        """Close after a successful probe; True when it was open (callers then re-sync what the outage hit)."""
        was_open = self.failure is not None
        if was_open:
            self.closed_at = self.clock()
        self.failure, self.probing, self.until = None, False, 0.0
        self.record_success()
        return was_open
