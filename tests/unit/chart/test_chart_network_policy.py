"""The optional NetworkPolicy (networkPolicy.enabled): ingress only to the metrics and health ports from the
configured peers, egress only to DNS, the API server and ScaiVault/ScaiKey. kubernetes-validate checks its shape
(test_chart_validation); here: what it admits.

Reminders of NetworkPolicy semantics the chart must respect: a rule without ``from``/``to`` admits every address,
``ingress: []`` with policyType Ingress admits nothing, and peers of one rule are OR-ed while the selectors inside
one peer are AND-ed.
"""

from __future__ import annotations

import pytest
from chart_support import FULLNAME, NAMESPACE, VALUE_SETS, JsonDict, container, find, find_all, render

API_SERVER = "networkPolicy.apiServer.peers={172.18.0.2/32}"


def policy(docs: list[JsonDict]) -> JsonDict:
    spec: JsonDict = find(docs, "NetworkPolicy", FULLNAME, NAMESPACE)["spec"]
    return spec


def ports(rule: JsonDict) -> set[tuple[str, int]]:
    return {(port["protocol"], port["port"]) for port in rule["ports"]}


def egress_rule(spec: JsonDict, port: int) -> JsonDict:
    """The one egress rule that opens TCP ``port``."""
    [rule] = [rule for rule in spec["egress"] if ("TCP", port) in ports(rule)]
    return rule


@pytest.mark.parametrize("values", sorted(set(VALUE_SETS) - {"network-policy.yaml"}))
def test_off_by_default(values: str) -> None:
    assert find_all(render(values), "NetworkPolicy") == []


def test_it_selects_the_operator_pods_and_restricts_both_directions() -> None:
    docs = render(None, "networkPolicy.enabled=true", API_SERVER)
    spec = policy(docs)
    assert spec["podSelector"] == find(docs, "Deployment")["spec"]["selector"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]


def test_without_metrics_peers_nothing_may_connect() -> None:
    """``ingress: []`` denies every connection; a rule without ``from`` would admit every address instead."""
    spec = policy(render(None, "networkPolicy.enabled=true", API_SERVER))
    assert spec["ingress"] == []


def test_metrics_and_health_ports_admit_only_the_configured_peers() -> None:
    docs = render("network-policy.yaml")
    [rule] = policy(docs)["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    # The container ports (operator.metricsPort, operator.healthPort), which the probes and scrapers reach.
    container_ports = {port["name"]: port["containerPort"] for port in container(docs)["ports"]}
    assert container_ports == {"metrics": 9191, "health": 8181}
    assert ports(rule) == {("TCP", 9191), ("TCP", 8181)}


def test_the_service_monitor_scrapes_a_port_the_policy_admits() -> None:
    """Prometheus Operator scrapes the pods behind the Service: the endpoint's port is the Service port named in the
    ServiceMonitor, its target the container port — the one NetworkPolicy sees."""
    docs = render("network-policy.yaml")
    [endpoint] = find(docs, "ServiceMonitor", FULLNAME, NAMESPACE)["spec"]["endpoints"]
    service = find(docs, "Service", f"{FULLNAME}-metrics", NAMESPACE)
    [service_port] = [port for port in service["spec"]["ports"] if port["name"] == endpoint["port"]]
    [target] = [port for port in container(docs)["ports"] if port["name"] == service_port["targetPort"]]
    [rule] = policy(docs)["ingress"]
    assert ("TCP", target["containerPort"]) in ports(rule)


def test_dns_goes_to_kube_dns_over_udp_and_tcp() -> None:
    spec = policy(render(None, "networkPolicy.enabled=true", API_SERVER))
    [rule] = [rule for rule in spec["egress"] if ("UDP", 53) in ports(rule)]
    assert ports(rule) == {("UDP", 53), ("TCP", 53)}
    assert rule["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]


def test_the_api_server_is_reached_at_the_given_endpoint_addresses() -> None:
    spec = policy(render("network-policy.yaml"))
    rule = egress_rule(spec, 6443)
    assert ports(rule) == {("TCP", 443), ("TCP", 6443)}
    # A string is short for an ipBlock; a peer is used as it is.
    assert rule["to"] == [
        {"ipBlock": {"cidr": "172.18.0.2/32"}},
        {"ipBlock": {"cidr": "192.168.10.0/24", "except": ["192.168.10.128/25"]}},
    ]


def test_scaivault_by_cidr_on_its_ports_or_any_address_on_443() -> None:
    rule = egress_rule(policy(render("network-policy.yaml")), 8443)
    assert ports(rule) == {("TCP", 443), ("TCP", 8443)}
    assert rule["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    # Without peers: any address, on 443 only (NetworkPolicy cannot match host names).
    spec = policy(render(None, "networkPolicy.enabled=true", API_SERVER, "networkPolicy.apiServer.ports={6443}"))
    rule = egress_rule(spec, 443)
    assert "to" not in rule
    assert ports(rule) == {("TCP", 443)}


def test_nothing_else_is_open() -> None:
    """Three egress rules (DNS, API server, ScaiVault) and one ingress rule; every egress rule has ports."""
    spec = policy(render("network-policy.yaml"))
    assert len(spec["egress"]) == 3
    assert all(rule["ports"] for rule in spec["egress"])
    opened = set().union(*(ports(rule) for rule in spec["egress"]))
    assert opened == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443), ("TCP", 8443)}
    assert len(spec["ingress"]) == 1


def test_extra_rules_are_appended_as_they_are() -> None:
    proxy = {"to": [{"ipBlock": {"cidr": "10.9.9.9/32"}}], "ports": [{"protocol": "TCP", "port": 3128}]}
    nodes = {"from": [{"ipBlock": {"cidr": "192.168.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 8080}]}
    spec = policy(
        render(
            None,
            "networkPolicy.enabled=true",
            API_SERVER,
            "networkPolicy.extraEgress[0].to[0].ipBlock.cidr=10.9.9.9/32",
            "networkPolicy.extraEgress[0].ports[0].protocol=TCP",
            "networkPolicy.extraEgress[0].ports[0].port=3128",
            "networkPolicy.extraIngress[0].from[0].ipBlock.cidr=192.168.0.0/16",
            "networkPolicy.extraIngress[0].ports[0].protocol=TCP",
            "networkPolicy.extraIngress[0].ports[0].port=8080",
        )
    )
    assert spec["egress"][-1] == proxy
    assert spec["ingress"] == [nodes]  # no metrics.from: only the extra rule
