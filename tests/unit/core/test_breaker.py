"""The connection breaker and its backoff (``breaker``), on a fake clock: transitions, who may send, the retry
budget, and the arithmetic of an outage's worst case (issue 10: ≤ 10 requests in 60 s, ≤ 25 in 10 minutes)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaivault_operator._logic import conditions
from scaivault_operator._logic.breaker import (
    CLOSED,
    MAX_RETRY_AFTER,
    OPEN,
    Backoff,
    Breaker,
    probes_within,
    worst_case_requests,
)

OUTAGE = conditions.Failure(conditions.BACKEND_UNAVAILABLE, "ScaiVault is unavailable (HTTP 503)", transient=True)
RATE_LIMITED = conditions.Failure(conditions.BACKEND_UNAVAILABLE, "rate limited", transient=True, retry_after=120.0)
UNAUTHORIZED = conditions.Failure(conditions.UNAUTHORIZED, "ScaiVault refused the token", transient=False)
#: The defaults: retry_base 2 s → the outage schedule starts at 5 s, 401/403 at 10 s; retry_max 300 s.
DEFAULT_OUTAGE = Backoff(5.0, 300.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Extreme(random.Random):
    """A random source that always draws the low (or high) end: the jitter's worst cases."""

    def __init__(self, high: bool = False) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def breaker(clock: Clock, rng: random.Random | None = None) -> Breaker:
    return Breaker(base=10.0, cap=300.0, outage_base=5.0, clock=clock, wall=lambda: 1_776_952_800.0,
                   rng=rng or random.Random(1))  # fmt: skip


# -- Backoff ------------------------------------------------------------------------------------------------------


def test_backoff_is_exponential_capped_and_jittered_by_ten_percent() -> None:
    low, high = Extreme(), Extreme(high=True)
    assert [DEFAULT_OUTAGE.delay(n, low) for n in range(1, 9)] == pytest.approx([4.5, 9, 18, 36, 72, 144, 270, 270])
    assert [DEFAULT_OUTAGE.delay(n, high) for n in range(1, 9)] == pytest.approx([5.5, 11, 22, 44, 88, 176, 330, 330])
    assert DEFAULT_OUTAGE.delay(10_000, low) == pytest.approx(270)  # no overflow


def test_backoff_never_shorter_than_the_floor_nor_retry_after() -> None:
    low = Extreme()
    assert DEFAULT_OUTAGE.delay(1, low, floor=30.0) == pytest.approx(27.0)  # the poll interval, jittered
    assert DEFAULT_OUTAGE.delay(1, low, retry_after=120.0) == 120.0
    assert DEFAULT_OUTAGE.delay(8, Extreme(high=True), retry_after=1.0) == pytest.approx(330)
    assert DEFAULT_OUTAGE.delay(1, low, retry_after=86400.0) == MAX_RETRY_AFTER  # a day is not honoured
    assert DEFAULT_OUTAGE.delay(1, low, retry_after=float("nan")) == pytest.approx(4.5)


@given(attempt=st.integers(1, 80), floor=st.floats(0, 600), seed=st.integers(0, 2**32))
def test_shortest_is_a_lower_bound_of_every_delay(attempt: int, floor: float, seed: int) -> None:
    assert DEFAULT_OUTAGE.delay(attempt, random.Random(seed), floor=floor) >= DEFAULT_OUTAGE.shortest(attempt, floor)


# -- the budget's arithmetic --------------------------------------------------------------------------------------


def test_worst_case_at_the_defaults_is_7_in_a_minute_and_11_in_ten_minutes() -> None:
    """Probes after the breaker opened at the least delays 4.5, 9, 18, 36, 72, 144, 270 s: at 4.5, 13.5, 31.5
    (then 67.5) — 3 within 60 s; …, 139.5, 283.5, 553.5 (then 823.5) — 7 within 600 s. Plus the poll that opened
    it: 1 request and at most 3 retries inside it."""
    assert probes_within(DEFAULT_OUTAGE, 60, floor=2.0) == 3
    assert probes_within(DEFAULT_OUTAGE, 600, floor=2.0) == 7
    assert worst_case_requests(DEFAULT_OUTAGE, 60, floor=2.0) == 7 <= 10
    assert worst_case_requests(DEFAULT_OUTAGE, 600, floor=2.0) == 11 <= 25
    # A slower poll only stretches the first delays: fewer probes.
    assert worst_case_requests(DEFAULT_OUTAGE, 60, floor=30.0) <= worst_case_requests(DEFAULT_OUTAGE, 60, floor=2.0)


@pytest.mark.parametrize("seconds", [60.0, 600.0, 3600.0])
@pytest.mark.parametrize("rng", [Extreme(), Extreme(high=True), random.Random(7)])
def test_the_breaker_never_probes_more_often_than_the_arithmetic_says(seconds: float, rng: random.Random) -> None:
    """Drive the breaker itself through a whole outage on the fake clock: every probe fails."""
    clock = Clock()
    subject = breaker(clock, rng)
    start = clock.now
    assert subject.begin_probe()  # closed: the poll goes out, and fails
    subject.trip(OUTAGE, floor=2.0)
    probes = 0
    while True:
        clock.now += subject.remaining()
        if clock.now - start >= seconds:
            break
        assert subject.begin_probe()
        probes += 1
        subject.trip(OUTAGE, floor=2.0)
    assert probes <= probes_within(subject.outage, seconds, floor=2.0)
    if isinstance(rng, Extreme) and not rng.high:
        assert probes == probes_within(subject.outage, seconds, floor=2.0)  # the bound is tight


