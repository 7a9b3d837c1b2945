"""The benchmark harness at N = 20, inside ``make test`` so it keeps working: the whole tier (the operator and the
naive baseline in their own processes, against the in-memory Kubernetes API and the dev vault) with short
phases. Asserts counts — requests and writes at the servers — never wall-clock times."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from harness_checks import SAMPLES, assert_cold_sync_at_the_write_floor, assert_operator_counts

from bench import run as bench

N = 20


@pytest.mark.timeout(240)
async def test_tier_counts(tmp_path: Path) -> None:
    config = bench.Config(tiers=[N], interval=1.0, idle_polls=3, samples=SAMPLES, spread_polls=2.0, outage=3.0,
                          out=None, quiet=True)  # fmt: skip
    result = await bench.run_tier(N, config, tmp_path)
    ours, naive = result["ours"], result["naive"]
    floor = result["config"]["list_floor_per_poll"]
    assert floor == 1  # 20 paths in one directory: one 500-item page per poll

    # Cold sync: one GET per VaultSecret; at the write floor: one create per Secret and one status write, no Event
    # (a first sync posts none).
    cold = ours["cold_sync"]
    assert_cold_sync_at_the_write_floor(cold, N)
    # Reported apart: the harness creating, and the operator's lag after the last create.
    assert cold["lag_after_last_create"] == pytest.approx(cold["time_to_ready"] - cold["creation_seconds"], abs=0.02)
    # New Secrets are created, not read first: the only reads are of the token (once per worker that builds the
    # connection's client at the same moment).
    assert cold["kube_requests"].get("get secrets", 0) <= config.workers

    # Idle, propagation (one GET per changed path), warm restart and outage: see harness_checks. Idle costs list
    # pages only, the floor per poll.
    assert_operator_counts(ours)
    idle = ours["idle"]
    assert idle["vault_lists"] == idle["polls"] * floor

    # The naive baseline: one GET per VaultSecret per interval, even when nothing changes.
    assert naive["cold_sync"]["complete"]
    assert naive["cold_sync"]["kube_requests"]["create secrets"] == N
    passes = naive["idle"]["passes"]
    assert passes >= 2
    assert naive["idle"]["vault_reads"] >= N * (passes - 1)
    assert naive["idle"]["kube_writes"] == 0
    assert naive["warm_restart"]["vault_reads"] >= N
    assert naive["warm_restart"]["kube_writes"] == 0

    # The outage: our list polls (with the client's retries) against a GET per object per interval.
    assert 0 < ours["outage"]["vault_requests"] < naive["outage"]["vault_requests"]

    summary = result["summary"]
    assert summary["ours"]["kube_writes_per_idle_poll"] == 0
    assert summary["ours"]["backend_requests_per_poll"] == floor
    assert summary["checks"]["one_get_per_change"]["met"]
    assert summary["checks"]["at_floor"]["met"]
    assert summary["backend_ratio"] == math.ceil(N / 500) / N  # one list page per poll against N GETs per poll
    assert abs(naive["idle"]["vault_reads"] - N * passes) <= 2  # a GET of the next pass may straddle the mark
    assert summary["ours"]["cold_sync_kube_writes"] == 2 * N
    assert summary["ours"]["cold_sync_lag_s"] == cold["lag_after_last_create"]
    assert summary["ours"]["cold_sync_cpu_s"] == cold["operator_cpu_seconds"]
    assert summary["naive"]["cold_sync_kube_writes"] == naive["cold_sync"]["kube_writes"] >= N
    assert result["baseline_api"] == "fake"
    text = bench.table([result])
    assert "N = 20" in text
    assert "lag after the last create" in text
