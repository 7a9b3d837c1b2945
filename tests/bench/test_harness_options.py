"""The benchmark's options and figures that need no tier run: the tier list (the 50,000 tier only on request), the
targets per tier, the baseline's request verbs, and which Kubernetes API each side of a tier uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.apis import ClusterInfo, ClusterSide, FakeSide
from bench.naive import request_verb

from bench import run as bench


def test_default_tiers_leave_out_50000() -> None:
    config, _ = bench.parse_args([])
    assert config.tiers == [100, 1_000, 10_000]
    assert bench.parse_args(["--tiers", "all"])[0].tiers == [100, 1_000, 10_000, 50_000]
    assert bench.parse_args(["--tiers", "50000"])[0].tiers == [50_000]
    assert bench.parse_args(["--tiers", "1000, 50k"])[0].tiers == [1_000, 50_000]
    assert bench.parse_args(["--tiers", "default,50_000"])[0].tiers == [100, 1_000, 10_000, 50_000]
    with pytest.raises(ValueError, match="invalid literal"):
        bench.parse_tiers("lots")


def test_layout_at_50000() -> None:
    items = bench.layout(50_000)
    assert len({(i.namespace, i.name) for i in items}) == 50_000
    assert len({i.namespace for i in items}) == 500
    assert len({i.path for i in items}) == 50_000
    assert bench.list_floor(items, 500) == 100  # 50 directories of 1,000 paths: two full pages each


def test_targets_per_tier() -> None:
    assert bench.targets_for(10_000) is bench.TARGETS_10K
    large = bench.targets_for(50_000)
    assert large["rss_peak_with_restart_mib"][0] == 250
    assert "rss_peak_mib" not in large
    assert "cold_sync_s" not in large  # no time target at 50,000


def test_figures_split_creating_and_lag() -> None:
    config = bench.Config(tiers=[1_000])
    side = {"cold_sync": {"time_to_ready": 30.0, "creation_seconds": 12.0, "lag_after_last_create": 18.0,
                          "operator_cpu_seconds": 4.0, "kube_writes": 2_000, "vault_reads": 1_000},
            "idle": {"polls": 2, "seconds": 4.0, "vault_requests": 4, "kube_writes": 0, "rss_steady_mib": 80.0},
            "warm_restart": {"rss_mib": {"VmRSS": 90.0, "VmHWM": 95.0}},
            "rss_peak_mib": 85.0, "rss_after_restart_peak_mib": 95.0}  # fmt: skip
    figures = bench.figures(side, 1_000, config, ours=True)
    assert figures["cold_sync_s"] == 30.0
    assert figures["cold_sync_creating_s"] == 12.0
    assert figures["cold_sync_lag_s"] == 18.0
    assert figures["cold_sync_cpu_ms_per_object"] == 4.0
    assert figures["cold_sync_kube_writes"] == 2_000
    assert figures["rss_after_restart_mib"] == 90.0
    assert figures["rss_peak_with_restart_mib"] == 95.0


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/api/v1/secrets", "list"),
        ("GET", "/api/v1/namespaces/a/secrets", "list"),
        ("GET", "/api/v1/namespaces/a/secrets/b", "get"),
        ("POST", "/api/v1/namespaces/a/secrets", "create"),
        ("PATCH", "/api/v1/namespaces/a/secrets/b", "patch"),
        ("PUT", "/api/v1/namespaces/a/secrets/b", "update"),
    ],
)
def test_baseline_request_verbs(method: str, path: str, verb: str) -> None:
    assert request_verb(method, path) == verb


async def test_baseline_uses_the_same_kind_of_api(tmp_path: Path) -> None:
    ours, naive = bench.sides(bench.Config(tiers=[20]))
    assert isinstance(ours, FakeSide)
    assert isinstance(naive, FakeSide)
    assert ours.history == naive.history == 20_000
    config, _ = bench.parse_args(["--watch-history", "200000"])
    ours, naive = bench.sides(config)
    assert isinstance(ours, FakeSide)
    assert isinstance(naive, FakeSide)
    assert ours.history == naive.history == 200_000
    assert bench.sides(bench.Config(tiers=[20], baseline=False))[1] is None

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    from scaivault_operator._cogs.kubeconfig import load

    config = load(kubeconfig).config
    info = ClusterInfo(config=config, server="http://127.0.0.1:1", version="v0")
    ours, naive = bench.sides(bench.Config(tiers=[20], cluster=info))
    try:
        assert isinstance(ours, ClusterSide)
        assert ours.role == "operator"
        assert isinstance(naive, ClusterSide)
        assert naive.role == "baseline"
        assert naive.namespace_prefix != ours.namespace_prefix  # its own namespaces: the Secrets' names repeat
        args = naive.baseline_args()
        assert args[:2] == ["--kubeconfig", "--stats-port"]
        assert naive.metrics_url == f"http://127.0.0.1:{args[2]}/"
        assert naive.counts() == {}  # no baseline running: nothing counted
    finally:
        await ours.client.close()
        await naive.client.close()
