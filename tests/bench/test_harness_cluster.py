"""The benchmark's real-cluster mode (``--cluster kubeconfig``) end to end without a cluster: ``bench.fakeapi``
served over HTTP with a temporary kubeconfig pointing at it. The harness then installs the CRDs, creates its
namespaces, token Secret, ClusterVaultConnection and VaultSecrets with lightkube, observes through watches, runs
the operator from the kubeconfig and counts its Kubernetes writes from the operator's ``/metrics``; the naive
baseline runs against the same API (namespaces of its own) and counts its own requests — and everything is cleaned
up. Asserts counts, never times."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from bench.apis import parse_metrics, probe_cluster
from bench.fakeapi import FakeApi
from harness_checks import SAMPLES, assert_operator_counts

from bench import run as bench

N = 20


def test_parse_metrics() -> None:
    text = (
        "# TYPE scaivault_operator_secret_writes_total counter\n"
        'scaivault_operator_secret_writes_total{operation="create"} 20\n'
        'scaivault_operator_secret_writes_total{operation="patch"} 3\n'
        "scaivault_operator_status_writes_total 21\n"
        'scaivault_operator_events_total{type="Normal"} 20\n'
        'scaivault_operator_events_total{type="Warning"} 1\n'
        'scaivault_operator_backend_requests_total{call="read",connection="x"} 5\n'
    )
    assert parse_metrics(text) == {"create secrets": 20, "patch secrets": 3, "patch vaultsecrets/status": 21,
                                   "create events": 21}  # fmt: skip


@pytest.mark.timeout(240)
async def test_cluster_mode_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeApi() as api:  # no CRDs: the harness installs them
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}))  # fmt: skip
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        # In a thread: the probe is synchronous (as in ``main``), and the fake API serves on this event loop.
        info = await asyncio.to_thread(probe_cluster)
        assert info.server == api.url
        assert await asyncio.to_thread(bench.select_cluster, "auto") == info
        config = bench.Config(tiers=[N], interval=1.0, idle_polls=3, samples=SAMPLES, spread_polls=2.0, outage=2.0,
                              out=None, quiet=True, cluster=info)  # fmt: skip
        result = await bench.run_tier(N, config, tmp_path)

        assert result["api"] == "cluster"
        assert result["baseline_api"] == "cluster"
        assert result["cluster"]["server"] == api.url
        ours = result["ours"]
        cold = ours["cold_sync"]
        assert cold["complete"]
        assert cold["ready"] == N
        assert cold["vault_reads"] == N
        assert cold["kube_requests"] == {"create secrets": N, "patch vaultsecrets/status": N}  # no Event
        assert cold["kube_writes"] == 2 * N
        assert cold["lag_after_last_create"] == pytest.approx(cold["time_to_ready"] - cold["creation_seconds"],
                                                              abs=0.02)  # fmt: skip
        assert_operator_counts(ours)

        # The baseline ran against the same API, in namespaces of its own, and counted its own requests: the same
        # numbers as the API server's counters for its User-Agent.
        naive = result["naive"]
        assert naive["cold_sync"]["complete"]
        assert naive["cold_sync"]["kube_requests"] == {"list secrets": 1, "create secrets": N}
        assert naive["idle"]["passes"] >= 2
        assert naive["idle"]["vault_reads"] >= N * (naive["idle"]["passes"] - 1)
        assert naive["idle"]["kube_writes"] == 0
        assert naive["warm_restart"]["kube_writes"] == 0
        assert naive["warm_restart"]["kube_requests"] == {"list secrets": 1}
        assert api.count("create", "secrets", client="naive-baseline") == N
        assert 0 < ours["outage"]["vault_requests"] < naive["outage"]["vault_requests"]
        text = bench.table([result])
        assert "api: cluster" in text
        assert "baseline_api: cluster" in text

        # Cleaned up: the run's namespaces, its connection and the CRDs it installed are gone.
        store = api.store
        ns_type = store.resolve("", "v1", "namespaces")
        assert ns_type is not None
        assert not [key for key in store.objects(ns_type) if key[1].startswith("svo-bench-")]
        assert store.resolve("scaivault.scailabs.ai", "v1alpha1", "vaultsecrets") is None
