"""Small helpers shared by every checking module.

Owns tolerant access to decoded JSON (``_map``, ``_list``, ``_is_int``, ``_is_number``), field paths as the server
prints them (``_child``, ``_key``, ``_index``) and bad values as the server prints them (``_render``,
``_render_rule``). Imports nothing from the package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._problems import Problem

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


def _type_must_be(path: str, type_: str, message: str) -> Problem:
    """``<path>.type`` is wrong for an extension that needs another type: Required when absent, else Invalid."""
    if not type_:
        return Problem(f"{path}.type", "Required", message)
    return Problem(f"{path}.type", "Invalid", message, _render(type_))
