"""NOTES.txt, printed after `helm install`, tells the next step (rendered with ``helm install --dry-run=client``)."""

from __future__ import annotations

from chart_support import CHART, NAMESPACE, VALUES_DIR, helm


def notes(*args: str) -> str:
    output = helm("install", "svo", str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *args)
    return output.split("NOTES:", 1)[1]


def test_without_a_url_it_says_how_to_add_the_default_connection() -> None:
    text = notes()
    assert "serving every namespace" in text
    assert 'no ClusterVaultConnection "default" was created' in text
    assert "--set scaivault.url=" in text
    assert "rollout status deployment/svo-scaivault-operator" in text


def test_with_a_connection_it_shows_a_vaultsecret_to_apply() -> None:
    text = notes("--values", str(VALUES_DIR / "token.yaml"))
    assert 'The ClusterVaultConnection "default" points at https://scaivault.example.com' in text
    assert "kind: VaultSecret" in text
    assert "kubectl get vsec -A" in text
    assert "WARNING" not in text


def test_a_connection_without_access_rules_is_flagged() -> None:
    text = notes("--set", "scaivault.url=https://v.example.com", "--set", "scaivault.auth.token.existingSecret=t")
    assert "WARNING: scaivault.access is empty" in text


def test_namespaced_and_peering_modes_are_named() -> None:
    text = notes("--values", str(VALUES_DIR / "ha-namespaced.yaml"))
    assert "serving namespaces: team-a, team-b" in text
    assert "2 replicas share the peering object svo-scaivault-operator: one is active" in text


def test_crds_managed_outside_the_release_are_a_reminder() -> None:
    assert "crds.install=false" not in notes()
    text = notes("--set", "crds.install=false")
    assert "The CRDs are not part of this release (crds.install=false)" in text
    assert "kubectl apply --server-side -f crds/" in text


LABEL = "scaivault.scailabs.ai/credentials=true"


def test_an_existing_token_secret_is_reminded_to_opt_in() -> None:
    """The operator reads credentials only from Secrets labelled scaivault.scailabs.ai/credentials=true."""
    text = notes("--set", "scaivault.url=https://v.example.com", "--set", "scaivault.auth.token.existingSecret=tok")
    assert f"kubectl -n {NAMESPACE} label secret tok {LABEL}" in text
    text = notes("--values", str(VALUES_DIR / "client-credentials-secret.yaml"))
    assert f"kubectl -n {NAMESPACE} label secret scaivault-client {LABEL}" in text
    assert LABEL not in notes("--values", str(VALUES_DIR / "token.yaml"))  # the chart's own Secret is labelled


def test_the_next_step_labels_the_token_secret_it_creates() -> None:
    text = notes()
    create = f"kubectl -n {NAMESPACE} create secret generic scaivault-token"
    label = f"kubectl -n {NAMESPACE} label secret scaivault-token {LABEL}"
    assert create in text
    assert label in text
    assert text.index(create) < text.index(label)


def test_a_service_monitor_behind_a_closed_network_policy_is_flagged() -> None:
    closed = ("--set", "networkPolicy.enabled=true", "--set", "networkPolicy.apiServer.peers={172.18.0.2/32}")
    monitor = ("--set", "metrics.serviceMonitor.enabled=true")
    warning = "WARNING: the NetworkPolicy admits no one to the metrics port"
    assert warning in notes(*closed, *monitor)
    assert warning not in notes(*closed)
    assert warning not in notes("--values", str(VALUES_DIR / "network-policy.yaml"))  # Prometheus admitted
