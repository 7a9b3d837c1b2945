"""The histograms and the not-ready gauge of ``metrics.Metrics`` in the text exposition format, and the whole
``/metrics`` of a runtime read by a strict parser (``prometheus_text``, no client library)."""

from __future__ import annotations

import math
import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from prometheus_text import ExpositionError, parse, sample_value
from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._cogs.metrics import BUCKETS, ENDPOINTS, PREFIX, Metrics, status_class
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.runtime import Runtime

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "scaivault-operator"
WAIT = PREFIX + "queue_wait_seconds"
REQUESTS = PREFIX + "backend_request_duration_seconds"
CANARY = "CANARY-METRICS-5b1e"


def buckets(families: Any, name: str, **labels: str) -> list[tuple[str, float]]:
    """``[(le, cumulative count)]`` of one histogram series, in order."""
    found = []
    for family in families.values():
        for sample in family.samples:
            rest = tuple((k, v) for k, v in sample.labels if k != "le")
            if sample.name == name + "_bucket" and rest == tuple(sorted(labels.items())):
                found.append((sample.label("le"), sample.value))
    return found


def test_a_histogram_is_cumulative_ends_at_inf_and_counts_what_it_sums() -> None:
    metrics = Metrics()
    for seconds in (0.0005, 0.002, 0.002, 7.0, 1000.0):
        metrics.observe("queue_wait_seconds", seconds)
    text = metrics.render()
    assert f"# TYPE {WAIT} histogram" in text
    families = parse(text)
    found = buckets(families, WAIT)
    assert [le for le, _ in found] == [*(repr(float(b)).removesuffix(".0") for b in BUCKETS["queue_wait_seconds"]),
                                       "+Inf"]  # fmt: skip
    assert dict(found) == {"0.001": 1, "0.005": 3, "0.01": 3, "0.05": 3, "0.1": 3, "0.5": 3, "1": 3, "5": 3, "10": 4,
                           "30": 4, "60": 4, "300": 4, "+Inf": 5}  # fmt: skip
    assert sample_value(families, WAIT + "_count") == 5 == found[-1][1]
    assert sample_value(families, WAIT + "_sum") == pytest.approx(1007.0045)
    assert metrics.count("queue_wait_seconds") == 5


def test_a_value_on_a_bound_is_in_that_bucket_and_nan_is_dropped() -> None:
    metrics = Metrics()
    metrics.observe("sync_duration_seconds", 0.5)
    metrics.observe("sync_duration_seconds", math.nan)
    found = dict(buckets(parse(metrics.render()), PREFIX + "sync_duration_seconds"))
    assert (found["0.25"], found["0.5"], found["+Inf"]) == (0, 1, 1)
    assert metrics.count("sync_duration_seconds") == 1


def test_unlabelled_histograms_are_there_from_the_start_labelled_ones_with_their_first_observation() -> None:
    metrics = Metrics()
    families = parse(metrics.render())
    for name in ("propagation_seconds", "source_propagation_seconds", "sync_duration_seconds", "queue_wait_seconds"):
        assert families[PREFIX + name].type == "histogram"
        assert sample_value(families, f"{PREFIX}{name}_count") == 0
        assert sample_value(families, f"{PREFIX}{name}_bucket", le="+Inf") == 0
    assert families[REQUESTS].type == "histogram"
    assert families[REQUESTS].samples == []
    metrics.observe_request("read", 200, 0.03)
    families = parse(metrics.render())
    assert sample_value(families, REQUESTS + "_count", endpoint="read", status_class="2xx") == 1
    assert dict(buckets(families, REQUESTS, endpoint="read", status_class="2xx"))["0.05"] == 1


