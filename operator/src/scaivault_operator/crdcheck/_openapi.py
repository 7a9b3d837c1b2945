"""Per-node schema rules of ``ValidateCustomResourceDefinitionOpenAPISchema`` (``apis/.../validation.go``).

Owns ``specStandardValidatorV3`` (``_standard``) and the state it hands down the schema (``_Ssv``), the
``x-kubernetes-*`` extension checks (``_extensions``), the fields of ``x-kubernetes-validations`` (``_rule_fields``)
and ``ValidFieldPath`` (``schema/cel/validation.go``). Called by ``_validator`` for every schema node
(``_valid_field_path`` also for selectable fields); ``_cel_engine`` reads ``_Ssv`` (where ``oldSelf`` is
correlatable).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._helpers import _child, _key, _list, _map, _render, _type_must_be
from ._problems import Problem

_OPENAPI_TYPES: Final = ("array", "boolean", "integer", "number", "object", "string")
_REASONS: Final = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")


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
        yield _type_must_be(path, type_, "must be object if x-kubernetes-map-type is specified")
    if map_type is not None and map_type not in ("atomic", "granular"):
        yield Problem(
            f"{path}.x-kubernetes-map-type", "NotSupported", 'supported values: "atomic", "granular"', _render(map_type)
        )
    list_type = schema.get("x-kubernetes-list-type")
    items = schema.get("items")
    if list_type is not None and type_ != "array":
        yield _type_must_be(path, type_, "must be array if x-kubernetes-list-type is specified")
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
