"""crdcheck: the API server's CRD admission rules, offline.

The committed CRDs (``crds/``), the chart's CRD files and the CRDs ``helm template`` renders pass with zero problems;
then each rule is shown to
fire on a CRD derived from a good one by one mutation, with the exact field path and error type the API server
reports (the table was checked against a real kube-apiserver v1.36 with ``dryRun=All``); the static CEL cost
estimate is checked against upstream's own expectations (``TestCostEstimation`` in
apiextensions-apiserver ``pkg/apiserver/schema/cel/compilation_test.go``); and crdgen's output passes for
generated models.
"""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import pytest
import yaml
from crd_support import REPO, JsonDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, create_model

from scaivault_operator import crdcheck
from scaivault_operator._tools import crdgen
from scaivault_operator._tools.crdgen import MIN_KUBERNETES_MINOR
from scaivault_operator.crdcheck import InvalidCrdError, Problem

CHART = REPO / "charts" / "scaivault-operator"
ROOT = "spec.validation.openAPIV3Schema"  # one version: the server reports its schema at the top level
SPEC = f"{ROOT}.properties[spec]"
STATUS = f"{ROOT}.properties[status]"
CONDITIONS = f"{STATUS}.properties[conditions]"


def chart_crds() -> list[tuple[str, JsonDict]]:
    """Every CustomResourceDefinition in the chart's plain YAML files (not templates), wherever the chart keeps
    them (``crds/`` or ``files/crds/``)."""
    found = []
    for path in sorted(CHART.rglob("*.yaml")):
        if "templates" in path.relative_to(CHART).parts:
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                found.append((f"{path.relative_to(REPO)}:{document['metadata']['name']}", document))
    return found


def pairs(problems: list[Problem]) -> list[tuple[str, str]]:
    return sorted({(problem.field, problem.type) for problem in problems})


# -- the good CRDs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["VaultSecret", "ClusterVaultConnection", "VaultConnection"])
def test_committed_crds_pass(crds: dict[str, JsonDict], kind: str) -> None:
    assert crdcheck.validate_crd(crds[kind], cel=True) == []


def test_the_chart_ships_crds_and_all_pass() -> None:
    found = chart_crds()
    names = {name.rsplit(":", 1)[1] for name, _ in found}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev", "vaultsecrets.scaivault.scailabs.ai"} <= names
    for name, crd in found:
        assert crdcheck.validate_crd(crd, cel=True) == [], name


HELM = Path(sys.executable).parent / "helm"


@pytest.mark.skipif(not HELM.exists(), reason="helm is not installed (make install puts it in .venv/bin)")
def test_the_crds_the_chart_renders_pass() -> None:
    """What ``helm install`` sends: the chart's CRDs with the labels and annotations its template adds."""
    values = REPO / "tests" / "unit" / "chart" / "values" / "ha.yaml"  # three replicas: Kopf's peering CRDs too
    args = ["template", "svo", str(CHART), "--values", str(values), "--set", "crds.annotations.example\\.com/team=a"]
    rendered = subprocess.run([str(HELM), *args], capture_output=True, text=True, check=True, timeout=60).stdout
    crds = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 5
    for crd in crds:
        assert crdcheck.validate_crd(crd, cel=True) == [], crd["metadata"]["name"]