def test_request_durations_by_endpoint_and_status_class() -> None:
    metrics = Metrics()
    for endpoint, status in [("whoami", 200), ("read", 404), ("read", 404), ("list", 503), ("token", 401),
                             ("write", 201), ("list", None), ("read", 302)]:  # fmt: skip
        metrics.observe_request(endpoint, status, 0.01)
    families = parse(metrics.render())
    counts = {s.labels: s.value for s in families[REQUESTS].samples if s.name == REQUESTS + "_count"}
    assert counts == {
        (("endpoint", "whoami"), ("status_class", "2xx")): 1,
        (("endpoint", "read"), ("status_class", "4xx")): 2,
        (("endpoint", "list"), ("status_class", "5xx")): 1,
        (("endpoint", "token"), ("status_class", "4xx")): 1,
        (("endpoint", "write"), ("status_class", "2xx")): 1,
        (("endpoint", "list"), ("status_class", "error")): 1,
        (("endpoint", "read"), ("status_class", "3xx")): 1,
    }
    with pytest.raises(ValueError, match="unknown ScaiVault endpoint"):
        metrics.observe_request("apps/web/db", 200, 0.01)  # a path never becomes a label
    assert "apps/web/db" not in metrics.render()
    assert {"whoami", "read", "list", "token", "write"} == ENDPOINTS


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (204, "2xx"), (299, "2xx"), (301, "3xx"), (400, "4xx"), (429, "4xx"), (500, "5xx"), (599, "5xx"),
     (None, "error"), (101, "error"), (600, "error"), (0, "error")],
)  # fmt: skip
def test_status_classes(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


def test_histogram_label_values_are_escaped_and_read_back() -> None:
    metrics = Metrics()
    odd = 'a"b\\c\nd'
    metrics.observe("backend_request_duration_seconds", 0.2, {"endpoint": odd, "status_class": "2xx"})
    text = metrics.render()
    assert 'endpoint="a\\"b\\\\c\\nd"' in text
    families = parse(text)
    assert sample_value(families, REQUESTS + "_count", endpoint=odd, status_class="2xx") == 1
    assert sample_value(families, REQUESTS + "_bucket", endpoint=odd, status_class="2xx", le="0.25") == 1


def test_the_kinds_of_metric_are_not_mixed_up() -> None:
    metrics = Metrics()
    with pytest.raises(KeyError):
        metrics.observe("made_up_seconds", 1.0)
    with pytest.raises(KeyError):
        metrics.observe("syncs_total", 1.0)  # a counter
    with pytest.raises(KeyError):
        metrics.inc("queue_wait_seconds")  # a histogram
    with pytest.raises(KeyError):
        metrics.gauge("propagation_seconds", list)
    with pytest.raises(KeyError):
        metrics.gauge("syncs_total", list)


def test_values_keep_their_precision() -> None:
    """Counters past a million stay exact (``%g`` would print 1.23457e+06), fractions keep every digit."""
    metrics = Metrics()
    metrics.inc("status_writes_total", value=1234567)
    metrics.gauge("breaker_retry_timestamp_seconds", lambda: [({"connection": "c"}, 1776952800.125)])
    metrics.observe("propagation_seconds", 0.1 + 0.2)
    families = parse(metrics.render())
    assert "scaivault_operator_status_writes_total 1234567\n" in metrics.render()
    assert sample_value(families, PREFIX + "breaker_retry_timestamp_seconds", connection="c") == 1776952800.125
    assert sample_value(families, PREFIX + "propagation_seconds_sum") == 0.1 + 0.2


# -- the parser is strict: it refuses what Prometheus would refuse -----------------------------------------------

GOOD = """# HELP x_seconds Help.
# TYPE x_seconds histogram
x_seconds_bucket{le="1"} 1
x_seconds_bucket{le="+Inf"} 2
x_seconds_sum 3.5
x_seconds_count 2
"""


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        (GOOD.replace('{le="1"} 1', '{le="1"} 3'), "not cumulative"),
        (GOOD.replace('le="+Inf"', 'le="2"'), "not \\+Inf"),
        (GOOD.replace("x_seconds_count 2", "x_seconds_count 3"), "!= \\+Inf bucket"),
        (GOOD.replace("x_seconds_sum 3.5\n", ""), "exactly one _count and one _sum"),
        (GOOD.replace('le="1"', 'le="+Inf"', 1).replace('le="+Inf"} 2', 'le="1"} 2'), "strictly ascending"),
        (GOOD.replace("x_seconds_sum 3.5", 'x_seconds_sum{le="1"} 3.5'), "'le' belongs"),
        (GOOD.rstrip("\n"), "line feed"),
        (GOOD + "\n", "blank line"),
        (GOOD + "# HELP x_seconds Again.\n", "HELP after the family's samples"),
        (GOOD + 'x_seconds_bucket{le="1"} 1\n', "twice"),
        (GOOD.replace("# TYPE x_seconds histogram\n", ""), "without a TYPE"),
        ('# TYPE y counter\ny{a="b\\t"} 1\n', "invalid escape"),
        ('# TYPE y counter\ny{a="b",} 1\n', "trailing comma"),
        ('# TYPE y counter\ny{a="b",a="c"} 1\n', "twice"),
        ("# TYPE y counter\ny -1\n", "counter must be"),
        ("# TYPE y counter\ny 1 1700000000\n", "timestamp"),
        ("# TYPE y counter\ny one\n", "not a float"),
        ("# TYPE y gauge\n# TYPE z gauge\nz 1\ny 1\n", "not contiguous"),
        ("# A comment\n", "neither HELP nor TYPE"),
    ],
)
def test_the_parser_refuses(broken: str, problem: str) -> None:
    parse(GOOD)
    with pytest.raises(ExpositionError, match=problem):
        parse(broken)


# -- the whole endpoint -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vaultsecret(name: str, namespace: str, status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "VaultSecret",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1},
        "spec": {"path": f"apps/{CANARY}/db", "connectionRef": {"name": "default"}},
    }
    if status is not None:
        body["status"] = status
    return body


