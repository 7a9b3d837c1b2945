"""Who may read what through a connection: the access rules of ClusterVaultConnection and VaultConnection.

Owns the decision "may a VaultSecret in namespace N read ScaiVault path P through connection C?", taken before
any read. Pure: no I/O. Callers (the operator's sync module, and the version watcher before it lists a prefix)
pass the connection's kind, namespace, name and ``spec.access``, the VaultSecret's namespace and that
namespace's labels (``None`` when they could not be read), and the path.

Rules:

* A ``VaultConnection`` (namespaced) serves only VaultSecrets in its own namespace. Without access rules it
  allows every path; with rules it allows only the paths of the rules that apply to its own namespace (so its
  rules can only narrow the paths, never widen who may use it).
* A ``ClusterVaultConnection`` without access rules serves nobody.
* A rule applies to a namespace listed in ``namespaces``, or to one whose labels ``namespaceSelector`` matches
  (Kubernetes label-selector semantics). When the namespace's labels are unknown, a selector rule does not
  apply — except the empty selector ``{}``, which selects every namespace whatever its labels.
* A path is allowed when it starts with one of the ``pathPrefixes`` of an applying rule, ``{namespace}`` in a
  prefix being replaced by the VaultSecret's namespace. Matching is a plain string prefix, as in ScaiVault's own
  list API: ``tenants/{namespace}`` (no trailing ``/``) lets namespace ``a`` read ``tenants/ab/...`` too.
  ``prefix_warning`` detects such prefixes so the caller can warn about them.
* A path ScaiVault's client would refuse (``..`` segments, empty segments...) is denied, so that no prefix
  check can be sidestepped by a path a server might normalize.

Denial messages name the connection, the namespace and the path, and say which prefixes that namespace may read
(or that no rule applies to it): they go to the VaultSecret's status. They contain names, never secret values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scaivault_operator._cogs.api import AccessRule, LabelSelector
from scaivault_operator._cogs.scaivault import InvalidPathError, validate_path, validate_prefix

__all__ = [
    "CLUSTER_CONNECTION",
    "NAMESPACED_CONNECTION",
    "NAMESPACE_PLACEHOLDER",
    "Decision",
    "check_access",
    "expand_prefix",
    "prefix_warning",
    "selector_matches",
]

NAMESPACE_PLACEHOLDER = "{namespace}"
CLUSTER_CONNECTION = "ClusterVaultConnection"
NAMESPACED_CONNECTION = "VaultConnection"

#: At most this many prefixes are listed in a denial message (status messages should stay short).
_MAX_LISTED_PREFIXES = 10


@dataclass(frozen=True)
class Decision:
    """The answer of ``check_access``; ``message`` says why, in words fit for a status condition."""

    allowed: bool
    message: str


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: every ``matchLabels`` pair and every ``matchExpressions`` entry holds.

    ``In``: the key is present with one of the values. ``NotIn``: the key is absent or its value is none of the
    values. ``Exists`` / ``DoesNotExist``: the key is present / absent. The empty selector matches everything.
    """
    for key, value in selector.matchLabels.items():
        if labels.get(key) != value:
            return False
    for requirement in selector.matchExpressions:
        present = requirement.key in labels
        if requirement.operator == "In":
            ok = present and labels[requirement.key] in requirement.values
        elif requirement.operator == "NotIn":
            ok = not present or labels[requirement.key] not in requirement.values
        elif requirement.operator == "Exists":
            ok = present
        else:  # DoesNotExist
            ok = not present
        if not ok:
            return False
    return True


def expand_prefix(prefix: str, namespace: str) -> str:
    """Replace every ``{namespace}`` in ``prefix`` by ``namespace``."""
    return prefix.replace(NAMESPACE_PLACEHOLDER, namespace)


def prefix_warning(prefix: str) -> str | None:
    """A warning when ``prefix`` lets one namespace read another's paths, else None.

    A prefix with ``{namespace}`` is safe only when the path segment holding the placeholder is closed by ``/``
    within the prefix (``tenants/{namespace}/``, ``tenants/{namespace}/db``): otherwise namespace ``a`` also
    matches the paths of namespace ``ab`` (``tenants/{namespace}`` → ``tenants/a`` is a prefix of
    ``tenants/ab/...``). Prefixes without the placeholder get no warning.
    """
    index = prefix.rfind(NAMESPACE_PLACEHOLDER)
    if index < 0:
        return None
    rest = prefix[index + len(NAMESPACE_PLACEHOLDER) :]
    if "/" in rest:
        return None
    return (
        f"path prefix '{prefix}' does not end the {{namespace}} segment with '/': prefixes match as plain "
        f"strings, so namespace 'a' could also read the paths of namespace 'ab'; write '{prefix}/' instead"
    )


