"""Shards: which VaultSecrets this operator process serves when several share a cluster. Pure.

One replica per peering is active; beyond what one active replica can serve, a cluster runs several operator
Deployments (the chart's ``shards``), each with its own peering, that split the VaultSecrets:

* ``--shard i/n``: by a hash of the namespace (SHA-256, the same in every process and release), so every
  namespace — and every VaultSecret in it — belongs to exactly one of the ``n`` shards, whatever the namespaces are;
* ``--selector``: by a label selector on the VaultSecrets (as External Secrets' controller classes): Kopf's watch
  asks the API server for the matching ones only, and an object whose labels stop matching arrives as DELETED there
  and as ADDED in the shard it now matches — so a relabelled VaultSecret moves between shards. The selectors of
  the Deployments must split the objects (e.g. ``shard=a`` and ``shard!=a``); the operator cannot see the others.

Both may be set: a VaultSecret is served when both say so. ``Shard.owns`` decides on every watch event (the
emulator ignores label selectors, and a watch re-listed with a new selector may still deliver old objects).
Connections are seen by every shard; their ``status`` is written by one (``writes_connection_status``: shard 0, or
the process without ``--shard``; the setting ``connection_status`` decides for ``--selector`` shards), so that shards
do not overwrite each other's ``watchedPaths``.

Called by ``cli run`` (validation: a usage error), ``_app/handlers`` (the watch's label selector) and ``_core/runtime``
(``Runtime`` refuses settings it cannot parse with a ``ValueError``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_SHARDS", "Selector", "Shard", "parse_selector", "parse_shard", "shard_of"]

#: At most this many shards (``--shard i/n``).
MAX_SHARDS = 64

_SHARD = re.compile(r"([0-9]+)/([0-9]+)")
#: A label key (an optional DNS-subdomain prefix and '/', then a name of at most 63 characters) and a label value
#: (at most 63), as the API server checks them in a selector; lengths are checked apart.
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_KEY = rf"((?:{_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)"
_VALUE = r"((?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?)"
_VALUE_RE = re.compile(_VALUE)
_EQUALS = re.compile(rf"\s*{_KEY}\s*(==|=|!=)\s*{_VALUE}\s*")
_EXISTS = re.compile(rf"\s*(!?)\s*{_KEY}\s*")
_SET = re.compile(rf"\s*{_KEY}\s+(in|notin)\s+\(([^()]*)\)\s*")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 <= i < n <= MAX_SHARDS``; ``ValueError`` otherwise."""
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"shard must be i/n (e.g. 0/2), not {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if not 0 < count <= MAX_SHARDS or not 0 <= index < count:
        raise ValueError(f"shard {text!r}: need 0 <= i < n <= {MAX_SHARDS}")
    return index, count


def shard_of(namespace: str, count: int) -> int:
    """The shard of ``namespace`` among ``count``: stable across processes and releases (not Python's ``hash``)."""
    digest = hashlib.sha256(namespace.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class _Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!":
            return self.key not in labels
        if self.operator in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # "!=", "notin": also true without the label


@dataclass(frozen=True)
class Selector:
    """A Kubernetes label selector (equality- and set-based), as the API server reads ``labelSelector``."""

    text: str
    requirements: tuple[_Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)


def parse_selector(text: str) -> Selector:
    """``"shard=a,tier!=test,team in (x,y),!legacy"`` → ``Selector``; ``ValueError`` for what the API server would
    refuse too (approximately: keys and values by the label rules)."""
    requirements = []
    for part in _split(text):
        if (found := _SET.fullmatch(part)) is not None:
            values = [value.strip() for value in found.group(3).split(",")]
            if not found.group(3).strip() or not all(_VALUE_RE.fullmatch(value) for value in values):
                raise ValueError(f"not a label selector: {part.strip()!r} (values: label values, at least one)")
            requirement = _Requirement(found.group(1), found.group(2), frozenset(values))
        elif (found := _EQUALS.fullmatch(part)) is not None:
            operator = "!=" if found.group(2) == "!=" else "="
            requirement = _Requirement(found.group(1), operator, frozenset({found.group(3)}))
        elif (found := _EXISTS.fullmatch(part)) is not None:
            requirement = _Requirement(found.group(2), "!" if found.group(1) else "exists")
        else:
            raise ValueError(f"not a label selector: {part.strip()!r}")
        _check_lengths(requirement, part)
        requirements.append(requirement)
    return Selector(text.strip(), tuple(requirements))


def _check_lengths(requirement: _Requirement, part: str) -> None:
    prefix, _, name = requirement.key.rpartition("/")
    if len(prefix) > 253 or len(name) > 63 or any(len(value) > 63 for value in requirement.values):
        raise ValueError(f"not a label selector: {part.strip()!r} (a key's name and a value: at most 63 characters, a "
                         "key's prefix at most 253)")  # fmt: skip


def _split(text: str) -> list[str]:
    """Split on the commas outside parentheses; an empty part (``a,,b``, a trailing comma) is refused, as the API
    server refuses it, and so is an empty selector."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    if any(not part.strip() for part in parts):
        raise ValueError(f"not a label selector: {text.strip()!r} (an empty requirement)")
    return parts


@dataclass(frozen=True)
class Shard:
    """What this process serves: ``index``/``count`` (by namespace; ``count`` 1: every namespace) and ``selector``."""

    index: int = 0
    count: int = 1
    selector: Selector | None = None

    @classmethod
    def of(cls, shard: str | None, selector: str | None) -> Shard:
        index, count = parse_shard(shard) if shard else (0, 1)
        return cls(index, count, parse_selector(selector) if selector else None)

    @property
    def sharded(self) -> bool:
        return self.count > 1 or self.selector is not None

    def owns_namespace(self, namespace: str) -> bool:
        return self.count == 1 or shard_of(namespace, self.count) == self.index

    def owns(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether this process serves a VaultSecret in ``namespace`` with ``labels``."""
        return self.owns_namespace(namespace) and (self.selector is None or self.selector.matches(labels))

    @property
    def writes_connection_status(self) -> bool:
        return self.index == 0

    def describe(self) -> str:
        parts = [f"shard {self.index}/{self.count} (by namespace)"] if self.count > 1 else []
        parts += [f"VaultSecrets matching {self.selector.text!r}"] if self.selector is not None else []
        return ", ".join(parts) or "every VaultSecret"
