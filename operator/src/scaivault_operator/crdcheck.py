"""Checks a CustomResourceDefinition the way kube-apiserver's CRD admission does, without a cluster.

Owns the apiextensions.k8s.io/v1 rules a CRD *generator* can break, re-implemented from the upstream sources
(kubernetes/apiextensions-apiserver, kubernetes/apiserver, kubernetes/kube-openapi, google/cel-go) and reported
as the server reports them: the same field paths, error types and (mostly) words, e.g.
``spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and
generateName, but metadata is implicitly specified``. Pure: no I/O, no cluster, and cel-python is imported only when
CEL checks are asked for (``cel=True``), so the runtime package imports this module without the ``dev`` extra.

Called by ``crdgen.build_crd`` (so ``make crds`` cannot write a CRD a server would refuse), by the emulators the
tests run against (``bench/fakeapi`` answers 422 ``Invalid``; ``testing.EmulatedCluster`` raises) and by
``tests/unit/crds/test_crdcheck.py``. ``validate_crd`` returns every ``Problem``; ``check_crd`` raises
``InvalidCrdError``, whose message, code and details are the server's Status; ``validate_crd_update`` adds the
update rules; ``estimate_rule_cost`` is the static cost of one CEL rule.

Implemented (upstream source -> rules):

- decoding (``apis/apiextensions/v1``): wrongly typed values (400, ``json: cannot unmarshal ...``) and unknown
  fields (400 under strict field validation, kubectl's default; ``strict=False`` for other clients); v1 defaulting
  (``singular``, ``listKind``, conversion) and the v1->internal conversion that moves per-version schemas,
  subresources and printer columns that are identical in every version to the top level -- why a single-version
  CRD's errors say ``spec.validation.openAPIV3Schema...``;
- ``apis/apiextensions/validation/validation.go``: ``metadata.name`` (DNS subdomain, ``plural.group``), label
  keys and values, annotation keys, the API-approval annotation of ``*.k8s.io`` groups; group, scope, names
  (required, DNS-1035 formats, ``kind != listKind``), versions (names, unique, exactly one storage version, a schema
  each, ``deprecationWarning``), ``status.storedVersions`` as the server sets it, ``preserveUnknownFields``,
  conversion (strategy, webhook client config present, review versions), scale subresource paths, printer columns
  (name, type, format, simple JSONPath), selectable fields; the root with the status subresource (allowed fields,
  type object), no ``nullable`` root; per node: valid ``type``, no ``id``/``$ref``/``additionalItems``/
  ``patternProperties``/``definitions``/``dependencies``/array ``items``/``uniqueItems``, ``properties`` xor
  ``additionalProperties``, defaults forbidden in top-level ``metadata``/``apiVersion``/``kind`` and under
  metadata's ``additionalProperties``, no embedded resource inside metadata, ``x-kubernetes-preserve-unknown-fields``
  only true, ``x-kubernetes-map-type``/``-list-type``/``-list-map-keys`` (types, values, keys that are scalar,
  required or defaulted, non-nullable item properties, no duplicates, atomic set items), and the fields of
  ``x-kubernetes-validations`` (``rule``, ``message``, ``messageExpression``, ``reason``, ``fieldPath`` via
  ``schema/cel/validation.go ValidFieldPath``);
- ``apiserver/schema`` ``convert.go``, ``validation.go``, ``complete.go`` (``NewStructural``,
  ``ValidateStructural``): every node typed (or int-or-string / preserve-unknown-fields), ``items`` on arrays, no
  root ``additionalProperties``, object root, embedded resources (object, properties or preserve-unknown-fields,
  no ``additionalProperties``, string ``kind``/``apiVersion``, object ``metadata``), the root ``metadata`` limited to
  ``type: object`` and ``name``/``generateName`` properties, nothing structural (type, description, default,
  title, nullable, additionalProperties, x-kubernetes-*) inside ``anyOf``/``allOf``/``oneOf``/``not`` except the
  int-or-string patterns, no ``metadata`` there, root value validations only on specified fields, RE2 patterns;
- ``apiserver/schema/defaulting/validation.go``, ``pruning/algorithm.go``, ``objectmeta``, kube-openapi
  ``validate``/``strfmt``: each default (outside ``additionalProperties``) keeps no field its schema prunes and
  validates against its schema -- type, nullable, int-or-string, enum, bounds, lengths, pattern, the formats CRDs
  support, items, properties, required, property counts, allOf/anyOf/oneOf/not -- with kube-openapi's messages;
  embedded-resource defaults name their ``apiVersion`` and ``kind``; defaults of a resource's own
  ``apiVersion``/``kind``/``metadata`` have the right types; with ``cel=True`` the CEL rules of the default's
  subtree compile and hold on it;
- CEL (``cel=True``): ``schema/cel/compilation.go``, ``apis/.../validation/cel_validation.go``,
  ``apiserver/pkg/cel/common/schemas.go`` (the declaration types, with their sizes), ``apiserver/pkg/cel/
  environment`` (which libraries exist), cel-go's parser rules and macro expansion: every ``rule`` and
  ``messageExpression`` parses (cel-python's grammar plus cel-go's reserved words) and type-checks -- undeclared
  identifiers (``cel.bind``, ``math`` and ``base64`` do not exist for CRDs), undefined fields against the schema
  (reserved words such as ``namespace`` as field names only from server 1.32 on: ``server_minor``), field
  selection on non-objects, the overloads of operators and of the standard, string-extension and Kubernetes
  functions in ``_SIGNATURES`` on typed operands, homogeneous literals, comprehension ranges, a bool rule and a
  string message; ``optionalOldSelf`` only with ``oldSelf``, ``oldSelf`` only where correlatable; and the static
  cost, a port of ``cel-go checker/cost.go`` with ``apiserver/pkg/cel/library/cost.go`` (checked against
  upstream's ``TestCostEstimation`` numbers) times the node's cardinality (``cel_validation.go``), limited to
  10,000,000 per expression and 100,000,000 per schema, reported with upstream's messages.

Checked against a real kube-apiserver v1.36 (``dryRun=All``) on every case of the tests and on thousands of random
mutations of this repository's CRDs: same verdict, field paths and error types. Not implemented (the real-server
tier, ``tests/e2e``, covers it): conversion webhook URL/service/caBundle validity; ObjectMeta rules beyond
name/labels/annotation keys; ``objectmeta.Validate`` of embedded ``metadata`` defaults (names, labels); the
runtime CEL cost budget while evaluating defaults, and rules calling a function cel-python lacks are not evaluated
on defaults; the overloads of functions outside ``_SIGNATURES`` (any argument is accepted, the result is untyped,
the cost O(1)) and the unification of parameterised types (``list(int) == list(string)`` passes); the optional
syntax (``?.``, ``[?``); per-version differences other than reserved-word field names (libraries, fields such as
``reason`` or ``optionalOldSelf`` that older servers do not know); the exact words of CEL syntax errors and of
bad values the server prints as whole Go structs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "DECODE_ERROR_TYPES",
    "LATEST_SERVER_MINOR",
    "STATIC_ESTIMATED_COST_LIMIT",
    "STATIC_ESTIMATED_CRD_COST_LIMIT",
    "InvalidCrdError",
    "Problem",
    "check_crd",
    "estimate_rule_cost",
    "invalid_message",
    "validate_crd",
    "validate_crd_update",
]

#: Largest static CEL cost of one expression (``StaticEstimatedCostLimit``).
STATIC_ESTIMATED_COST_LIMIT: Final = 10_000_000
#: Largest total static CEL cost of one schema (``StaticEstimatedCRDCostLimit``).
STATIC_ESTIMATED_CRD_COST_LIMIT: Final = 100_000_000
#: The server minor version whose behaviour is checked unless told otherwise (any >= 32 behaves the same here).
LATEST_SERVER_MINOR: Final = 34

_MAX_REQUEST_SIZE: Final = 3 * 1024 * 1024  # celconfig.MaxRequestSizeBytes
_MAX_UINT64: Final = 2**64 - 1
_CRD_KIND: Final = "CustomResourceDefinition.apiextensions.k8s.io"

ErrorType = Literal[
    "Required",
    "Invalid",
    "TypeInvalid",
    "NotSupported",
    "Forbidden",
    "Duplicate",
    "TooLong",
    "TooMany",
    "InternalError",
    "UnknownField",
    "Unmarshal",
]
#: How the API server prints each error type (``field.ErrorType.String()``).
_TYPE_TEXT: Final[dict[str, str]] = {
    "Required": "Required value",
    "Invalid": "Invalid value",
    "TypeInvalid": "Invalid value",
    "NotSupported": "Unsupported value",
    "Forbidden": "Forbidden",
    "Duplicate": "Duplicate value",
    "TooLong": "Too long",
    "TooMany": "Too many",
    "InternalError": "Internal error",
}
#: The ``reason`` of a Status cause for each error type.
_CAUSE_REASON: Final[dict[str, str]] = {
    "Required": "FieldValueRequired",
    "Invalid": "FieldValueInvalid",
    "TypeInvalid": "FieldValueTypeInvalid",
    "NotSupported": "FieldValueNotSupported",
    "Forbidden": "FieldValueForbidden",
    "Duplicate": "FieldValueDuplicate",
    "TooLong": "FieldValueTooLong",
    "TooMany": "FieldValueTooMany",
    "InternalError": "InternalError",
    "UnknownField": "FieldValueInvalid",
    "Unmarshal": "FieldValueInvalid",
}
#: Error types that the server reports while decoding the request (HTTP 400), before any validation.
DECODE_ERROR_TYPES: Final = frozenset({"UnknownField", "Unmarshal"})


@dataclass(frozen=True)
class Problem:
    """One reason the API server would refuse the CRD."""

    #: The field path as the server prints it, e.g. ``spec.validation.openAPIV3Schema.properties[metadata]``.
    field: str
    type: ErrorType
    #: What is wrong, in the server's words.
    detail: str = ""
    #: The offending value as the server prints it (already quoted/JSON), when it prints one.
    value: str | None = None

    @property
    def reason(self) -> str:
        """The Status cause reason (``FieldValueForbidden``, ...)."""
        return _CAUSE_REASON[self.type]

    @property
    def body(self) -> str:
        """The error without its field (``field.Error.ErrorBody``): the ``message`` of a Status cause."""
        if self.type == "UnknownField":
            return f'strict decoding error: unknown field "{self.field}"'
        if self.type == "Unmarshal":
            return self.detail
        body = _TYPE_TEXT[self.type]
        if self.value is not None and self.type not in ("Required", "Forbidden", "TooLong", "InternalError"):
            body = f"{body}: {self.value}"
        if self.detail:
            body = f"{body}: {self.detail}"
        return body

    def __str__(self) -> str:
        if self.type in DECODE_ERROR_TYPES or not self.field:
            return self.body
        return f"{self.field}: {self.body}"


class InvalidCrdError(ValueError):
    """The API server would refuse this CustomResourceDefinition; ``problems`` says why.

    ``code``/``reason``/``str()`` are the server's answer: 400 ``BadRequest`` when the body does not decode (a wrongly
    typed value, or an unknown field under strict field validation), else 422 ``Invalid``.
    """

    def __init__(self, name: str, problems: Sequence[Problem]) -> None:
        self.name = name
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.decoding = any(problem.type in DECODE_ERROR_TYPES for problem in self.problems)
        self.code, self.reason = (400, "BadRequest") if self.decoding else (422, "Invalid")
        super().__init__(invalid_message(name, self.problems))

    @property
    def details(self) -> dict[str, Any] | None:
        """The ``details`` of the server's Status (None for a decoding error, which has none)."""
        if self.decoding:
            return None
        causes = [{"reason": p.reason, "message": p.body, "field": p.field} for p in self.problems]
        return {
            "name": self.name,
            "group": "apiextensions.k8s.io",
            "kind": "CustomResourceDefinition",
            "causes": causes,
        }


def invalid_message(name: str, problems: Sequence[Problem]) -> str:
    """The message of the server's Status: ``errors.NewInvalid`` (one error, or ``[a, b, ...]`` deduplicated) or,
    for decoding problems, the decoder's error."""
    if any(problem.type in DECODE_ERROR_TYPES for problem in problems):
        strict = [problem for problem in problems if problem.type == "UnknownField"]
        text = (
            "strict decoding error: " + ", ".join(f'unknown field "{problem.field}"' for problem in strict)
            if strict
            else str(problems[0])
        )
        return f'CustomResourceDefinition in version "v1" cannot be handled as a CustomResourceDefinition: {text}'
    texts = list(dict.fromkeys(str(problem) for problem in problems))
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return f'{_CRD_KIND} "{name}" is invalid: {joined}'


def check_crd(
    crd: Mapping[str, Any], *, cel: bool = False, strict: bool = True, server_minor: int = LATEST_SERVER_MINOR
) -> None:
    """Raise ``InvalidCrdError`` when ``validate_crd`` finds anything."""
    problems = validate_crd(crd, cel=cel, strict=strict, server_minor=server_minor)
    if problems:
        raise InvalidCrdError(_name_of(crd), problems)


def validate_crd(
    crd: Mapping[str, Any], *, cel: bool = False, strict: bool = True, server_minor: int = LATEST_SERVER_MINOR
) -> list[Problem]:
    """Every problem the API server would report when this CRD is created (an empty list: it would be accepted).

    ``cel=True`` also compiles and costs the CEL rules, and evaluates defaults against them; it imports
    cel-python (the ``dev`` extra). ``strict``: unknown fields are problems, as with ``kubectl apply`` (strict field
    validation); False is the API server's default for other clients (it drops them with a warning).
    ``server_minor``: the Kubernetes minor version of the server (only reserved-word field names in CEL depend on
    it; servers before 1.32 refuse ``self.namespace``).
    """
    decoded = _decode_crd(crd, strict=strict)
    if decoded:
        return decoded
    engine = _CelEngine(server_minor) if cel else None
    storage = [_map(v).get("name") for v in _list(_map(crd.get("spec")).get("versions")) if _map(v).get("storage")]
    return _Validator(engine).crd(crd, stored=[str(storage[0])] if storage else [])


def validate_crd_update(
    crd: Mapping[str, Any],
    old: Mapping[str, Any],
    *,
    cel: bool = False,
    strict: bool = True,
    server_minor: int = LATEST_SERVER_MINOR,
) -> list[Problem]:
    """What the server reports when ``old`` is replaced by ``crd``: the create rules, group/plural (and, as the CRD
    is established, scope/kind) immutable, and every version ever stored (``old.status.storedVersions``) still in
    ``spec.versions``."""
    decoded = _decode_crd(crd, strict=strict)
    if decoded:
        return decoded
    engine = _CelEngine(server_minor) if cel else None
    stored = [v for v in _list(_map(old.get("status")).get("storedVersions")) if isinstance(v, str)]
    for version in _list(_map(crd.get("spec")).get("versions")):
        if _map(version).get("storage") and _map(version).get("name") not in stored:
            stored.append(str(_map(version).get("name")))
    problems = _Validator(engine).crd(crd, stored=stored)
    spec, old_spec = _map(crd.get("spec")), _map(old.get("spec"))
    names, old_names = _map(spec.get("names")), _map(old_spec.get("names"))
    immutable = [
        ("spec.scope", spec.get("scope"), old_spec.get("scope")),
        ("spec.names.kind", names.get("kind"), old_names.get("kind")),
        ("spec.group", spec.get("group"), old_spec.get("group")),
        ("spec.names.plural", names.get("plural"), old_names.get("plural")),
    ]
    for path, new_value, old_value in immutable:
        if new_value != old_value:
            problems.append(Problem(path, "Invalid", "field is immutable", _render(new_value)))
    return problems


def _name_of(crd: Mapping[str, Any]) -> str:
    name = _map(crd.get("metadata")).get("name")
    return name if isinstance(name, str) else ""


# -- small helpers -------------------------------------------------------------------------------------------------


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _render(value: Any) -> str:
    """A bad value as the server prints it: strings quoted, numbers and booleans bare, everything else as JSON."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def _render_rule(rule: Mapping[str, Any]) -> str:
    """A ValidationRule as the server prints it (the Go struct as JSON, with Go's HTML escaping)."""
    value = {
        "Rule": rule.get("rule") or "",
        "Message": rule.get("message") or "",
        "MessageExpression": rule.get("messageExpression") or "",
        "Reason": rule.get("reason"),
        "FieldPath": rule.get("fieldPath") or "",
        "OptionalOldSelf": rule.get("optionalOldSelf"),
    }
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def _index(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- names (k8s.io/apimachinery/pkg/util/validation) ----------------------------------------------------------------

_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT: Final = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE: Final = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1035_LABEL_FMT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE: Final = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_QUALIFIED_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE: Final = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_FMT: Final = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_LABEL_VALUE_RE: Final = re.compile(f"^{_LABEL_VALUE_FMT}$")


def _dns1123_subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
            f"'{_DNS1123_SUBDOMAIN_FMT}')"
        )
    return errors


def _dns1035_label_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _DNS1035_LABEL_RE.match(value):
        errors.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
            "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
            f"validation is '{_DNS1035_LABEL_FMT}')"
        )
    return errors


def _qualified_name_errors(value: str) -> list[str]:
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        errors = ["prefix part " + error for error in _dns1123_subdomain_errors(prefix)]
        if errors:
            return errors
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
            "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            f"'{_QUALIFIED_NAME_FMT}') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        return ["name part must be non-empty"]
    errors = []
    if len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME_RE.match(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            f"'{_QUALIFIED_NAME_FMT}')"
        )
    return errors


def _label_value_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.match(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
            f"for validation is '{_LABEL_VALUE_FMT}')"
        )
    return errors


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


# -- the CRD ------------------------------------------------------------------------------------------------------

_PRINTER_TYPES: Final = ("boolean", "date", "integer", "number", "string")
_PRINTER_FORMATS: Final = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
_OPENAPI_TYPES: Final = ("array", "boolean", "integer", "number", "object", "string")
_REASONS: Final = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
_META_FIELDS: Final = frozenset({"metadata", "kind", "apiVersion"})
_MAX_SELECTABLE_FIELDS: Final = 8
_APPROVAL_ANNOTATION: Final = "api-approved.kubernetes.io"
#: The JSONSchemaProps fields in Go struct order (the status-subresource root check reports the first bad one).
_SCHEMA_FIELD_ORDER: Final = (
    "id", "$schema", "$ref", "description", "type", "format", "title", "default", "maximum", "exclusiveMaximum",
    "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
    "multipleOf", "enum", "maxProperties", "minProperties", "required", "items", "allOf", "oneOf", "anyOf", "not",
    "properties", "additionalProperties", "patternProperties", "dependencies", "additionalItems", "definitions",
    "externalDocs", "example", "nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type",
    "x-kubernetes-validations",
)  # fmt: skip
#: The fields allowed at the root with the status subresource (``allowedFieldsAtRootSchema``).
_ALLOWED_AT_ROOT: Final = frozenset(
    {"description", "type", "format", "title", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
     "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf", "required", "items",
     "properties", "externalDocs", "example", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations"}
)  # fmt: skip
_ALLOWED_AT_ROOT_TEXT: Final = (
    "[Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern "
    "MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields "
    "XValidations]"
)


#: JSONSchemaProps fields that are plain Go bools (zero when false); the other flags are pointers.
_PLAIN_BOOLS: Final = frozenset(
    {"exclusiveMaximum", "exclusiveMinimum", "uniqueItems", "nullable", "x-kubernetes-embedded-resource",
     "x-kubernetes-int-or-string"}
)  # fmt: skip


def _is_zero(key: str, value: Any) -> bool:
    """Whether a decoded JSONSchemaProps field holds its Go zero value (reflection-based checks skip those)."""
    if value is None or (value == "" and isinstance(value, str)):
        return True
    return key in _PLAIN_BOOLS and value is False


def _present(value: Any) -> bool:
    """Whether a value counts as specified: not null, false, an empty string or an empty list/map."""
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | tuple | Mapping) and len(value) == 0)