# -- transitions --------------------------------------------------------------------------------------------------


def test_trip_reports_transitions_only() -> None:
    clock = Clock()
    subject = breaker(clock)
    assert subject.state == CLOSED
    assert subject.trip(OUTAGE) is True  # closed → open
    assert subject.just_opened
    assert subject.state == OPEN
    assert subject.trip(OUTAGE) is False  # a failed probe, same reason: no news
    assert not subject.just_opened
    assert subject.trip(UNAUTHORIZED) is True  # the reason changed
    assert not subject.just_opened
    assert subject.reset() is True  # open → closed
    assert subject.reset() is False
    assert subject.state == CLOSED


def test_while_open_sync_jobs_send_nothing_and_the_watcher_probes_once_when_due() -> None:
    clock = Clock()
    subject = breaker(clock, Extreme())
    subject.trip(OUTAGE, floor=2.0)
    assert not subject.allow()
    assert not subject.begin_probe()  # not yet due
    assert subject.remaining() == pytest.approx(4.5)
    assert subject.retry_at() == "2026-04-23T14:00:05Z"  # wall clock + 4.5 s, rounded up
    clock.now += 4.5
    assert subject.due()
    assert subject.begin_probe()
    assert subject.probing
    assert not subject.begin_probe()  # one probe at a time
    assert not subject.allow()  # sync jobs still wait
    subject.reset()
    assert subject.allow()
    assert subject.begin_probe()
    assert subject.retry_at() is None


def test_delays_grow_per_trip_and_honour_retry_after() -> None:
    clock = Clock()
    subject = breaker(clock, Extreme())
    delays = []
    for _ in range(4):
        subject.trip(OUTAGE, floor=2.0)
        delays.append(subject.remaining())
    assert delays == pytest.approx([4.5, 9, 18, 36])
    subject.trip(RATE_LIMITED)
    assert subject.remaining() == 120.0  # 72 s by the schedule, but the server asked for 120


def test_auth_failures_keep_their_own_slower_schedule() -> None:
    clock = Clock()
    subject = breaker(clock, Extreme())
    subject.trip(UNAUTHORIZED)
    assert subject.remaining() == pytest.approx(8.0)  # 10 s minus 20 %
    assert not subject.outage_open


def test_a_new_outage_soon_after_recovery_continues_the_backoff_a_later_one_starts_afresh() -> None:
    clock = Clock()
    subject = breaker(clock, Extreme())
    for _ in range(3):
        subject.trip(OUTAGE)
    subject.reset()
    clock.now += 60  # closed for a minute only: flapping
    subject.trip(OUTAGE)
    assert subject.remaining() == pytest.approx(36)  # the 4th delay
    subject.reset()
    clock.now += 300  # closed for the cap: a new outage
    subject.trip(OUTAGE)
    assert subject.remaining() == pytest.approx(4.5)


def test_three_different_sources_failing_in_a_row_open_it_one_source_never_does() -> None:
    clock = Clock()
    subject = breaker(clock)
    assert not subject.count_failure("a")
    assert not subject.count_failure("a")
    assert not subject.count_failure("a")  # one bad secret is that secret's problem
    assert not subject.count_failure("b")
    subject.record_success()  # anything that works ends the streak
    assert not subject.count_failure("c")
    assert not subject.count_failure("d")
    assert subject.count_failure("e")
    assert subject.failures == 3


# -- the retry budget -----------------------------------------------------------------------------------------------


def test_three_retries_between_two_successes_none_while_open_or_probing() -> None:
    clock = Clock()
    subject = breaker(clock)
    assert [subject.allow_retry() for _ in range(4)] == [True, True, True, False]
    subject.record_success()
    assert subject.allow_retry()
    subject.record_success()
    subject.trip(OUTAGE)
    assert not subject.allow_retry()
    clock.now += subject.remaining()
    assert subject.begin_probe()
    assert not subject.allow_retry()  # the probe is one request
    subject.reset()
    assert subject.allow_retry()


def test_held_vaultsecrets_say_the_connection_is_backing_off_and_until_when() -> None:
    from scaivault_operator._cogs import scaivault as sv

    for error, lead in (
        (sv.UnavailableError("LIST secrets with prefix 'apps/': HTTP 503 unavailable"), "ScaiVault is unavailable"),
        (sv.RateLimitedError("GET secret 'a/b': HTTP 429; retry after 30s", retry_after=30.0), "rate limiting"),
        (sv.ResponseError("GET secret 'a/b': HTTP 200 answer is not JSON"), "cannot understand"),
    ):
        held = conditions.backing_off(conditions.classify(error), connection="ClusterVaultConnection default",
                                      retry_at="2026-04-23T14:00:05Z")  # fmt: skip
        assert held.reason == conditions.BACKEND_UNAVAILABLE
        assert lead in held.message
        assert str(error) in held.message
        assert "ClusterVaultConnection default is backing off: no request before 2026-04-23T14:00:05Z" in held.message
        assert held.message.endswith("the Secret keeps its last synced data")
    plain = conditions.Failure(conditions.BACKEND_UNAVAILABLE, "unexpected error (KeyError)", transient=True)
    assert conditions.backing_off(plain, connection="C", retry_at=None).message.startswith(
        "ScaiVault failed; C is backing off: no request until its version watcher"
    )
