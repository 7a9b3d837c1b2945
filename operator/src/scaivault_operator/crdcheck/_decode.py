"""Decoding (``apis/apiextensions/v1``): what the server's decoder refuses before any validation (HTTP 400).

Owns a type map of the v1 Go structs and the two decoding errors: a wrongly typed value (``json: cannot unmarshal
... into Go struct field ...``, the first one only) and, under strict field validation, every unknown field.
``_decode_crd`` is called first by ``_api``; ``_json_kind`` also by ``_defaults``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from ._helpers import _child, _index, _is_int, _is_number
from ._problems import Problem

# -- decoding: unknown fields and wrongly typed values ----------------------------------------------------------------

# A tiny type language for the v1 Go structs: "string", "bool", "int", "number", "any", "strings", "map:<elem>",
# "list:<elem>", or the name of a struct in _STRUCTS.
_STRUCTS: Final[dict[str, dict[str, str]]] = {
    "CustomResourceDefinition": {"apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "CustomResourceDefinitionSpec", "status": "any"},
    "ObjectMeta": {"name": "string", "generateName": "string", "namespace": "string", "selfLink": "string",
        "uid": "string", "resourceVersion": "string", "generation": "int", "creationTimestamp": "any",
        "deletionTimestamp": "any", "deletionGracePeriodSeconds": "int", "labels": "map:string",
        "annotations": "map:string", "ownerReferences": "list:any", "finalizers": "strings",
        "managedFields": "list:any"},
    "CustomResourceDefinitionSpec": {"group": "string", "names": "CustomResourceDefinitionNames", "scope": "string",
        "versions": "list:CustomResourceDefinitionVersion", "conversion": "CustomResourceConversion",
        "preserveUnknownFields": "bool"},
    "CustomResourceDefinitionNames": {"plural": "string", "singular": "string", "shortNames": "strings",
        "kind": "string", "listKind": "string", "categories": "strings"},
    "CustomResourceDefinitionVersion": {"name": "string", "served": "bool", "storage": "bool", "deprecated": "bool",
        "deprecationWarning": "string", "schema": "CustomResourceValidation",
        "subresources": "CustomResourceSubresources",
        "additionalPrinterColumns": "list:CustomResourceColumnDefinition",
        "selectableFields": "list:SelectableField"},
    "CustomResourceValidation": {"openAPIV3Schema": "JSONSchemaProps"},
    "CustomResourceSubresources": {"status": "map:any", "scale": "CustomResourceSubresourceScale"},
    "CustomResourceSubresourceScale": {"specReplicasPath": "string", "statusReplicasPath": "string",
        "labelSelectorPath": "string"},
    "CustomResourceColumnDefinition": {"name": "string", "type": "string", "format": "string",
        "description": "string", "priority": "int", "jsonPath": "string"},
    "SelectableField": {"jsonPath": "string"},
    "CustomResourceConversion": {"strategy": "string", "webhook": "WebhookConversion"},
    "WebhookConversion": {"clientConfig": "WebhookClientConfig", "conversionReviewVersions": "strings"},
    "WebhookClientConfig": {"url": "string", "service": "ServiceReference", "caBundle": "string"},
    "ServiceReference": {"namespace": "string", "name": "string", "path": "string", "port": "int"},
    "JSONSchemaProps": {"id": "string", "$schema": "string", "$ref": "string", "description": "string",
        "type": "string", "format": "string", "title": "string", "default": "any", "maximum": "number",
        "exclusiveMaximum": "bool", "minimum": "number", "exclusiveMinimum": "bool", "maxLength": "int",
        "minLength": "int", "pattern": "string", "maxItems": "int", "minItems": "int", "uniqueItems": "bool",
        "multipleOf": "number", "enum": "list:any", "maxProperties": "int", "minProperties": "int",
        "required": "strings", "items": "schema-or-array", "allOf": "list:JSONSchemaProps",
        "oneOf": "list:JSONSchemaProps", "anyOf": "list:JSONSchemaProps", "not": "JSONSchemaProps",
        "properties": "map:JSONSchemaProps", "additionalProperties": "schema-or-bool",
        "patternProperties": "map:JSONSchemaProps", "dependencies": "map:schema-or-strings",
        "additionalItems": "schema-or-bool", "definitions": "map:JSONSchemaProps",
        "externalDocs": "ExternalDocumentation", "example": "any", "nullable": "bool",
        "x-kubernetes-preserve-unknown-fields": "bool", "x-kubernetes-embedded-resource": "bool",
        "x-kubernetes-int-or-string": "bool", "x-kubernetes-list-map-keys": "strings",
        "x-kubernetes-list-type": "string", "x-kubernetes-map-type": "string",
        "x-kubernetes-validations": "list:ValidationRule"},
    "ExternalDocumentation": {"description": "string", "url": "string"},
    "ValidationRule": {"rule": "string", "message": "string", "messageExpression": "string", "reason": "string",
        "fieldPath": "string", "optionalOldSelf": "bool"},
}  # fmt: skip


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if _is_number(value):
        return "number"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "value"


def _decode(value: Any, kind: str, path: str, go_path: str, struct: str) -> Iterator[Problem]:
    """Problems decoding ``value`` into the Go type ``kind`` (null decodes into anything, as in encoding/json).

    ``path`` is the strict decoder's path (``a.b[0].c``, map keys as fields), ``go_path`` encoding/json's (field
    names only) and ``struct`` the innermost Go struct, for ``json: cannot unmarshal ... into Go struct field``.
    """
    if value is None or kind == "any":
        return

    def wrong(go_type: str) -> Problem:
        detail = f"json: cannot unmarshal {_json_kind(value)} into Go struct field {struct}.{go_path} of type {go_type}"
        return Problem(path, "Unmarshal", detail)

    scalar = {"string": ("string", str), "bool": ("bool", bool)}
    if kind in scalar:
        go_type, python_type = scalar[kind]
        if not isinstance(value, python_type):
            yield wrong(go_type)
    elif kind == "int":
        if not _is_int(value):
            yield wrong("int64")
    elif kind == "number":
        if not _is_number(value):
            yield wrong("float64")
    elif kind == "strings":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value if v is not None):
            yield wrong("[]string")
    elif kind.startswith("list:"):
        if not isinstance(value, list | tuple):
            yield wrong(f"[]{kind[5:]}")
            return
        for index, item in enumerate(value):
            yield from _decode(item, kind[5:], _index(path, index), go_path, struct)
    elif kind.startswith("map:"):
        if not isinstance(value, Mapping):
            yield wrong(f"map[string]{kind[4:]}")
            return
        for name, item in value.items():
            yield from _decode(item, kind[4:], _child(path, str(name)), go_path, struct)
    elif kind == "schema-or-array":
        if isinstance(value, list | tuple):
            for index, item in enumerate(value):
                yield from _decode(item, "JSONSchemaProps", _index(path, index), go_path, struct)
        else:
            yield from _decode(value, "JSONSchemaProps", path, go_path, struct)
    elif kind == "schema-or-bool":
        if not isinstance(value, bool):
            yield from _decode(value, "JSONSchemaProps", path, go_path, struct)
    elif kind == "schema-or-strings":
        yield from _decode(
            value, "strings" if isinstance(value, list | tuple) else "JSONSchemaProps", path, go_path, struct
        )
    else:
        fields = _STRUCTS[kind]
        if not isinstance(value, Mapping):
            yield wrong(kind)
            return
        for name, item in value.items():
            if name not in fields:
                yield Problem(_child(path, str(name)), "UnknownField")
            else:
                yield from _decode(item, fields[name], _child(path, name), _child(go_path, name), kind)


def _decode_crd(crd: Mapping[str, Any], *, strict: bool) -> list[Problem]:
    """What the server's decoder refuses (HTTP 400): the first type mismatch, else (strict) every unknown field."""
    if crd.get("apiVersion") not in (None, "apiextensions.k8s.io/v1") or crd.get("kind") not in (
        None,
        "CustomResourceDefinition",
    ):
        detail = (
            f"the API version in the data ({crd.get('apiVersion')}) or kind ({crd.get('kind')}) does not match the "
            "expected apiextensions.k8s.io/v1 CustomResourceDefinition"
        )
        return [Problem("", "Unmarshal", detail)]
    problems = list(_decode(crd, "CustomResourceDefinition", "", "", "CustomResourceDefinition"))
    wrong = [problem for problem in problems if problem.type == "Unmarshal"]
    if wrong:
        return wrong[:1]
    return problems if strict else []