@dataclass(frozen=True)
class _Ssv:
    """The ``specStandardValidatorV3`` state handed down the schema."""

    allow_defaults: bool = True
    disallow_reason: str = ""
    inside_meta: bool = False
    #: The highest path under which ``oldSelf`` cannot be used, if any.
    uncorrelatable: str | None = None

    def forbid_defaults(self, reason: str) -> _Ssv:
        return _Ssv(False, reason, self.inside_meta, self.uncorrelatable)

    def in_meta(self) -> _Ssv:
        return _Ssv(self.allow_defaults, self.disallow_reason, True, self.uncorrelatable)

    def forbid_old_self(self, path: str) -> _Ssv:
        if self.uncorrelatable is not None:
            return self
        return _Ssv(self.allow_defaults, self.disallow_reason, self.inside_meta, path)


@dataclass
class _CelContext:
    """``CELSchemaContext``: a node's cardinality (None: unbounded), its CEL type (taken from the parent's when it
    can be, as upstream does, so a parent that CEL cannot see breaks its children's rules too) and the schema's
    running cost total."""

    schema: Mapping[str, Any]
    cardinality: int | None
    total: _TotalCost
    parent: _CelContext | None = None
    #: How this node is reached from its parent's type: ("property", name), ("items", "") or ("values", "").
    access: tuple[str, str] = ("", "")
    in_scope: bool = False
    _type: tuple[_Ty | None, str] | None = None

    def child(self, schema: Mapping[str, Any], access: tuple[str, str]) -> _CelContext:
        cardinality = None
        if self.cardinality is not None:
            factor = _max_elements(self.schema)
            if factor is not None:
                cardinality = _mul(self.cardinality, factor)
        in_scope = self.in_scope or bool(schema.get("x-kubernetes-validations"))
        return _CelContext(schema, cardinality, self.total, self, access, in_scope)

    def type_info(self) -> tuple[_Ty | None, str]:
        """(the node's CEL type, why there is none) -- ``CELSchemaContext.TypeInfo`` and ``cel.Compile``'s checks."""
        if not self.in_scope:
            return None, ""
        if self._type is None:
            self._type = self._compute_type()
        return self._type

    def _compute_type(self) -> tuple[_Ty | None, str]:
        if self.parent is not None:
            parent, error = self.parent.type_info()
            if error:
                return None, _CONSTRUCT_ERROR  # a parent's failure breaks every child
            if parent is not None:
                kind, name = self.access
                if kind == "property":
                    escaped = _escape(name)
                    found = (parent.fields or {}).get(escaped) if escaped else None
                    if found is not None:
                        return found, ""
                elif (kind == "items" and self.parent.schema.get("items") is not None) or (
                    kind == "values" and isinstance(self.parent.schema.get("additionalProperties"), Mapping)
                ):
                    # the accessor always answers here, with the parent's element type even when it has none
                    return parent.elem, "" if parent.elem is not None else _CONVERT_ERROR
        embedded = self.schema.get("x-kubernetes-embedded-resource") is True
        decl = _decl(self.schema, self.parent is None or embedded)
        return decl, "" if decl is not None else _CONSTRUCT_ERROR


_CONSTRUCT_ERROR: Final = (
    "internal error: failed to construct type information for x-kubernetes-validations rules: unable to convert "
    "structural schema to CEL declarations"
)
_CONVERT_ERROR: Final = "failed to convert to declType for CEL validation rules"


@dataclass
class _TotalCost:
    total: int = 0
    most_expensive: list[tuple[str, int]] = field(default_factory=list)

    def observe(self, path: str, cost: int) -> None:
        self.total = min(self.total + cost, _MAX_UINT64)
        if cost < STATIC_ESTIMATED_CRD_COST_LIMIT // 100:
            return
        self.most_expensive.append((path, cost))
        self.most_expensive.sort(key=lambda item: -item[1])
        del self.most_expensive[4:]


def _max_elements(schema: Mapping[str, Any]) -> int | None:
    """``extractMaxElements``: how many children an element of this schema can have (None: unbounded)."""
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not None:
            bound = schema.get("maxProperties")
            return max(int(bound), 0) if bound is not None else None
        return 1
    if schema.get("type") == "array":
        bound = schema.get("maxItems")
        return max(int(bound), 0) if bound is not None else None
    return 1


def _mul(x: int, y: int) -> int:
    """``multiplyWithOverflowGuard``."""
    if x == 0:
        return 0
    return min(x * y, _MAX_UINT64)


def _cost_message(name: str, cost: int, limit: int) -> str:
    factor = cost / limit
    if factor > 100.0:
        text = "more than 100x"
    elif factor < 1.5:
        text = f"{factor:f}x"
    else:
        text = f"{factor:.1f}x"
    return (
        f"{name} exceeds budget by factor of {text} (try simplifying the rule, or adding maxItems, maxProperties, and "
        "maxLength where arrays, maps, and strings are declared)"
    )


