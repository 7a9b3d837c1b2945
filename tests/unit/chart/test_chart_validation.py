"""Every manifest the chart renders is valid for the API server, checked offline: built-in kinds with
kubernetes-validate (strict: unknown fields are errors) for the oldest and newest Kubernetes the chart supports,
custom resources against their CRDs' openAPIV3Schema. Bad values are refused with a message that says what is wrong.

The example custom resources of crds/examples/ are validated against the CRDs by tests/unit/crds/test_crd_examples.py.
"""

from __future__ import annotations

import json
import sys

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART,
    CHART_CRDS,
    INVALID_DIR,
    INVALID_SETS,
    REPO,
    VALUE_SETS,
    VALUES_DIR,
    HelmFailed,
    JsonDict,
    expect_message,
    helm,
    render,
)

sys.path.insert(0, str(REPO / "tests" / "unit" / "crds"))
from crd_support import api_server_errors, openapi_schema

#: The chart's kubeVersion floor (Chart.yaml) and the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.27", "1.37"]


def _crd_schemas() -> dict[tuple[str, str], JsonDict]:
    """(apiVersion, kind) -> openAPIV3Schema, for every CRD the chart ships (ours and Kopf's peerings)."""
    schemas: dict[tuple[str, str], JsonDict] = {}
    for path in CHART_CRDS.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            for version in crd["spec"]["versions"]:
                api_version = f"{crd['spec']['group']}/{version['name']}"
                schemas[(api_version, crd["spec"]["names"]["kind"])] = openapi_schema(crd | {"spec": crd["spec"] | {
                    "versions": [version]}})  # fmt: skip
    return schemas


CRD_SCHEMAS = _crd_schemas()
#: Kinds whose CRD is not ours to ship: checked for shape in test_chart_workload.
THIRD_PARTY = {("monitoring.coreos.com/v1", "ServiceMonitor")}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_rendered_manifest_is_valid(values: str, version: str) -> None:
    docs = render(values)
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        where = f"{values}: {doc['kind']}/{doc['metadata']['name']}"
        if key in CRD_SCHEMAS:
            assert api_server_errors(CRD_SCHEMAS[key], doc) == [], where
        elif key not in THIRD_PARTY:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where} is invalid for Kubernetes {version}: {exc.json_path}: {exc.message}")
            # No schema is no pass: kubernetes_validate.SchemaNotFoundError propagates and fails the test.


def _merged(base: JsonDict, override: JsonDict) -> JsonDict:
    """Helm's coalescing of a values file over values.yaml (maps merge, everything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_values_yaml_passes_its_own_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)
    for name in VALUE_SETS:
        values = _merged(defaults, yaml.safe_load((VALUES_DIR / name).read_text()) or {})
        assert [error.message for error in jsonschema.Draft7Validator(schema).iter_errors(values)] == [], name


@pytest.mark.parametrize("values", INVALID_SETS)
def test_bad_values_are_refused_with_a_clear_message(values: str) -> None:
    path = INVALID_DIR / values
    with pytest.raises(HelmFailed) as failure:
        helm("template", "svo", str(CHART), "--values", str(path))
    assert expect_message(path) in str(failure.value)


def test_lint_refuses_bad_values_too() -> None:
    with pytest.raises(HelmFailed) as failure:
        helm("lint", str(CHART), "--values", str(INVALID_DIR / "replica-count-zero.yaml"))
    assert "/replicaCount" in str(failure.value)
