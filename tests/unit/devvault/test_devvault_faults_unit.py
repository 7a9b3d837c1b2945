"""Fault switches: validation, merging in place, the injector's order and seeded determinism."""

from __future__ import annotations

import pytest

from scaivault_operator.devvault import FaultConfig
from scaivault_operator.devvault._faults import FaultInjector, fault_for_status, format_seconds


def test_defaults_are_inactive_and_valid():
    config = FaultConfig()
    config.validate()
    assert not config.active
    assert FaultConfig(fail_next=[503]).active
    assert FaultConfig(expire_tokens=True).active


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"latency": -0.1}, "latency"),
        ({"latency": float("inf")}, "latency"),
        ({"error_rate": float("nan")}, "error_rate"),
        ({"rate_limit_rate": 1.01}, "rate_limit_rate"),
        ({"retry_after": -1}, "retry_after"),
        ({"error_rate": 0.5, "rate_limit_rate": 0.51}, "error_rate \\+ rate_limit_rate"),
        ({"expire_tokens": None}, "expire_tokens"),
        ({"fail_next": [399]}, "fail_next"),
        ({"fail_next": (503,)}, "fail_next"),
        ({"seed": True}, "seed"),
        ({"other": 1}, "unknown fault field"),
    ],
)
def test_merged_rejects_bad_values(changes, field):
    with pytest.raises(ValueError, match=field):
        FaultConfig().merged(changes)


def test_merged_returns_a_validated_copy():
    base = FaultConfig(fail_next=[503])
    updated = base.merged({"error_rate": 0.25, "fail_next": [429, 500]})

    assert updated == FaultConfig(error_rate=0.25, fail_next=[429, 500])
    assert base == FaultConfig(fail_next=[503])


def test_assign_changes_in_place_without_sharing_lists():
    live, source = FaultConfig(), FaultConfig(latency=1.0, fail_next=[503])
    holder = live
    live.assign(source)
    source.fail_next.append(429)

    assert holder.latency == 1.0
    assert holder.fail_next == [503]


def test_to_json_round_trips_through_merged():
    config = FaultConfig(latency=0.5, error_rate=0.1, retry_after=2, expire_tokens=True, fail_next=[503], seed=7)
    assert FaultConfig().merged(config.to_json()) == config


def test_fail_next_comes_first_and_in_order():
    injector = FaultInjector(FaultConfig(error_rate=1.0, fail_next=[429, 502]))

    faults = [injector.next_fault() for _ in range(3)]

    assert [f.status for f in faults if f] == [429, 502, 503]


def test_no_faults_means_no_random_draws():
    injector = FaultInjector(FaultConfig(seed=1))
    assert [injector.next_fault() for _ in range(10)] == [None] * 10


def test_seeded_injectors_agree_and_reseeding_restarts():
    def sequence(injector: FaultInjector) -> list[int | None]:
        return [(f.status if f else None) for f in (injector.next_fault() for _ in range(50))]

    config = FaultConfig(error_rate=0.4, rate_limit_rate=0.4, seed=42)
    one, two = FaultInjector(config.copy()), FaultInjector(config.copy())
    first = sequence(one)

    assert first == sequence(two)
    assert {None, 429, 503} == set(first)
    one.update({"seed": 42})
    assert sequence(one) == first


def test_update_and_reset():
    injector = FaultInjector(FaultConfig())
    live = injector.config

    injector.update({"latency": 0.5})
    assert live.latency == 0.5
    with pytest.raises(ValueError, match="latency"):
        injector.update({"latency": -1, "error_rate": 0.5})
    assert live == FaultConfig(latency=0.5)
    injector.reset()
    assert live == FaultConfig()


@pytest.mark.parametrize(
    ("status", "code", "header"),
    [
        (429, "rate_limited", ("Retry-After", "3")),
        (503, "unavailable", None),
        (500, "internal_error", None),
        (502, "bad_gateway", None),
        (504, "gateway_timeout", None),
        (401, "authentication_required", ("WWW-Authenticate", "Bearer")),
        (418, "injected_fault", None),
    ],
)
def test_fault_for_status(status, code, header):
    fault = fault_for_status(status, 3.0)

    assert (fault.status, fault.code) == (status, code)
    assert fault.message.endswith("(injected fault)")
    assert fault.headers == (dict([header]) if header else {})


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "1"), (1.0, "1"), (0.25, "0.25"), (0.00001, "0.00001"), (120.5, "120.5"), (0, "0")]
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
