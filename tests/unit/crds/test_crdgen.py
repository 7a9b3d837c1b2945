"""The CRD generator and the committed CRDs: in sync with the models, structural, described, bounded and small."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_support import CRD_DIR, DOCS, JsonDict, walk
from pydantic import BaseModel

from scaivault_operator._cogs.api import (
    CONNECTION_SPECS,
    GROUP,
    TOKEN_URL_HTTPS_RULE,
    URL_HTTPS_RULE,
    ClusterConnectionSpec,
    ConnectionSpec,
    VaultSecretSpec,
    VaultSecretStatus,
)
from scaivault_operator._tools import crdgen

KINDS = ("VaultSecret", "ClusterVaultConnection", "VaultConnection")

# -- in sync -----------------------------------------------------------------------------------------------------


def test_committed_crds_are_what_the_models_render() -> None:
    rendered = crdgen.render_yaml()
    assert sorted(rendered) == sorted(path.name for path in CRD_DIR.glob("*.yaml"))
    for name, text in rendered.items():
        assert (CRD_DIR / name).read_text(encoding="utf-8") == text, f"crds/{name} is stale: run `make crds`"


def test_rendered_yaml_is_the_built_crds() -> None:
    rendered = crdgen.render_yaml()
    for kind, crd in zip(crdgen.KINDS, crdgen.build_crds(), strict=True):
        assert yaml.safe_load(rendered[kind.filename]) == crd


def test_cli_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1  # nothing there yet
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(crdgen.render_yaml())
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / "vaultsecrets.yaml"
    stale.write_text(stale.read_text().replace("maxItems: 256", "maxItems: 255"))
    capsys.readouterr()
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "-                maxItems: 255" in err
    assert "+                maxItems: 256" in err
    assert "make crds" in err


def test_sizes_fit_plain_kubectl_apply() -> None:
    sizes = {name: len(text.encode()) for name, text in crdgen.render_yaml().items()}
    assert all(size < 64 * 1024 for size in sizes.values()), sizes
    assert sum(sizes.values()) < 128 * 1024, sizes


# -- CRD shape ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "plural", "short", "scope"),
    [
        ("VaultSecret", "vaultsecrets", "vsec", "Namespaced"),
        ("ClusterVaultConnection", "clustervaultconnections", "cvc", "Cluster"),
        ("VaultConnection", "vaultconnections", "vconn", "Namespaced"),
    ],
)
def test_names_scope_and_version(crds: dict[str, JsonDict], kind: str, plural: str, short: str, scope: str) -> None:
    crd = crds[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP
    assert spec["scope"] == scope
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "shortNames": [short],
        "categories": ["scaivault"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    root = version["schema"]["openAPIV3Schema"]
    assert root["required"] == ["spec"]
    assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    # Exactly {type: object}: the API server rejects anything else at the root's metadata (a description too).
    assert root["properties"]["metadata"] == {"type": "object"}


def _columns(crd: JsonDict) -> dict[str, JsonDict]:
    return {column["name"]: column for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]}


def test_vaultsecret_printer_columns(crds: dict[str, JsonDict]) -> None:
    columns = _columns(crds["VaultSecret"])
    assert list(columns) == ["Path", "Version", "Sources", "Ready", "Reason", "Age", "Pinned", "Secret"]
    assert columns["Path"]["jsonPath"] == ".spec.path"
    assert (columns["Version"]["jsonPath"], columns["Version"]["type"]) == (".status.syncedVersion", "integer")
    # With spec.sources or spec.dataFrom: how many ScaiVault secrets the Secret holds (empty for a single path).
    sources = columns["Sources"]
    assert (sources["jsonPath"], sources["type"], sources.get("priority", 0)) == (".status.sourceCount", "integer", 0)
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Reason"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert (columns["Age"]["jsonPath"], columns["Age"]["type"]) == (".metadata.creationTimestamp", "date")
    assert (columns["Pinned"]["jsonPath"], columns["Pinned"]["priority"]) == (".spec.version", 1)


@pytest.mark.parametrize("kind", ["ClusterVaultConnection", "VaultConnection"])
def test_connection_printer_columns(crds: dict[str, JsonDict], kind: str) -> None:
    columns = _columns(crds[kind])
    assert [(name, c["jsonPath"], c.get("priority", 0)) for name, c in columns.items()] == [
        ("Ready", '.status.conditions[?(@.type=="Ready")].status', 0),
        ("Reason", '.status.conditions[?(@.type=="Ready")].reason', 0),
        ("Identity", ".status.identity.identityId", 0),
        ("Poll", ".spec.pollInterval", 0),
        ("Age", ".metadata.creationTimestamp", 0),
        ("URL", ".spec.url", 1),
        ("Paths", ".status.watchedPaths", 1),
        ("Breaker", ".status.breaker.state", 1),
    ]


def _schema_at(schema: JsonDict, json_path: str) -> JsonDict:
    """The schema node a printer column's simple JSONPath points at (filters like [?(...)] step into items)."""
    node = schema
    for part in json_path.replace('[?(@.type=="Ready")]', ".[]").strip(".").split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_point_at_fields_of_their_type(crds: dict[str, JsonDict], kind: str) -> None:
    schema = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for column in _columns(crds[kind]).values():
        assert column["description"]
        if column["jsonPath"].startswith(".metadata."):
            continue
        assert _schema_at(schema, column["jsonPath"])["type"] == column["type"], column


