"""Label and field selectors as the Kubernetes API server parses them.

Label selectors: comma-separated requirements, each one of ``key``, ``!key``, ``key=value``, ``key==value``,
``key!=value``, ``key in (a,b)``, ``key notin (a,b)``. Field selectors: ``path=value``, ``path==value``,
``path!=value`` where ``path`` is a dotted path into the object (``metadata.name``, ``type``,
``involvedObject.uid``); a real API server only allows a few fields per resource, this one allows any.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SelectorError", "parse_field_selector", "parse_label_selector"]

Matcher = Callable[[Mapping[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*$")


class SelectorError(ValueError):
    """The selector does not parse (a 400 BadRequest on a real API server)."""


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in selector {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise SelectorError(f"unbalanced parentheses in selector {text!r}")
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _requirement(text: str) -> Callable[[Mapping[str, str]], bool]:
    match = _SET_RE.match(text)
    if match:
        if match.group(1):
            raise SelectorError(f"invalid label selector requirement {text!r}")
        key, op = match.group(2), match.group(3)
        values = frozenset(v.strip() for v in match.group(4).split(",") if v.strip())
        if op == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: key not in labels or labels[key] not in values
    match = _EQ_RE.match(text)
    if match:
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    match = _EXISTS_RE.match(text)
    if match:
        negate, key = match.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"invalid label selector requirement {text!r}")


def parse_label_selector(text: str | None) -> Matcher | None:
    """A predicate over objects, or None when the selector selects everything."""
    if not text or not text.strip():
        return None
    requirements = [_requirement(part) for part in _split(text)]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return matches


def _lookup(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text: str | None) -> Matcher | None:
    if not text or not text.strip():
        return None
    requirements: list[tuple[str, bool, str]] = []
    for part in _split(text):
        match = _EQ_RE.match(part)
        if not match:
            raise SelectorError(f"invalid field selector requirement {part!r}")
        path, op, value = match.groups()
        requirements.append((path, op != "!=", value))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((_lookup(obj, path) == value) == equal for path, equal, value in requirements)

    return matches
