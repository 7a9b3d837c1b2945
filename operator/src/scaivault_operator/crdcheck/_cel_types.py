"""CEL declarations from a schema (``apiserver/pkg/cel/common/schemas.go``).

Owns the CEL type ``_Ty`` with the ``DeclType`` size bounds (max elements, min serialized size), the scalar types,
the reserved words, a property's CEL field name (``_escape``) and a schema node's declaration type (``_decl``,
with ``WithTypeAndObjectMeta`` for resource roots). Used by ``_cel_parse`` (literal types, reserved identifiers),
``_cel_check``, ``_cel_context``, ``_cel_engine`` and ``_api.estimate_rule_cost``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._helpers import _list, _map
from ._limits import _MAX_REQUEST_SIZE

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