def test_status_conditions_are_a_map_keyed_by_type(schemas: dict[str, JsonDict]) -> None:
    conditions = schemas["VaultSecret"]["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]  # a map key must be required (or defaulted)


def test_spec_fields_match_the_models(schemas: dict[str, JsonDict]) -> None:
    def wire_names(model: type[BaseModel]) -> set[str]:
        return {field.alias or name for name, field in model.model_fields.items()}

    assert set(schemas["VaultSecret"]["properties"]["spec"]["properties"]) == wire_names(VaultSecretSpec)
    assert set(schemas["VaultSecret"]["properties"]["status"]["properties"]) == wire_names(VaultSecretStatus)
    for kind in ("ClusterVaultConnection", "VaultConnection"):
        assert set(schemas[kind]["properties"]["spec"]["properties"]) == wire_names(CONNECTION_SPECS[kind])
    assert wire_names(ClusterConnectionSpec) == wire_names(ConnectionSpec)  # one spec, one more rule


# -- structural schema -------------------------------------------------------------------------------------------

_FORBIDDEN = ("$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "definitions")


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(schemas: dict[str, JsonDict], kind: str) -> None:
    for path, node in walk(schemas[kind]):
        assert not set(_FORBIDDEN) & set(node), f"{kind} {path}: {sorted(set(_FORBIDDEN) & set(node))}"
        assert "type" in node, f"{kind} {path} has no type"
        assert "nullable" not in node, f"{kind} {path}: nullable"
        assert node.get("default", "") is not None, f"{kind} {path}: default null"
        if node["type"] == "object":
            # Kubernetes forbids additionalProperties beside properties, and additionalProperties: false anywhere.
            assert not ("properties" in node and "additionalProperties" in node), f"{kind} {path}"
            assert node.get("additionalProperties", {}) is not False, f"{kind} {path}"
        if node["type"] == "array":
            assert isinstance(node.get("items"), dict), f"{kind} {path}: array without items"
        if node["type"] == "integer":
            assert node["format"] == "int64", f"{kind} {path}"
        for required in node.get("required", []):
            assert required in node["properties"], f"{kind} {path}: required {required} is not a property"


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_is_described(schemas: dict[str, JsonDict], kind: str) -> None:
    """``kubectl explain`` reads these: no field may be left without a description."""
    for path, node in walk(schemas[kind]):
        if path.endswith(("[]", "{}")):
            continue  # list items and map values are explained by their parent
        if path == ".metadata":
            continue  # the API server allows no description there; kubectl explain shows ObjectMeta's own
        assert isinstance(node.get("description"), str), f"{kind} {path} has no description"
        assert node["description"].strip(), f"{kind} {path} has an empty description"


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_are_valid_values(schemas: dict[str, JsonDict], kind: str) -> None:
    """The API server rejects a CRD whose defaults do not validate against their own schema."""
    for path, node in walk(schemas[kind]):
        if "default" not in node:
            continue
        default = node["default"]
        expected = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}[node["type"]]
        assert isinstance(default, expected), f"{kind} {path}"
        if "enum" in node:
            assert default in node["enum"], f"{kind} {path}"


# -- CEL rules ---------------------------------------------------------------------------------------------------


def _model_rules(schema: Any) -> list[str]:
    """Every CEL rule text anywhere in a pydantic JSON schema."""
    if isinstance(schema, dict):
        own = [rule["rule"] for rule in schema.get("x-kubernetes-validations", [])]
        return own + [rule for value in schema.values() for rule in _model_rules(value)]
    if isinstance(schema, list):
        return [rule for value in schema for rule in _model_rules(value)]
    return []


def _crd_rules(schema: JsonDict) -> list[str]:
    return [rule["rule"] for _, node in walk(schema) for rule in node.get("x-kubernetes-validations", [])]


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("VaultSecret", VaultSecretSpec),
        ("ClusterVaultConnection", ClusterConnectionSpec),
        ("VaultConnection", ConnectionSpec),
    ],
)
def test_every_model_rule_is_in_the_crd(schemas: dict[str, JsonDict], kind: str, model: type[BaseModel]) -> None:
    model_rules = _model_rules(model.model_json_schema(by_alias=True, mode="validation"))
    assert model_rules
    crd_rules = _crd_rules(schemas[kind]["properties"]["spec"])
    assert sorted(set(model_rules)) == sorted(set(model_rules) & set(crd_rules))
    assert sorted(set(crd_rules)) == sorted(set(model_rules))  # and every CRD rule comes from the model


