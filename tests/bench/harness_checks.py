"""Count assertions both benchmark-harness tests make of the operator's side of a tier (fake API or cluster mode)."""

from __future__ import annotations

from typing import Any

SAMPLES = 10


def assert_operator_counts(ours: dict[str, Any]) -> None:
    """Idle: no GET and no Kubernetes write; propagation: one GET and one Secret patch per change, every change
    arrives; warm restart: no GET and no write; outage: no GET, and no write but the connection's status.breaker
    (one patch when its breaker opens; issue 10)."""
    idle = ours["idle"]
    assert idle["polls"] >= 2
    assert idle["vault_reads"] == 0
    assert idle["kube_writes"] == 0

    prop = ours["propagation"]
    assert prop["complete"]
    assert prop["observed"] == prop["samples"] == SAMPLES
    assert prop["vault_reads"] == SAMPLES
    assert prop["kube_requests"]["patch secrets"] == SAMPLES

    restart = ours["warm_restart"]
    assert restart["complete"]
    assert restart["vault_reads"] == 0
    assert restart["kube_writes"] == 0

    outage = ours["outage"]
    assert outage["vault_reads"] == 0
    breaker_writes = outage["kube_requests"].get("patch clustervaultconnections/status", 0)
    assert breaker_writes <= 1, outage["kube_requests"]
    assert outage["kube_writes"] == breaker_writes, outage["kube_requests"]


def assert_cold_sync_at_the_write_floor(cold: dict[str, Any], n: int) -> None:
    """A complete cold sync of ``n`` VaultSecrets at the floor: one GET each, one Secret create and one status
    write each, no Event (a first sync posts none) — counted at the server, whichever process wrote."""
    assert cold["complete"]
    assert cold["ready"] == n
    assert cold["vault_reads"] == n
    assert cold["kube_requests"]["create secrets"] == n
    assert cold["kube_requests"]["patch vaultsecrets/status"] == n
    assert cold["kube_requests"].get("create events", 0) == 0
    assert cold["kube_writes"] == 2 * n