def check_access(
    *,
    connection_kind: str,
    connection_namespace: str | None,
    connection_name: str,
    access: Sequence[AccessRule] | None,
    namespace: str,
    namespace_labels: Mapping[str, str] | None,
    path: str,
    prefix: bool = False,
    field: str = "spec.path",
) -> Decision:
    """May a VaultSecret in ``namespace`` read ``path`` through this connection? See the module docstring.

    ``prefix``: ``path`` is a list prefix (``spec.dataFrom[].prefix``): allowed only when it starts with a prefix the
    rules allow, so that everything listed under it is readable too — nothing outside the rules is ever listed.
    ``field``: what the advice of a refusal tells the user to change."""
    conn = f"{connection_kind} {connection_name}"
    try:
        validate_prefix(path) if prefix else validate_path(path)
    except InvalidPathError as exc:
        return Decision(False, f"{conn} cannot serve {path!r} to namespace {namespace}: the path is not valid ({exc})")

    if connection_kind == NAMESPACED_CONNECTION:
        if connection_namespace != namespace:
            return Decision(
                False,
                f"{NAMESPACED_CONNECTION} {connection_name} is in namespace {connection_namespace}; a VaultSecret "
                f"in {namespace} cannot use it — use a {CLUSTER_CONNECTION} or a {NAMESPACED_CONNECTION} in "
                f"{namespace}",
            )
        if not access:
            return Decision(True, f"{conn} has no access rules: every path may be read in namespace {namespace}")
    elif connection_kind == CLUSTER_CONNECTION:
        if not access:
            return Decision(
                False,
                f"{conn} has no access rules; add spec.access to it to let namespace {namespace} read '{path}'",
            )
    else:
        return Decision(
            False, f"unknown connection kind {connection_kind!r}: use {CLUSTER_CONNECTION} or {NAMESPACED_CONNECTION}"
        )

    applying, unevaluated = _applying_rules(access, namespace, namespace_labels)
    prefixes = _dedupe(expand_prefix(p, namespace) for rule in applying for p in rule.pathPrefixes)
    for allowed in prefixes:
        if path.startswith(allowed):
            return Decision(True, f"{conn} allows namespace {namespace} to read '{path}' (prefix '{allowed}')")

    denied = f"{conn} does not allow namespace {namespace} to read '{path}'"
    labels_note = (
        f" (the labels of namespace {namespace} could not be read, so {unevaluated} namespaceSelector "
        f"rule{'s were' if unevaluated != 1 else ' was'} not applied)"
        if unevaluated
        else ""
    )
    if not applying:
        return Decision(
            False,
            f"{denied}: no access rule of the connection applies to namespace {namespace}{labels_note}; "
            f"add the namespace to a rule in the connection's spec.access",
        )
    return Decision(
        False,
        f"{denied}: this namespace may read only paths starting with {_list_prefixes(prefixes)}{labels_note}; "
        f"change {field} or the connection's spec.access",
    )


def _applying_rules(
    access: Sequence[AccessRule], namespace: str, labels: Mapping[str, str] | None
) -> tuple[list[AccessRule], int]:
    """The rules that apply to ``namespace``, and how many selector rules could not be evaluated."""
    applying: list[AccessRule] = []
    unevaluated = 0
    for rule in access:
        if rule.namespaces is not None and namespace in rule.namespaces:
            applying.append(rule)
        elif rule.namespaceSelector is not None:
            selector = rule.namespaceSelector
            if not selector.matchLabels and not selector.matchExpressions:
                applying.append(rule)  # {} selects every namespace, labels known or not
            elif labels is None:
                unevaluated += 1
            elif selector_matches(selector, labels):
                applying.append(rule)
    return applying, unevaluated


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _list_prefixes(prefixes: Sequence[str]) -> str:
    shown = ", ".join(f"'{p}'" for p in prefixes[:_MAX_LISTED_PREFIXES])
    if len(prefixes) > _MAX_LISTED_PREFIXES:
        shown += f" and {len(prefixes) - _MAX_LISTED_PREFIXES} more"
    return shown
