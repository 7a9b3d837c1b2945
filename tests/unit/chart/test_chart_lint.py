"""``helm lint`` is clean for every value set, and the chart's CRD files (files/crds/) are the repository's
(``make crds`` copies them)."""

from __future__ import annotations

import pytest
import yaml
from chart_support import CHART, CHART_CRDS, REPO, VALUE_SETS, VALUES_DIR, helm

from scaivault_operator import __version__

#: Kopf's peering CRDs (group kopf.dev) ship in the chart's files/crds/ next to ours: needed with replicaCount > 1.
KOPF_PEERINGS = "kopf-peerings.yaml"


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint_is_clean(values: str) -> None:
    output = helm("lint", "--strict", str(CHART), "--values", str(VALUES_DIR / values))
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    problems = [line for line in output.splitlines() if line.startswith(("[ERROR]", "[WARNING]"))]
    assert problems == []


def test_chart_crds_are_the_repository_crds() -> None:
    """Byte-identical copies of crds/*.yaml; `make crds` refreshes both. Examples stay out of the chart."""
    ours = {path.name: path.read_bytes() for path in (REPO / "crds").glob("*.yaml")}
    chart = {path.name: path.read_bytes() for path in CHART_CRDS.rglob("*") if path.is_file()}
    assert set(chart) == set(ours) | {KOPF_PEERINGS}, "run `make crds` to copy crds/*.yaml into the chart"
    stale = sorted(name for name, content in ours.items() if chart[name] != content)
    assert stale == [], f"charts/scaivault-operator/files/crds/ differs from crds/ for {stale}: run `make crds`"


def test_the_chart_has_no_crds_folder() -> None:
    """Helm installs a chart's crds/ once and never upgrades it; the CRDs are templates (templates/crds.yaml)."""
    assert not (CHART / "crds").exists()


def test_kopf_peering_crds_are_the_kinds_kopf_uses() -> None:
    crds = [doc for doc in yaml.safe_load_all((CHART_CRDS / KOPF_PEERINGS).read_text()) if doc]
    assert {(c["spec"]["group"], c["spec"]["names"]["kind"], c["spec"]["scope"]) for c in crds} == {
        ("kopf.dev", "ClusterKopfPeering", "Cluster"),
        ("kopf.dev", "KopfPeering", "Namespaced"),
    }
    for crd in crds:
        [version] = crd["spec"]["versions"]
        assert version["name"] == "v1"
        # Kopf merge-patches status on the object itself: no status subresource.
        assert "subresources" not in version
        assert version["schema"]["openAPIV3Schema"]["properties"]["status"]["x-kubernetes-preserve-unknown-fields"]


def test_chart_app_version_is_the_operator_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == __version__
