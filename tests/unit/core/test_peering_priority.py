"""Kopf peering priorities with several replicas (the Helm chart's ``replicaCount > 1``): by default the replica
that started first keeps the highest priority, so exactly one is active and a new one waits."""

from __future__ import annotations

import time

import pytest

from scaivault_operator._app.runner import _peering_priority, seniority_priority
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator.cli import build_parser


def test_an_earlier_start_gets_a_higher_priority() -> None:
    now = time.time_ns() // 1000 * 1000  # at a microsecond boundary
    assert seniority_priority(now) > seniority_priority(now + 1_000)  # one microsecond later
    assert seniority_priority(now) == seniority_priority(now + 999)  # microsecond resolution


def test_priorities_stay_exact_json_numbers() -> None:
    priority = seniority_priority()
    assert 0 < priority < 2**53


def test_standalone_has_no_priority() -> None:
    assert _peering_priority(OperatorSettings()) is None


def test_peering_defaults_to_seniority_and_honours_an_explicit_priority() -> None:
    before = seniority_priority()
    derived = _peering_priority(OperatorSettings(peering="scaivault-operator"))
    assert derived is not None
    assert derived <= before
    assert _peering_priority(OperatorSettings(peering="p", peering_priority=0)) == 0
    assert _peering_priority(OperatorSettings(peering="p", peering_priority=100)) == 100


def test_priority_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAIVAULT_OPERATOR_PEERING_PRIORITY", "7")
    assert OperatorSettings().peering_priority == 7


def test_cli_flag() -> None:
    args = build_parser().parse_args(["run", "--peering", "p", "--peering-priority", "5"])
    assert (args.peering, args.peering_priority) == ("p", 5)