class _Validator:
    """One CRD's validation (``ValidateCustomResourceDefinition``)."""

    def __init__(self, engine: _CelEngine | None) -> None:
        self.engine = engine

    # -- metadata, spec, names -----------------------------------------------------------------------------------

    def crd(self, crd: Mapping[str, Any], stored: list[str]) -> list[Problem]:
        metadata, spec = _map(crd.get("metadata")), _map(crd.get("spec"))
        spec = _defaulted_spec(spec)
        problems = list(self._metadata(metadata, spec))
        problems += self._spec(spec)
        problems += _stored_versions(stored, spec)
        problems += self._approval(metadata, spec)
        if spec.get("preserveUnknownFields") is True and any(
            "default" in node for version in _list(spec.get("versions")) for node in _schema_nodes(version)
        ):
            problems.append(
                Problem(
                    "spec.preserveUnknownFields",
                    "Invalid",
                    "must be false in order to use defaults in the schema",
                    "true",
                )
            )
        if spec.get("preserveUnknownFields") is True:
            problems.append(
                Problem(
                    "spec.preserveUnknownFields",
                    "Invalid",
                    "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema "
                    "instead",
                    "true",
                )
            )
        return problems

    def _metadata(self, metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[Problem]:
        name = metadata.get("name") or ""
        names = _map(spec.get("names"))
        if not name and not metadata.get("generateName"):
            yield Problem("metadata.name", "Required", "name or generateName is required")
        elif name:
            for error in _dns1123_subdomain_errors(name):
                yield Problem("metadata.name", "Invalid", error, _render(name))
            if name != f"{names.get('plural', '')}.{spec.get('group', '')}":
                yield Problem("metadata.name", "Invalid", 'must be spec.names.plural+"."+spec.group', _render(name))
        for key, value in _map(metadata.get("labels")).items():
            for error in _qualified_name_errors(str(key)):
                yield Problem("metadata.labels", "Invalid", error, _render(key))
            for error in _label_value_errors(str(value or "")):
                yield Problem("metadata.labels", "Invalid", error, _render(value))
        for key in _map(metadata.get("annotations")):
            for error in _qualified_name_errors(str(key).lower()):
                yield Problem("metadata.annotations", "Invalid", error, _render(key))

    def _approval(self, metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[Problem]:
        group = str(spec.get("group") or "")
        if not (group in ("k8s.io", "kubernetes.io") or group.endswith((".k8s.io", ".kubernetes.io"))):
            return
        annotation = str(_map(metadata.get("annotations")).get(_APPROVAL_ANNOTATION) or "")
        path = f"metadata.annotations[{_APPROVAL_ANNOTATION}]"
        if not annotation:
            yield Problem(
                path,
                "Required",
                f'protected groups must have approval annotation "{_APPROVAL_ANNOTATION}", see '
                "https://github.com/kubernetes/enhancements/pull/1111",
            )
        elif not annotation.startswith("unapproved") and not re.match(
            r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]+", annotation
        ):
            yield Problem(
                path,
                "Invalid",
                f'protected groups must have approval annotation "{_APPROVAL_ANNOTATION}" with either a URL or a '
                'reason starting with "unapproved", see https://github.com/kubernetes/enhancements/pull/1111',
                _render(annotation),
            )

    def _spec(self, spec: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        group = spec.get("group") or ""
        if not group:
            problems.append(Problem("spec.group", "Required"))
        elif errors := _dns1123_subdomain_errors(group):
            problems.append(Problem("spec.group", "Invalid", ",".join(errors), _render(group)))
        elif len(group.split(".")) < 2:
            problems.append(
                Problem("spec.group", "Invalid", "should be a domain with at least one dot", _render(group))
            )
        scope = spec.get("scope") or ""
        if not scope:
            problems.append(Problem("spec.scope", "Required"))
        elif scope not in ("Cluster", "Namespaced"):
            problems.append(
                Problem("spec.scope", "NotSupported", 'supported values: "Cluster", "Namespaced"', _render(scope))
            )
        versions = [_map(v) for v in _list(spec.get("versions"))]
        hoisted = _hoisted(versions)
        for index, version in enumerate(versions):
            if not isinstance(_map(version.get("schema")).get("openAPIV3Schema"), Mapping):
                problems.append(Problem(f"spec.versions[{index}].schema.openAPIV3Schema", "Required"))
        storage = sum(1 for version in versions if version.get("storage") is True)
        seen: set[str] = set()
        unique = True
        for index, version in enumerate(versions):
            name = version.get("name") or ""
            unique = unique and name not in seen
            seen.add(name)
            if errors := _dns1035_label_errors(name):
                problems.append(Problem(f"spec.versions[{index}].name", "Invalid", ",".join(errors), _render(name)))
            problems += self._version(spec, version, index, hoisted)
        if hoisted["schema"] and versions and isinstance(versions[0].get("schema"), Mapping):
            status = any(_map(v.get("subresources")).get("status") is not None for v in versions)
            problems += self._validation(_map(versions[0]["schema"]), status, "spec.validation")
        if hoisted["subresources"] and versions:
            problems += self._subresources(versions[0].get("subresources"), "spec.subresources")
        if hoisted["additionalPrinterColumns"] and versions:
            for index, column in enumerate(_list(versions[0].get("additionalPrinterColumns"))):
                problems += self._column(_map(column), f"spec.additionalPrinterColumns[{index}]")
        if hoisted["selectableFields"] and versions and versions[0].get("selectableFields"):
            root = _map(_map(versions[0].get("schema")).get("openAPIV3Schema"))
            problems += self._selectable(_list(versions[0]["selectableFields"]), root, "spec.selectableFields")
        if not unique:
            problems.append(Problem("spec.versions", "Invalid", "must contain unique version names"))
        if storage != 1:
            problems.append(
                Problem("spec.versions", "Invalid", "must have exactly one version marked as storage version")
            )
        if versions and (errors := _dns1035_label_errors(str(versions[0].get("name") or ""))):
            # the internal version copies versions[0].name into spec.version, which is validated again
            name = str(versions[0].get("name") or "")
            problems.append(Problem("spec.version", "Invalid", ",".join(errors), _render(name)))
        names = _map(spec.get("names"))
        for key in ("plural", "singular", "kind", "listKind"):
            if not names.get(key):
                problems.append(Problem(f"spec.names.{key}", "Required"))
        problems += _names(names, "spec.names")
        problems += self._conversion(_map(spec.get("conversion")), "spec.conversion")
        return problems

    def _version(
        self, spec: Mapping[str, Any], version: Mapping[str, Any], index: int, hoisted: Mapping[str, bool]
    ) -> list[Problem]:
        path = f"spec.versions[{index}]"
        problems: list[Problem] = []
        warning = version.get("deprecationWarning")
        for error in _deprecation_warning_errors(version.get("deprecated") is True, warning):
            problems.append(Problem(f"{path}.deprecationWarning", "Invalid", error, _render(warning)))
        if not hoisted["schema"] and isinstance(version.get("schema"), Mapping):
            status = _map(version.get("subresources")).get("status") is not None
            problems += self._validation(_map(version["schema"]), status, f"{path}.schema")
        if not hoisted["subresources"]:
            problems += self._subresources(version.get("subresources"), f"{path}.subresources")
        if not hoisted["additionalPrinterColumns"]:
            for i, column in enumerate(_list(version.get("additionalPrinterColumns"))):
                problems += self._column(_map(column), f"{path}.additionalPrinterColumns[{i}]")
        if not hoisted["selectableFields"] and version.get("selectableFields"):
            root = _map(_map(version.get("schema")).get("openAPIV3Schema"))
            if not root:
                problems.append(
                    Problem(
                        f"{path}.selectableFields",
                        "Invalid",
                        "may only be set when `version.schema.openAPIV3Schema` is not included",
                        '""',
                    )
                )
            else:
                problems += self._selectable(_list(version["selectableFields"]), root, f"{path}.selectableFields")
        return problems

    def _conversion(self, conversion: Mapping[str, Any], path: str) -> Iterator[Problem]:
        strategy = conversion.get("strategy") or ""
        if not strategy:
            yield Problem(f"{path}.strategy", "Required")
        elif strategy not in ("None", "Webhook"):
            yield Problem(f"{path}.strategy", "NotSupported", 'supported values: "None", "Webhook"', _render(strategy))
        webhook = _map(conversion.get("webhook"))
        client, reviews = webhook.get("clientConfig"), _list(webhook.get("conversionReviewVersions"))
        if strategy == "Webhook":
            if client is None:
                yield Problem(f"{path}.webhookClientConfig", "Required", "required when strategy is set to Webhook")
            elif (_map(client).get("url") is None) == (_map(client).get("service") is None):
                yield Problem(f"{path}.webhookClientConfig", "Required", "exactly one of url or service is required")
            if not reviews:
                yield Problem(f"{path}.conversionReviewVersions", "Required")
            else:
                seen: set[str] = set()
                for index, review in enumerate(reviews):
                    if review in seen:
                        yield Problem(f"{path}.conversionReviewVersions[{index}]", "Invalid", "duplicate version")
                        continue
                    seen.add(review)
                    for error in _dns1035_label_errors(review):
                        yield Problem(f"{path}.conversionReviewVersions[{index}]", "Invalid", error, _render(review))
                if not {"v1", "v1beta1"} & set(reviews):
                    yield Problem(
                        f"{path}.conversionReviewVersions", "Invalid", "must include at least one of v1, v1beta1"
                    )
        else:
            if client is not None:
                yield Problem(
                    f"{path}.webhookClientConfig", "Forbidden", "should not be set when strategy is not set to Webhook"
                )
            if reviews:
                yield Problem(
                    f"{path}.conversionReviewVersions",
                    "Forbidden",
                    "should not be set when strategy is not set to Webhook",
                )

    def _subresources(self, subresources: Any, path: str) -> Iterator[Problem]:
        scale = _map(subresources).get("scale")
        if scale is None:
            return
        scale = _map(scale)
        for key, prefixes, where in (
            ("specReplicasPath", (".spec.",), "under .spec"),
            ("statusReplicasPath", (".status.",), "under .status"),
        ):
            value = scale.get(key) or ""
            if not value:
                yield Problem(f"{path}.scale.{key}", "Required")
            elif errors := _simple_json_path_errors(value, f"{path}.scale.{key}"):
                yield from errors
            elif not value.startswith(prefixes):
                yield Problem(f"{path}.scale.{key}", "Invalid", f"should be a json path {where}", _render(value))
        selector = scale.get("labelSelectorPath") or ""
        if selector:
            if errors := _simple_json_path_errors(selector, f"{path}.scale.labelSelectorPath"):
                yield from errors
            elif not selector.startswith((".spec.", ".status.")):
                yield Problem(
                    f"{path}.scale.labelSelectorPath",
                    "Invalid",
                    "should be a json path under either .spec or .status",
                    _render(selector),
                )

    def _column(self, column: Mapping[str, Any], path: str) -> Iterator[Problem]:
        if not column.get("name"):
            yield Problem(f"{path}.name", "Required")
        type_, allowed = column.get("type") or "", ",".join(_PRINTER_TYPES)
        if not type_:
            yield Problem(f"{path}.type", "Required", f"must be one of {allowed}")
        elif type_ not in _PRINTER_TYPES:
            yield Problem(f"{path}.type", "Invalid", f"must be one of {allowed}", _render(type_))
        format_ = column.get("format") or ""
        if format_ and format_ not in _PRINTER_FORMATS:
            yield Problem(f"{path}.format", "Invalid", f"must be one of {','.join(_PRINTER_FORMATS)}", _render(format_))
        json_path = column.get("jsonPath") or ""
        if not json_path:
            yield Problem(f"{path}.JSONPath", "Required")
        else:
            yield from _simple_json_path_errors(json_path, f"{path}.JSONPath")

    def _selectable(self, fields: list[Any], root: Mapping[str, Any], path: str) -> Iterator[Problem]:
        unique: set[str] = set()
        for index, selectable in enumerate(fields):
            json_path = _map(selectable).get("jsonPath") or ""
            at = f"{path}[{index}].jsonPath"
            if not json_path:
                yield Problem(at, "Required")
                continue
            try:
                normalized, found = _valid_field_path(json_path, root, allow_array_notation=False)
            except ValueError as exc:
                yield Problem(at, "Invalid", f"is an invalid path: {exc}", _render(json_path))
                continue
            if normalized.split(".")[0].split("[")[0] == "metadata":
                yield Problem(at, "Invalid", "must not point to fields in metadata", _render(json_path))
            if found.get("type") not in ("string", "boolean", "integer"):
                yield Problem(
                    at,
                    "Invalid",
                    "must point to a field of type string, boolean or integer. Enum string fields and strings with "
                    "formats are allowed.",
                    _render(json_path),
                )
            if normalized in unique:
                yield Problem(at, "Duplicate", value=_render(json_path))
            unique.add(normalized)
        if len(unique) > _MAX_SELECTABLE_FIELDS:
            yield Problem(path, "TooMany", f"must have at most {_MAX_SELECTABLE_FIELDS} items", str(len(unique)))

    # -- the schema ------------------------------------------------------------------------------------------------

    def _validation(self, validation: Mapping[str, Any], status: bool, path: str) -> list[Problem]:
        """``validateCustomResourceDefinitionValidation`` for one ``openAPIV3Schema``."""
        schema = validation.get("openAPIV3Schema")
        if not isinstance(schema, Mapping):
            return []
        root = f"{path}.openAPIV3Schema"
        problems: list[Problem] = []
        if status:
            for json_name in _SCHEMA_FIELD_ORDER:
                value = schema.get(json_name)
                if _is_zero(json_name, value):
                    continue
                if json_name == "type":
                    if value != "object":
                        problems.append(
                            Problem(
                                f"{root}.type",
                                "Invalid",
                                'only "object" is allowed as the type at the root of the schema if the status '
                                "subresource is enabled",
                                _render(value),
                            )
                        )
                        break
                    continue
                if json_name not in _ALLOWED_AT_ROOT:
                    problems.append(
                        Problem(
                            root,
                            "Invalid",
                            f"only {_ALLOWED_AT_ROOT_TEXT} fields are allowed at the root of the schema if the status "
                            "subresource is enabled",
                        )
                    )
                    break
        if schema.get("nullable") is True:
            problems.append(Problem(f"{root}.nullable", "Forbidden", "nullable cannot be true at the root"))
        cel_context: _CelContext | None = None
        init_problems: list[Problem] = []
        if error := _structural_init_error(schema):
            init_problems.append(Problem(root, "Invalid", error, '""'))
        elif structural := _validate_structural(schema, root):
            problems += structural
        elif defaults := _validate_defaults(schema, root, self.engine):
            problems += defaults
        else:
            cel_context = _CelContext(schema, 1, _TotalCost(), in_scope=bool(schema.get("x-kubernetes-validations")))
        schema_problems, cel_problems = self._schema(schema, root, _Ssv(), True, cel_context)
        problems += schema_problems + cel_problems
        if not problems and init_problems:
            problems += init_problems
        if cel_context is not None and cel_context.total.total > STATIC_ESTIMATED_CRD_COST_LIMIT:
            for expensive_path, _ in cel_context.total.most_expensive:
                problems.append(
                    Problem(
                        expensive_path,
                        "Forbidden",
                        "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                    )
                )
            message = _cost_message(
                "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                cel_context.total.total,
                STATIC_ESTIMATED_CRD_COST_LIMIT,
            )
            problems.append(Problem(root, "Forbidden", message))
        return problems

    def _schema(
        self, schema: Mapping[str, Any], path: str, ssv: _Ssv, is_root: bool, cel: _CelContext | None
    ) -> tuple[list[Problem], list[Problem]]:
        """``ValidateCustomResourceDefinitionOpenAPISchema``: (schema problems, CEL problems) of this subtree."""
        errors: list[Problem] = list(_standard(schema, path, ssv))
        cel_errors: list[Problem] = []

        def add(sub: tuple[list[Problem], list[Problem]]) -> None:
            errors.extend(sub[0])
            cel_errors.extend(sub[1])

        if schema.get("uniqueItems") is True:
            errors.append(
                Problem(
                    f"{path}.uniqueItems",
                    "Forbidden",
                    "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                )
            )
        additional = schema.get("additionalProperties")
        properties = _map(schema.get("properties"))
        if additional is not None:
            if properties and (additional is False or isinstance(additional, Mapping)):
                errors.append(
                    Problem(
                        f"{path}.additionalProperties",
                        "Forbidden",
                        "additionalProperties and properties are mutual exclusive",
                    )
                )
            if isinstance(additional, Mapping):
                sub_ssv = ssv
                if ssv.inside_meta:
                    sub_ssv = ssv.forbid_defaults("inside additionalProperties applying to object metadata")
                add(
                    self._schema(
                        additional,
                        f"{path}.additionalProperties",
                        sub_ssv,
                        False,
                        cel.child(additional, ("values", "")) if cel else None,
                    )
                )
        for name in sorted(properties):
            sub = _map(properties[name])
            sub_ssv = ssv
            map_type = schema.get("x-kubernetes-map-type")
            if map_type not in (None, "granular", "atomic"):
                sub_ssv = sub_ssv.forbid_old_self(path)
            if (is_root or schema.get("x-kubernetes-embedded-resource") is True) and name in _META_FIELDS:
                sub_ssv = sub_ssv.in_meta()
                if is_root:
                    sub_ssv = sub_ssv.forbid_defaults(f"in top-level {name}")
            sub_cel = cel.child(sub, ("property", name)) if cel else None
            add(self._schema(sub, _key(f"{path}.properties", name), sub_ssv, False, sub_cel))
        if isinstance(schema.get("not"), Mapping):
            add(self._schema(schema["not"], f"{path}.not", ssv, False, None))
        for keyword in ("allOf", "oneOf", "anyOf"):
            for index, sub in enumerate(_list(schema.get(keyword))):
                add(self._schema(_map(sub), f"{path}.{keyword}[{index}]", ssv, False, None))
        for name in sorted(_map(schema.get("definitions"))):
            add(self._schema(_map(schema["definitions"][name]), f"{path}.definitions[{name}]", ssv, False, None))
        items = schema.get("items")
        if items is not None:
            sub_ssv = ssv
            if schema.get("x-kubernetes-list-type") != "map":
                sub_ssv = sub_ssv.forbid_old_self(path)
            if isinstance(items, Mapping):
                add(
                    self._schema(
                        items, f"{path}.items", sub_ssv, False, cel.child(items, ("items", "")) if cel else None
                    )
                )
            else:
                for index, sub in enumerate(_list(items)):
                    add(self._schema(_map(sub), f"{path}.items[{index}]", sub_ssv, False, None))
        for name in sorted(_map(schema.get("dependencies"))):
            dependency = schema["dependencies"][name]
            if isinstance(dependency, Mapping):
                add(self._schema(dependency, f"{path}.dependencies[{name}]", ssv, False, None))
        errors += _extensions(schema, path)
        rules = [_map(rule) for rule in _list(schema.get("x-kubernetes-validations"))]
        if rules:
            errors += _rule_fields(schema, rules, path)
            if not errors and cel is not None and self.engine is not None:
                cel_errors += self.engine.compile_rules(schema, rules, path, ssv, cel)
        return errors, cel_errors


def _stored_versions(stored: list[str], spec: Mapping[str, Any]) -> Iterator[Problem]:
    """``ValidateCustomResourceDefinitionStoredVersions`` (the server keeps ``status.storedVersions`` itself)."""
    if not stored:
        yield Problem("status.storedVersions", "Invalid", "must have at least one stored version", "null")
        return
    versions = [_map(version) for version in _list(spec.get("versions"))]
    for version in versions:
        if version.get("storage") is True and version.get("name") not in stored:
            yield Problem(
                "status.storedVersions",
                "Invalid",
                f"must have the storage version {version.get('name')}",
                _render(stored),
            )
    names = {version.get("name") for version in versions}
    for index, name in enumerate(stored):
        if name not in names:
            yield Problem(
                f"status.storedVersions[{index}]",
                "Invalid",
                f"missing from spec.versions; {name} was previously a storage version, and must remain in "
                f"spec.versions until a storage migration ensures no data remains persisted in {name} and removes "
                f"{name} from status.storedVersions",
                _render(name),
            )


def _schema_nodes(version: Any) -> Iterator[Mapping[str, Any]]:
    schema = _map(_map(version).get("schema")).get("openAPIV3Schema")
    if isinstance(schema, Mapping):
        yield from _all_nodes(schema)


def _defaulted_spec(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """``SetDefaults_CustomResourceDefinitionSpec``: singular, listKind and the conversion strategy."""
    names = dict(_map(spec.get("names")))
    if not names.get("singular"):
        names["singular"] = str(names.get("kind") or "").lower()
    if not names.get("listKind") and names.get("kind"):
        names["listKind"] = f"{names['kind']}List"
    defaulted = {**spec, "names": names}
    if spec.get("conversion") is None:
        defaulted["conversion"] = {"strategy": "None"}
    return defaulted


def _hoisted(versions: list[Mapping[str, Any]]) -> dict[str, bool]:
    """Which per-version fields the v1->internal conversion moves to the top level (identical in every version)."""
    result = {}
    for key in ("schema", "subresources", "additionalPrinterColumns", "selectableFields"):
        values = [version.get(key) or None for version in versions]
        result[key] = bool(versions) and values[0] is not None and all(value == values[0] for value in values)
    return result


def _names(names: Mapping[str, Any], path: str) -> Iterator[Problem]:
    for key in ("plural", "singular"):
        value = names.get(key) or ""
        if value and (errors := _dns1035_label_errors(value)):
            yield Problem(f"{path}.{key}", "Invalid", ",".join(errors), _render(value))
    for key in ("kind", "listKind"):
        value = names.get(key) or ""
        if value and (errors := _dns1035_label_errors(value.lower())):
            yield Problem(
                f"{path}.{key}",
                "Invalid",
                "may have mixed case, but should otherwise match: " + ",".join(errors),
                _render(value),
            )
    for index, short in enumerate(_list(names.get("shortNames"))):
        if errors := _dns1035_label_errors(str(short)):
            yield Problem(f"{path}.shortNames[{index}]", "Invalid", ",".join(errors), _render(short))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        yield Problem(
            f"{path}.listKind", "Invalid", "kind and listKind may not be the same", _render(names["listKind"])
        )
    for index, category in enumerate(_list(names.get("categories"))):
        if errors := _dns1035_label_errors(str(category)):
            yield Problem(f"{path}.categories[{index}]", "Invalid", ",".join(errors), _render(category))


def _deprecation_warning_errors(deprecated: bool, warning: Any) -> list[str]:
    if not deprecated and warning is not None:
        return ["can only be set for deprecated versions"]
    if warning is None:
        return []
    errors = []
    if len(warning) > 256:
        errors.append("must be <= 256 characters long")
    if not warning:
        errors.append("must not be an empty string")
    for index, char in enumerate(warning):
        if not char.isprintable():
            errors.append(
                f"must only contain printable UTF-8 characters; non-printable character found at index {index}"
            )
            break
    return errors


def _simple_json_path_errors(value: str, path: str) -> list[Problem]:
    if not value:
        return [Problem(path, "Invalid", "must not be empty", '""')]
    if value[0] != ".":
        return [Problem(path, "Invalid", "must be a simple json path starting with .", _render(value))]
    return []


def _valid_field_path(
    json_path: str, schema: Mapping[str, Any], *, allow_array_notation: bool = True
) -> tuple[str, Mapping[str, Any]]:
    """``cel.ValidFieldPath``: the normalized path and the schema it points at, or ``ValueError``."""
    tokens = re.findall(r"'(?:[^'\\]|\\.)*'|[.\[\]]|[^.\[\]']+", json_path)
    out = ""
    node: Mapping[str, Any] = schema
    position = 0

    def step(name: str) -> None:
        nonlocal out, node
        if node.get("properties") is not None:
            out = _child(out, name)
            properties = _map(node.get("properties"))
            if name not in properties:
                raise ValueError("does not refer to a valid field")
            node = _map(properties[name])
        elif node.get("additionalProperties") is not None:
            out = _key(out, name)
            node = _map(node.get("additionalProperties"))
        else:
            raise ValueError("does not refer to a valid field")

    while position < len(tokens):
        token = tokens[position]
        position += 1
        if token == "[":
            if not allow_array_notation:
                raise ValueError("array notation is not allowed")
            if position >= len(tokens):
                raise ValueError("unexpected end of JSON path")
            quoted = tokens[position]
            position += 1
            if len(quoted) < 2 or quoted[0] != "'" or quoted[-1] != "'":
                raise ValueError(f"expected single quoted string but got {quoted}")
            step(re.sub(r"\\(.)", r"\1", quoted[1:-1]))
            if position >= len(tokens):
                raise ValueError("unexpected end of JSON path")
            if tokens[position] != "]":
                raise ValueError(f"expected ] but got {tokens[position]}")
            position += 1
        elif token == ".":
            if position >= len(tokens):
                raise ValueError("unexpected end of JSON path")
            name = tokens[position]
            position += 1
            step(name)
        else:
            raise ValueError(f"expected [ or . but got: {token}")
    return out, node


def _standard(schema: Mapping[str, Any], path: str, ssv: _Ssv) -> Iterator[Problem]:
    """``specStandardValidatorV3.validate``: the per-node OpenAPI v3 restrictions."""
    type_ = schema.get("type") or ""
    if type_ and type_ not in _OPENAPI_TYPES:
        yield Problem(
            f"{path}.type",
            "NotSupported",
            "supported values: " + ", ".join(f'"{t}"' for t in _OPENAPI_TYPES),
            _render(type_),
        )
    if schema.get("default") is not None and not ssv.allow_defaults:
        detail = "must not be set" + (f" {ssv.disallow_reason}" if ssv.disallow_reason else "")
        yield Problem(f"{path}.default", "Forbidden", detail)
    if schema.get("id"):
        yield Problem(f"{path}.id", "Forbidden", "id is not supported")
    if schema.get("additionalItems") is not None:
        yield Problem(f"{path}.additionalItems", "Forbidden", "additionalItems is not supported")
    if schema.get("patternProperties"):
        yield Problem(f"{path}.patternProperties", "Forbidden", "patternProperties is not supported")
    if schema.get("definitions"):
        yield Problem(f"{path}.definitions", "Forbidden", "definitions is not supported")
    if schema.get("dependencies") is not None:
        yield Problem(f"{path}.dependencies", "Forbidden", "dependencies is not supported")
    if schema.get("$ref") is not None:
        yield Problem(f"{path}.$ref", "Forbidden", "$ref is not supported")
    if type_ == "null":
        yield Problem(f"{path}.type", "Forbidden", "type cannot be set to null, use nullable as an alternative")
    if isinstance(schema.get("items"), list | tuple) and schema["items"]:
        yield Problem(f"{path}.items", "Forbidden", "items must be a schema object and not an array")
    if ssv.inside_meta and schema.get("x-kubernetes-embedded-resource") is True:
        yield Problem(f"{path}.x-kubernetes-embedded-resource", "Forbidden", "must not be used inside of resource meta")


def _extensions(schema: Mapping[str, Any], path: str) -> Iterator[Problem]:
    """The ``x-kubernetes-*`` checks at the end of ``ValidateCustomResourceDefinitionOpenAPISchema``."""
    type_ = schema.get("type") or ""
    if schema.get("x-kubernetes-preserve-unknown-fields") is False:
        yield Problem(f"{path}.x-kubernetes-preserve-unknown-fields", "Invalid", "must be true or undefined", "false")
    map_type = schema.get("x-kubernetes-map-type")
    if map_type is not None and type_ != "object":
        message = "must be object if x-kubernetes-map-type is specified"
        yield (
            Problem(f"{path}.type", "Required", message)
            if not type_
            else Problem(f"{path}.type", "Invalid", message, _render(type_))
        )
    if map_type is not None and map_type not in ("atomic", "granular"):
        yield Problem(
            f"{path}.x-kubernetes-map-type", "NotSupported", 'supported values: "atomic", "granular"', _render(map_type)
        )
    list_type = schema.get("x-kubernetes-list-type")
    items = schema.get("items")
    if list_type is not None and type_ != "array":
        message = "must be array if x-kubernetes-list-type is specified"
        yield (
            Problem(f"{path}.type", "Required", message)
            if not type_
            else Problem(f"{path}.type", "Invalid", message, _render(type_))
        )
    elif list_type == "set" and isinstance(items, Mapping):
        item_type = items.get("type")
        if item_type == "array" and items.get("x-kubernetes-list-type") not in (None, "atomic"):
            yield Problem(
                f"{path}.items.x-kubernetes-list-type",
                "Invalid",
                "must be atomic as item of a list with x-kubernetes-list-type=set",
                _render(items.get("x-kubernetes-list-type")),
            )
        elif item_type == "object" and items.get("x-kubernetes-map-type") != "atomic":
            yield Problem(
                f"{path}.items.x-kubernetes-map-type",
                "Invalid",
                "must be atomic as item of a list with x-kubernetes-list-type=set",
                "null",
            )
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        yield Problem(
            f"{path}.x-kubernetes-list-type",
            "NotSupported",
            'supported values: "atomic", "set", "map"',
            _render(list_type),
        )
    keys = _list(schema.get("x-kubernetes-list-map-keys"))
    if keys:
        message = "must be map if x-kubernetes-list-map-keys is non-empty"
        if list_type is None:
            yield Problem(f"{path}.x-kubernetes-list-type", "Required", message)
        elif list_type != "map":
            yield Problem(f"{path}.x-kubernetes-list-type", "Invalid", message, _render(list_type))
    if list_type == "map":
        if not keys:
            yield Problem(
                f"{path}.x-kubernetes-list-map-keys", "Required", "must not be empty if x-kubernetes-list-type is map"
            )
        if items is None:
            yield Problem(f"{path}.items", "Required", "must have a schema if x-kubernetes-list-type is map")
        elif not isinstance(items, Mapping):
            yield Problem(f"{path}.items", "Invalid", "must only have a single schema if x-kubernetes-list-type is map")
        elif items.get("type") != "object":
            yield Problem(
                f"{path}.items.type",
                "Invalid",
                "must be object if parent array's x-kubernetes-list-type is map",
                _render(items.get("type") or ""),
            )
        else:
            item_properties = _map(items.get("properties"))
            seen: set[str] = set()
            for key in keys:
                if key in item_properties:
                    if _map(item_properties[key]).get("type") in ("array", "object"):
                        yield Problem(
                            _key(f"{path}.items.properties", key) + ".type",
                            "Invalid",
                            "must be a scalar type if parent array's x-kubernetes-list-type is map",
                            '"object"',
                        )
                else:
                    yield Problem(
                        f"{path}.x-kubernetes-list-map-keys",
                        "Invalid",
                        "entries must all be names of item properties",
                        _render(keys),
                    )
                if key in seen:
                    yield Problem(
                        f"{path}.x-kubernetes-list-map-keys",
                        "Invalid",
                        "must not contain duplicate entries",
                        _render(keys),
                    )
                seen.add(key)
    # validateMapListKeysMapSet
    if isinstance(items, Mapping) and list_type in ("set", "map"):
        if items.get("nullable") is True:
            yield Problem(
                f"{path}.items.nullable", "Forbidden", f"cannot be nullable when x-kubernetes-list-type is {list_type}"
            )
        if list_type == "map":
            required = set(_list(items.get("required")))
            item_properties = _map(items.get("properties"))
            for key in keys:
                if key not in item_properties:
                    continue
                prop = _map(item_properties[key])
                if key not in required and prop.get("default") is None:
                    yield Problem(
                        _key(f"{path}.items.properties", key) + ".default",
                        "Required",
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required "
                        "property",
                    )
                if prop.get("nullable") is True:
                    yield Problem(
                        _key(f"{path}.items.properties", key) + ".nullable",
                        "Forbidden",
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    )


_NEWLINES: Final = re.compile(r"[\n\r]+")


def _rule_fields(schema: Mapping[str, Any], rules: list[Mapping[str, Any]], path: str) -> Iterator[Problem]:
    """The per-rule field checks of ``x-kubernetes-validations`` (everything but compiling the CEL)."""
    for index, rule in enumerate(rules):
        at = f"{path}.x-kubernetes-validations[{index}]"
        text = str(rule.get("rule") or "")
        message = str(rule.get("message") or "")
        trimmed_rule, trimmed_message = text.strip(), message.strip()
        if not trimmed_rule:
            yield Problem(f"{at}.rule", "Required", "rule is not specified")
        elif message and not trimmed_message:
            yield Problem(f"{at}.message", "Invalid", "must be non-empty if specified", _render(message))
        elif _NEWLINES.search(trimmed_message):
            yield Problem(f"{at}.message", "Invalid", "must not contain line breaks", _render(message))
        elif _NEWLINES.search(trimmed_rule) and not trimmed_message:
            yield Problem(f"{at}.message", "Required", "message must be specified if rule contains line breaks")
        expression = str(rule.get("messageExpression") or "")
        if expression and not expression.strip():
            yield Problem(f"{at}.messageExpression", "Required", "messageExpression must be non-empty if specified")
        reason = rule.get("reason")
        if reason is not None and reason not in _REASONS:
            yield Problem(
                f"{at}.reason",
                "NotSupported",
                "supported values: " + ", ".join(f'"{r}"' for r in _REASONS),
                _render(reason),
            )
        field_path = str(rule.get("fieldPath") or "")
        if field_path and not field_path.strip():
            yield Problem(f"{at}.fieldPath", "Invalid", "must be non-empty if specified", _render(field_path))
        if _NEWLINES.search(field_path):
            yield Problem(f"{at}.fieldPath", "Invalid", "must not contain line breaks", _render(field_path))
        if field_path:
            try:
                _valid_field_path(field_path, schema)
            except ValueError:
                yield Problem(f"{at}.fieldPath", "Invalid", "must be a valid path", _render(field_path))


# -- structural schemas (apiserver/schema: convert.go, validation.go, complete.go) -------------------------------------


def _structural_init_error(schema: Mapping[str, Any]) -> str | None:
    """``NewStructural``'s error for the first unsupported construct anywhere, or None."""
    for node in _all_nodes(schema):
        for key, name in (
            ("id", "id"),
            ("$schema", "schema"),
            ("$ref", "$ref"),
            ("patternProperties", "patternProperties"),
            ("dependencies", "dependencies"),
            ("definitions", "definitions"),
        ):
            if node.get(key):
                return f"OpenAPIV3Schema '{name}' is not supported"
        if node.get("additionalItems") is not None:
            return "OpenAPIV3Schema 'additionalItems' is not supported"
        if isinstance(node.get("items"), list | tuple) and node["items"]:
            return "OpenAPIV3Schema 'items' must be a schema, but is an array"
        if node.get("x-kubernetes-preserve-unknown-fields") is False:
            return "internal error: 'x-kubernetes-preserve-unknown-fields' must be true or undefined"
    return None


def _all_nodes(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield schema
    for key in ("items", "not", "additionalProperties", "additionalItems"):
        sub = schema.get(key)
        if isinstance(sub, Mapping):
            yield from _all_nodes(sub)
        elif key == "items" and isinstance(sub, list | tuple):
            for item in sub:
                yield from _all_nodes(_map(item))
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in _list(schema.get(key)):
            yield from _all_nodes(_map(sub))
    for key in ("properties", "patternProperties", "definitions", "dependencies"):
        for sub in _map(schema.get(key)).values():
            if isinstance(sub, Mapping):
                yield from _all_nodes(sub)


_ROOT, _ITEM, _FIELD = 0, 1, 2
_INT_OR_STRING_ANY_OF: Final = [{"type": "integer"}, {"type": "string"}]


def _validate_structural(schema: Mapping[str, Any], path: str) -> list[Problem]:
    """``ValidateStructural``: invariants and completeness, sorted by their text as upstream does."""
    problems = list(_invariants(schema, _ROOT, path))
    problems += _completeness_value(schema, schema, path, path)
    return sorted(problems, key=str)


def _invariants(s: Mapping[str, Any], level: int, path: str) -> Iterator[Problem]:
    type_ = s.get("type") or ""
    embedded = s.get("x-kubernetes-embedded-resource") is True
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = s.get("x-kubernetes-int-or-string") is True
    items = s.get("items")
    if type_ == "array" and items is None:
        yield Problem(f"{path}.items", "Required", "must be specified")
    if isinstance(items, Mapping):
        yield from _invariants(items, _ITEM, f"{path}.items")
    properties = _map(s.get("properties"))
    for name in sorted(properties):
        yield from _invariants(_map(properties[name]), _FIELD, _key(f"{path}.properties", name))
    additional = s.get("additionalProperties")
    if additional is not None:
        if level == _ROOT:
            yield Problem(f"{path}.additionalProperties", "Forbidden", "must not be used at the root")
        if isinstance(additional, Mapping):
            yield from _invariants(additional, _FIELD, f"{path}.additionalProperties")
    if int_or_string and preserve:
        yield Problem(
            f"{path}.x-kubernetes-preserve-unknown-fields",
            "Invalid",
            "must be false if x-kubernetes-int-or-string is true",
            "true",
        )
    if int_or_string and embedded:
        yield Problem(
            f"{path}.x-kubernetes-embedded-resource",
            "Invalid",
            "must be false if x-kubernetes-int-or-string is true",
            "true",
        )
    skip_any_of = _list(s.get("anyOf")) == _INT_OR_STRING_ANY_OF
    all_of = _list(s.get("allOf"))
    skip_first_all_of = bool(all_of) and _list(_map(all_of[0]).get("anyOf")) == _INT_OR_STRING_ANY_OF
    yield from _value_validation(s, skip_any_of, skip_first_all_of, level, path)
    if embedded and type_ != "object":
        message = "must be object if x-kubernetes-embedded-resource is true"
        yield (
            Problem(f"{path}.type", "Required", message)
            if not type_
            else Problem(f"{path}.type", "Invalid", message, _render(type_))
        )
    elif not type_ and not int_or_string and not preserve:
        where = {
            _ROOT: "at the root",
            _ITEM: "for specified array items",
            _FIELD: "for specified object fields",
        }[level]
        yield Problem(f"{path}.type", "Required", f"must not be empty {where}")
    if embedded and additional is not None:
        yield Problem(
            f"{path}.additionalProperties", "Forbidden", "must not be used if x-kubernetes-embedded-resource is set"
        )
    if level == _ROOT and type_ and type_ != "object":
        yield Problem(f"{path}.type", "Invalid", "must be object at the root", _render(type_))
    check_metadata = level == _ROOT or embedded
    for name in ("kind", "apiVersion"):
        if name in properties and check_metadata and _map(properties[name]).get("type") != "string":
            yield Problem(
                _key(f"{path}.properties", name) + ".type",
                "Invalid",
                "must be string",
                _render(_map(properties[name]).get("type") or ""),
            )
    if "metadata" in properties:
        yield from _metadata_invariants(
            _map(properties["metadata"]), check_metadata, level, f"{path}.properties[metadata]"
        )
    if embedded and not preserve and not properties:
        yield Problem(
            f"{path}.properties",
            "Required",
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        )


#: Fields that NewStructural keeps whenever they are present (pointers, and slices it copies as they are).
_KEPT_WHEN_PRESENT: Final = frozenset(
    {"maximum", "minimum", "maxLength", "minLength", "maxItems", "minItems", "multipleOf", "maxProperties",
     "minProperties", "items", "not", "additionalProperties", "externalDocs", "example", "x-kubernetes-list-type",
     "x-kubernetes-map-type", "required", "x-kubernetes-list-map-keys", "x-kubernetes-validations"}
)  # fmt: skip


def _specified(key: str, value: Any) -> bool:
    """Whether a field survives into the structural schema (what ``reflect.DeepEqual`` against empty would see)."""
    if value is None:
        return False
    if key in _KEPT_WHEN_PRESENT:
        return True
    return _present(value)


def _metadata_invariants(s: Mapping[str, Any], check: bool, level: int, path: str) -> Iterator[Problem]:
    if check and s.get("type") != "object":
        yield Problem(f"{path}.type", "Invalid", "must be object", _render(s.get("type") or ""))
    if level == _ROOT:
        # Only name and generateName may be restricted; type is implied and defaults are reported elsewhere.
        rest = {key: value for key, value in s.items() if key not in ("type", "default") and _specified(key, value)}
        if set(_map(rest.get("properties"))) <= {"name", "generateName"}:
            rest.pop("properties", None)
        if rest:
            yield Problem(
                path,
                "Forbidden",
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            )


_NESTED_FORBIDDEN: Final = (
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)


def _value_validation(
    s: Mapping[str, Any], skip_any_of: bool, skip_first_all_of: bool, level: int, path: str
) -> Iterator[Problem]:
    if not skip_any_of:
        for index, sub in enumerate(_list(s.get("anyOf"))):
            yield from _nested(_map(sub), False, level, f"{path}.anyOf[{index}]")
    for index, sub in enumerate(_list(s.get("allOf"))):
        yield from _nested(_map(sub), skip_first_all_of and index == 0, level, f"{path}.allOf[{index}]")
    for index, sub in enumerate(_list(s.get("oneOf"))):
        yield from _nested(_map(sub), False, level, f"{path}.oneOf[{index}]")
    if isinstance(s.get("not"), Mapping):
        yield from _nested(s["not"], False, level, f"{path}.not")
    pattern = s.get("pattern")
    if pattern and (error := _regexp_error(pattern)):
        yield Problem(
            f"{path}.pattern",
            "Invalid",
            f"must be a valid regular expression, but isn't: {error}",
            _render(pattern),
        )


def _nested(v: Mapping[str, Any], skip_any_of: bool, level: int, path: str) -> Iterator[Problem]:
    """``validateNestedValueValidation`` for one ``anyOf``/``allOf``/``oneOf``/``not`` entry."""
    yield from _value_validation(v, skip_any_of, False, level, path)
    if isinstance(v.get("items"), Mapping):
        yield from _nested(v["items"], False, level, f"{path}.items")
    properties = _map(v.get("properties"))
    for name in sorted(properties):
        yield from _nested(_map(properties[name]), False, _FIELD, _key(f"{path}.properties", name))
    for key, message in _NESTED_FORBIDDEN:
        value = v.get(key)
        if key == "additionalProperties":
            present = value is True or isinstance(value, Mapping)
        elif key in ("default", "x-kubernetes-list-type", "x-kubernetes-map-type"):
            present = value is not None
        else:
            present = _present(value)
        if present:
            yield Problem(f"{path}.{key}", "Forbidden", message)
    if "metadata" in properties:
        yield Problem(f"{path}.properties[metadata]", "Forbidden", "must not be specified in a nested context")


def _completeness_value(v: Mapping[str, Any], s: Mapping[str, Any] | None, s_path: str, v_path: str) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(v.get("not"), Mapping):
        problems += _completeness_nested(v["not"], s, s_path, f"{v_path}.not")
    for keyword in ("allOf", "anyOf", "oneOf"):
        for index, sub in enumerate(_list(v.get(keyword))):
            problems += _completeness_nested(_map(sub), s, s_path, f"{v_path}.{keyword}[{index}]")
    return problems


def _completeness_nested(v: Mapping[str, Any], s: Mapping[str, Any] | None, s_path: str, v_path: str) -> list[Problem]:
    if s is None:
        return [Problem(s_path, "Required", f"because it is defined in {v_path}")]
    problems = _completeness_value(v, s, s_path, v_path)
    if isinstance(v.get("items"), Mapping):
        items = s.get("items")
        problems += _completeness_nested(
            v["items"], items if isinstance(items, Mapping) else None, f"{s_path}.items", f"{v_path}.items"
        )
    s_properties = _map(s.get("properties"))
    for name in sorted(_map(v.get("properties"))):
        v_sub = _map(v["properties"][name])
        if name not in s_properties:
            problems.append(
                Problem(
                    _key(f"{s_path}.properties", name),
                    "Required",
                    f"because it is defined in {_key(v_path + '.properties', name)}",
                )
            )
        else:
            problems += _completeness_nested(
                v_sub, _map(s_properties[name]), _key(f"{s_path}.properties", name), _key(f"{v_path}.properties", name)
            )
    return problems


_GO_REGEXP_UNSUPPORTED: Final = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[1-9]|\(\?P=|\\[ACZ]|\(\?[a-zA-Z]*[xaLu]")


def _regexp_error(pattern: str) -> str | None:
    """Whether Go's RE2 ``regexp.Compile`` would refuse ``pattern`` (Python's ``re`` plus RE2's missing features)."""
    unsupported = _GO_REGEXP_UNSUPPORTED.search(pattern)
    if unsupported:
        return f"error parsing regexp: invalid or unsupported Perl syntax: `{unsupported.group(0)}`"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"error parsing regexp: {exc}"
    return None


# -- defaults (apiserver/schema/defaulting/validation.go, pruning/algorithm.go) ----------------------------------------


def _validate_defaults(schema: Mapping[str, Any], path: str, engine: _CelEngine | None) -> list[Problem]:
    """``ValidateDefaults`` for a resource root: each default is pruned-clean and valid against its schema."""
    problems: list[Problem] = []

    def visit(s: Mapping[str, Any], at: str, inside_meta: bool, is_root_schema: bool, meta_field: str = "") -> None:
        if s.get("x-kubernetes-embedded-resource") is True:
            inside_meta = False
        if "default" in s and s["default"] is not None:
            default = s["default"]
            if not inside_meta:
                pruned = _pruned(default, s, s.get("x-kubernetes-embedded-resource") is True)
                if pruned != default:
                    problems.append(
                        Problem(f"{at}.default", "Invalid", "must not have unknown fields", _render(default))
                    )
            meta_problems = (
                _meta_default_problems(default, meta_field, f"{at}.default")
                if inside_meta
                else _embedded_meta_problems(default, s, f"{at}.default")
            )
            if meta_problems:
                problems.extend(meta_problems)
            elif value_problems := _value_problems(default, s, f"{at}.default", ""):
                problems.extend(value_problems)
            elif engine is not None:
                problems.extend(engine.default_problems(s, default, f"{at}.default", is_root_schema))
        if isinstance(s.get("items"), Mapping):
            visit(s["items"], f"{at}.items", inside_meta, False)
        properties = _map(s.get("properties"))
        for name in sorted(properties):
            enters_meta = (is_root_schema or s.get("x-kubernetes-embedded-resource") is True) and name in _META_FIELDS
            sub = _map(properties[name])
            visit(sub, _key(f"{at}.properties", name), inside_meta or enters_meta, False, name if enters_meta else "")

    # ValidateDefaults treats the resource root as an embedded resource (apiVersion/kind/metadata kept and checked).
    visit({**schema, "x-kubernetes-embedded-resource": True}, path, False, True)
    return problems


def _pruned(value: Any, s: Mapping[str, Any] | None, is_resource_root: bool) -> Any:
    """``pruning.Prune`` on a copy (``isResourceRoot``: keep apiVersion, kind and metadata)."""
    if is_resource_root:
        s = {**(s or {}), "x-kubernetes-embedded-resource": True}
    return _prune(value, s)


def _prune(value: Any, s: Mapping[str, Any] | None) -> Any:
    if s is not None and s.get("x-kubernetes-preserve-unknown-fields") is True:
        return _skip_prune(value, s)
    if isinstance(value, Mapping):
        if s is None:
            return {}
        out = {}
        properties = _map(s.get("properties"))
        additional = s.get("additionalProperties")
        for key, item in value.items():
            if s.get("x-kubernetes-embedded-resource") is True and key in _META_FIELDS:
                out[key] = item
            elif key in properties:
                out[key] = _prune(item, _map(properties[key]))
            elif additional is not None and additional is not False:
                out[key] = _prune(item, additional if isinstance(additional, Mapping) else None)
        return out
    if isinstance(value, list | tuple):
        items = s.get("items") if s is not None else None
        return [_prune(item, items if isinstance(items, Mapping) else None) for item in value]
    return value


def _skip_prune(value: Any, s: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        out = {}
        properties = _map(s.get("properties"))
        additional = s.get("additionalProperties")
        for key, item in value.items():
            if s.get("x-kubernetes-embedded-resource") is True and key in _META_FIELDS:
                out[key] = item
            elif key in properties:
                out[key] = _prune(item, _map(properties[key]))
            elif additional is not None and additional is not False:
                out[key] = _prune(item, additional if isinstance(additional, Mapping) else None)
            else:
                out[key] = item
        return out
    if isinstance(value, list | tuple):
        items = s.get("items")
        return [_skip_prune(item, items) if isinstance(items, Mapping) else item for item in value]
    return value


def _embedded_meta_problems(value: Any, s: Mapping[str, Any], path: str) -> list[Problem]:
    """The part of ``objectmeta.Validate`` implemented for defaults: an embedded resource names its apiVersion and
    kind (required, non-empty strings, a kind that is a DNS-1035 label up to case)."""
    if s.get("x-kubernetes-embedded-resource") is not True or not isinstance(value, Mapping):
        return []
    problems = [Problem(f"{path}.{key}", "Required") for key in ("apiVersion", "kind") if key not in value]
    for key in ("apiVersion", "kind"):
        if key not in value:
            continue
        item = value[key]
        if not isinstance(item, str):
            problems.append(Problem(f"{path}.{key}", "Invalid", "must be a string", _render(item)))
        elif not item:
            problems.append(Problem(f"{path}.{key}", "Invalid", "must not be empty", '""'))
        elif key == "kind" and (errors := _dns1035_label_errors(item.lower())):
            problems.append(
                Problem(
                    f"{path}.kind",
                    "Invalid",
                    "may have mixed case, but should otherwise match: " + ",".join(errors),
                    _render(item),
                )
            )
    return problems


def _meta_default_problems(value: Any, meta_field: str, path: str) -> list[Problem]:
    """The part of ``objectmeta.Coerce``/``Validate`` implemented for a default of a resource's own apiVersion,
    kind or metadata: the types, non-empty values and a kind that is a DNS-1035 label up to case."""
    if not meta_field:
        return []
    prefix = "must result in valid metadata: "
    if meta_field == "metadata":
        if not isinstance(value, Mapping):
            return [Problem(path, "Invalid", f"{prefix}metadata: Invalid value: {_render(value)}: must be an object")]
        return []
    if not isinstance(value, str):
        detail = f"{prefix}{meta_field}: Invalid value: {_render(value)}: must be a string"
    elif not value:
        detail = f'{prefix}{meta_field}: Invalid value: "": must not be empty'
    elif meta_field == "kind" and (errors := _dns1035_label_errors(value.lower())):
        detail = f"{prefix}kind: Invalid value: {_render(value)}: may have mixed case, but should otherwise match: "
        detail += ",".join(errors)
    else:
        return []
    return [Problem(path, "Invalid", detail, _render(value))]


_JSON_TYPE_NAMES: Final = {
    "bool": "boolean",
    "string": "string",
    "number": "number",
    "array": "array",
    "object": "object",
    "value": "null",
}


def _value_type(value: Any) -> str:
    if value is None:
        return "null"
    if _is_int(value) and not isinstance(value, float):
        return "integer"
    return _JSON_TYPE_NAMES[_json_kind(value)]


def _value_problems(value: Any, s: Mapping[str, Any], path: str, name: str) -> list[Problem]:
    """kube-openapi's schema validation of one value (``ValidateCustomResource``), as field errors under ``path``."""
    at = _child(path, name) if name else path
    subject = f"{name} in body"  # kube-openapi names the root value "", hence " in body ..."
    problems: list[Problem] = []
    type_ = s.get("type") or ""
    # Defaults are validated against the structural schema's kube-openapi form, where int-or-string is only a vendor
    # extension: ``type`` alone decides (none: any type).
    allowed = [type_] if type_ else []
    if value is None:
        if s.get("nullable") is True or not allowed:
            return []
        return [Problem(at, "TypeInvalid", f'{subject} must be of type {allowed[0]}: "null"', '"null"')]
    actual = _value_type(value)
    if allowed and not any(
        t == actual
        or (t == "number" and actual == "integer")
        or (t == "integer" and _is_int(value) and actual != "string")
        for t in allowed
    ):
        expected = ",".join(allowed)
        problems.append(
            Problem(at, "TypeInvalid", f'{subject} must be of type {expected}: "{actual}"', _render(actual))
        )
    enum = s.get("enum")
    if isinstance(enum, list | tuple) and not any(_json_equal(value, option) for option in enum):
        supported = ", ".join(json.dumps(o if isinstance(o, str) else _render(o), ensure_ascii=False) for o in enum)
        problems.append(Problem(at, "NotSupported", f"supported values: {supported}", _render(value)))
    if isinstance(value, str):
        length = len(value)
        if s.get("maxLength") is not None and length > s["maxLength"]:
            problems.append(Problem(at, "TooLong", f"may not be more than {int(s['maxLength'])} bytes", _render(value)))
        if s.get("minLength") is not None and length < s["minLength"]:
            problems.append(
                Problem(at, "Invalid", f"{subject} should be at least {int(s['minLength'])} chars long", _render(value))
            )
        pattern = s.get("pattern")
        if pattern and _regexp_error(pattern) is None and not re.search(pattern, value):
            problems.append(Problem(at, "Invalid", f"{subject} should match '{pattern}'", _render(value)))
        format_ = str(s.get("format") or "")
        if type_ in ("", "string") and not _format_holds(format_, value):
            problems.append(
                Problem(at, "TypeInvalid", f'{subject} must be of type {format_}: "{value}"', _render(value))
            )
    if _is_number(value):
        problems += _number_problems(value, s, at, subject)
    if isinstance(value, list | tuple):
        if s.get("maxItems") is not None and len(value) > s["maxItems"]:
            problems.append(Problem(at, "TooMany", f"must have at most {int(s['maxItems'])} items", str(len(value))))
        if s.get("minItems") is not None and len(value) < s["minItems"]:
            problems.append(
                Problem(at, "Invalid", f"{subject} should have at least {int(s['minItems'])} items", str(len(value)))
            )
        if isinstance(s.get("items"), Mapping):
            for index, item in enumerate(value):
                problems += _value_problems(item, s["items"], path, f"{name}[{index}]")
    if isinstance(value, Mapping):
        for key in _list(s.get("required")):
            if key not in value:
                problems.append(Problem(_child(at, key), "Required"))
        if s.get("maxProperties") is not None and len(value) > s["maxProperties"]:
            problems.append(
                Problem(at, "TooMany", f"must have at most {int(s['maxProperties'])} items", str(len(value)))
            )
        if s.get("minProperties") is not None and len(value) < s["minProperties"]:
            problems.append(
                Problem(
                    at,
                    "Invalid",
                    f"{subject} should have at least {int(s['minProperties'])} properties",
                    str(len(value)),
                )
            )
        properties = _map(s.get("properties"))
        additional = s.get("additionalProperties")
        for key, item in value.items():
            sub_name = _child(name, str(key))
            if key in properties:
                problems += _value_problems(item, _map(properties[key]), path, sub_name)
            elif isinstance(additional, Mapping):
                problems += _value_problems(item, additional, path, sub_name)
            elif additional is False:
                problems.append(
                    Problem(_child(path, sub_name), "Invalid", f"{sub_name} in body is a forbidden property")
                )
    problems += _combinator_problems(value, s, at, path, name, subject)
    return problems


_FORMAT_PATTERNS: Final[dict[str, str]] = {
    "bsonobjectid": r"^[0-9a-fA-F]{24}$",
    "uuid": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid3": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "uuid4": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
    "uuid5": r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
    "ssn": r"^\d{3}[- ]?\d{2}[- ]?\d{4}$",
    "hexcolor": r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$",
    "mac": r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$|^([0-9a-fA-F]{4}\.){2}[0-9a-fA-F]{4}$",
    "date": r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$",
    "datetime": r"(?i)^\d{4}-\d{2}-\d{2}t\d{2}:\d{2}:\d{2}(\.\d+)?(z|[+-]\d{2}:\d{2})$",
    "duration": r"^[-+]?(\d+(\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)(\d+(\.\d*)?(ns|us|\u00b5s|ms|s|m|h))*$"
    r"|^\d+\s*(ns|nano|nanos|nanosecond|nanoseconds|us|micro|micros|microsecond|microseconds|ms|milli|millis|"
    r"millisecond|milliseconds|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|"
    r"w|wk|wks|week|weeks)$",
    "hostname": r"^([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?\.?$",
    "email": r"^[^@\s]+@[^@\s]+$",
    "byte": r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$",
    "k8s-short-name": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
    "k8s-long-name": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}


def _format_holds(format_: str, value: str) -> bool:
    """Whether a string default satisfies its ``format`` (the formats CRDs support; others are not checked, as
    the server strips them)."""
    import ipaddress

    normalized = format_.replace("-", "") if not format_.startswith("k8s-") else format_
    if normalized in ("ipv4", "ipv6", "cidr"):
        try:
            if normalized == "cidr":
                ipaddress.ip_network(value, strict=False)
                return "/" in value
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address.version == (4 if normalized == "ipv4" else 6)
    if normalized == "uri":
        return bool(re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|/)", value))
    if normalized == "k8s-long-name" and len(value) > 253:
        return False
    pattern = _FORMAT_PATTERNS.get(normalized)
    return pattern is None or re.match(pattern, value) is not None


def _number_problems(value: float, s: Mapping[str, Any], at: str, subject: str) -> list[Problem]:
    problems = []
    maximum, minimum = s.get("maximum"), s.get("minimum")
    if maximum is not None:
        exclusive = s.get("exclusiveMaximum") is True
        if value > maximum or (exclusive and value == maximum):
            word = "less than" if exclusive else "less than or equal to"
            problems.append(Problem(at, "Invalid", f"{subject} should be {word} {_render(maximum)}", _render(value)))
    if minimum is not None:
        exclusive = s.get("exclusiveMinimum") is True
        if value < minimum or (exclusive and value == minimum):
            word = "greater than" if exclusive else "greater than or equal to"
            problems.append(Problem(at, "Invalid", f"{subject} should be {word} {_render(minimum)}", _render(value)))
    factor = s.get("multipleOf")
    if factor and _is_number(factor) and factor > 0:
        quotient = value / factor
        if not math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9):
            problems.append(
                Problem(at, "Invalid", f"{subject} should be a multiple of {_render(factor)}", _render(value))
            )
    return problems


def _combinator_problems(
    value: Any, s: Mapping[str, Any], at: str, path: str, name: str, subject: str
) -> list[Problem]:
    """kube-openapi's allOf/anyOf/oneOf/not: the combinator's own error and the errors of its failing branches."""
    problems: list[Problem] = []
    quoted = json.dumps(name)
    any_of = [_value_problems(value, _map(sub), path, name) for sub in _list(s.get("anyOf"))]
    if any_of and all(any_of):
        problems.append(Problem(at, "Invalid", f"{quoted} must validate at least one schema (anyOf)", '""'))
        best_any: list[Problem] = min(any_of, key=len)
        problems.extend(best_any)
    one_of = [_value_problems(value, _map(sub), path, name) for sub in _list(s.get("oneOf"))]
    valid = sum(1 for result in one_of if not result)
    if one_of and valid != 1:
        found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
        problems.append(
            Problem(at, "Invalid", f"{quoted} must validate one and only one schema (oneOf). {found}", '""')
        )
        if valid == 0:
            best_one: list[Problem] = min(one_of, key=len)
            problems.extend(best_one)
    all_of = [_value_problems(value, _map(sub), path, name) for sub in _list(s.get("allOf"))]
    for result in all_of:
        problems += result
    if any(all_of):
        none = ". None validated" if all(all_of) else ""
        problems.append(Problem(at, "Invalid", f"{quoted} must validate all the schemas (allOf){none}", '""'))
    if isinstance(s.get("not"), Mapping) and not _value_problems(value, s["not"], path, name):
        problems.append(Problem(at, "Invalid", f"{quoted} must not validate the schema (not)", '""'))
    return problems


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


# -- CEL: declarations from the schema (apiserver/pkg/cel/common/schemas.go) ------------------------------------------

_RESERVED_SYMBOLS: Final = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)
#: Identifiers the CEL parser refuses outside field selection (cel-go parser.reservedIds).
_RESERVED_IDS: Final = _RESERVED_SYMBOLS
_MAX_DURATION_SIZE_JSON: Final = 32
_MAX_DATETIME_SIZE_JSON: Final = 32
_MIN_DURATION_SIZE_JSON: Final = 3
_JSON_DATE_SIZE: Final = 12
_MIN_DATETIME_SIZE_JSON: Final = 21


@dataclass(eq=False)
class _Ty:
    """A CEL type; from the schema it also carries the ``DeclType`` bounds (max elements, min serialized size)."""

    kind: str  # bool int uint double string bytes duration timestamp null type list map object dyn unknown opaque
    elem: _Ty | None = None  # list items, map values
    key: _Ty | None = None  # map keys
    fields: dict[str, _Ty] | None = None  # object fields by escaped name
    max_elements: int = 0
    min_size: int = 0
    name: str = ""  # opaque type name

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list({self.elem})"
        if self.kind == "map":
            return f"map({self.key}, {self.elem})"
        if self.kind == "object":
            return self.name or "object"
        if self.kind == "opaque":
            return self.name
        if self.kind == "null":
            return "null_type"
        return self.kind


def _simple(kind: str, min_size: int = 0, max_elements: int = 0, name: str = "") -> _Ty:
    return _Ty(kind, max_elements=max_elements, min_size=min_size, name=name)


_BOOL: Final = _simple("bool", 4)
_INT: Final = _simple("int", 1)
_UINT: Final = _simple("uint", 1)
_DOUBLE: Final = _simple("double", 1)
_STRING: Final = _simple("string", 2)
_BYTES: Final = _simple("bytes", 2)
_DURATION: Final = _simple("duration", _MIN_DURATION_SIZE_JSON)
_TIMESTAMP: Final = _simple("timestamp", _JSON_DATE_SIZE)
_NULL: Final = _simple("null")
_TYPE: Final = _simple("type")
_DYN: Final = _simple("dyn")
_UNKNOWN: Final = _simple("unknown")


def _list_of(elem: _Ty) -> _Ty:
    return _Ty("list", elem=elem, min_size=2)


def _map_of(key: _Ty, elem: _Ty) -> _Ty:
    return _Ty("map", elem=elem, key=key, min_size=2)


def _escape(name: str) -> str | None:
    """``cel.Escape``: the CEL field name of a property, or None when it cannot be escaped."""
    if not name or name[0].isdigit():
        return None
    if name in _RESERVED_SYMBOLS:
        return f"__{name}__"
    out = []
    index = 0
    while index < len(name):
        char = name[index]
        if name.startswith("__", index):
            out.append("__underscores__")
            index += 2
            continue
        if char == ".":
            out.append("__dot__")
        elif char == "-":
            out.append("__dash__")
        elif char == "/":
            out.append("__slash__")
        elif char.isascii() and (char.isalnum() or char == "_"):
            out.append(char)
        else:
            return None
        index += 1
    return "".join(out)


def _zero_if_negative(value: Any) -> int:
    return max(int(value), 0)


def _string_max(s: Mapping[str, Any]) -> int:
    """``estimateMaxStringLengthPerRequest``."""
    if s.get("x-kubernetes-int-or-string") is True:
        return _MAX_REQUEST_SIZE - 2
    return {"duration": _MAX_DURATION_SIZE_JSON, "date": _JSON_DATE_SIZE, "date-time": _MAX_DATETIME_SIZE_JSON}.get(
        str(s.get("format") or ""), _MAX_REQUEST_SIZE - 2
    )


def _with_type_and_object_meta(s: Mapping[str, Any]) -> Mapping[str, Any]:
    """``model.WithTypeAndObjectMeta``: apiVersion, kind, metadata.name and metadata.generateName always exist."""
    properties = _map(s.get("properties"))
    metadata = _map(properties.get("metadata"))
    meta_properties = _map(metadata.get("properties"))
    if (
        _map(properties.get("kind")).get("type") == "string"
        and _map(properties.get("apiVersion")).get("type") == "string"
        and metadata.get("type") == "object"
        and _map(meta_properties.get("name")).get("type") == "string"
        and _map(meta_properties.get("generateName")).get("type") == "string"
    ):
        return s

    def capped(existing: Mapping[str, Any], limit: int) -> dict[str, Any]:
        bound = existing.get("maxLength")
        return {"type": "string", "maxLength": min(int(bound), limit) if bound is not None else limit}

    return {
        **s,
        "properties": {
            **properties,
            "kind": {"type": "string"},
            "apiVersion": {"type": "string"},
            "metadata": {
                "type": "object",
                "properties": {
                    "name": capped(_map(meta_properties.get("name")), 253),
                    "generateName": capped(_map(meta_properties.get("generateName")), 252),
                },
            },
        },
    }


def _decl(s: Mapping[str, Any] | None, is_resource_root: bool) -> _Ty | None:
    """``SchemaDeclType``: the CEL type of a schema node, with its size bounds (None: not visible to CEL)."""
    if s is None:
        return None
    if s.get("x-kubernetes-int-or-string") is True:
        bound = s.get("maxLength")
        return _simple("dyn", 1, _zero_if_negative(bound) * 4 if bound is not None else _string_max(s))
    if is_resource_root:
        s = _with_type_and_object_meta(s)
    type_ = s.get("type")
    if type_ == "array":
        items = s.get("items")
        if not isinstance(items, Mapping):
            return None
        elem = _decl(items, items.get("x-kubernetes-embedded-resource") is True)
        if elem is None:
            return None
        bound = s.get("maxItems")
        count = _zero_if_negative(bound) if bound is not None else (_MAX_REQUEST_SIZE - 2) // (elem.min_size + 1)
        return _Ty("list", elem=elem, max_elements=count, min_size=2)
    if type_ == "object":
        additional = s.get("additionalProperties")
        if isinstance(additional, Mapping):
            elem = _decl(additional, additional.get("x-kubernetes-embedded-resource") is True)
            if elem is None:
                return None
            bound = s.get("maxProperties")
            count = _zero_if_negative(bound) if bound is not None else (_MAX_REQUEST_SIZE - 2) // (elem.min_size + 6)
            return _Ty("map", elem=elem, key=_STRING, max_elements=count, min_size=2)
        required = set(_list(s.get("required")))
        fields: dict[str, _Ty] = {}
        min_size = 2
        for name, prop in _map(s.get("properties")).items():
            prop = _map(prop)
            field_type = _decl(prop, prop.get("x-kubernetes-embedded-resource") is True)
            if field_type is None:
                continue
            escaped = _escape(name)
            if escaped is not None:
                fields[escaped] = field_type
            if name in required and prop.get("default") is None:
                min_size += len(name) + field_type.min_size + 4
        return _Ty("object", fields=fields, min_size=min_size, name="object")
    if type_ == "string":
        format_ = s.get("format")
        bound = s.get("maxLength")
        if format_ == "byte":
            return _simple("bytes", 2, _zero_if_negative(bound) if bound is not None else _string_max(s))
        if format_ == "duration":
            return _simple("duration", _MIN_DURATION_SIZE_JSON, _string_max(s))
        if format_ == "date":
            return _simple("timestamp", _JSON_DATE_SIZE, _string_max(s))
        if format_ == "date-time":
            return _simple("timestamp", _MIN_DATETIME_SIZE_JSON, _string_max(s))
        if bound is not None:
            count = _zero_if_negative(bound) * 4
        elif _list(s.get("enum")):
            count = max((len(v) for v in _list(s.get("enum")) if isinstance(v, str)), default=0)
        else:
            count = _string_max(s)
        return _simple("string", 2, count)
    if type_ == "boolean":
        return _BOOL
    if type_ == "number":
        return _DOUBLE
    if type_ == "integer":
        return _INT
    return None


# -- CEL: the expression tree ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Expr:
    id: int
    line: int
    column: int


@dataclass(eq=False)
class _Lit(_Expr):
    type: _Ty
    size: int  # CEL size(): runes of a string, bytes of bytes, 1 for scalars
    value: Any = None


@dataclass(eq=False)
class _Ident(_Expr):
    name: str


@dataclass(eq=False)
class _Select(_Expr):
    operand: _Expr
    field: str
    test_only: bool = False


@dataclass(eq=False)
class _Call(_Expr):
    function: str
    args: list[_Expr]
    target: _Expr | None = None


@dataclass(eq=False)
class _ListLit(_Expr):
    elements: list[_Expr]


@dataclass(eq=False)
class _MapLit(_Expr):
    entries: list[tuple[_Expr, _Expr]]


@dataclass(eq=False)
class _Struct(_Expr):
    name: str
    values: list[_Expr]


@dataclass(eq=False)
class _Comp(_Expr):
    iter_var: str
    iter_var2: str
    iter_range: _Expr
    accu_var: str
    accu_init: _Expr
    loop_condition: _Expr
    loop_step: _Expr
    result: _Expr


class CelCompileError(Exception):
    """A CEL expression that the API server's compiler would refuse."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


_ACCU: Final = "@result"
_BINARY: Final = {
    "relation_lt": "_<_",
    "relation_le": "_<=_",
    "relation_gt": "_>_",
    "relation_ge": "_>=_",
    "relation_eq": "_==_",
    "relation_ne": "_!=_",
    "relation_in": "@in",
    "addition_add": "_+_",
    "addition_sub": "_-_",
    "multiplication_mul": "_*_",
    "multiplication_div": "_/_",
    "multiplication_mod": "_%_",
}
_ESCAPES: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unquote(text: str) -> tuple[str, bool]:
    """A CEL string/bytes literal's content (escapes decoded) and whether it is bytes."""
    is_bytes = text[:1] in "bB"
    if is_bytes:
        text = text[1:]
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = text[:3] if text[:3] in ('"""', "'''") else text[:1]
    body = text[len(quote) : len(text) - len(quote)]
    if raw:
        return body, is_bytes

    def replace(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape[0] in _ESCAPES:
            return _ESCAPES[escape[0]]
        if escape[0] in "xuU":
            return chr(int(escape[1:], 16))
        if escape[0].isdigit():
            return chr(int(escape, 8))
        return escape

    decoded = re.sub(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", replace, body, flags=re.S)
    return decoded, is_bytes


def _int_literal(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("-")
    return sign * (int(digits[2:], 16) if digits[:2].lower() == "0x" else int(digits, 10))


class _TreeBuilder:
    """Turns cel-python's lark parse tree into cel-go's expression shape, expanding macros as cel-go does."""

    def __init__(self) -> None:
        self.next_id = 0

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def pos(self, tree: Any) -> tuple[int, int]:
        meta = getattr(tree, "meta", None)
        line = getattr(meta, "line", None) or getattr(tree, "line", None) or 1
        column = getattr(meta, "column", None) or getattr(tree, "column", None) or 1
        return int(line), int(column)

    def call(self, tree: Any, function: str, args: list[_Expr], target: _Expr | None = None) -> _Call:
        line, column = self.pos(tree)
        return _Call(self.new_id(), line, column, function, args, target)

    def ident(self, tree: Any, name: str) -> _Ident:
        line, column = self.pos(tree)
        return _Ident(self.new_id(), line, column, name)

    def build(self, tree: Any) -> _Expr:
        rule = str(tree.data)
        children = list(tree.children)
        if rule == "expr":
            if len(children) == 1:
                return self.build(children[0])
            return self.call(tree, "_?_:_", [self.build(child) for child in children])
        if rule in ("conditionalor", "conditionaland"):
            if len(children) == 1:
                return self.build(children[0])
            op = "_||_" if rule == "conditionalor" else "_&&_"
            return self.call(tree, op, [self.build(children[0]), self.build(children[1])])
        if rule in ("relation", "addition", "multiplication"):
            if len(children) == 1:
                return self.build(children[0])
            operator = children[0]
            return self.call(
                tree, _BINARY[str(operator.data)], [self.build(operator.children[0]), self.build(children[1])]
            )
        if rule == "unary":
            if len(children) == 1:
                return self.build(children[0])
            op = "!_" if str(children[0].data) == "unary_not" else "-_"
            return self.call(tree, op, [self.build(children[1])])
        if rule in ("member", "primary"):
            return self.build(children[0])
        if rule == "member_dot":
            name = str(children[1])
            if name in ("true", "false", "null", "in"):
                line, column = self.pos(children[1])
                raise CelCompileError(f"Syntax error: no viable alternative at input '.{name}'", line, column)
            line, column = self.pos(children[1])
            return _Select(self.new_id(), line, max(column - 1, 1), self.build(children[0]), name)  # at the '.'

        if rule == "member_dot_arg":
            target = self.build(children[0])
            name = str(children[1])
            args = [self.build(child) for child in children[2].children] if len(children) > 2 else []
            return self.method(tree, target, name, args)
        if rule == "member_index":
            return self.call(tree, "_[_]", [self.build(children[0]), self.build(children[1])])
        if rule == "member_object":
            line, column = self.pos(tree)
            values = []
            if len(children) > 1:
                values = [self.build(child) for child in children[1].children if hasattr(child, "data")]
            return _Struct(self.new_id(), line, column, "", values)
        if rule == "ident":
            name = str(children[0])
            if name in _RESERVED_IDS:
                line, column = self.pos(children[0])
                raise CelCompileError(f"reserved identifier: {name}", line, column)
            return self.ident(tree, name)
        if rule == "dot_ident":
            return self.ident(tree, "." + str(children[0]))
        if rule in ("ident_arg", "dot_ident_arg"):
            name = ("." if rule == "dot_ident_arg" else "") + str(children[0])
            if name in _RESERVED_IDS:
                line, column = self.pos(children[0])
                raise CelCompileError(f"reserved identifier: {name}", line, column)
            args = [self.build(child) for child in children[1].children] if len(children) > 1 else []
            if name == "has":
                line, column = self.pos(children[0])
                column += len(name)  # cel-go places the macro at its '('
                if len(args) != 1 or not isinstance(args[0], _Select):
                    raise CelCompileError("invalid argument to has() macro", line, column)
                args[0].test_only = True
                args[0].line, args[0].column = line, column
                return args[0]
            return self.call(tree, name, args)
        if rule == "paren_expr":
            return self.build(children[0])
        if rule == "list_lit":
            line, column = self.pos(tree)
            elements = [self.build(child) for child in children[0].children] if children else []
            return _ListLit(self.new_id(), line, column, elements)
        if rule == "map_lit":
            line, column = self.pos(tree)
            values = [self.build(child) for child in children[0].children] if children else []
            return _MapLit(self.new_id(), line, column, list(zip(values[::2], values[1::2], strict=True)))
        if rule == "literal":
            return self.literal(tree, children[0])
        raise CelCompileError(f"Syntax error: unexpected {rule}", *self.pos(tree))

    def literal(self, tree: Any, token: Any) -> _Lit:
        line, column = self.pos(tree)
        kind, text = str(token.type), str(token)
        if kind in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
            value, is_bytes = _unquote(text)
            if is_bytes:
                return _Lit(self.new_id(), line, column, _BYTES, len(value.encode("latin-1", "replace")), value)
            return _Lit(self.new_id(), line, column, _STRING, len(value), value)
        if kind == "BOOL_LIT":
            return _Lit(self.new_id(), line, column, _BOOL, 1, text == "true")
        if kind == "NULL_LIT":
            return _Lit(self.new_id(), line, column, _NULL, 1, None)
        if kind == "UINT_LIT":
            return _Lit(self.new_id(), line, column, _UINT, 1, _int_literal(text[:-1]))
        if kind == "FLOAT_LIT":
            return _Lit(self.new_id(), line, column, _DOUBLE, 1, float(text))
        return _Lit(self.new_id(), line, column, _INT, 1, _int_literal(text))

    def method(self, tree: Any, target: _Expr, name: str, args: list[_Expr]) -> _Expr:
        line, column = self.pos(tree)
        if name in ("all", "exists", "exists_one", "map", "filter") and args:
            if not isinstance(args[0], _Ident):
                raise CelCompileError("argument must be a simple name", line, column)
            var = args[0].name
            if name in ("all", "exists", "exists_one") and len(args) == 2:
                return self.quantifier(tree, name, target, var, "", args[1])
            if name in ("all", "exists", "exists_one") and len(args) == 3 and isinstance(args[1], _Ident):
                return self.quantifier(tree, name, target, var, args[1].name, args[2])
            if name == "map" and len(args) in (2, 3):
                transform = args[-1]
                step: _Expr = self.call(
                    tree, "_+_", [self.accu(tree), _ListLit(self.new_id(), line, column, [transform])]
                )
                if len(args) == 3:
                    step = self.call(tree, "_?_:_", [args[1], step, self.accu(tree)])
                return self.comprehension(tree, target, var, "", _ListLit(self.new_id(), line, column, []), step)
            if name == "filter" and len(args) == 2:
                element = self.ident(tree, var)
                step = self.call(tree, "_+_", [self.accu(tree), _ListLit(self.new_id(), line, column, [element])])
                step = self.call(tree, "_?_:_", [args[1], step, self.accu(tree)])
                return self.comprehension(tree, target, var, "", _ListLit(self.new_id(), line, column, []), step)
        if name in ("transformList", "transformMap", "transformMapEntry") and len(args) in (3, 4):
            if not isinstance(args[0], _Ident) or not isinstance(args[1], _Ident):
                raise CelCompileError("argument must be a simple name", line, column)
            transform = args[-1]
            init: _Expr
            if name == "transformList":
                init = _ListLit(self.new_id(), line, column, [])
                step = self.call(tree, "_+_", [self.accu(tree), _ListLit(self.new_id(), line, column, [transform])])
            else:
                init = _MapLit(self.new_id(), line, column, [])
                step = self.call(tree, "cel.@mapInsert", [self.accu(tree), args[0], transform])
            if len(args) == 4:
                step = self.call(tree, "_?_:_", [args[2], step, self.accu(tree)])
            return self.comprehension(tree, target, args[0].name, args[1].name, init, step)
        if isinstance(target, _Ident) and target.name in _NAMESPACES:
            return self.call(tree, f"{target.name}.{name}", args)
        return self.call(tree, name, args, target)

    def accu(self, tree: Any) -> _Ident:
        return self.ident(tree, _ACCU)

    def comprehension(self, tree: Any, target: _Expr, var: str, var2: str, init: _Expr, step: _Expr) -> _Comp:
        line, column = self.pos(tree)
        true = _Lit(self.new_id(), line, column, _BOOL, 1, True)
        return _Comp(self.new_id(), line, column, var, var2, target, _ACCU, init, true, step, self.accu(tree))

    def quantifier(self, tree: Any, kind: str, target: _Expr, var: str, var2: str, predicate: _Expr) -> _Comp:
        line, column = self.pos(tree)
        init: _Expr
        condition: _Expr
        result: _Expr
        if kind == "all":
            init = _Lit(self.new_id(), line, column, _BOOL, 1, True)
            condition = self.call(tree, "@not_strictly_false", [self.accu(tree)])
            step: _Expr = self.call(tree, "_&&_", [self.accu(tree), predicate])
            result = self.accu(tree)
        elif kind == "exists":
            init = _Lit(self.new_id(), line, column, _BOOL, 1, False)
            condition = self.call(tree, "@not_strictly_false", [self.call(tree, "!_", [self.accu(tree)])])
            step = self.call(tree, "_||_", [self.accu(tree), predicate])
            result = self.accu(tree)
        else:
            init = _Lit(self.new_id(), line, column, _INT, 1, 0)
            condition = _Lit(self.new_id(), line, column, _BOOL, 1, True)
            one = _Lit(self.new_id(), line, column, _INT, 1, 1)
            step = self.call(
                tree, "_?_:_", [predicate, self.call(tree, "_+_", [self.accu(tree), one]), self.accu(tree)]
            )
            result = self.call(tree, "_==_", [self.accu(tree), _Lit(self.new_id(), line, column, _INT, 1, 1)])
        return _Comp(self.new_id(), line, column, var, var2, target, _ACCU, init, condition, step, result)


#: Targets of ``ns.function(...)`` that name a function namespace rather than a variable.
#: (The Kubernetes CEL environment has no ``cel.bind``, ``math`` or ``base64``: those names are undeclared there.)
_NAMESPACES: Final = frozenset({"sets", "strings", "optional", "lists", "format", "ip"})

#: Result types of functions, by name (member or global); anything else is unknown to this checker.
_RESULTS: Final[dict[str, _Ty]] = {
    **dict.fromkeys(
        ("matches", "startsWith", "endsWith", "contains", "isSorted", "isURL", "isQuantity", "isInteger",
         "isGreaterThan", "isLessThan", "isIP", "isCIDR", "isSemver", "sets.contains", "sets.equivalent",
         "sets.intersects", "isUnspecified", "isLoopback", "isLinkLocalMulticast", "isLinkLocalUnicast",
         "isGlobalUnicast", "containsIP", "containsCIDR", "ip.isCanonical", "hasValue", "bool"),
        _BOOL,
    ),
    **dict.fromkeys(
        ("size", "int", "indexOf", "lastIndexOf", "sign", "asInteger", "compareTo", "family", "prefixLength", "major",
         "minor", "patch", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getHours",
         "getMilliseconds", "getMinutes", "getMonth", "getSeconds"),
        _INT,
    ),
    **dict.fromkeys(
        ("string", "lowerAscii", "upperAscii", "trim", "replace", "substring", "join", "charAt", "format", "quote",
         "strings.quote", "reverse", "find", "getScheme", "getHost", "getHostname", "getPort", "getEscapedPath",
         "base64.encode"),
        _STRING,
    ),
    "split": _list_of(_STRING),
    "findAll": _list_of(_STRING),
    "double": _DOUBLE,
    "asApproximateFloat": _DOUBLE,
    "uint": _UINT,
    "bytes": _BYTES,
    "base64.decode": _BYTES,
    "duration": _DURATION,
    "timestamp": _TIMESTAMP,
    "type": _TYPE,
    "dyn": _DYN,
    "url": _simple("opaque", name="kubernetes.URL"),
    "quantity": _simple("opaque", name="kubernetes.Quantity"),
    "ip": _simple("opaque", name="net.IP"),
    "cidr": _simple("opaque", name="net.CIDR"),
    "semver": _simple("opaque", name="kubernetes.Semver"),
}  # fmt: skip
#: Kubernetes library functions with a fixed cost of 1 (``library.CostEstimator``).
_NOMINAL_COST_FUNCTIONS: Final = frozenset(
    {"masked", "prefixLength", "family", "isUnspecified", "isLoopback", "isLinkLocalMulticast", "isLinkLocalUnicast",
     "isGlobalUnicast", "format.named", "sign", "asInteger", "isInteger", "asApproximateFloat", "isGreaterThan",
     "isLessThan", "compareTo", "add", "sub", "major", "minor", "patch", "getScheme", "getHostname", "getHost",
     "getPort", "getEscapedPath", "getQuery"}
)  # fmt: skip


# -- CEL: type check and cost (a port of cel-go checker/cost.go with Kubernetes' estimator) -------------------------


@dataclass(frozen=True)
class _Size:
    min: int
    max: int

    def add(self, other: _Size) -> _Size:
        return _Size(min(self.min + other.min, _MAX_UINT64), min(self.max + other.max, _MAX_UINT64))

    def mul(self, other: _Size) -> _Size:
        return _Size(min(self.min * other.min, _MAX_UINT64), min(self.max * other.max, _MAX_UINT64))

    def union(self, other: _Size) -> _Size:
        return _Size(min(self.min, other.min), max(self.max, other.max))

    def factor(self, per_unit: float) -> _Size:
        return _Size(_mul_factor(self.min, per_unit), _mul_factor(self.max, per_unit))


_UNKNOWN_SIZE: Final = _Size(0, _MAX_UINT64)
_TWO_TO_64: Final = math.ldexp(1.0, 64)


def _mul_factor(x: int, y: float) -> int:
    """cel-go ``multiplyByCostFactor``: ``ceil(x*y)`` in float64, saturating at MaxUint64."""
    fx = float(x)
    if fx > 0 and y > 0 and fx > float(_MAX_UINT64) / y:
        return _MAX_UINT64
    product = math.ceil(fx * y)
    return _MAX_UINT64 if product >= _TWO_TO_64 else int(product)


_STRING_TRAVERSAL: Final = 0.1
_REGEX_LENGTH: Final = 0.25
_ZERO: Final = _Size(0, 0)
_ONE: Final = _Size(1, 1)


@dataclass
class _LocalVar:
    path: list[str]
    size: _Size | None
    entry: tuple[str, _Size, _Size] | None  # (container kind, key/index size, value size)


@dataclass
class _Node:
    """cel-go ``AstNode``: an expression with its field path, type and derived size."""

    path: list[str]
    type: _Ty
    expr: _Expr
    size: _Size | None


class _Checker:
    """Types one expression against the schema (``self``/``oldSelf``) and estimates its worst-case cost."""

    def __init__(self, root: _Ty, server_minor: int, old_self_optional: bool) -> None:
        self.root = root
        self.server_minor = server_minor
        self.old_self_optional = old_self_optional
        self.types: dict[int, _Ty] = {}
        self.overloads: dict[int, list[str]] = {}
        self.uses_old_self = False
        # cost state
        self.paths: dict[int, list[str]] = {}
        self.sizes: dict[int, _Size] = {}
        self.entries: dict[int, tuple[str, _Size, _Size]] = {}
        self.locals: dict[str, list[_LocalVar]] = {}

    # -- types ---------------------------------------------------------------------------------------------------------

    def check(self, expr: _Expr, scope: dict[str, _Ty]) -> _Ty:
        result = self._type(expr, scope)
        self.types[expr.id] = result
        return result

    def _type(self, expr: _Expr, scope: dict[str, _Ty]) -> _Ty:
        if isinstance(expr, _Lit):
            return expr.type
        if isinstance(expr, _Ident):
            if expr.name in scope:
                return scope[expr.name]
            if expr.name == "self":
                return self.root
            if expr.name == "oldSelf":
                self.uses_old_self = True
                return _simple("opaque", name="optional_type") if self.old_self_optional else self.root
            if expr.name in ("int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"):
                return _TYPE
            raise CelCompileError(f"undeclared reference to '{expr.name}' (in container '')", expr.line, expr.column)
        if isinstance(expr, _Select):
            operand = self.check(expr.operand, scope)
            return self._select(operand, expr)
        if isinstance(expr, _ListLit):
            elements = [self.check(element, scope) for element in expr.elements]
            _check_homogeneous(expr.elements, elements)
            return _list_of(elements[0] if elements else _DYN)
        if isinstance(expr, _MapLit):
            keys = [self.check(key, scope) for key, _ in expr.entries]
            values = [self.check(value, scope) for _, value in expr.entries]
            _check_homogeneous([key for key, _ in expr.entries], keys)
            _check_homogeneous([value for _, value in expr.entries], values)
            return _map_of(keys[0] if keys else _DYN, values[0] if values else _DYN)
        if isinstance(expr, _Struct):
            for value in expr.values:
                self.check(value, scope)
            return _UNKNOWN
        if isinstance(expr, _Comp):
            range_type = self.check(expr.iter_range, scope)
            inner = dict(scope)
            if expr.iter_var2:
                if range_type.kind == "list":
                    inner[expr.iter_var], inner[expr.iter_var2] = _INT, range_type.elem or _DYN
                elif range_type.kind == "map":
                    inner[expr.iter_var], inner[expr.iter_var2] = range_type.key or _DYN, range_type.elem or _DYN
                else:
                    inner[expr.iter_var] = inner[expr.iter_var2] = _DYN
            elif range_type.kind == "list":
                inner[expr.iter_var] = range_type.elem or _DYN
            elif range_type.kind == "map":
                inner[expr.iter_var] = range_type.key or _DYN
            elif range_type.kind in ("dyn", "unknown"):
                inner[expr.iter_var] = _DYN
            else:
                raise CelCompileError(
                    f"expression of type '{range_type}' cannot be range of a comprehension (must be list, map, or "
                    "dynamic)",
                    expr.iter_range.line,
                    expr.iter_range.column,
                )
            accu_type = self.check(expr.accu_init, scope)
            inner[expr.accu_var] = accu_type
            self.check(expr.loop_condition, inner)
            step_type = self.check(expr.loop_step, inner)
            if accu_type.kind == "list" and step_type.kind == "list":
                inner[expr.accu_var] = step_type
            return self.check(expr.result, inner)
        assert isinstance(expr, _Call)
        return self._call(expr, scope)

    def _select(self, operand: _Ty, expr: _Select) -> _Ty:
        if operand.kind == "object":
            fields = operand.fields or {}
            found = fields.get(expr.field)
            if found is None and self.server_minor >= 32 and expr.field in _RESERVED_SYMBOLS:
                found = fields.get(f"__{expr.field}__")
            if found is None:
                raise CelCompileError(f"undefined field '{expr.field}'", expr.line, expr.column)
            return _BOOL if expr.test_only else found
        if operand.kind == "map":
            return _BOOL if expr.test_only else operand.elem or _DYN
        if operand.kind in ("dyn", "unknown"):
            return _BOOL if expr.test_only else operand
        if operand.kind == "opaque" and operand.name == "optional_type":
            return _UNKNOWN
        raise CelCompileError(f"type '{operand}' does not support field selection", expr.line, expr.column)

    def _call(self, expr: _Call, scope: dict[str, _Ty]) -> _Ty:
        target = self.check(expr.target, scope) if expr.target is not None else None
        args = [self.check(arg, scope) for arg in expr.args]
        _check_overload(expr, target, args)
        function = expr.function
        kinds = [arg.kind for arg in args]
        dynamic = {"dyn", "unknown"}
        overloads: list[str] = []
        result: _Ty = _UNKNOWN
        if function in ("_&&_", "_||_", "!_", "@not_strictly_false"):
            overloads = [{"_&&_": "logical_and", "_||_": "logical_or"}.get(function, "other")]
            result = _BOOL
        elif function == "_?_:_":
            overloads, result = ["conditional"], args[1] if args[1].kind == args[2].kind else _DYN
            if args[1].kind == "list" and args[2].kind == "list":
                result = args[1]
        elif function in ("_==_", "_!=_"):
            overloads, result = ["equals" if function == "_==_" else "not_equals"], _BOOL
        elif function in ("_<_", "_<=_", "_>_", "_>=_"):
            result = _BOOL
            if kinds[0] in ("string", "bytes") or kinds[0] in dynamic:
                overloads.append("compare_string")
            if kinds[0] not in ("string", "bytes") or kinds[0] in dynamic:
                overloads.append("other")
        elif function == "_+_":
            candidates = {"string": "add_string", "bytes": "add_bytes", "list": "add_list"}
            if kinds[0] in candidates:
                overloads = [candidates[kinds[0]]]
                result = args[0] if kinds[0] != "list" else _list_of(args[0].elem or args[1].elem or _DYN)
            elif kinds[0] in dynamic:
                overloads, result = ["add_string", "add_bytes", "add_list", "other"], _DYN
            else:
                overloads = ["other"]
                result = args[0] if kinds[0] in ("int", "uint", "double", "duration") else _TIMESTAMP
                if kinds[0] == "timestamp":
                    result = _TIMESTAMP
        elif function in ("_-_", "_*_", "_/_", "_%_", "-_"):
            overloads, result = ["other"], args[0] if kinds[0] != "timestamp" else _DURATION
            if function == "_-_" and kinds[0] == "timestamp" and kinds[1] == "duration":
                result = _TIMESTAMP
        elif function == "@in":
            result = _BOOL
            overloads = ["in_list"] if kinds[1] == "list" else ["in_map"] if kinds[1] == "map" else ["in_list", "other"]
        elif function == "_[_]":
            if kinds[0] == "list":
                overloads, result = ["index_list"], args[0].elem or _DYN
            elif kinds[0] == "map":
                overloads, result = ["index_map"], args[0].elem or _DYN
            else:
                overloads, result = ["index_list", "index_map"], _DYN
        elif function == "matches":
            overloads, result = ["matches"], _BOOL
        elif function in ("startsWith", "endsWith") and target is not None:
            overloads, result = ["starts_ends_with"], _BOOL
        elif function == "contains" and target is not None and target.kind == "string":
            overloads, result = ["contains_string"], _BOOL
        elif function == "bytes" and kinds == ["string"]:
            overloads, result = ["string_to_bytes"], _BYTES
        elif function == "string" and kinds == ["bytes"]:
            overloads, result = ["bytes_to_string"], _STRING
        elif (function == "quote" and target is None) or function == "strings.quote":
            overloads, result = ["quote_string"], _STRING
        elif function == "format" and target is not None:
            overloads, result = ["format_string"], _STRING
        elif function == "dyn":
            overloads, result = ["dyn"], _DYN
        elif function in ("sum", "min", "max") and target is not None and target.kind == "list":
            overloads, result = ["other"], target.elem or _DYN
        elif function in ("orValue", "value") and target is not None:
            overloads, result = ["other"], _UNKNOWN
        elif function in _RESULTS:
            overloads, result = ["other"], _RESULTS[function]
        else:
            overloads, result = ["other"], _UNKNOWN
        self.overloads[expr.id] = overloads
        return result

    # -- cost ----------------------------------------------------------------------------------------------------------

    def type_of(self, expr: _Expr) -> _Ty:
        return self.types.get(expr.id, _UNKNOWN)

    def cost(self, expr: _Expr) -> _Size:
        if isinstance(expr, _Lit):
            return _ZERO
        if isinstance(expr, _Ident):
            local = self._peek(expr.name)
            self.paths[expr.id] = list(local.path) if local else [expr.name]
            return _ONE
        if isinstance(expr, _Select):
            if expr.test_only:
                return _ZERO.add(self.cost(expr.operand))  # presence tests cost nothing in Kubernetes
            total = self.cost(expr.operand)
            if self.type_of(expr.operand).kind in ("map", "object", "unknown"):
                total = total.add(_ONE)
            self.paths[expr.id] = [*self._path(expr.operand), expr.field]
            return total
        if isinstance(expr, _Call):
            return self._cost_call(expr)
        if isinstance(expr, _ListLit):
            total = _ZERO
            item = _Size(_MAX_UINT64, 0) if expr.elements else _ZERO
            for element in expr.elements:
                total = total.add(self.cost(element))
                item = item.union(self._size_or_unknown(element))
            self.entries[expr.id] = ("list", _ONE, item)
            return total.add(_Size(10, 10))
        if isinstance(expr, _MapLit):
            total = _ZERO
            key_size = val_size = _Size(_MAX_UINT64, 0) if expr.entries else _ZERO
            for key, value in expr.entries:
                total = total.add(self.cost(key)).add(self.cost(value))
                key_size = key_size.union(self._size_or_unknown(key))
                val_size = val_size.union(self._size_or_unknown(value))
            self.entries[expr.id] = ("map", key_size, val_size)
            return total.add(_Size(30, 30))
        if isinstance(expr, _Struct):
            total = _ZERO
            for value in expr.values:
                total = total.add(self.cost(value))
            return total.add(_Size(40, 40))
        assert isinstance(expr, _Comp)
        return self._cost_comprehension(expr)

    def _peek(self, name: str) -> _LocalVar | None:
        stack = self.locals.get(name)
        return stack[-1] if stack else None

    def _push(self, name: str, var: _LocalVar) -> None:
        self.locals.setdefault(name, []).append(var)

    def _pop(self, name: str) -> None:
        self.locals[name].pop()

    def _path(self, expr: _Expr) -> list[str]:
        if isinstance(expr, _Ident):
            local = self._peek(expr.name)
            if local is not None:
                return list(local.path)
        return list(self.paths.get(expr.id, []))

    def _estimate_size(self, path: list[str]) -> _Size | None:
        """The Kubernetes size estimator: walk the schema's declaration along the path (first element: a variable)."""
        if not path:
            return None
        node: _Ty | None = self.root
        for name in path[1:]:
            if node is None:
                return None
            if name in ("@items", "@values"):
                node = node.elem
            elif name == "@keys":
                node = node.key
            else:
                node = (node.fields or {}).get(name)
        if node is None:
            return None
        return _Size(0, node.max_elements)

    def _compute_size(self, expr: _Expr) -> _Size | None:
        if expr.id in self.sizes:
            return self.sizes[expr.id]
        if isinstance(expr, _Lit):
            return _Size(expr.size, expr.size)
        if isinstance(expr, _ListLit):
            return _Size(len(expr.elements), len(expr.elements))
        if isinstance(expr, _MapLit):
            return _Size(len(expr.entries), len(expr.entries))
        estimated = self._estimate_size(self._path(expr))
        if estimated is not None:
            self.sizes[expr.id] = estimated
            return estimated
        if self.type_of(expr).kind in ("bool", "double", "duration", "int", "timestamp", "uint"):
            return _ONE
        if isinstance(expr, _Ident):
            local = self._peek(expr.name)
            if local is not None and local.size is not None:
                return local.size
        return None

    def _size_or_unknown(self, node: _Expr | _Node) -> _Size:
        if isinstance(node, _Node):
            return node.size if node.size is not None else _UNKNOWN_SIZE
        size = self._compute_size(node)
        return size if size is not None else _UNKNOWN_SIZE

    def _entry(self, expr: _Expr) -> tuple[str, _Size, _Size] | None:
        if expr.id in self.entries:
            return self.entries[expr.id]
        if isinstance(expr, _Ident):
            local = self._peek(expr.name)
            if local is not None and local.entry is not None:
                return local.entry
        return None

    def _node(self, expr: _Expr) -> _Node:
        path = self._path(expr)
        if path and path[0] == _ACCU:
            path = []
        return _Node(path, self.type_of(expr), expr, self._compute_size(expr))

    def _cost_comprehension(self, expr: _Comp) -> _Size:
        total = self.cost(expr.iter_range).add(self.cost(expr.accu_init))
        self._push(
            expr.accu_var,
            _LocalVar(self._path(expr.accu_init), self._compute_size(expr.accu_init), self._entry(expr.accu_init)),
        )
        entry = self._entry(expr.iter_range)
        container = entry[0] if entry else self.type_of(expr.iter_range).kind
        range_path = self._path(expr.iter_range)
        if expr.iter_var2:
            key_sub = "@indices" if container == "list" else "@keys"
            val_sub = "@items" if container == "list" else "@values"
            self._push(expr.iter_var, _LocalVar([*range_path, key_sub], entry[1] if entry else None, None))
            self._push(expr.iter_var2, _LocalVar([*range_path, val_sub], entry[2] if entry else None, None))
        elif container == "list":
            self._push(expr.iter_var, _LocalVar([*range_path, "@items"], entry[2] if entry else None, None))
        else:
            self._push(expr.iter_var, _LocalVar([*range_path, "@keys"], entry[1] if entry else None, None))
        loop = self.cost(expr.loop_condition)
        step = self.cost(expr.loop_step)
        self._pop(expr.iter_var)
        if expr.iter_var2:
            self._pop(expr.iter_var2)
        total = total.add(self.cost(expr.result))
        self._pop(expr.accu_var)
        count = self._size_or_unknown(expr.iter_range)
        total = total.add(count.mul(step.add(loop)))
        if isinstance(expr.accu_init, _Lit):
            size = self._compute_size(expr.accu_init)
            if size is not None:
                self.sizes[expr.id] = size
        elif isinstance(expr.accu_init, _ListLit | _MapLit):
            self.sizes[expr.id] = count
            step_entry = self._entry(expr.loop_step)
            if step_entry is not None:
                self.entries[expr.id] = step_entry
        return total

    def _cost_call(self, expr: _Call) -> _Size:
        if expr.function == "dyn" and expr.args:
            arg_cost = self.cost(expr.args[0])
            size = self._compute_size(expr.args[0])
            if size is not None:
                self.sizes[expr.id] = size
            entry = self._entry(expr.args[0])
            if entry is not None:
                self.entries[expr.id] = entry
            return _ONE.add(arg_cost)
        arg_costs = [self.cost(arg) for arg in expr.args]
        arg_nodes = [self._node(arg) for arg in expr.args]
        total = _ZERO
        target: _Node | None = None
        if expr.target is not None:
            total = total.add(self.cost(expr.target))
            target = self._node(expr.target)
        fn_cost = _Size(_MAX_UINT64, 0)
        result_size: _Size | None = None
        for overload in self.overloads.get(expr.id, ["other"]):
            cost, size = self._function_cost(expr, overload, target, arg_nodes, arg_costs)
            fn_cost = fn_cost.union(cost)
            if size is not None:
                result_size = size if result_size is None else result_size.union(size)
            if overload in ("index_list", "index_map") and expr.args:
                entry = self._entry(expr.args[0])
                result_size = entry[2] if entry else None
                suffix = "@items" if overload == "index_list" else "@values"
                self.paths[expr.id] = [*self._path(expr.args[0]), suffix]
            if result_size is None:
                result_size = self._compute_size(expr)
        if result_size is not None:
            self.sizes[expr.id] = result_size
        return total.add(fn_cost)

    def _function_cost(
        self, expr: _Call, overload: str, target: _Node | None, args: list[_Node], arg_costs: list[_Size]
    ) -> tuple[_Size, _Size | None]:
        arg_sum = _ZERO
        for arg_cost in arg_costs:
            arg_sum = arg_sum.add(arg_cost)
        k8s = self._kubernetes_cost(expr.function, target, args)
        if k8s is not None:
            return k8s[0].add(arg_sum), k8s[1]
        if overload == "format_string" and target is not None:
            return self._size_or_unknown(target).factor(_STRING_TRAVERSAL).add(arg_sum), None
        if overload == "string_to_bytes" and len(args) == 1:
            size = self._size_or_unknown(args[0])
            return size.factor(_STRING_TRAVERSAL).add(arg_sum), _Size(size.min, min(size.max * 4, _MAX_UINT64))
        if overload == "bytes_to_string" and len(args) == 1:
            size = self._size_or_unknown(args[0])
            return size.factor(_STRING_TRAVERSAL).add(arg_sum), _Size(size.min // 4, size.max)
        if overload == "quote_string" and len(args) == 1:
            size = self._size_or_unknown(args[0])
            return size.factor(_STRING_TRAVERSAL).add(arg_sum), _Size(size.min + 2, min(size.max * 2 + 2, _MAX_UINT64))
        if overload == "starts_ends_with" and len(args) == 1:
            return self._size_or_unknown(args[0]).factor(_STRING_TRAVERSAL).add(arg_sum), None
        if overload == "in_list" and len(args) == 2:
            return self._size_or_unknown(args[1]).factor(1).add(arg_sum), None
        if overload == "matches" and target is not None and len(args) == 1:  # only the member form (matches_string)
            text = self._size_or_unknown(target).add(_ONE).factor(_STRING_TRAVERSAL)
            regex = self._size_or_unknown(args[0]).factor(_REGEX_LENGTH)
            return text.mul(regex).add(arg_sum), None
        if overload == "contains_string" and target is not None and len(args) == 1:
            text = self._size_or_unknown(target).factor(_STRING_TRAVERSAL)
            sub = self._size_or_unknown(args[0]).factor(_STRING_TRAVERSAL)
            return text.mul(sub).add(arg_sum), None
        if overload in ("logical_and", "logical_or"):
            lhs, rhs = arg_costs[0], arg_costs[1]
            return _Size(lhs.min, lhs.add(rhs).max), None
        if overload == "conditional":
            size = self._size_or_unknown(args[1]).union(self._size_or_unknown(args[2]))
            left, right = self._entry(args[1].expr), self._entry(args[2].expr)
            if left is not None and right is not None:
                self.entries[expr.id] = (left[0], left[1].union(right[1]), left[2].union(right[2]))
            return arg_costs[0].add(arg_costs[1].union(arg_costs[2])), size
        if overload in ("add_string", "add_bytes", "add_list") and len(args) == 2:
            result = self._size_or_unknown(args[0]).add(self._size_or_unknown(args[1]))
            left, right = self._entry(args[0].expr), self._entry(args[1].expr)
            if left is not None and right is not None:
                self.entries[expr.id] = (left[0], left[1].union(right[1]), left[2].union(right[2]))
            if overload == "add_list":
                return _ONE.add(arg_sum), result
            return result.factor(_STRING_TRAVERSAL).add(arg_sum), result
        if overload in ("compare_string", "equals", "not_equals"):
            lhs, rhs = self._size_or_unknown(args[0]), self._size_or_unknown(args[1])
            smallest = min(lhs.max, rhs.max)
            return _Size(1 if smallest > 0 else 0, smallest).factor(_STRING_TRAVERSAL).add(arg_sum), None
        return _ONE.add(arg_sum), None

    def _kubernetes_cost(
        self, function: str, target: _Node | None, args: list[_Node]
    ) -> tuple[_Size, _Size | None] | None:
        """``library.CostEstimator.EstimateCallCost`` (the Kubernetes CEL libraries)."""
        size = self._size_or_unknown
        if function in ("isSorted", "sum", "max", "min", "indexOf", "lastIndexOf", "includes") and target is not None:
            element = _ONE
            if target.type.kind == "list":
                item_type = target.type.elem or _DYN
                if item_type.kind in ("string", "bytes"):
                    item_path = [*target.path, "@items"] if target.path else []
                    item_size = self._estimate_size(item_path) or _UNKNOWN_SIZE
                    element = element.add(item_size.factor(_STRING_TRAVERSAL))
                list_size = size(target)
                return _Size(
                    min(list_size.min * element.min, _MAX_UINT64), min(list_size.max * element.max, _MAX_UINT64)
                ), None
            if function == "includes":
                return size(target).mul(element), None
            return size(target).factor(_STRING_TRAVERSAL), None
        if function in ("url", "jsonpatch.escapeKey") and len(args) == 1:
            text = size(args[0])
            return text.factor(_STRING_TRAVERSAL), text
        if function in ("lowerAscii", "upperAscii", "substring", "trim") and target is not None:
            text = size(target)
            return text.factor(_STRING_TRAVERSAL), text
        if function == "replace" and target is not None and len(args) >= 2:
            text, old, new = size(target), size(args[0]), size(args[1])
            if old.min == 0:
                count_max, retained_max = (text.max + 1 if text.max < _MAX_UINT64 else text.max), text.max
            elif new.max <= old.min:
                count_max, retained_max = 0, text.max
            else:
                count_max, retained_max = math.ceil(text.max / old.min), 0
            if old.max == 0:
                count_min, retained_min = (text.min + 1 if text.min < _MAX_UINT64 else text.min), text.min
            elif old.max <= new.min:
                count_min, retained_min = 0, text.min
            else:
                count_min, retained_min = math.ceil(text.min / old.max), 0
            result = _Size(count_min, count_max).mul(new).add(_Size(retained_min, retained_max))
            return text.factor(2 * _STRING_TRAVERSAL), result
        if function == "split" and target is not None:
            text = size(target)
            limit = text.max
            if len(args) > 1 and isinstance(args[1].expr, _Lit) and isinstance(args[1].expr.value, int):
                limit = args[1].expr.value
            return text.factor(2 * _STRING_TRAVERSAL), _Size(0, limit)
        if function == "join" and target is not None:
            result = _ZERO
            list_size = size(target)
            if target.type.kind == "list":
                item_path = [*target.path, "@items"] if target.path else []
                result = list_size.mul(self._estimate_size(item_path) or _UNKNOWN_SIZE)
            if args:
                separators = _Size(max(list_size.min - 1, 0), max(list_size.max - 1, 0))
                result = result.add(size(args[0]).mul(separators))
            return result.factor(_STRING_TRAVERSAL), result
        if function in ("find", "findAll") and target is not None and args:
            text = size(target)
            cost = text.add(_ONE).factor(_STRING_TRAVERSAL).mul(size(args[0]).factor(_REGEX_LENGTH))
            return cost, _Size(0, text.max)
        if function in ("cidr", "isIP", "isCIDR", "quantity", "isQuantity", "semver", "isSemver") and args:
            return size(args[0]).factor(_STRING_TRAVERSAL), None
        if function == "ip" and args:
            return size(args[0]).factor(_STRING_TRAVERSAL), None
        if function == "ip.isCanonical" and args:
            return size(args[0]).factor(2 * _STRING_TRAVERSAL), None
        if function in _NOMINAL_COST_FUNCTIONS:
            return _ONE, None
        if (
            function == "_==_"
            and len(args) == 2
            and args[0].type.kind == "opaque"
            and args[0].type.name == args[1].type.name
        ):
            return _ONE, None
        return None


#: Overloads of the standard and Kubernetes libraries this checker resolves: function -> (receiver kind or "" for a
#: global call, argument kinds). Kinds: a CEL kind, "any", or "elem" (the receiver list's element type).
_SIGNATURES: Final[dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "size": (("", ("string",)), ("", ("bytes",)), ("", ("list",)), ("", ("map",)),
             ("string", ()), ("bytes", ()), ("list", ()), ("map", ())),
    "int": tuple(("", (kind,)) for kind in ("int", "uint", "double", "string", "timestamp")),
    "uint": tuple(("", (kind,)) for kind in ("int", "uint", "double", "string")),
    "double": tuple(("", (kind,)) for kind in ("int", "uint", "double", "string")),
    "string": tuple(("", (kind,)) for kind in ("int", "uint", "double", "bool", "bytes", "string", "timestamp",
                                               "duration")),
    "bytes": (("", ("bytes",)), ("", ("string",))),
    "bool": (("", ("bool",)), ("", ("string",))),
    "duration": (("", ("string",)), ("", ("duration",)), ("", ("int",))),
    "timestamp": (("", ("string",)), ("", ("timestamp",)), ("", ("int",))),
    "matches": (("", ("string", "string")), ("string", ("string",))),
    **dict.fromkeys(("contains", "startsWith", "endsWith"), (("string", ("string",)),)),
    **dict.fromkeys(("lowerAscii", "upperAscii", "trim", "reverse"), (("string", ()),)),
    "replace": (("string", ("string", "string")), ("string", ("string", "string", "int"))),
    "split": (("string", ("string",)), ("string", ("string", "int"))),
    "substring": (("string", ("int",)), ("string", ("int", "int"))),
    "charAt": (("string", ("int",)),),
    **dict.fromkeys(("indexOf", "lastIndexOf"), (("string", ("string",)), ("string", ("string", "int")),
                                                 ("list", ("elem",)))),
    "join": (("list", ()), ("list", ("string",))),
    "find": (("string", ("string",)),),
    "findAll": (("string", ("string",)), ("string", ("string", "int"))),
    **dict.fromkeys(("isSorted", "sum", "min", "max"), (("list", ()),)),
    **dict.fromkeys(("getHours", "getMinutes", "getSeconds", "getMilliseconds"),
                    (("timestamp", ()), ("timestamp", ("string",)), ("duration", ()))),
    **dict.fromkeys(("getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth"),
                    (("timestamp", ()), ("timestamp", ("string",)))),
    "format": (("string", ("list",)),),
    **dict.fromkeys(("url", "isURL", "quantity", "isQuantity", "ip", "isIP", "cidr", "isCIDR", "semver", "isSemver"),
                    (("", ("string",)),)),
}  # fmt: skip
_SCALARS: Final = frozenset({"bool", "int", "uint", "double", "string", "bytes", "duration", "timestamp"})
_NUMBERS: Final = frozenset({"int", "uint", "double"})
_TYPED: Final = _SCALARS | {"list", "map", "object"}
#: Operand kinds each arithmetic operator has same-kind overloads for (plus the timestamp/duration mixes below).
_ARITHMETIC: Final[dict[str, frozenset[str]]] = {
    "_+_": frozenset({"int", "uint", "double", "string", "bytes", "list", "duration"}),
    "_-_": frozenset({"int", "uint", "double", "duration", "timestamp"}),
    "_*_": _NUMBERS,
    "_/_": _NUMBERS,
    "_%_": frozenset({"int", "uint"}),
}
_TIME_MIXES: Final = {
    ("_+_", "timestamp", "duration"),
    ("_+_", "duration", "timestamp"),
    ("_-_", "timestamp", "duration"),
}


def _is_typed(ty: _Ty) -> bool:
    """Whether this checker knows the type well enough to refuse an overload on it."""
    return ty.kind in _TYPED


def _signature_matches(receiver: str, params: tuple[str, ...], target: _Ty | None, args: list[_Ty]) -> bool:
    if bool(receiver) != (target is not None) or len(params) != len(args):
        return False
    if target is not None and _is_typed(target) and target.kind != receiver:
        return False
    for param, arg in zip(params, args, strict=True):
        expected = (target.elem.kind if target and target.elem else "any") if param == "elem" else param
        if expected != "any" and _is_typed(arg) and arg.kind != expected:
            return False
    return True


def _check_overload(expr: _Call, target: _Ty | None, args: list[_Ty]) -> None:
    """The part of cel-go's overload resolution that this checker can decide: a call whose receiver and arguments
    are typed and that no overload accepts (``size`` of an object, ``startsWith`` on a list, ``'a' + 1``,
    ``1 && true``, ``self == 'a'`` on an object, ``x in list`` of another element type)."""
    function = expr.function
    typed = [_is_typed(arg) for arg in args]
    refused = False
    if function in _SIGNATURES and (target is None or target.kind not in ("dyn", "unknown", "opaque")):
        refused = not any(_signature_matches(r, params, target, args) for r, params in _SIGNATURES[function])
        if target is not None and target.kind == "list" and target.elem is not None and _is_typed(target.elem):
            elements = {"join": {"string"}, "sum": _NUMBERS | {"duration"}}.get(function, _SCALARS)
            if function in ("join", "isSorted", "sum", "min", "max"):  # over strings, numbers, comparables
                refused = refused or target.elem.kind not in elements
    elif function in ("_&&_", "_||_", "!_"):
        refused = any(ok and arg.kind != "bool" for ok, arg in zip(typed, args, strict=True))
    elif function == "-_":
        refused = typed[0] and args[0].kind not in ("int", "double", "duration")
    elif function == "_?_:_":
        refused = (typed[0] and args[0].kind != "bool") or (typed[1] and typed[2] and args[1].kind != args[2].kind)
    elif function in _ARITHMETIC and len(args) == 2 and all(typed):
        kinds = (args[0].kind, args[1].kind)
        same = kinds[0] == kinds[1] and kinds[0] in _ARITHMETIC[function]
        refused = not same and (function, *kinds) not in _TIME_MIXES
    elif function in ("_<_", "_<=_", "_>_", "_>=_") and all(typed):
        kinds = (args[0].kind, args[1].kind)
        numeric = kinds[0] in _NUMBERS and kinds[1] in _NUMBERS
        refused = (kinds[0] != kinds[1] and not numeric) or kinds[0] not in _SCALARS
    elif function in ("_==_", "_!=_") and all(typed):
        refused = args[0].kind != args[1].kind
    elif function == "@in" and typed[1]:
        container = args[1]
        element = container.elem if container.kind == "list" else container.key if container.kind == "map" else None
        refused = container.kind not in ("list", "map") or (
            typed[0] and element is not None and _is_typed(element) and element.kind != args[0].kind
        )
    elif function == "_[_]" and typed[0]:
        container, index = args[0], args[1]
        key = container.key.kind if container.kind == "map" and container.key else ""
        refused = (
            container.kind not in ("list", "map")
            or (container.kind == "list" and typed[1] and index.kind not in ("int", "uint"))
            or (container.kind == "map" and typed[1] and key in _SCALARS and index.kind != key)
        )
    if refused:
        applied = ", ".join(str(arg) for arg in args)
        applied = f"{target}.({applied})" if target is not None else f"({applied})"
        raise CelCompileError(
            f"found no matching overload for '{function}' applied to '{applied}'", expr.line, expr.column
        )


def _check_homogeneous(elements: list[_Expr], types: list[_Ty]) -> None:
    """``cel.HomogeneousAggregateLiterals``: a literal list (or map keys/values) holds one type."""
    first = next((ty for ty in types if _is_typed(ty)), None)
    for element, ty in zip(elements, types, strict=True):
        if first is not None and _is_typed(ty) and ty.kind != first.kind:
            raise CelCompileError(f"expected type '{first}' but found '{ty}'", element.line, element.column)


class _CelEngine:
    """Compiles and costs CEL rules with cel-python's parser (imported here, on first use)."""

    def __init__(self, server_minor: int) -> None:
        self.server_minor = server_minor
        try:
            from celpy.celparser import CELParseError, CELParser
        except ImportError as exc:  # the dev extra is missing
            raise ImportError("CEL checks need cel-python: pip install -e '.[dev]'") from exc
        self._parser = CELParser()
        self._parse_error: type[Exception] = CELParseError
        self._programs: dict[str, Any] = {}

    def parse(self, text: str) -> _Expr:
        try:
            tree = self._parser.parse(text)
        except self._parse_error as exc:
            first = str(exc.args[0]).splitlines()[0] if exc.args else "syntax error"
            line = getattr(exc, "line", None) or 1
            column = getattr(exc, "column", None) or 1
            raise CelCompileError(f"Syntax error: {first.strip()}", int(line), int(column)) from None
        return _TreeBuilder().build(tree)

    def analyse(self, text: str, root: _Ty, optional_old_self: bool) -> tuple[_Checker, _Ty, int]:
        """Parse, type and cost one expression: (checker, result type, worst-case cost)."""
        expr = self.parse(text)
        checker = _Checker(root, self.server_minor, optional_old_self)
        result = checker.check(expr, {})
        return checker, result, checker.cost(expr).max

    def compile_rules(
        self,
        schema: Mapping[str, Any],
        rules: list[Mapping[str, Any]],
        path: str,
        ssv: _Ssv,
        context: _CelContext,
    ) -> list[Problem]:
        """``cel.Compile`` and the cost and oldSelf checks for the rules of one node."""
        problems: list[Problem] = []
        root, missing = context.type_info()
        if root is None:
            return [Problem(f"{path}.x-kubernetes-validations", "InternalError", missing or _CONSTRUCT_ERROR)]
        unbounded_cardinality = _MAX_REQUEST_SIZE // (root.min_size + 1)
        for index, rule in enumerate(rules):
            at = f"{path}.x-kubernetes-validations[{index}]"
            text = str(rule.get("rule") or "")
            if not text.strip() or _uses_optional_syntax(text, str(rule.get("messageExpression") or "")):
                continue  # nothing to compile, or syntax this checker cannot parse (not checked, not refused)
            optional = rule.get("optionalOldSelf") is True
            cost = 0
            error: str | None = None
            checker: _Checker | None = None
            try:
                checker, result, cost = self.analyse(text, root, optional)
                if result.kind not in ("bool", "unknown"):
                    error, cost = "cel expression must evaluate to a bool", 0
            except CelCompileError as exc:
                error = "compilation failed: " + _cel_issue(text, exc)
            cardinality = context.cardinality if context.cardinality is not None else unbounded_cardinality
            expression_cost = _mul(cost, cardinality)
            if expression_cost > STATIC_ESTIMATED_COST_LIMIT:
                problems.append(
                    Problem(
                        f"{at}.rule",
                        "Forbidden",
                        _cost_message("estimated rule cost", expression_cost, STATIC_ESTIMATED_COST_LIMIT),
                    )
                )
            context.total.observe(f"{at}.rule", expression_cost)
            if error is not None:
                problems.append(Problem(f"{at}.rule", "Invalid", error, _render_rule(rule)))
                continue
            expression = str(rule.get("messageExpression") or "")
            if expression:
                try:
                    _, message_type, message_cost = self.analyse(expression, root, optional)
                    if message_type.kind not in ("string", "unknown"):
                        raise CelCompileError("messageExpression must evaluate to a string")
                except CelCompileError as exc:
                    detail = exc.message
                    if detail != "messageExpression must evaluate to a string":
                        detail = "messageExpression compilation failed: " + _cel_issue(expression, exc)
                    problems.append(Problem(f"{at}.messageExpression", "Invalid", detail, _render_rule(rule)))
                else:
                    if message_cost > STATIC_ESTIMATED_COST_LIMIT:
                        problems.append(
                            Problem(
                                f"{at}.messageExpression",
                                "Forbidden",
                                _cost_message(
                                    "estimated messageExpression cost", message_cost, STATIC_ESTIMATED_COST_LIMIT
                                ),
                            )
                        )
                    context.total.observe(f"{at}.messageExpression", message_cost)
            assert checker is not None
            if checker.uses_old_self:
                if ssv.uncorrelatable is not None:
                    problems.append(
                        Problem(
                            f"{at}.rule",
                            "Invalid",
                            f"oldSelf cannot be used on the uncorrelatable portion of the schema within "
                            f"{ssv.uncorrelatable}",
                            _render(text),
                        )
                    )
            elif rule.get("optionalOldSelf") is not None:
                problems.append(
                    Problem(
                        f"{at}.optionalOldSelf",
                        "Invalid",
                        "may not be set if oldSelf is not used in rule",
                        _render(rule.get("optionalOldSelf")),
                    )
                )
        return problems

    # -- defaults against CEL rules ------------------------------------------------------------------------------------

    def default_problems(self, schema: Mapping[str, Any], value: Any, path: str, is_root: bool) -> list[Problem]:
        """The CEL rules of ``schema``'s subtree on a default (``oldSelf`` is the default too): a rule that does not
        compile is reported here (the server reports it while validating the default), else a rule that fails."""
        problems: list[Problem] = []
        for at, node, item in _rule_sites(schema, value, path):
            decl = _decl(node, (is_root and node is schema) or node.get("x-kubernetes-embedded-resource") is True)
            for rule in _list(node.get("x-kubernetes-validations")):
                rule = _map(rule)
                text = str(rule.get("rule") or "")
                if _uses_optional_syntax(text):
                    continue
                if decl is not None and text.strip():
                    try:
                        _, result, _ = self.analyse(text, decl, rule.get("optionalOldSelf") is True)
                    except CelCompileError as exc:
                        detail = "rule compile error: compilation failed: " + _cel_issue(text, exc)
                        problems.append(Problem(at, "Invalid", detail, _render(node.get("type") or "")))
                        continue
                    if result.kind not in ("bool", "unknown"):
                        detail = "rule compile error: cel expression must evaluate to a bool"
                        problems.append(Problem(at, "Invalid", detail, _render(node.get("type") or "")))
                        continue
                verdict = self._holds(text, item)
                if verdict is False:
                    message = str(rule.get("message") or "") or f"failed rule: {text.strip()}"
                    problems.append(Problem(at, "Invalid", message, _render(item)))
                elif isinstance(verdict, str):
                    problems.append(Problem(at, "Invalid", verdict, _render(node.get("type") or "")))
        return problems

    def _holds(self, rule: str, value: Any) -> bool | str | None:
        """True/False when cel-python evaluates the rule, an error text when the evaluation fails (the server reports
        that too), None when cel-python cannot say (the rule calls a function it lacks)."""
        import celpy
        from celpy import celtypes
        from celpy.adapter import json_to_cel
        from celpy.evaluation import CELEvalError

        try:
            if not _called_functions(self.parse(rule)) <= _CELPY_FUNCTIONS:
                return None
            program = self._programs.get(rule)
            if program is None:
                environment = celpy.Environment()
                program = environment.program(environment.compile(rule), functions=_celpy_functions())
                self._programs[rule] = program
            bound = json_to_cel(value)
            result = program.evaluate({"self": bound, "oldSelf": bound})
        except CELEvalError as exc:
            return f"{exc.args[0] if exc.args else exc} evaluating rule: {rule}"
        except Exception:  # cel-python raises many kinds; any other means "cannot tell"
            return None
        if isinstance(result, celtypes.BoolType):
            return bool(result)
        return None


#: Functions cel-python evaluates like the API server (with ``_celpy_functions``); rules calling others are not
#: evaluated on defaults.
_CELPY_FUNCTIONS: Final = frozenset(
    {"_&&_", "_||_", "!_", "@not_strictly_false", "_?_:_", "_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "_+_", "_-_",
     "_*_", "_/_", "_%_", "-_", "@in", "_[_]", "size", "contains", "startsWith", "endsWith", "matches", "int", "uint",
     "double", "string", "bytes", "bool", "duration", "timestamp", "type", "split", "lowerAscii", "upperAscii",
     "trim", "indexOf", "lastIndexOf", "substring", "join",
     "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth", "getHours",
     "getMilliseconds", "getMinutes", "getSeconds"}
)  # fmt: skip


def _called_functions(expr: _Expr) -> set[str]:
    if isinstance(expr, _Call):
        found = {expr.function}
        for child in [*expr.args, *([expr.target] if expr.target else [])]:
            found |= _called_functions(child)
        return found
    if isinstance(expr, _Select):
        return _called_functions(expr.operand)
    if isinstance(expr, _ListLit):
        return set().union(*(_called_functions(element) for element in expr.elements))
    if isinstance(expr, _MapLit):
        return set().union(*(_called_functions(part) for entry in expr.entries for part in entry))
    if isinstance(expr, _Comp):
        parts = (expr.iter_range, expr.accu_init, expr.loop_condition, expr.loop_step, expr.result)
        return set().union(*(_called_functions(part) for part in parts))
    if isinstance(expr, _Struct):
        return {"<struct>"}
    return set()


class _CannotTell(Exception):
    """Raised by the cel-python helpers below for a use they do not model: the rule is then not evaluated."""


def _celpy_functions() -> dict[str, Callable[..., Any]]:
    """The Kubernetes string-extension functions cel-python lacks, for strings only (anything else: cannot tell)."""
    from celpy import celtypes

    def text(value: Any) -> str:
        if not isinstance(value, str):
            raise _CannotTell
        return str(value)

    def integer(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _CannotTell
        return int(value)

    def string(value: str) -> Any:
        return celtypes.StringType(value)

    def split(target: Any, separator: Any, *limit: Any) -> Any:
        if limit or not text(separator):
            raise _CannotTell
        return celtypes.ListType([string(part) for part in text(target).split(text(separator))])

    def index_of(target: Any, sub: Any, *offset: Any) -> Any:
        if offset:
            raise _CannotTell
        return celtypes.IntType(text(target).find(text(sub)))

    def last_index_of(target: Any, sub: Any, *offset: Any) -> Any:
        if offset:
            raise _CannotTell
        return celtypes.IntType(text(target).rfind(text(sub)))

    def substring(target: Any, start: Any, *end: Any) -> Any:
        value, first = text(target), integer(start)
        last = integer(end[0]) if end else len(value)
        if len(end) > 1 or not 0 <= first <= last <= len(value):
            raise _CannotTell
        return string(value[first:last])

    def join(target: Any, *separator: Any) -> Any:
        if not isinstance(target, list) or len(separator) > 1:
            raise _CannotTell
        return string((text(separator[0]) if separator else "").join(text(item) for item in target))

    return {
        "split": split,
        "lowerAscii": lambda target: string(text(target).lower()),
        "upperAscii": lambda target: string(text(target).upper()),
        "trim": lambda target: string(text(target).strip()),
        "indexOf": index_of,
        "lastIndexOf": last_index_of,
        "substring": substring,
        "join": join,
    }


def _rule_sites(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any], Any]]:
    """(field path, schema node, value) for every node of a value that a schema node with rules applies to."""
    if value is None:
        return
    if schema.get("x-kubernetes-validations"):
        yield path, schema, value
    if isinstance(value, Mapping):
        properties = _map(schema.get("properties"))
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                yield from _rule_sites(_map(properties[key]), item, _child(path, str(key)))
            elif isinstance(additional, Mapping):
                yield from _rule_sites(additional, item, _key(path, str(key)))
    elif isinstance(value, list | tuple) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from _rule_sites(schema["items"], item, _index(path, index))


#: CEL string literals (raw, bytes, triple-quoted), blanked before looking for syntax outside them.
_STRING_LITERALS: Final = re.compile(
    r"[rRbB]*(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")"
)


def _uses_optional_syntax(*expressions: str) -> bool:
    """Whether an expression uses CEL's optional field/index syntax (``a.?b``, ``a[?k]``), which cel-python's
    grammar lacks: such rules are neither compiled nor costed here rather than refused."""
    return any(re.search(r"\.\s*\?|\[\s*\?", _STRING_LITERALS.sub("''", text)) for text in expressions)


def _cel_issue(text: str, error: CelCompileError) -> str:
    """cel-go's issue format: ``ERROR: <input>:L:C: message`` and the source line with a caret."""
    lines = text.splitlines() or [""]
    source = lines[min(max(error.line, 1), len(lines)) - 1]
    caret = "." * max(error.column - 1, 0) + "^"
    return f"ERROR: <input>:{error.line}:{error.column}: {error.message}\n | {source}\n | {caret}"


def estimate_rule_cost(
    schema: Mapping[str, Any],
    rule: str,
    *,
    resource_root: bool = False,
    server_minor: int = LATEST_SERVER_MINOR,
) -> int:
    """The static worst-case cost of one CEL rule on ``schema`` (``CompilationResult.MaxCost``), before it is
    multiplied by the node's cardinality. Raises ``ValueError`` when the rule does not compile."""
    root = _decl(schema, resource_root)
    if root is None:
        raise ValueError("the schema is not visible to CEL")
    try:
        _, result, cost = _CelEngine(server_minor).analyse(rule, root, False)
    except CelCompileError as exc:
        raise ValueError(_cel_issue(rule, exc)) from None
    if result.kind not in ("bool", "unknown"):
        raise ValueError("cel expression must evaluate to a bool")
    return cost