def ready(status: str, reason: Any) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": f"about {CANARY}"}]}


async def test_the_whole_metrics_endpoint_parses_strictly_and_names_the_vaultsecrets_not_ready() -> None:
    runtime = Runtime(object(), OperatorSettings(liveness_endpoint=None, metrics_port=0))  # type: ignore[arg-type]
    registry, metrics = runtime.registry, runtime.metrics
    registry.upsert(vaultsecret("fine", "team-a", ready("True", "Synced")))
    registry.upsert(vaultsecret("gone", "team-a", ready("False", "SourceNotFound")))
    registry.upsert(vaultsecret("down", "team-b", ready("False", "BackendUnavailable")))
    registry.upsert(vaultsecret("new", "team-b", None))  # no condition yet: Pending
    registry.upsert(vaultsecret("odd", "team-c", ready("Unknown", 'not "a reason"\n')))  # shown as Unknown
    metrics.inc("syncs_total", {"outcome": "synced"})
    metrics.inc("backend_errors_total", {"connection": "ClusterVaultConnection/default", "reason": "SourceNotFound"})
    for name in BUCKETS:
        metrics.observe(name, 0.3, {"endpoint": "read", "status_class": "2xx"} if name == "backend_request_duration_"
                        "seconds" else None)  # fmt: skip
    metrics.observe_request("list", None, 15.0)
    port = _free_port()
    await metrics.serve("127.0.0.1", port)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        await runtime.stop()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = parse(response.text)
    for name in ("propagation_seconds", "source_propagation_seconds", "backend_request_duration_seconds",
                 "sync_duration_seconds", "queue_wait_seconds"):  # fmt: skip
        assert families[PREFIX + name].type == "histogram", name
        assert families[PREFIX + name].help, name
    assert families[PREFIX + "vaultsecret_not_ready"].type == "gauge"
    not_ready = {(s.label("namespace"), s.label("name"), s.label("reason")): s.value
                 for s in families[PREFIX + "vaultsecret_not_ready"].samples}  # fmt: skip
    assert not_ready == {
        ("team-a", "gone", "SourceNotFound"): 1,
        ("team-b", "down", "BackendUnavailable"): 1,
        ("team-b", "new", "Pending"): 1,
        ("team-c", "odd", "Unknown"): 1,
    }
    assert sample_value(families, REQUESTS + "_count", endpoint="list", status_class="error") == 1
    assert sample_value(families, REQUESTS + "_count", endpoint="read", status_class="2xx") == 1
    assert sample_value(families, PREFIX + "queue_depth") == 0
    for family in families.values():  # every label value is a name: no path, no message, no canary
        for sample in family.samples:
            assert all(CANARY not in value for _, value in sample.labels), sample
    assert CANARY not in response.text


def test_every_metric_the_charts_alerts_and_dashboard_query_is_exposed() -> None:
    """The PrometheusRule and the Grafana dashboard query these names: each is a family of /metrics (a histogram's
    series are its _bucket, _sum and _count)."""
    queried = set()
    for source in (
        CHART / "templates" / "prometheusrule.yaml",
        CHART / "files" / "dashboards" / "scaivault-operator.json",
    ):
        queried |= set(re.findall(r"scaivault_operator_([a-z_]+)", source.read_text(encoding="utf-8")))
    exposed = set()
    for family in parse(Metrics().render()).values():
        name = family.name.removeprefix(PREFIX)
        exposed |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if family.type == "histogram" else {name}
    pending = {"connection_ready"} - exposed  # the connections' Ready gauge comes with the connection status work
    assert queried - exposed - pending == set()
    assert {"propagation_seconds_bucket", "vaultsecret_not_ready", "queue_wait_seconds_bucket"} <= queried


def test_the_docs_table_names_every_metric_with_its_type_and_buckets() -> None:
    """docs/install.md, "Metrics": one row per metric the operator exposes, with its type and, for a histogram, the
    buckets it really has."""
    docs = (REPO / "docs" / "install.md").read_text(encoding="utf-8")
    section = docs.split("\n### Metrics\n", 1)[1].split("\n### ", 1)[0]
    rows = {m[0]: m[1:] for m in re.findall(r"^\| `([a-z_]+)` \| (\w+) \| (.*?) \| (.*) \|$", section, re.MULTILINE)}
    families = parse(Metrics().render())
    assert set(rows) == {name.removeprefix(PREFIX) for name in families}
    for name, (kind, _, what) in rows.items():
        assert families[PREFIX + name].type == kind, name
        if kind == "histogram":
            listed = re.search(r"Buckets ([0-9., ]+[0-9])", what)
            assert listed is not None, name
            assert [float(b) for b in listed.group(1).split(", ")] == [float(b) for b in BUCKETS[name]], name
