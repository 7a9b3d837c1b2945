"""The optional alerts (``metrics.prometheusRule``: a Prometheus Operator PrometheusRule) and Grafana dashboard
(``metrics.dashboard``: a ConfigMap for Grafana's dashboard sidecar), checked offline.

No Prometheus here, so no promtool: every alert expression and every dashboard query is parsed with promql-parser
(the Rust PromQL parser, a dev dependency), which refuses bad syntax, unknown functions and wrong argument types, and
each must select only the operator's metrics (``KNOWN_METRICS``; ``up`` too) through the operator's job. The
PrometheusRule is a custom resource whose CRD the chart does not ship: it is checked against ``RULE_SCHEMA``, the
subset of Prometheus Operator's schema the chart uses (stricter); everything else the chart renders with these values
goes through test_chart_validation's checks.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import yaml
from chart_support import CHART, FULLNAME, NAMESPACE, REPO, HelmFailed, JsonDict, find, find_all, helm, render
from test_chart_validation import CRD_SCHEMAS, KUBERNETES_VERSIONS, THIRD_PARTY, api_server_errors

PREFIX = "scaivault_operator_"
#: The operator's metrics (without PREFIX) as metrics.py's _HELP names them today.
EXISTING_METRICS = frozenset({
    "syncs_total", "secret_writes_total", "status_writes_total", "events_total", "backend_requests_total",
    "backend_requests_suppressed_total", "backend_errors_total", "vaultsecrets", "queue_depth", "breaker_open",
    "breaker_opens_total", "breaker_retry_timestamp_seconds", "connection_status_writes_total",
})  # fmt: skip
#: Metrics being added to the operator (the alerts and the dashboard use them already): gauges and histograms.
NEW_GAUGES = frozenset({"vaultsecret_not_ready", "connection_ready"})
HISTOGRAMS = frozenset({
    "propagation_seconds", "source_propagation_seconds", "backend_request_duration_seconds", "sync_duration_seconds",
    "queue_wait_seconds",
})  # fmt: skip
#: Every series name a query may select: a histogram is its _bucket, _sum and _count; `up` is Prometheus' own.
KNOWN_METRICS = frozenset(
    {PREFIX + name for name in EXISTING_METRICS | NEW_GAUGES}
    | {f"{PREFIX}{name}_{suffix}" for name in HISTOGRAMS for suffix in ("bucket", "sum", "count")}
    | {"up"}
)

#: Values that turn everything on (the rule selects by the ServiceMonitor's job by default).
MONITORING = ("metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true",
              "metrics.dashboard.enabled=true")  # fmt: skip
SERVICE = f"{FULLNAME}-metrics"
JOB = f'job="{SERVICE}"'
DASHBOARD = f"{FULLNAME}-dashboard"
DASHBOARD_KEY = "scaivault-operator.json"
ALERTS = {
    "ScaiVaultSecretNotReady": "secretNotReady",
    "ScaiVaultConnectionUnauthorized": "connectionUnauthorized",
    "ScaiVaultBreakerOpen": "breakerOpen",
    "ScaiVaultPropagationSlow": "propagationSlow",
    "ScaiVaultOperatorDown": "operatorDown",
}
DOCS = (REPO / "docs" / "install.md").read_text(encoding="utf-8")

# The PrometheusRule's schema: the fields the chart uses, as Prometheus Operator's CRD (monitoring.coreos.com/v1)
# defines them, and no others.
DURATION = "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
LABEL_NAME = "^[a-zA-Z_][a-zA-Z0-9_]*$"
DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _string_map(*required: str) -> JsonDict:
    return {"type": "object", "propertyNames": {"pattern": LABEL_NAME}, "additionalProperties": {"type": "string"},
            "required": list(required)}  # fmt: skip


RULE_SCHEMA: JsonDict = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace", "labels"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": DNS_LABEL, "maxLength": 253},
                "namespace": {"type": "string", "pattern": DNS_LABEL, "maxLength": 63},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": DURATION},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["alert", "expr", "for", "labels", "annotations"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^ScaiVault[A-Z][A-Za-z]+$"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string", "pattern": DURATION},
                                        "labels": _string_map("severity"),
                                        "annotations": _string_map("summary", "description"),
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}

#: What the annotations may template: an alert's labels, and its value (humanized).
PROMETHEUS_TEMPLATE_ACTION = re.compile(r"\{\{ (\$labels\.[a-z_]+|\$value \| humanizeDuration) \}\}")


def rule_doc(*sets: str) -> JsonDict:
    return find(render(None, *MONITORING, *sets), "PrometheusRule", FULLNAME, NAMESPACE)


def alerts(*sets: str) -> dict[str, JsonDict]:
    [group] = rule_doc(*sets)["spec"]["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}


def dashboard_map(*sets: str) -> JsonDict:
    return find(render(None, *MONITORING, *sets), "ConfigMap", DASHBOARD)


def dashboard() -> JsonDict:
    result: JsonDict = json.loads(dashboard_map()["data"][DASHBOARD_KEY])
    return result


# PromQL -------------------------------------------------------------------------------------------------------------


def parse(expr: str) -> Any:
    """The expression's syntax tree; fails the test with the parser's message when it is not valid PromQL."""
    try:
        return promql_parser.parse(expr)
    except ValueError as exc:
        pytest.fail(f"not valid PromQL: {exc}\n{expr}")


def selectors(tree: Any) -> list[Any]:
    """Every VectorSelector in the tree (a range selector's included)."""
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(tree, pre_visit=visit)
    return found


def matchers(selector: Any) -> set[tuple[str, str, str]]:
    return {(m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in selector.matchers.matchers}


def output_labels(node: Any) -> set[str]:
    """The labels of the series an expression returns, for the shapes the chart's queries use."""
    if isinstance(node, promql_parser.ParenExpr):
        return output_labels(node.expr)
    if isinstance(node, promql_parser.AggregateExpr):
        if node.modifier is None:
            return set()
        assert node.modifier.type == promql_parser.AggModifierType.By, f"'without' hides the labels: {node}"
        return set(node.modifier.labels)
    if isinstance(node, promql_parser.BinaryExpr):  # comparisons, and/unless/or: the left side's labels
        if isinstance(node.lhs, promql_parser.NumberLiteral):
            return output_labels(node.rhs)
        return output_labels(node.lhs)
    if isinstance(node, promql_parser.Call):
        name = node.func.name
        if name == "absent":  # the equality matchers of its selector
            return {m[0] for s in selectors(node.args[0]) for m in matchers(s) if m[1] == "Equal"}
        if name == "histogram_quantile":
            return output_labels(node.args[1]) - {"le"}
        if name == "vector":
            return set()
        if name == "label_replace":
            return output_labels(node.args[0]) | {node.args[1].val}
    if isinstance(node, promql_parser.VectorSelector):
        return {m[0] for m in matchers(node)} | {"job", "instance"}
    pytest.fail(f"output_labels does not know {type(node).__name__}: {node}")


def metric_names(tree: Any) -> set[str]:
    names = set()
    for selector in selectors(tree):
        assert selector.name, f"a selector without a metric name: {selector}"
        names.add(selector.name)
    return names


# Rendering ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, "ha.yaml", "network-policy.yaml"])
def test_off_by_default(values: str | None) -> None:
    docs = render(values)
    assert find_all(docs, "PrometheusRule") == []
    assert find_all(docs, "ConfigMap") == []


def test_each_renders_on_its_own() -> None:
    rule_only = render(None, "metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true")
    assert find(rule_only, "PrometheusRule")["metadata"]["name"] == FULLNAME
    assert find_all(rule_only, "ConfigMap") == []
    dashboard_only = render(None, "metrics.dashboard.enabled=true")
    assert find(dashboard_only, "ConfigMap", DASHBOARD, NAMESPACE)
    assert find_all(dashboard_only, "PrometheusRule") == []
    assert find_all(dashboard_only, "ServiceMonitor") == []  # the dashboard needs no ServiceMonitor


def test_the_rule_needs_the_service_monitor_or_a_selector() -> None:
    with pytest.raises(HelmFailed) as failure:
        render(None, "metrics.prometheusRule.enabled=true")
    assert "metrics.prometheusRule.enabled needs metrics.serviceMonitor.enabled or metrics.prometheusRule.selector" in (
        str(failure.value)
    )
    selector = 'job="kubernetes-pods",namespace="scaivault-system"'
    escaped = selector.replace(",", "\\,")  # --set splits at commas
    docs = render(None, "metrics.prometheusRule.enabled=true", f"metrics.prometheusRule.selector={escaped}")
    [group] = find(docs, "PrometheusRule")["spec"]["groups"]
    for rule in group["rules"]:
        for selector_node in selectors(parse(rule["expr"])):
            assert {("job", "Equal", "kubernetes-pods"), ("namespace", "Equal", "scaivault-system")} <= matchers(
                selector_node
            ), rule["alert"]


@pytest.mark.parametrize("values", [None, "ha.yaml", "namespaced.yaml", "network-policy.yaml"])
def test_every_manifest_rendered_with_monitoring_is_valid(values: str | None) -> None:
    """test_chart_validation's check, with the alerts and the dashboard on: the ConfigMap by kubernetes-validate, the
    PrometheusRule (a third party's custom resource) by RULE_SCHEMA."""
    docs = render(values, *MONITORING)
    kinds = {doc["kind"] for doc in docs}
    assert {"PrometheusRule", "ConfigMap", "ServiceMonitor"} <= kinds
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        where = f"{values}: {doc['kind']}/{doc['metadata']['name']}"
        if key == ("monitoring.coreos.com/v1", "PrometheusRule"):
            errors = [e.message for e in jsonschema.Draft7Validator(RULE_SCHEMA).iter_errors(doc)]
            assert errors == [], where
        elif key in CRD_SCHEMAS:
            assert api_server_errors(CRD_SCHEMAS[key], doc) == [], where
        elif key not in THIRD_PARTY:
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{where} is invalid for Kubernetes {version}: {exc.json_path}: {exc.message}")


def test_helm_lint_is_clean_with_monitoring() -> None:
    args = [arg for item in MONITORING for arg in ("--set", item)]
    output = helm("lint", "--strict", str(CHART), *args, "--set", "metrics.prometheusRule.labels.release=prometheus")
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    assert [line for line in output.splitlines() if line.startswith(("[ERROR]", "[WARNING]"))] == []


def test_the_schema_refuses_bad_alert_values() -> None:
    for bad, where in [
        ("metrics.prometheusRule.alerts.breakerOpen.for=10 minutes", "/metrics/prometheusRule/alerts/breakerOpen/for"),
        ("metrics.prometheusRule.propagationP99Seconds=0", "/metrics/prometheusRule/propagationP99Seconds"),
        ("metrics.prometheusRule.selector={job=x}", "/metrics/prometheusRule/selector"),
        ("metrics.prometheusRule.alerts.bogus.for=1m", "/metrics/prometheusRule/alerts"),
        ("metrics.dashboard.namespace=Monitoring", "/metrics/dashboard/namespace"),
    ]:
        with pytest.raises(HelmFailed) as failure:
            render(None, *MONITORING, bad)
        assert where in str(failure.value), bad


# The PrometheusRule -------------------------------------------------------------------------------------------------


def test_the_rule_carries_the_chart_labels_and_the_ruleselector_labels() -> None:
    rule = rule_doc("metrics.prometheusRule.labels.release=prometheus")
    labels = rule["metadata"]["labels"]
    assert labels["release"] == "prometheus"
    assert labels["app.kubernetes.io/instance"] == "svo"
    assert labels["app.kubernetes.io/part-of"] == "scaivault-operator"


def test_the_five_alerts_with_their_defaults() -> None:
    found = alerts()
    assert set(found) == set(ALERTS)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["prometheusRule"]["alerts"]
    for name, key in ALERTS.items():
        assert found[name]["for"] == defaults[key]["for"], name
        assert found[name]["labels"] == {"severity": defaults[key]["severity"]}, name
    assert {name: rule["for"] for name, rule in found.items()} == {
        "ScaiVaultSecretNotReady": "10m",
        "ScaiVaultConnectionUnauthorized": "5m",
        "ScaiVaultBreakerOpen": "10m",
        "ScaiVaultPropagationSlow": "15m",
        "ScaiVaultOperatorDown": "5m",
    }


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_every_expression_is_promql_over_the_operators_metrics(alert: str) -> None:
    expr = alerts()[alert]["expr"]
    tree = parse(expr)
    assert metric_names(tree) <= KNOWN_METRICS
    for selector in selectors(tree):  # the operator's series only: the ServiceMonitor's job
        assert ("job", "Equal", SERVICE) in matchers(selector), f"{alert}: {selector}"


def test_the_job_is_the_one_prometheus_operator_gives_the_service_monitors_targets() -> None:
    """Without spec.jobLabel, Prometheus Operator names a ServiceMonitor's job after the Service it scrapes."""
    docs = render(None, *MONITORING)
    monitor = find(docs, "ServiceMonitor", FULLNAME, NAMESPACE)
    assert "jobLabel" not in monitor["spec"]
    assert find(docs, "Service", SERVICE, NAMESPACE)["metadata"]["labels"].items() >= (
        monitor["spec"]["selector"]["matchLabels"].items()
    )


def test_the_expressions() -> None:
    """The alerts' logic, selector by selector (the parser's rendering normalises the spacing)."""
    found = {name: parse(rule["expr"]) for name, rule in alerts().items()}
    not_ready = found["ScaiVaultSecretNotReady"]
    # Per VaultSecret and reason, its namespace taken from exported_namespace when Prometheus Operator renamed it.
    assert str(not_ready) == (
        'max by (namespace, name, reason)(label_replace(scaivault_operator_vaultsecret_not_ready{job="svo-scaivault-'
        'operator-metrics"}, "namespace", "$1", "exported_namespace", "(.+)")) > 0'
    )
    # Not ready (0) with an authentication reason; Unreachable is the breaker's business.
    assert str(found["ScaiVaultConnectionUnauthorized"]) == (
        "max by (connection, reason)(scaivault_operator_connection_ready"
        '{job="svo-scaivault-operator-metrics",reason=~"Unauthorized|MissingScope"}) == 0'
    )
    breaker = found["ScaiVaultBreakerOpen"]
    assert str(breaker.op) == "unless"
    assert (
        str(breaker.lhs)
        == 'max by (connection)(scaivault_operator_breaker_open{job="svo-scaivault-operator-metrics"}) > 0'
    )
    assert str(breaker.rhs) == f"({found['ScaiVaultConnectionUnauthorized']})"
    assert str(found["ScaiVaultPropagationSlow"]) == (
        "histogram_quantile(0.99, sum by (le)(rate(scaivault_operator_propagation_seconds_bucket"
        '{job="svo-scaivault-operator-metrics"}[10m]))) > 60'
    )
    # absent(...): also when the target is gone entirely, not only when it reports up == 0.
    assert str(found["ScaiVaultOperatorDown"]) == 'absent(up{job="svo-scaivault-operator-metrics"} == 1)'


def test_the_breaker_alert_defers_to_the_unauthorized_one_only_while_that_one_is_on() -> None:
    off = alerts("metrics.prometheusRule.alerts.connectionUnauthorized.enabled=false")
    assert "ScaiVaultConnectionUnauthorized" not in off
    assert str(parse(off["ScaiVaultBreakerOpen"]["expr"]).op) == ">"


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_annotations_template_only_labels_the_expression_keeps(alert: str) -> None:
    """Helm's escaping left Prometheus' {{ }} intact; every $labels.x is a label of the alert's series; nothing but
    labels and the value is templated (no secret data can reach a notification)."""
    rule = alerts()[alert]
    keeps = output_labels(parse(rule["expr"]))
    for key, text in rule["annotations"].items():
        assert not re.search(r"\{\{`|`\}\}", text), f"{alert}.{key}: Helm's escaping leaked"
        actions = re.findall(r"\{\{.*?\}\}", text)
        assert text.count("{{") == text.count("}}") == len(actions), f"{alert}.{key}: unbalanced {{{{ }}}}"
        for action in actions:
            assert PROMETHEUS_TEMPLATE_ACTION.fullmatch(action), f"{alert}.{key}: {action}"
        used = set(re.findall(r"\$labels\.([a-z_]+)", text))
        assert used <= keeps, f"{alert}.{key} uses {used - keeps}, which {sorted(keeps)} lack"
    described = set(re.findall(r"\$labels\.([a-z_]+)", rule["annotations"]["description"]))
    assert described == keeps - {"job"}, alert  # each label that tells which object is in the description


def test_the_secret_alert_names_the_vaultsecret_and_its_reason() -> None:
    annotations = alerts()["ScaiVaultSecretNotReady"]["annotations"]
    assert "{{ $labels.namespace }}/{{ $labels.name }}" in annotations["summary"]
    assert "{{ $labels.reason }}" in annotations["description"]
    assert "kubectl -n {{ $labels.namespace }} describe vaultsecret {{ $labels.name }}" in annotations["description"]
    assert "10m" in annotations["description"]
    assert annotations["runbook_url"].endswith("docs/install.md#alerts-and-dashboard")


def test_per_alert_values_and_additional_labels(tmp_path: Path) -> None:
    found = alerts(
        "metrics.prometheusRule.alerts.secretNotReady.for=30m",
        "metrics.prometheusRule.alerts.breakerOpen.severity=critical",
        "metrics.prometheusRule.alerts.operatorDown.enabled=false",
        "metrics.prometheusRule.additionalLabels.team=platform",
        "metrics.prometheusRule.runbookUrl=",
    )
    assert "ScaiVaultOperatorDown" not in found
    assert found["ScaiVaultSecretNotReady"]["for"] == "30m"
    assert "30m" in found["ScaiVaultSecretNotReady"]["annotations"]["description"]
    assert found["ScaiVaultBreakerOpen"]["labels"] == {"severity": "critical", "team": "platform"}
    assert found["ScaiVaultConnectionUnauthorized"]["labels"] == {"severity": "critical", "team": "platform"}
    # A fractional threshold (a values file: --set reads 90.5 as a string, which the schema refuses).
    values = tmp_path / "threshold.yaml"
    values.write_text("metrics: {serviceMonitor: {enabled: true}, prometheusRule: {enabled: true, "
                      "propagationP99Seconds: 90.5}}\n")  # fmt: skip
    [slow] = [r for r in find(render(str(values)), "PrometheusRule")["spec"]["groups"][0]["rules"]
              if r["alert"] == "ScaiVaultPropagationSlow"]  # fmt: skip
    assert parse(slow["expr"]).rhs.val == 90.5
    assert "90.5 s" in slow["annotations"]["description"]
    assert all("runbook_url" not in rule["annotations"] for rule in found.values())
    # A severity among additionalLabels wins over every alert's own.
    overridden = alerts("metrics.prometheusRule.additionalLabels.severity=page")
    assert {rule["labels"]["severity"] for rule in overridden.values()} == {"page"}


def test_no_rule_without_an_alert() -> None:
    """A rule group needs at least one rule: with every alert off there is no PrometheusRule."""
    sets = [f"metrics.prometheusRule.alerts.{key}.enabled=false" for key in ALERTS.values()]
    assert find_all(render(None, *MONITORING, *sets), "PrometheusRule") == []


# The dashboard ------------------------------------------------------------------------------------------------------


def test_the_dashboard_configmap_for_the_sidecar() -> None:
    cm = dashboard_map()
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in cm["metadata"]
    assert list(cm["data"]) == [DASHBOARD_KEY]
    assert cm["data"][DASHBOARD_KEY] == (CHART / "files" / "dashboards" / DASHBOARD_KEY).read_text().rstrip("\n")
    moved = dashboard_map(
        "metrics.dashboard.namespace=monitoring",
        "metrics.dashboard.annotations.grafana_folder=ScaiVault",
        "metrics.dashboard.labels.grafana_dashboard=null",
        "metrics.dashboard.labels.dashboards=ops",
    )
    assert moved["metadata"]["namespace"] == "monitoring"
    assert moved["metadata"]["annotations"] == {"grafana_folder": "ScaiVault"}
    assert "grafana_dashboard" not in moved["metadata"]["labels"]
    assert moved["metadata"]["labels"]["dashboards"] == "ops"


def panels(board: JsonDict) -> Iterator[JsonDict]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: JsonDict) -> Iterator[tuple[str, JsonDict]]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel["title"], target


def as_promql(expr: str) -> str:
    """A Grafana query as Prometheus sees it: the interval variable replaced ($job sits inside a regex string)."""
    return expr.replace("$__rate_interval", "5m")


def test_the_dashboard_is_grafana_json_with_a_datasource_and_a_job_variable() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert board["uid"] == "scaivault-operator"
    assert board["title"]
    assert board["id"] is None  # an import creates it
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    job = variables["job"]
    assert job["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    [metric] = re.fullmatch(r"label_values\((\w+), job\)", job["definition"]).groups()  # type: ignore[union-attr]
    assert metric in KNOWN_METRICS
    assert job["query"]["query"] == job["definition"]
    assert job["includeAll"]
    assert job["multi"]
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        assert panel["type"] in {"row", "stat", "timeseries", "table", "state-timeline"}, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
            refs = [target["refId"] for target in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
    # No two panels overlap.
    cells = set()
    for panel in panels(board):
        position = panel["gridPos"]
        for x in range(position["x"], position["x"] + position["w"]):
            for y in range(position["y"], position["y"] + position["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))


def test_every_dashboard_query_is_promql_over_the_operators_metrics_of_the_chosen_job() -> None:
    board = dashboard()
    count = 0
    for title, target in queries(board):
        count += 1
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        tree = parse(as_promql(target["expr"]))
        assert metric_names(tree) <= KNOWN_METRICS, title
        for selector in selectors(tree):
            assert ("job", "Re", "$job") in matchers(selector), f"{title}: {selector}"
        legend = set(re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat", "")))
        assert legend <= output_labels(tree), f"{title}: the legend names {legend - output_labels(tree)}"
    assert count >= 20


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    board = dashboard()
    used = {name for _, target in queries(board) for name in metric_names(parse(as_promql(target["expr"])))}
    expected = {PREFIX + name for name in EXISTING_METRICS | NEW_GAUGES} - {
        PREFIX + "syncs_total", PREFIX + "breaker_retry_timestamp_seconds"
    } | {f"{PREFIX}{name}_bucket" for name in HISTOGRAMS} | {"up"}  # fmt: skip
    assert expected <= used, sorted(expected - used)
    titles = {panel["title"] for panel in panels(board)}
    assert {
        "VaultSecrets by Ready reason", "VaultSecrets not Ready", "Connection health", "Circuit breakers",
        "Requests by call", "Errors by reason", "Request duration p50 / p99 by endpoint", "Propagation p50 / p99",
        "Sync duration p50 / p99", "Queue depth", "Queue wait p50 / p99", "Kubernetes writes by operation",
    } <= titles  # fmt: skip
    [table] = [panel for panel in panels(board) if panel["title"] == "VaultSecrets not Ready"]
    [target] = table["targets"]
    assert target["format"] == "table"
    assert target["instant"]
    columns = table["transformations"][0]["options"]["indexByName"]
    assert set(columns) == output_labels(parse(as_promql(target["expr"]))) == {"namespace", "name", "reason"}


# The metric names -------------------------------------------------------------------------------------------------


def _metrics_py_names() -> set[str]:
    """The keys of _HELP in the operator's metrics.py, read as text (the package is being reorganised)."""
    [path] = [p for p in (REPO / "operator" / "src").rglob("metrics.py") if "_HELP = {" in p.read_text()]
    block = path.read_text().split("_HELP = {", 1)[1].split("\n}", 1)[0]
    return set(re.findall(r'^\s+"([a-z_]+)":', block, flags=re.MULTILINE))


def test_the_existing_metric_names_are_the_operators() -> None:
    names = _metrics_py_names()
    assert names >= EXISTING_METRICS, sorted(EXISTING_METRICS - names)


# The docs -----------------------------------------------------------------------------------------------------------


def _section(heading: str) -> str:
    """``heading``'s section of docs/install.md: up to the next heading of the same or a higher level."""
    start = DOCS.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    ends = [DOCS.find(f"\n{'#' * n} ", start + 1) for n in range(1, len(level) + 1)]
    return DOCS[start : min([end for end in ends if end != -1], default=len(DOCS))]


def test_the_docs_explain_every_alert_and_their_helm_command_renders() -> None:
    section = _section("### Alerts and dashboard")
    for name, key in ALERTS.items():
        assert f"`{name}`" in section, name
        assert f"`{key}`" in section, key
    [block] = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    words = shlex.split(block.replace("\\\n", " "), comments=True)
    sets = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    docs = render(None, *sets)
    assert find(docs, "PrometheusRule")["metadata"]["labels"]["release"] == "prometheus"
    assert find(docs, "ConfigMap", DASHBOARD)["metadata"]["annotations"] == {"grafana_folder": "ScaiVault"}
    values = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]
    assert values["prometheusRule"]["runbookUrl"].endswith("#" + "alerts-and-dashboard")
    main_values = _section("### Main values")
    for key in ("metrics.prometheusRule.enabled", "metrics.dashboard.enabled"):
        assert f"`{key}`" in main_values, key
    for group in ("prometheusRule", "dashboard"):  # each value named in the table, e.g. `.labels` or `.alerts.<name>`
        for key in values[group]:
            assert re.search(rf"`(metrics\.{group})?\.{key}[`.]", main_values), f"metrics.{group}.{key}"
