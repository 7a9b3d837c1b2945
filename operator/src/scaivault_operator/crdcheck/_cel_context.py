"""The CEL state handed down the schema walk (``apis/.../validation/cel_validation.go``).

Owns ``_CelContext`` (``CELSchemaContext``: a node's cardinality and its CEL type, taken from the parent's when it
can be), the schema's running cost total (``_TotalCost``) and the cost-limit messages. Created by ``_validator`` for
each ``openAPIV3Schema`` once it is structural; read by ``_cel_engine.compile_rules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ._cel_types import _decl, _escape, _Ty
from ._limits import _MAX_UINT64, STATIC_ESTIMATED_CRD_COST_LIMIT


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