def test_the_module_imports_and_checks_without_cel_python() -> None:
    """The runtime package does not depend on cel-python: only ``cel=True`` needs it."""
    code = (
        "import sys, yaml\n"
        "sys.modules['celpy'] = sys.modules['lark'] = None  # make both unimportable\n"
        "from scaivault_operator import crdcheck\n"
        f"crd = yaml.safe_load(open({str(REPO / 'crds' / 'vaultsecrets.yaml')!r}))\n"
        "assert crdcheck.validate_crd(crd) == []\n"
        "try:\n"
        "    crdcheck.validate_crd(crd, cel=True)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "CEL checks need cel-python: pip install -e '.[dev]'"


def test_crdgen_output_passes() -> None:
    for crd in crdgen.build_crds():
        assert crdcheck.validate_crd(crd, cel=True) == []


# -- one mutation, one rule --------------------------------------------------------------------------------------------


def node(crd: JsonDict, dotted: str = "") -> JsonDict:
    """The schema node at a dotted path below the root (``spec.keys[].to``), in the first version."""
    current: JsonDict = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in filter(None, dotted.replace("[]", ".[]").split(".")):
        current = current["items"] if part == "[]" else current["properties"][part]
    return current


def rule(crd: JsonDict, dotted: str, index: int = 0) -> JsonDict:
    validations: list[JsonDict] = node(crd, dotted)["x-kubernetes-validations"]
    return validations[index]


def second_version(crd: JsonDict) -> None:
    version = copy.deepcopy(crd["spec"]["versions"][0])
    version["name"] = "v1alpha2"
    crd["spec"]["versions"].append(version)


class Bad(NamedTuple):
    id: str
    mutate: Callable[[JsonDict], Any]
    expected: list[tuple[str, str]]
    kind: str = "VaultSecret"


BAD = [
    # metadata at the root (the first release's bug) and in nested contexts
    Bad("description on root metadata", lambda c: node(c, "metadata").update(description="Standard metadata."),
        [(f"{ROOT}.properties[metadata]", "Forbidden")]),
    Bad("other field under root metadata properties",
        lambda c: node(c, "metadata").update(properties={"labels": {"type": "object"}}),
        [(f"{ROOT}.properties[metadata]", "Forbidden")]),
    Bad("metadata type not object", lambda c: node(c, "metadata").update(type="string"),
        [(f"{ROOT}.properties[metadata].type", "Invalid")]),
    Bad("default in top-level metadata", lambda c: node(c, "metadata").update(default={}),
        [(f"{ROOT}.properties[metadata].default", "Forbidden")]),
    # structural schemas
    Bad("a node without type", lambda c: node(c, "spec.target.name").pop("type"),
        [(f"{SPEC}.properties[target].properties[name].type", "Required")]),
    Bad("array items without type", lambda c: node(c, "spec.keys[]").pop("type"),
        [(f"{SPEC}.properties[keys].items.type", "Required")]),
    Bad("array without items", lambda c: node(c, "spec.keys").pop("items"),
        [(f"{SPEC}.properties[keys].items", "Required")]),
    Bad("$ref", lambda c: node(c, "spec.target").update({"$ref": "#/definitions/Target"}),
        [(f"{SPEC}.properties[target].$ref", "Forbidden")]),
    Bad("anyOf carrying a type",
        lambda c: node(c, "spec.version").update(anyOf=[{"type": "integer", "minimum": 2}, {"maximum": 9}]),
        [(f"{SPEC}.properties[version].anyOf[0].type", "Forbidden")]),
    Bad("allOf carrying a description",
        lambda c: node(c, "spec.version").update(allOf=[{"description": "x", "minimum": 2}]),
        [(f"{SPEC}.properties[version].allOf[0].description", "Forbidden")]),
    Bad("oneOf carrying a CEL rule",
        lambda c: node(c, "spec.version").update(oneOf=[{"x-kubernetes-validations": [{"rule": "self > 1"}]}]),
        [(f"{SPEC}.properties[version].oneOf[0].x-kubernetes-validations", "Forbidden")]),
    Bad("a root value validation naming a field that is not specified",
        lambda c: (c["spec"]["versions"][0].pop("subresources"),
                   node(c).update({"not": {"properties": {"nope": {"minimum": 1}}}})),
        [(f"{ROOT}.properties[nope]", "Required")]),
    Bad("properties and additionalProperties",
        lambda c: node(c, "spec.connectionRef").update(additionalProperties={"type": "string"}),
        [(f"{SPEC}.properties[connectionRef].additionalProperties", "Forbidden")]),
    Bad("additionalProperties at the root",
        lambda c: (node(c).pop("properties"), node(c).pop("required"),
                   node(c).update(additionalProperties={"type": "string"})),
        [(f"{ROOT}.additionalProperties", "Forbidden"), (f"{ROOT}.additionalProperties", "Forbidden"),
         ("spec.validation.openAPIV3Schema", "Invalid")]),
    Bad("root type not object", lambda c: node(c).update(type="array", items={"type": "string"}),
        [(f"{ROOT}.type", "Invalid")]),
    Bad("x-kubernetes-preserve-unknown-fields: false",
        lambda c: node(c, "spec.target").update({"x-kubernetes-preserve-unknown-fields": False}),
        [(f"{SPEC}.properties[target].x-kubernetes-preserve-unknown-fields", "Invalid")]),
    Bad("int-or-string with preserve-unknown-fields",
        lambda c: node(c, "spec").setdefault("properties", {}).update(
            port={"x-kubernetes-int-or-string": True, "x-kubernetes-preserve-unknown-fields": True}),
        [(f"{SPEC}.properties[port].x-kubernetes-preserve-unknown-fields", "Invalid")]),
    Bad("int-or-string anyOf that is not the integer/string pattern",
        lambda c: node(c, "spec").setdefault("properties", {}).update(
            port={"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "number"}]}),
        [(f"{SPEC}.properties[port].anyOf[0].type", "Forbidden"),
         (f"{SPEC}.properties[port].anyOf[1].type", "Forbidden")]),
    Bad("embedded resource without type object",
        lambda c: node(c, "spec").setdefault("properties", {}).update(
            template={"type": "string", "x-kubernetes-embedded-resource": True,
                      "x-kubernetes-preserve-unknown-fields": True}),
        [(f"{SPEC}.properties[template].type", "Invalid")]),
    Bad("embedded resource without properties or preserve-unknown-fields",
        lambda c: node(c, "spec").setdefault("properties", {}).update(
            template={"type": "object", "x-kubernetes-embedded-resource": True}),
        [(f"{SPEC}.properties[template].properties", "Required")]),
    Bad("uniqueItems", lambda c: node(c, "spec.keys").update(uniqueItems=True),
        [(f"{SPEC}.properties[keys].uniqueItems", "Forbidden")]),
    Bad("type null", lambda c: node(c, "spec.version").update(type="null"),
        [(f"{SPEC}.properties[version].type", "NotSupported"), (f"{SPEC}.properties[version].type", "Forbidden")]),
    Bad("pattern Go cannot compile", lambda c: node(c, "spec.path").update(pattern="^(?!/).*$"),
        [(f"{SPEC}.properties[path].pattern", "Invalid")]),
    Bad("nullable at the root", lambda c: node(c).update(nullable=True),
        [(ROOT, "Invalid"), (f"{ROOT}.nullable", "Forbidden")]),
    Bad("enum at the root with the status subresource", lambda c: node(c).update(enum=[{}]),
        [(ROOT, "Invalid")]),
    # defaults
    Bad("a default of the wrong type", lambda c: node(c, "spec.version").update(default="3"),
        [(f"{SPEC}.properties[version].default", "TypeInvalid")]),
    Bad("a default over maxLength", lambda c: node(c, "spec.target.type").update(default="x" * 254),
        [(f"{SPEC}.properties[target].properties[type].default", "TooLong")]),
    Bad("a default missing its enum", lambda c: node(c, "spec.target.creationPolicy").update(default="Replace"),
        [(f"{SPEC}.properties[target].properties[creationPolicy].default", "NotSupported")]),
    Bad("a default below its minimum", lambda c: node(c, "spec.version").update(default=0),
        [(f"{SPEC}.properties[version].default", "Invalid")]),
    Bad("a default that does not match its pattern", lambda c: node(c, "spec.target.name").update(default="Bad_Name"),
        [(f"{SPEC}.properties[target].properties[name].default", "Invalid")]),
    Bad("a default with an unknown (pruned) field",
        lambda c: node(c, "spec.connectionRef").update(default={"name": "default", "extra": 1}),
        [(f"{SPEC}.properties[connectionRef].default", "Invalid")]),
    Bad("a default missing a required field", lambda c: node(c, "spec.connectionRef").update(default={}),
        [(f"{SPEC}.properties[connectionRef].default.name", "Required")]),
    Bad("a default that breaks its CEL rule", lambda c: node(c, "spec.path").update(default="/absolute"),
        [(f"{SPEC}.properties[path].default", "Invalid")]),
    # list and map types
    Bad("list-type map without map-keys", lambda c: node(c, "status.conditions").pop("x-kubernetes-list-map-keys"),
        [(f"{CONDITIONS}.x-kubernetes-list-map-keys", "Required")]),
    Bad("map-keys naming a field that is neither required nor defaulted",
        lambda c: node(c, "status.conditions").update({"x-kubernetes-list-map-keys": ["lastTransitionTime"]}),
        [(f"{CONDITIONS}.items.properties[lastTransitionTime].default", "Required")]),
    Bad("map-keys naming a non-scalar field",
        lambda c: (node(c, "status.conditions[]")["properties"].update(extra={"type": "object"}),
                   node(c, "status.conditions[]")["required"].append("extra"),
                   node(c, "status.conditions").update({"x-kubernetes-list-map-keys": ["type", "extra"]})),
        [(f"{CONDITIONS}.items.properties[extra].type", "Invalid")]),
    Bad("map-keys naming a field that does not exist",
        lambda c: node(c, "status.conditions").update({"x-kubernetes-list-map-keys": ["name"]}),
        [(f"{CONDITIONS}.x-kubernetes-list-map-keys", "Invalid")]),
    Bad("list-map-keys on a set", lambda c: node(c, "status.conditions").update({"x-kubernetes-list-type": "set"}),
        [(f"{CONDITIONS}.items.x-kubernetes-map-type", "Invalid"),
         (f"{CONDITIONS}.x-kubernetes-list-type", "Invalid")]),
    Bad("list-type set with object items", lambda c: node(c, "spec.keys").update({"x-kubernetes-list-type": "set"}),
        [(f"{SPEC}.properties[keys].items.x-kubernetes-map-type", "Invalid")]),
    Bad("list-type on an object", lambda c: node(c, "spec.target").update({"x-kubernetes-list-type": "atomic"}),
        [(f"{SPEC}.properties[target].type", "Invalid")]),
    Bad("unknown list-type", lambda c: node(c, "spec.keys").update({"x-kubernetes-list-type": "bag"}),
        [(f"{SPEC}.properties[keys].x-kubernetes-list-type", "NotSupported")]),
    Bad("unknown map-type", lambda c: node(c, "spec.target.labels").update({"x-kubernetes-map-type": "bag"}),
        [(f"{SPEC}.properties[target].properties[labels].x-kubernetes-map-type", "NotSupported")]),
    # CEL rules
    Bad("a CEL rule that does not parse", lambda c: rule(c, "spec.path").update(rule="!self.startsWith('/'"),
        [(f"{SPEC}.properties[path].x-kubernetes-validations[0].rule", "Invalid")]),
    Bad("a CEL rule naming an undefined field", lambda c: rule(c, "spec.keys").update(rule="self.all(k, has(k.too))"),
        [(f"{SPEC}.properties[keys].x-kubernetes-validations[0].rule", "Invalid")]),
    Bad("a CEL rule that is not a bool", lambda c: rule(c, "spec.path").update(rule="self + '/'"),
        [(f"{SPEC}.properties[path].x-kubernetes-validations[0].rule", "Invalid")]),
    Bad("a CEL rule over an unbounded list that blows the cost budget", lambda c: node(c, "spec.keys").pop("maxItems"),
        [(ROOT, "Forbidden"), (f"{SPEC}.properties[keys].x-kubernetes-validations[0].rule", "Forbidden"),
         # the same rule on each source's keys contributes to the total
         (f"{SPEC}.properties[sources].items.properties[keys].x-kubernetes-validations[0].rule", "Forbidden")]),
    Bad("a CEL rule on an unbounded string iterated per character",
        lambda c: (node(c, "spec.path").pop("maxLength"),
                   rule(c, "spec.path").update(rule="self.split('').all(c, self.split('').exists_one(d, c == d))")),
        [(ROOT, "Forbidden"), (f"{SPEC}.properties[path].x-kubernetes-validations[0].rule", "Forbidden"),
         # without maxLength the existing split rule exceeds its budget too, and the keys rules contribute
         (f"{SPEC}.properties[path].x-kubernetes-validations[1].rule", "Forbidden"),
         (f"{SPEC}.properties[keys].x-kubernetes-validations[0].rule", "Forbidden"),
         (f"{SPEC}.properties[sources].items.properties[keys].x-kubernetes-validations[0].rule", "Forbidden")]),
    Bad("the sources without maxItems: every rule over a source blows the budget",
        lambda c: node(c, "spec.sources").pop("maxItems"),
        [(ROOT, "Forbidden"), (f"{SPEC}.properties[sources].x-kubernetes-validations[0].rule", "Forbidden"),
         (f"{SPEC}.properties[sources].items.properties[keys].x-kubernetes-validations[0].rule", "Forbidden"),
         (f"{SPEC}.properties[sources].items.properties[path].x-kubernetes-validations[0].rule", "Forbidden"),
         (f"{SPEC}.properties[sources].items.properties[path].x-kubernetes-validations[1].rule", "Forbidden")]),
    Bad("a source name without maxLength: the distinct-names rule alone exceeds its budget",
        lambda c: node(c, "spec.sources[].name").pop("maxLength"),
        [(f"{SPEC}.properties[sources].x-kubernetes-validations[0].rule", "Forbidden")]),
    Bad("bad reason", lambda c: rule(c, "spec.path").update(reason="FieldValueWrong"),
        [(f"{SPEC}.properties[path].x-kubernetes-validations[0].reason", "NotSupported")]),
    Bad("bad fieldPath", lambda c: rule(c, "spec.keys").update(fieldPath=".to"),
        [(f"{SPEC}.properties[keys].x-kubernetes-validations[0].fieldPath", "Invalid")]),
    Bad("empty rule", lambda c: rule(c, "spec.path").update(rule="  "),
        [(f"{SPEC}.properties[path].x-kubernetes-validations[0].rule", "Required")]),
    Bad("multi-line rule without message",
        lambda c: rule(c, "spec.path").update(rule="self != ''\n&& true", message=""),
        [(f"{SPEC}.properties[path].x-kubernetes-validations[0].message", "Required")]),
    Bad("messageExpression that is not a string", lambda c: rule(c, "spec.path").update(messageExpression="1 + 1"),
        [(f"{SPEC}.properties[path].x-kubernetes-validations[0].messageExpression", "Invalid")]),
    Bad("optionalOldSelf without oldSelf", lambda c: rule(c, "spec.path").update(optionalOldSelf=True),
        [(f"{SPEC}.properties[path].x-kubernetes-validations[0].optionalOldSelf", "Invalid")]),
    Bad("oldSelf under the items of an atomic list",
        lambda c: node(c, "spec.keys[].from").update({"x-kubernetes-validations": [{"rule": "self == oldSelf"}]}),
        [(f"{SPEC}.properties[keys].items.properties[from].x-kubernetes-validations[0].rule", "Invalid")]),
    # printer columns, names, versions
    Bad("printer column jsonPath without the leading dot",
        lambda c: c["spec"]["versions"][0]["additionalPrinterColumns"][0].update(jsonPath="spec.path"),
        [("spec.additionalPrinterColumns[0].JSONPath", "Invalid")]),
    Bad("printer column of an unknown type",
        lambda c: c["spec"]["versions"][0]["additionalPrinterColumns"][0].update(type="text"),
        [("spec.additionalPrinterColumns[0].type", "Invalid")]),
    Bad("printer column of an unknown format",
        lambda c: c["spec"]["versions"][0]["additionalPrinterColumns"][0].update(format="uri"),
        [("spec.additionalPrinterColumns[0].format", "Invalid")]),
    Bad("plural that does not match the name", lambda c: c["spec"]["names"].update(plural="vaultsecret"),
        [("metadata.name", "Invalid")]),
    Bad("plural that is not a DNS label", lambda c: (c["spec"]["names"].update(plural="vault_secrets"),
                                                    c["metadata"].update(name="vault_secrets.scaivault.scailabs.ai")),
        [("metadata.name", "Invalid"), ("spec.names.plural", "Invalid")]),
    Bad("kind equal to listKind", lambda c: c["spec"]["names"].update(listKind="VaultSecret"),
        [("spec.names.listKind", "Invalid")]),
    Bad("short name that is not a DNS label", lambda c: c["spec"]["names"].update(shortNames=["VS"]),
        [("spec.names.shortNames[0]", "Invalid")]),
    Bad("group without a dot", lambda c: (c["spec"].update(group="scaivault"),
                                         c["metadata"].update(name="vaultsecrets.scaivault")),
        [("spec.group", "Invalid")]),
    Bad("unknown scope", lambda c: c["spec"].update(scope="Global"), [("spec.scope", "NotSupported")]),
    Bad("two storage versions", second_version, [("spec.versions", "Invalid"), ("status.storedVersions", "Invalid")]),
    Bad("no storage version", lambda c: c["spec"]["versions"][0].update(storage=False),
        [("spec.versions", "Invalid"), ("status.storedVersions", "Invalid")]),
    Bad("version name that is not a DNS label", lambda c: c["spec"]["versions"][0].update(name="V1"),
        [("spec.versions[0].name", "Invalid"), ("spec.version", "Invalid")]),
    Bad("a version without a schema", lambda c: c["spec"]["versions"][0].pop("schema"),
        [("spec.versions[0].schema.openAPIV3Schema", "Required")]),
    Bad("preserveUnknownFields: true", lambda c: c["spec"].update(preserveUnknownFields=True),
        [("spec.preserveUnknownFields", "Invalid")]),
    Bad("scale subresource path outside .spec",
        lambda c: c["spec"]["versions"][0]["subresources"].update(
            scale={"specReplicasPath": ".status.replicas", "statusReplicasPath": ".status.replicas"}),
        [("spec.subresources.scale.specReplicasPath", "Invalid")]),
    Bad("an invalid label value", lambda c: c["metadata"]["labels"].update(team="a b"),
        [("metadata.labels", "Invalid")]),
    # decoding
    Bad("an unknown schema field (strict field validation)", lambda c: node(c, "spec.path").update(maxlength=3),
        [("spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.path.maxlength", "UnknownField")]),
    Bad("a wrongly typed schema field", lambda c: node(c, "spec.path").update(maxLength="3"),
        [("spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.path.maxLength", "Unmarshal")]),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=[case.id for case in BAD])
def test_each_rule_fires_on_one_mutation(crds: dict[str, JsonDict], case: Bad) -> None:
    crd = copy.deepcopy(crds[case.kind])
    case.mutate(crd)
    problems = crdcheck.validate_crd(crd, cel=True)
    assert pairs(problems) == sorted(set(case.expected)), "\n".join(map(str, problems))


def test_the_first_release_bug_is_reported_as_the_server_reported_it(crds: dict[str, JsonDict]) -> None:
    crd = copy.deepcopy(crds["VaultSecret"])
    node(crd, "metadata")["description"] = "Standard object's metadata."
    with pytest.raises(InvalidCrdError) as raised:
        crdcheck.check_crd(crd)
    assert str(raised.value) == (
        'CustomResourceDefinition.apiextensions.k8s.io "vaultsecrets.scaivault.scailabs.ai" is invalid: '
        "spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name "
        "and generateName, but metadata is implicitly specified"
    )
    [problem] = raised.value.problems
    assert (raised.value.code, raised.value.reason) == (422, "Invalid")
    assert raised.value.details == {
        "name": "vaultsecrets.scaivault.scailabs.ai",
        "group": "apiextensions.k8s.io",
        "kind": "CustomResourceDefinition",
        "causes": [{"reason": "FieldValueForbidden", "message": problem.body, "field": problem.field}],
    }
    assert problem.body.startswith("Forbidden: must not specify anything other than name and generateName")


def test_several_problems_are_listed_like_an_aggregate(crds: dict[str, JsonDict]) -> None:
    crd = copy.deepcopy(crds["VaultSecret"])
    crd["spec"]["scope"] = "Global"
    crd["spec"]["names"]["listKind"] = "VaultSecret"
    with pytest.raises(InvalidCrdError) as raised:
        crdcheck.check_crd(crd)
    assert str(raised.value) == (  # byte for byte what kube-apiserver v1.36 answered
        'CustomResourceDefinition.apiextensions.k8s.io "vaultsecrets.scaivault.scailabs.ai" is invalid: '
        '[spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced", '
        'spec.names.listKind: Invalid value: "VaultSecret": kind and listKind may not be the same]'
    )


def test_per_version_schemas_are_reported_per_version(crds: dict[str, JsonDict]) -> None:
    crd = copy.deepcopy(crds["VaultSecret"])
    second_version(crd)
    crd["spec"]["versions"][1]["storage"] = False
    node(crd, "metadata")["description"] = "only in v1alpha1"
    assert pairs(crdcheck.validate_crd(crd)) == [
        ("spec.versions[0].schema.openAPIV3Schema.properties[metadata]", "Forbidden")
    ]


ACCEPTED = [
    ("root metadata restricting only name", lambda c: node(c, "metadata").update(
        properties={"name": {"type": "string", "maxLength": 63}})),
    ("int-or-string with a type (the server ignores the type)", lambda c: node(c, "spec").setdefault(
        "properties", {}).update(port={"type": "string", "x-kubernetes-int-or-string": True})),
    ("int-or-string with the anyOf pattern", lambda c: node(c, "spec").setdefault("properties", {}).update(
        port={"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]})),
    ("a transition rule on a map-list item", lambda c: node(c, "status.conditions[].status").update(
        {"x-kubernetes-validations": [{"rule": "self == oldSelf || oldSelf == 'Unknown'"}]})),
    ("optionalOldSelf on a transition rule", lambda c: rule(c, "spec.path").update(
        rule="!oldSelf.hasValue() || self == oldSelf.value()", optionalOldSelf=True)),
    ("a default under preserve-unknown-fields", lambda c: node(c, "status").update(
        {"x-kubernetes-preserve-unknown-fields": True, "default": {"anything": 1}}), ),
    ("optional field selection (cel-python cannot parse it: not checked, not refused)", lambda c: node(
        c, "spec.target").update({"x-kubernetes-validations": [{"rule": "self.?name.orValue('x') != 'y'"}]})),
]  # fmt: skip


@pytest.mark.parametrize(("why", "mutate"), ACCEPTED, ids=[why for why, _ in ACCEPTED])
def test_what_the_server_accepts_passes(crds: dict[str, JsonDict], why: str, mutate: Callable[[JsonDict], Any]) -> None:
    crd = copy.deepcopy(crds["VaultSecret"])
    mutate(crd)
    assert crdcheck.validate_crd(crd, cel=True) == []


# -- server versions: reserved words as field names --------------------------------------------------------------------


def test_reserved_words_as_field_names_need_a_server_of_at_least_1_32(crds: dict[str, JsonDict]) -> None:
    """Servers before 1.32 type-check ``self.x.namespace`` as an undefined field (``namespace`` is reserved in CEL;
    the portable spelling is ``self.x.__namespace__``). The committed ClusterVaultConnection once used the plain
    name while the chart claims Kubernetes >= 1.27: it now uses the escaped one, which every version takes."""
    crd = crds["ClusterVaultConnection"]
    for minor in (MIN_KUBERNETES_MINOR, 31, 32, crdcheck.LATEST_SERVER_MINOR):
        assert crdcheck.validate_crd(crd, cel=True, server_minor=minor) == [], minor
    plain = copy.deepcopy(crd)
    for validation in node(plain, "spec")["x-kubernetes-validations"]:
        validation["rule"] = validation["rule"].replace(".__namespace__)", ".namespace)")
    assert crdcheck.validate_crd(plain, cel=True, server_minor=32) == []
    problems = crdcheck.validate_crd(plain, cel=True, server_minor=31)
    assert pairs(problems) == [  # [0] and [1]: the https rules of every connection
        (f"{SPEC}.x-kubernetes-validations[2].rule", "Invalid"),
        (f"{SPEC}.x-kubernetes-validations[3].rule", "Invalid"),
    ]
    assert all("undefined field 'namespace'" in problem.detail for problem in problems)


def test_the_chart_and_crdgen_agree_on_the_oldest_kubernetes() -> None:
    chart = yaml.safe_load((REPO / "charts" / "scaivault-operator" / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["kubeVersion"] == f">=1.{MIN_KUBERNETES_MINOR}.0-0"


# -- updates ---------------------------------------------------------------------------------------------------------


def test_updates_keep_group_plural_scope_kind_and_stored_versions(crds: dict[str, JsonDict]) -> None:
    old = {**copy.deepcopy(crds["VaultSecret"]), "status": {"storedVersions": ["v1alpha1"]}}
    assert crdcheck.validate_crd_update(copy.deepcopy(old), old) == []
    new = copy.deepcopy(old)
    new["spec"]["scope"] = "Cluster"
    new["spec"]["names"]["kind"] = "Vault"
    new["spec"]["names"]["listKind"] = "VaultList"
    new["spec"]["versions"][0]["name"] = "v1beta1"
    assert pairs(crdcheck.validate_crd_update(new, old)) == [
        ("spec.names.kind", "Invalid"),
        ("spec.scope", "Invalid"),
        ("status.storedVersions[0]", "Invalid"),
    ]


# -- CEL cost: upstream's own expectations -----------------------------------------------------------------------------


def array_of(item: JsonDict, rule_text: str) -> Callable[[int | None], JsonDict]:
    def make(bound: int | None) -> JsonDict:
        return {"type": "array", "items": item, **({} if bound is None else {"maxItems": bound}),
                "x-kubernetes-validations": [{"rule": rule_text}]}  # fmt: skip

    return make


def map_of(value: JsonDict, rule_text: str) -> Callable[[int | None], JsonDict]:
    def make(bound: int | None) -> JsonDict:
        return {"type": "object", "additionalProperties": value, **({} if bound is None else {"maxProperties": bound}),
                "x-kubernetes-validations": [{"rule": rule_text}]}  # fmt: skip

    return make


def string_with(rule_text: str, **extra: Any) -> Callable[[int | None], JsonDict]:
    def make(bound: int | None) -> JsonDict:
        return {"type": "string", **extra, **({} if bound is None else {"maxLength": bound}),
                "x-kubernetes-validations": [{"rule": rule_text}]}  # fmt: skip

    return make


def nested_strings(rule_text: str) -> Callable[[int | None], JsonDict]:
    def make(bound: int | None) -> JsonDict:
        value = {"type": "string", **({} if bound is None else {"maxLength": bound})}
        return map_of(value, rule_text)(bound)

    return make


def strings_array(rule_text: str) -> Callable[[int | None], JsonDict]:
    def make(bound: int | None) -> JsonDict:
        item = {"type": "string", **({} if bound is None else {"maxLength": bound})}
        return array_of(item, rule_text)(bound)

    return make


def objects_in_maps_in_array(rule_text: str, *, all_bounded: bool) -> Callable[[int | None], JsonDict]:
    def make(bound: int | None) -> JsonDict:
        limit = {} if bound is None else {"maxProperties": bound}
        inner = {"type": "object", "required": ["required"],
                 "properties": {"required": {"type": "string"}, "optional": {"type": "string"}},
                 **(limit if all_bounded else {})}  # fmt: skip
        middle = {"type": "object", "additionalProperties": inner, **limit}
        return array_of(middle, rule_text)(bound if all_bounded else None)

    return make


NUMBER, STRING, BOOLEAN = {"type": "number"}, {"type": "string"}, {"type": "boolean"}
OBJECT = {"type": "object", "required": ["required"],
          "properties": {"required": {"type": "string"}, "optional": {"type": "string"}}}  # fmt: skip
INT_OR_STRING = {"x-kubernetes-int-or-string": True}

# (name, schema generator, cost without bounds, bound, cost with the bound): upstream TestCostEstimation rows.
COSTS = [
    ("number array with all", array_of(NUMBER, "self.all(x, true)"), 4718591, 10, 32),
    ("string array with all", array_of(STRING, "self.all(x, true)"), 3145727, 20, 62),
    ("boolean array with all", array_of(BOOLEAN, "self.all(x, true)"), 1887437, 5, 17),
    ("array of number arrays with all", array_of({"type": "array", "items": NUMBER}, "self.all(x, true)"),
     3145727, 100, 302),
    ("array of objects with all", array_of(OBJECT, "self.all(x, true)"), 555128, 50, 152),
    ("map of numbers with all", map_of(NUMBER, "self.all(x, true)"), 1348169, 10, 32),
    ("map of strings with all", map_of(STRING, "self.all(x, true)"), 1179647, 3, 11),
    ("map of booleans with all", map_of(BOOLEAN, "self.all(x, true)"), 943718, 100, 302),
    ("string with contains", string_with("self.contains('test')"), 314574, 10, 5),
    ("string with startsWith", string_with("self.startsWith('test')"), 2, 15, 2),
    ("concat string", string_with('size(self + "hello") > size("hello")'), 314578, 4, 7),
    ("index of array with numbers", array_of(NUMBER, "self[1] == 0.0"), 2, 5000, 2),
    ("index of array with strings", array_of(STRING, "self[1] == self[1]"), 314577, 8, 314577),
    ("O(n^2) loop with numbers", array_of(NUMBER, "self.all(x, self.all(y, true))"), None, 10, 352),
    ("O(n^3) loop with numbers", array_of(NUMBER, "self.all(x, self.all(y, self.all(z, true)))"), None, 10, 3552),
    ("regex matches simple", string_with('self.matches("x")'), 314574, 50, 22),
    ("regex matches empty string", string_with('"".matches("(((((((((())))))))))[0-9]")'), 7, 10, 7),
    ("regex matches empty regex", string_with('self.matches("")'), 1, 100, 1),
    ("map of strings with value length", nested_strings("self.all(x, x.contains(self[x]))"), 2752507, 10, 72),
    ("set string maxLength to zero", string_with('self == "x"'), 2, 0, 1),
    ("set bytes maxLength to zero", string_with('self == b"x"', format="byte"), 2, 0, 1),
    ("nested types with root rule with all supporting maxLength",
     objects_in_maps_in_array('self.all(x, x["y"].required == "z")', all_bounded=True), 7340027, 10, 72),
    ("int-or-string array with all", array_of(INT_OR_STRING, "self.all(x, true)"), 4718591, 10, 32),
    ("index of array with int-or-strings", array_of(INT_OR_STRING, "self[0] == 5"), 3, 10, 3),
    ("array of number maps with all", array_of({"type": "object", "additionalProperties": NUMBER},
                                               "self.all(x, x.y == 25.2)"), 6291452, 12, 74),
    ("duration array with all", array_of({"type": "string", "format": "duration"}, "self.all(x, true)"),
     2359295, 5, 17),
    ("date array with all", array_of({"type": "string", "format": "date"}, "self.all(x, true)"), 725936, 15, 47),
    ("date-time array with all", array_of({"type": "string", "format": "date-time"}, "self.all(x, true)"),
     428963, 25, 77),
    ("index of date-time array", array_of({"type": "string", "format": "date-time"}, "self[2].getMinutes() == 45"),
     4, 99, 4),
    ("map of objects with all", map_of(OBJECT, "self.all(x, true)"), 428963, 20, 62),
    ("map of durations with all", map_of({"type": "string", "format": "duration"}, "self.all(x, true)"),
     1048577, 5, 17),
    ("extended library regex find", string_with("self.find('[0-9]+') == ''"), 629147, 10, 11),
    ("extended library join", strings_array("self.join(' ') == 'aa bb'"), 329853068905, 10, 43),
    ("extended library isSorted", strings_array("self.isSorted() == true"), 329854432052, 10, 52),
    ("extended library lowerAscii", string_with("self.lowerAscii() == 'lower!'"), 314575, 10, 6),
    ("check cost of size call", map_of({"type": "integer"}, "oldSelf.size() == self.size()"), 5, 10, 5),
    ("check cost of timestamp comparison", map_of({"type": "string", "format": "date-time"}, 'self["a"] == self["b"]'),
     8, 7, 8),
    ("enums with maxLength equals to the longest possible value",
     string_with("self.contains('A')", enum=["A", "B", "C", "LongValue"]), 2, 1000, 401),
    ("IntOrString type with quantity rule", string_with("isQuantity(self)", **{"x-kubernetes-int-or-string": True}),
     314574, 20, 9),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "unbounded", "bound", "bounded"), COSTS, ids=[row[0] for row in COSTS])
def test_static_cost_matches_upstream(
    name: str, make: Callable[[int | None], JsonDict], unbounded: int | None, bound: int, bounded: int
) -> None:
    schema = make(None)
    cost = crdcheck.estimate_rule_cost(schema, schema["x-kubernetes-validations"][0]["rule"])
    if unbounded is None:
        assert cost >= crdcheck.STATIC_ESTIMATED_COST_LIMIT
    else:
        assert cost == unbounded
    schema = make(bound)
    assert crdcheck.estimate_rule_cost(schema, schema["x-kubernetes-validations"][0]["rule"]) == bounded


def test_extended_library_replace_and_split_costs_match_upstream() -> None:
    def replace(bound: int | None) -> JsonDict:
        text = {"type": "string", **({} if bound is None else {"maxLength": bound})}
        return {"type": "object", "properties": {"str": text, "before": {"type": "string", "maxLength": 2},
                                                 "after": {"type": "string", "maxLength": 4}}}  # fmt: skip

    rule_text = "self.str.replace(self.before, self.after) == 'does not matter'"
    assert crdcheck.estimate_rule_cost(replace(None), rule_text) == 629154
    assert crdcheck.estimate_rule_cost(replace(4), rule_text) == 12

    def split(bound: int | None) -> JsonDict:
        text = {"type": "string", **({} if bound is None else {"maxLength": bound})}
        return {"type": "object", "properties": {"str": text, "separator": text}}

    assert crdcheck.estimate_rule_cost(split(None), "self.str.split(self.separator) == []") == 629160
    assert crdcheck.estimate_rule_cost(split(10), "self.str.split(self.separator) == []") == 22


def crd_with(schema: JsonDict) -> JsonDict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {"value": schema}}}}]},
    }  # fmt: skip


NESTED = {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}
LIST_OF_MAPS = {"type": "array", "items": {"type": "object", "additionalProperties": NESTED},
                "x-kubernetes-validations": [{"rule": "self.all(x, x.all(y, x[y].key == x[y].key))"}]}  # fmt: skip
RULE = f"{ROOT}.properties[value].x-kubernetes-validations[0].rule"


@pytest.mark.parametrize(
    ("name", "schema", "expected"),
    [
        ("double-nested rule with no limit", LIST_OF_MAPS, [(ROOT, "Forbidden"), (RULE, "Forbidden")]),
        ("double-nested rule with three limits",
         {**LIST_OF_MAPS, "maxItems": 10, "items": {**LIST_OF_MAPS["items"], "maxProperties": 10,
          "additionalProperties": {**NESTED, "properties": {"key": {"type": "string", "maxLength": 10}}}}}, []),
        ("double-nested rule with one limit on the outermost array",
         {**LIST_OF_MAPS, "maxItems": 4, "items": {"type": "object", "additionalProperties":
          {**NESTED, "properties": {"key": {"type": "number"}}}}}, []),
        ("cardinality of 1 under the root", {"type": "integer", "x-kubernetes-validations": [{"rule": "self < 1024"}]},
         []),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)  # fmt: skip
def test_cost_limits_per_rule_and_per_crd_as_upstream(
    name: str, schema: JsonDict, expected: list[tuple[str, str]]
) -> None:
    assert pairs(crdcheck.validate_crd(crd_with(schema), cel=True)) == expected


def test_the_total_cost_names_the_most_expensive_rules() -> None:
    """Upstream's "forbid validation rules where cost total exceeds total limit": the list rule exceeds its own
    limit, the map rule only contributes, the cheap integer rule is not named."""
    contains = [{"rule": "self.contains('keyword')"}]
    text = {"type": "string", "maxLength": 5000, "x-kubernetes-validations": contains}
    schema = {"type": "object", "properties": {
        "list": {"type": "array", "maxItems": 100000, "items": text},
        "map": {"type": "object", "maxProperties": 1000, "additionalProperties": text},
        "field": {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 50 && self < 100"}]}}}  # fmt: skip
    crd = crd_with({})
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = schema
    problems = crdcheck.validate_crd(crd, cel=True)
    assert [(p.field, p.type) for p in problems] == [
        (f"{ROOT}.properties[list].items.x-kubernetes-validations[0].rule", "Forbidden"),
        (f"{ROOT}.properties[list].items.x-kubernetes-validations[0].rule", "Forbidden"),
        (f"{ROOT}.properties[map].additionalProperties.x-kubernetes-validations[0].rule", "Forbidden"),
        (ROOT, "Forbidden"),
    ]
    assert "estimated rule cost exceeds budget by factor of 20.0x" in problems[0].detail


# -- crdgen refuses what the server would refuse -----------------------------------------------------------------------


class _ShortDefault(BaseModel):
    """A model whose default breaks its own bound (pydantic does not check defaults; the API server does)."""

    name: str = Field(default="x", min_length=3, description="Too short a default.")


def _kind(model: type[BaseModel]) -> crdgen.CrdKind:
    return dataclasses.replace(crdgen.KINDS[2], spec_model=model)


def test_crdgen_refuses_a_model_the_server_would_refuse() -> None:
    with pytest.raises(InvalidCrdError, match=r"properties\[name\]\.default: Invalid value"):
        crdgen.build_crd(_kind(_ShortDefault))


def test_make_crds_writes_nothing_when_a_crd_would_be_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(crdgen, "KINDS", (_kind(_ShortDefault),))
    assert crdgen.main(["--out", str(tmp_path / "crds")]) == 1
    assert not (tmp_path / "crds").exists()
    assert crdgen.main(["--check", "--out", str(tmp_path / "crds")]) == 1
    err = capsys.readouterr().err
    assert 'CustomResourceDefinition.apiextensions.k8s.io "vaultconnections.scaivault.scailabs.ai" is invalid' in err
    assert "nothing written" in err


_FIELD_KINDS = ("str", "bounded_str", "int", "bool", "enum", "list", "map", "nested")


@st.composite
def models(draw: st.DrawFn, depth: int = 0) -> type[BaseModel]:
    """Random spec models of the shapes the operator's API uses (bounded strings and lists, enums, maps, nested
    models, CEL rules), with defaults that satisfy their own bounds."""
    fields: dict[str, Any] = {}
    kinds = _FIELD_KINDS if depth < 2 else _FIELD_KINDS[:-1]
    for index in range(draw(st.integers(min_value=1, max_value=5))):
        kind = draw(st.sampled_from(kinds))
        required = draw(st.booleans())
        description = f"Field {index}."
        annotation: Any
        if kind == "str":
            annotation, info = str, Field(... if required else "value", description=description)
        elif kind == "bounded_str":
            bound = draw(st.integers(min_value=1, max_value=64))
            default = "v" * draw(st.integers(min_value=1, max_value=bound))
            rules = [{"rule": "!self.startsWith('-')", "message": "must not start with '-'"}]
            info = Field(... if required else default, min_length=1, max_length=bound, pattern="^v+$",
                         description=description, json_schema_extra={"x-kubernetes-validations": rules})  # fmt: skip
            annotation = str
        elif kind == "int":
            annotation, info = int | None, Field(None, ge=1, le=1000, description=description)
        elif kind == "bool":
            annotation, info = bool, Field(False, description=description)
        elif kind == "enum":
            annotation, info = Literal["A", "B"], Field("A", description=description)
        elif kind == "list":
            item = Annotated[str, Field(max_length=draw(st.integers(1, 253)))]
            rules = [{"rule": "self.all(x, self.exists_one(y, x == y))", "message": "items must be unique"}]
            info = Field(None, min_length=1, max_length=draw(st.integers(1, 64)), description=description,
                         json_schema_extra={"x-kubernetes-validations": rules})  # fmt: skip
            annotation = list[item] | None
        elif kind == "map":
            annotation, info = dict[str, str], Field(default_factory=dict, description=description)
        else:
            annotation, info = draw(models(depth + 1)) | None, Field(None, description=description)
        fields[f"field{index}"] = (annotation, info)
    model: type[BaseModel] = create_model(f"Generated{depth}", __doc__="A generated model.", **fields)
    return model


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models())
def test_crdgen_output_always_passes_for_generated_models(model: type[BaseModel]) -> None:
    crd = crdgen.build_crd(_kind(model))  # raises InvalidCrdError on any problem
    assert crdcheck.validate_crd(crd, cel=True) == []
