"""The entry points, re-exported by ``crdcheck``: ``validate_crd``, ``validate_crd_update``, ``check_crd`` and
``estimate_rule_cost``.

Each decodes first (``_decode``) and then validates (``_validator``), creating a ``_cel_engine._CelEngine`` only when
``cel=True``. Called by ``crdgen``, ``testing``, ``bench/fakeapi`` and the tests, through ``crdcheck``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._cel_engine import _cel_issue, _CelEngine
from ._cel_parse import CelCompileError
from ._cel_types import _decl
from ._decode import _decode_crd
from ._helpers import _list, _map, _render
from ._limits import LATEST_SERVER_MINOR
from ._problems import InvalidCrdError, Problem
from ._validator import _Validator


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
