"""Helpers for the CRD tests: load the committed CRDs and examples, and judge an object as the API server would.

``api_server_errors(schema, obj)`` approximates what ``kubectl apply`` gets back for a custom resource: the
OpenAPI schema checked with ``jsonschema`` (unknown fields rejected, as kubectl's default strict field validation
does), then the defaults applied and every ``x-kubernetes-validations`` rule evaluated with ``cel-python`` at
its place in the object. Two gaps remain and are covered elsewhere: cel-python is dynamically typed (the API
server type-checks rules when the CRD is created, e.g. ``o['field']`` on an object fails there) and it does not
estimate rule cost (``test_crdgen`` checks the bounds that keep the cost finite).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes

from scaivault_operator._cogs.api import GROUP

JsonDict = dict[str, Any]

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"
EXAMPLES_DIR = CRD_DIR / "examples"
DOCS = REPO / "docs" / "crds.md"


def load_crds() -> dict[str, JsonDict]:
    """Kind -> CRD, from the committed ``crds/*.yaml``."""
    crds = (yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(CRD_DIR.glob("*.yaml")))
    return {crd["spec"]["names"]["kind"]: crd for crd in crds}


def openapi_schema(crd: JsonDict) -> JsonDict:
    schema: JsonDict = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


#: The directories of example manifests, relative to ``crds/examples``: the demo (``make demo`` applies the first
#: two), and the VaultSecrets of several sources (``spec.sources``, ``spec.dataFrom``).
EXAMPLE_SUBDIRS = ("", "templates", "sources")


def load_examples() -> list[tuple[str, JsonDict]]:
    """(file name relative to ``crds/examples``, document) for every YAML document in ``crds/examples``,
    ``crds/examples/templates`` and ``crds/examples/sources`` (``EXAMPLE_SUBDIRS``)."""
    return [
        (str(path.relative_to(EXAMPLES_DIR)), document)
        for subdir in EXAMPLE_SUBDIRS
        for path in sorted((EXAMPLES_DIR / subdir).glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document is not None
    ]


def is_custom_resource(document: JsonDict) -> bool:
    return str(document.get("apiVersion", "")).startswith(f"{GROUP}/")


def walk(schema: JsonDict, path: str = "") -> Iterator[tuple[str, JsonDict]]:
    """Every schema node with its path (``.spec.keys[].to``), the root first."""
    yield path or ".", schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


# -- OpenAPI schema ----------------------------------------------------------------------------------------------


def strict(schema: JsonDict) -> JsonDict:
    """A copy in which objects with properties reject unknown fields (except where unknown fields are kept)."""
    out = copy.deepcopy(schema)
    for _, node in walk(out):
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    return out


def schema_errors(schema: JsonDict, instance: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(strict(schema))
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(instance)]


def apply_defaults(schema: JsonDict, instance: Any) -> Any:
    """Structural defaulting as the API server does it: absent fields with a default get it, recursively."""
    if isinstance(instance, dict):
        out = dict(instance)
        for name, sub in schema.get("properties", {}).items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            out = {k: v if k in schema.get("properties", {}) else apply_defaults(additional, v) for k, v in out.items()}
        return out
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in instance]
    return instance


# -- CEL -----------------------------------------------------------------------------------------------------------


def _split(text: celtypes.StringType, separator: celtypes.StringType) -> celtypes.ListType:
    """Kubernetes' ``<string>.split(<string>)`` (CEL strings extension), which cel-python lacks."""
    return celtypes.ListType([celtypes.StringType(part) for part in str(text).split(str(separator))])


_KUBERNETES_FUNCTIONS: dict[str, Callable[..., Any]] = {"split": _split}
_ENV = celpy.Environment()


@functools.cache
def _program(rule: str) -> celpy.Runner:
    return _ENV.program(_ENV.compile(rule), functions=_KUBERNETES_FUNCTIONS)


#: CEL's reserved words: a property of that name is reached as ``__word__`` (the API server's escaping; servers
#: from 1.32 also take the plain name, older ones only the escaped one).
_CEL_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
                           "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
                           "void", "while"})  # fmt: skip


def _escaped(schema: JsonDict | None, value: Any) -> Any:
    """``value`` with the object properties that are CEL reserved words also present under ``__word__`` (map keys,
    reached by index, stay as they are). Without a schema every key counts as a property."""
    if schema is None:
        if isinstance(value, list):
            return [_escaped(None, item) for item in value]
        if not isinstance(value, dict):
            return value
        escaped = {key: _escaped(None, item) for key, item in value.items()}
        return escaped | {f"__{key}__": item for key, item in escaped.items() if key in _CEL_RESERVED}
    if isinstance(value, dict) and "properties" in schema:
        out = {}
        for key, item in value.items():
            sub = schema["properties"].get(key, {})
            out[key] = _escaped(sub, item)
            if key in _CEL_RESERVED:
                out[f"__{key}__"] = out[key]
        return out
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {key: _escaped(schema["additionalProperties"], item) for key, item in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_escaped(schema["items"], item) for item in value]
    return value


def rule_holds(rule: str, value: Any, schema: JsonDict | None = None) -> bool:
    """Evaluate one CEL rule with ``self`` bound to ``value`` (of ``schema``, for escaped property names); an
    evaluation error counts as a failure."""
    try:
        bound = _escaped(schema, value)
        result = _program(rule).evaluate({"self": celpy.json_to_cel(bound)})
    except celpy.CELEvalError:
        return False
    return isinstance(result, celtypes.BoolType) and bool(result)


def cel_walk(
    schema: JsonDict, value: Any, path: str, holds: Callable[[str, Any, JsonDict], bool] = rule_holds
) -> Iterator[str]:
    """The broken CEL rules of ``value`` under ``schema``, lazily, as ``path: message``; ``holds`` evaluates one rule
    (``rule_holds``, or a caching wrapper of it)."""
    for rule in schema.get("x-kubernetes-validations", []):
        if not holds(rule["rule"], value, schema):
            yield f"{path or '.'}: {rule['message']}"
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from cel_walk(sub, value[name], f"{path}.{name}", holds)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key, item in value.items():
                yield from cel_walk(additional, item, f"{path}[{key!r}]", holds)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from cel_walk(schema["items"], item, f"{path}[{index}]", holds)


def cel_errors(schema: JsonDict, instance: Any) -> list[str]:
    """Messages of the CEL rules that ``instance`` (defaults applied first) breaks."""
    return list(cel_walk(schema, apply_defaults(schema, instance), ""))


def api_server_errors(schema: JsonDict, instance: Any) -> list[str]:
    """Schema errors, or when there are none, CEL rule failures (the API server reports both; one suffices)."""
    return schema_errors(schema, instance) or cel_errors(schema, instance)


def custom_resource(kind: str, spec: JsonDict, name: str = "example", namespace: str | None = "default") -> JsonDict:
    metadata: JsonDict = {"name": name}
    if namespace is not None and kind != "ClusterVaultConnection":
        metadata["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}
