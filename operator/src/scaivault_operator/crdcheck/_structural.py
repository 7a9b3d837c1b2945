"""Structural schemas (``apiserver/schema``: ``convert.go``, ``validation.go``, ``complete.go``).

Owns ``NewStructural``'s refusals (``_structural_init_error``), ``ValidateStructural``'s invariants and completeness
(``_validate_structural``: typed nodes, items, the root and embedded resources, the root ``metadata``, nothing
structural inside ``anyOf``/``allOf``/``oneOf``/``not``) and what Go's RE2 refuses in a ``pattern``
(``_regexp_error``). Called by ``_validator`` (``_all_nodes`` also for ``preserveUnknownFields``) and by
``_defaults`` (patterns, when a default is validated).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from ._helpers import _key, _list, _map, _render, _type_must_be
from ._problems import Problem

# -- structural schemas (apiserver/schema: convert.go, validation.go, complete.go) -------------------------------------


def _present(value: Any) -> bool:
    """Whether a value counts as specified: not null, false, an empty string or an empty list/map."""
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | tuple | Mapping) and len(value) == 0)


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
        yield _type_must_be(path, type_, "must be object if x-kubernetes-embedded-resource is true")
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