def test_only_the_cluster_connection_requires_secret_namespaces(schemas: dict[str, JsonDict]) -> None:
    def root_rules(kind: str) -> list[str]:
        return [r["rule"] for r in schemas[kind]["properties"]["spec"].get("x-kubernetes-validations", [])]

    https = [URL_HTTPS_RULE, TOKEN_URL_HTTPS_RULE]  # on ConnectionSpec: both kinds
    assert root_rules("ClusterVaultConnection") == [
        *https,
        "!has(self.auth.tokenSecretRef) || has(self.auth.tokenSecretRef.__namespace__)",
        "!has(self.auth.clientCredentials) || has(self.auth.clientCredentials.secretRef.__namespace__)",
    ]
    assert root_rules("VaultConnection") == https


def _rule_nodes(schema: JsonDict) -> list[tuple[str, JsonDict, list[JsonDict]]]:
    """(path, node with rules, the array nodes enclosing it)."""
    found: list[tuple[str, JsonDict, list[JsonDict]]] = []

    def visit(node: JsonDict, path: str, arrays: list[JsonDict]) -> None:
        if node.get("x-kubernetes-validations"):
            found.append((path, node, arrays))
        for name, sub in node.get("properties", {}).items():
            visit(sub, f"{path}.{name}", arrays)
        if isinstance(node.get("items"), dict):
            visit(node["items"], f"{path}[]", [*arrays, node])

    visit(schema, "", [])
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_cel_rules_have_bounded_cost(schemas: dict[str, JsonDict], kind: str) -> None:
    """The API server estimates each rule's worst-case cost from maxLength/maxItems, times the maxItems of every
    list around it, and refuses the CRD when a bound is missing and the estimate explodes."""
    nodes = _rule_nodes(schemas[kind])
    assert nodes
    for path, node, arrays in nodes:
        for array in arrays:
            assert "maxItems" in array, f"{kind} {path}: an enclosing list has no maxItems"
        if node["type"] == "string":
            assert "maxLength" in node, f"{kind} {path}: string with a rule has no maxLength"
        if node["type"] == "array":
            assert "maxItems" in node, f"{kind} {path}: list with a rule has no maxItems"
            for item_path, item in walk(node["items"], f"{path}[]"):
                if item["type"] == "string":
                    assert "maxLength" in item, f"{kind} {item_path}: string iterated by a rule has no maxLength"


@pytest.mark.parametrize("kind", KINDS)
def test_bounds_that_keep_cel_cheap_admit_every_enum_value(schemas: dict[str, JsonDict], kind: str) -> None:
    """A maxLength added to an enum for the cost estimate (``connectionRef.kind``, ``rollout.targets[].kind``) must
    not refuse one of its own values."""
    bounded = [(path, node) for path, node in walk(schemas[kind]) if "enum" in node and "maxLength" in node]
    for path, node in bounded:
        assert node["maxLength"] >= max(map(len, node["enum"])), f"{kind} {path}: maxLength refuses an enum value"
    if kind == "VaultSecret":
        paths = {path: node["maxLength"] for path, node in bounded}
        kinds = len("ClusterVaultConnection")
        assert paths[".spec.connectionRef.kind"] == paths[".spec.sources[].connectionRef.kind"] == kinds == 22


# -- the converter -----------------------------------------------------------------------------------------------


class _Union(BaseModel):
    value: int | str


class _Optional(BaseModel):
    """A model."""

    count: int | None = None
    names: list[str] | None = None
    tags: dict[str, str] = {}


def test_structural_collapses_optional_and_drops_null_defaults() -> None:
    schema = crdgen.model_schema(_Optional)
    assert schema == {
        "type": "object",
        "description": "A model.",
        "properties": {
            "count": {"type": "integer", "format": "int64"},
            "names": {"type": "array", "items": {"type": "string"}},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
        },
    }


def test_structural_refuses_real_unions() -> None:
    with pytest.raises(crdgen.UnsupportedSchemaError, match="Optional"):
        crdgen.model_schema(_Union)


def test_structural_refuses_unknown_keywords() -> None:
    with pytest.raises(crdgen.UnsupportedSchemaError, match="exclusiveMinimum"):
        crdgen.structural({"type": "integer", "exclusiveMinimum": 0}, {})


def test_field_description_wins_over_model_docstring_and_rules_add_up() -> None:
    defs = {"Inner": {"type": "object", "description": "docstring", "x-kubernetes-validations": [{"rule": "a"}]}}
    node = {"$ref": "#/$defs/Inner", "description": "field", "x-kubernetes-validations": [{"rule": "b"}]}
    assert crdgen.structural(node, defs) == {
        "type": "object",
        "description": "field",
        "x-kubernetes-validations": [{"rule": "a"}, {"rule": "b"}],
    }


# -- docs --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["VaultSecret", "ClusterVaultConnection"])
def test_docs_list_every_spec_field(schemas: dict[str, JsonDict], kind: str) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for path, _ in walk(schemas[kind]["properties"]["spec"]):
        if path != "." and not path.endswith(("[]", "{}")):
            assert f"`{path.removeprefix('.')}`" in docs, f"docs/crds.md does not describe {kind} spec{path}"
    for name in schemas[kind]["properties"]["status"].get("properties", {}):
        assert f"`status.{name}`" in docs, f"docs/crds.md does not describe {kind} status.{name}"
