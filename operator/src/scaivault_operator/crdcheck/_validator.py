"""The CRD (``apis/apiextensions/validation/validation.go``: ``ValidateCustomResourceDefinition``).

Owns ``_Validator``: metadata, the API-approval annotation, group, scope, names, versions, ``status.storedVersions``,
``preserveUnknownFields``, conversion, subresources, printer columns, selectable fields, the root with the status
subresource, and the walk over each ``openAPIV3Schema`` that applies ``_structural``, ``_defaults``, ``_openapi`` and
the CEL engine; plus v1 defaulting and the v1->internal hoisting that decide the field paths. Called by ``_api``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from ._cel_context import _CelContext, _cost_message, _TotalCost
from ._cel_engine import _CelEngine
from ._defaults import _META_FIELDS, _validate_defaults
from ._helpers import _key, _list, _map, _render
from ._limits import STATIC_ESTIMATED_CRD_COST_LIMIT
from ._names import _dns1035_label_errors, _dns1123_subdomain_errors, _label_value_errors, _qualified_name_errors
from ._openapi import _extensions, _rule_fields, _Ssv, _standard, _valid_field_path
from ._problems import Problem
from ._structural import _all_nodes, _structural_init_error, _validate_structural

# -- the CRD ------------------------------------------------------------------------------------------------------

_PRINTER_TYPES: Final = ("boolean", "date", "integer", "number", "string")
_PRINTER_FORMATS: Final = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
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
