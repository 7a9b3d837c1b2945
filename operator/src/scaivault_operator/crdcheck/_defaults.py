"""Defaults (``apiserver/schema/defaulting/validation.go``, ``pruning/algorithm.go``, ``objectmeta``, kube-openapi).

Owns ``ValidateDefaults``: each default keeps no field its schema prunes (``pruning.Prune``), the ``apiVersion``,
``kind`` and ``metadata`` it carries are well formed, and it validates against its schema with kube-openapi's
``validate``/``strfmt`` messages -- and, given a CEL engine, against the rules of its subtree. Called by
``_validator`` once a schema is structural; ``_META_FIELDS`` (pruning's ``metaFields``) is shared with it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from ._cel_engine import _CelEngine
from ._decode import _json_kind
from ._helpers import _child, _is_int, _is_number, _key, _list, _map, _render
from ._names import _dns1035_label_errors
from ._problems import Problem
from ._structural import _regexp_error

# -- defaults (apiserver/schema/defaulting/validation.go, pruning/algorithm.go) ----------------------------------------

_META_FIELDS: Final = frozenset({"metadata", "kind", "apiVersion"})


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
        return {} if s is None else _prune_fields(value, s, keep_unknown=False)
    if isinstance(value, list | tuple):
        items = s.get("items") if s is not None else None
        return [_prune(item, items if isinstance(items, Mapping) else None) for item in value]
    return value


def _prune_fields(value: Mapping[str, Any], s: Mapping[str, Any], *, keep_unknown: bool) -> dict[str, Any]:
    """The fields of an object: declared ones pruned by their schema, unknown ones kept only with ``keep_unknown``
    (``x-kubernetes-preserve-unknown-fields``)."""
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
        elif keep_unknown:
            out[key] = item
    return out


def _skip_prune(value: Any, s: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        return _prune_fields(value, s, keep_unknown=True)
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
