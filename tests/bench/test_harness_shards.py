"""The benchmark harness with ``--shards 2`` at N = 20, inside ``make test``: "ours" is two operator processes
(``--shard 0/2`` and ``1/2``), started, paused (while the baseline runs), restarted and stopped together, and every
figure is the set's. Five VaultSecrets per namespace here (four namespaces), so that both shards serve some: the
namespaces hash to shards 1, 0, 0, 1. Asserts counts — requests and writes at the servers and in each process's
``/metrics`` — never wall-clock times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness_checks import SAMPLES, assert_cold_sync_at_the_write_floor, assert_operator_counts

from bench import run as bench

N = 20
SHARDS = 2


def test_shards_option() -> None:
    assert bench.parse_args([])[0].shards == 1
    assert bench.parse_args(["--shards", "2"])[0].shards == 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--shards", "0"])
    items = bench.layout(10_000)
    assert bench.shard_sizes(items, 1) == [10_000]
    assert sum(bench.shard_sizes(items, 2)) == 10_000
    assert bench.shard_floors(items, 500, 1) == [bench.list_floor(items, 500)] == [20]
    # Every shard follows paths in each of the ten directories, and a list returns every path under its prefix.
    assert bench.shard_floors(items, 500, 2) == [20, 20]


@pytest.mark.timeout(240)
async def test_tier_counts_with_two_shards(tmp_path: Path) -> None:
    out = tmp_path / "results"
    config = bench.Config(tiers=[N], interval=1.0, idle_polls=3, samples=SAMPLES, spread_polls=2.0, outage=3.0,
                          out=out, quiet=True, shards=SHARDS, per_namespace=5)  # fmt: skip
    [result] = await bench.run(config, tmp_path)
    files = list(out.glob(f"*-{N}-shards{SHARDS}.json"))
    assert len(files) == 1
    assert json.loads(files[0].read_text())["shards"] == SHARDS
    assert result["shards"] == SHARDS
    assert result["config"]["namespaces"] == 4
    assert result["config"]["vaultsecrets_per_shard"] == [10, 10]
    assert result["config"]["list_floor_per_poll"] == 1
    # Each shard lists the one directory itself: the set's floor is twice one process's.
    assert result["config"]["list_floor_per_poll_per_shard"] == [1, 1]
    assert result["config"]["list_floor_per_poll_all_shards"] == 2
    for index in range(SHARDS):
        assert (tmp_path / f"operator-shard{index}.log").stat().st_size > 0
    assert not (tmp_path / "operator.log").exists()

    ours = result["ours"]
    cold = ours["cold_sync"]
    # Both processes' requests counted at the server: one create and one status write per VaultSecret, whichever
    # shard serves it; no Event, no connection status write (shard 0 wrote it before the VaultSecrets came).
    assert_cold_sync_at_the_write_floor(cold, N)
    # Each VaultSecret served by exactly one shard: each process's `vaultsecrets` gauge is its shard's share, and
    # each process wrote the Secret and the status of its own VaultSecrets only (its /metrics).
    assert cold["expected_per_process"] == [10, 10]
    assert cold["vaultsecrets_per_process"] == [10, 10]
    assert cold["operator_counted_writes_per_process"] == [20, 20]
    assert len(cold["operator_cpu_seconds_per_process"]) == SHARDS
    assert sum(cold["operator_cpu_seconds_per_process"]) == pytest.approx(cold["operator_cpu_seconds"], abs=0.03)
    assert len(cold["rss_mib_per_process"]) == SHARDS
    assert cold["rss_mib"]["VmRSS"] == pytest.approx(sum(m["VmRSS"] for m in cold["rss_mib_per_process"]), abs=0.2)
    assert len(cold["time_to_in_sync_per_process"]) == SHARDS

    # Idle, propagation, warm restart (both processes again) and outage: the single-process counts.
    assert_operator_counts(ours)
    idle = ours["idle"]
    assert idle["whole_polls"]
    assert min(idle["polls_per_process"]) >= config.idle_polls
    # The dev vault's count is the processes' own list requests: the window holds whole polls only.
    assert idle["vault_lists"] == idle["vault_requests"] == sum(idle["list_requests_per_process"])
    assert idle["list_requests_per_process"] == idle["polls_per_process"]  # one page each per poll
    assert len(idle["rss_steady_mib_per_process"]) == SHARDS
    restart = ours["warm_restart"]
    assert len(restart["time_to_in_sync_per_process"]) == SHARDS
    assert len(ours["rss_peak_mib_per_process"]) == len(ours["rss_after_restart_peak_mib_per_process"]) == SHARDS
    assert ours["rss_peak_mib"] == pytest.approx(sum(ours["rss_peak_mib_per_process"]), abs=0.2)

    summary = result["summary"]["ours"]
    assert summary["kube_writes_per_idle_poll"] == 0
    assert summary["cold_sync_kube_writes"] == 2 * N
    assert summary["backend_requests_per_poll"] == SHARDS  # the set's: twice one process's floor
    assert summary["backend_requests_per_poll_per_process"] == [1.0, 1.0]
    assert summary["vaultsecrets_per_process"] == [10, 10]
    assert summary["processes"] == SHARDS
    checks = result["summary"]["checks"]
    assert checks["at_floor"]["met"]
    assert "2 shards" in checks["at_floor"]["target"]
    assert checks["one_get_per_change"]["met"]

    # The baseline ran while both processes were paused, as with one.
    assert result["naive"]["cold_sync"]["complete"]
    assert 0 < ours["outage"]["vault_requests"] < result["naive"]["outage"]["vault_requests"]

    text = bench.table([result])
    assert f"N = {N}, {SHARDS} shards" in text
    assert "RSS peak, per process" in text
    assert f"{SHARDS} operator processes" in text
