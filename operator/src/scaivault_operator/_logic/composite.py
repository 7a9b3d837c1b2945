"""Several ScaiVault secrets in one Secret (``spec.sources``, ``spec.dataFrom``): what to read and what the Secret
holds. Pure.

A *composite* VaultSecret has no ``spec.path``: it names sources (each its own path, version, keys and connection)
and/or discovers every secret under a prefix (``dataFrom``: tags, rewrite). The registry keeps one work unit per
composite VaultSecret (``Composite``); ``_core/sync`` runs it:

    plan     = needed(spec, ...)            # the (connection, path, version) reads, from the known versions and the
                                            # listings of the dataFrom prefixes (``discover``: tags, the limit)
    data     = compose(spec, fetched)       # the union of the sources' keys; a collision is InvalidSourceData
    data     = templating.apply_template(spec, data, sources=named(...))

Called by ``_logic/registry`` (``wanted``: is a composite behind what the lists show?), ``_core/watcher`` (what to
list) and ``_core/sync``. Messages name sources, paths and keys — never a value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scaivault_operator._cogs.api import ConnectionRef, DataFrom, Rewrite, VaultSecretSpec, compile_rewrite
from scaivault_operator._cogs.scaivault import SecretSummary
from scaivault_operator._logic import conditions
from scaivault_operator._logic.manifests import MAX_SECRET_BYTES, SourceDataError, key_problem, secret_data

__all__ = [
    "Composite",
    "Found",
    "Listed",
    "Needed",
    "TooManySecretsError",
    "compose",
    "connection_keys",
    "discover",
    "discovered_key",
    "followed",
    "needed",
    "prefixes",
    "ready_message",
    "revision",
    "sources_annotation",
    "status_sources",
    "versions_from_status",
    "wanted",
]

ConnKey = tuple[str, str, str]  # (kind, namespace or "", name): as registry.ConnKey
#: A secret in a composite: ``(source name, path)`` — the name is None for a secret found by dataFrom.
Slot = tuple[str | None, str]

#: ``scaivault.scailabs.ai/sources`` is cut to this many characters.
_MAX_ANNOTATION = 2048
#: Go's ``Regexp.Expand`` syntax: ``$$`` is a ``$``; ``$name`` takes the longest word (``$1x`` is ``${1x}``).
_GROUP = re.compile(r"\$(?:(\$)|(\w+)|\{(\w+)\})")


@dataclass(frozen=True)
class Composite:
    """The work unit of a VaultSecret with sources or dataFrom: its own key in the work queue and in
    ``Registry.by_source`` (it shares a GET with other VaultSecrets through ``_core/sync``'s shared reads)."""

    key: tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Listed:
    """A secret as a list page showed it: its current version, its tags and when it was written (Unix seconds, when
    the list says: a secret deleted and re-created at the same version has another)."""

    version: int
    tags: frozenset[str] = frozenset()
    stamp: int | None = None

    @classmethod
    def of(cls, item: SecretSummary) -> Listed:
        """An item of a list page, as the watcher, a first sync and ``kubectl scaivault render`` keep it."""
        stamp = int(item.updated_at.timestamp()) if item.updated_at is not None else None
        return cls(item.version, frozenset(item.tags), stamp)


@dataclass(frozen=True)
class Needed:
    """One read a composite needs: ``version`` None when its latest version is not known yet (a GET of the latest)."""

    slot: Slot
    conn: ConnKey
    path: str
    version: int | None


@dataclass(frozen=True)
class Found:
    """A secret found by ``dataFrom[index]`` at ``version``."""

    index: int
    version: int


class TooManySecretsError(SourceDataError):
    """dataFrom found more secrets than ``spec.maxDiscovered`` allows."""

    reason = conditions.TOO_MANY_SECRETS


def connection_key(ref: ConnectionRef | None, spec: VaultSecretSpec, namespace: str) -> ConnKey:
    """The connection a source reads through: its own ``connectionRef``, else the spec's (else ``default``)."""
    ref = ref or spec.connection
    return (ref.kind, namespace if ref.kind == "VaultConnection" else "", ref.name)


def connection_keys(spec: VaultSecretSpec, namespace: str) -> set[ConnKey]:
    """Every connection a composite reads through."""
    keys = {connection_key(source.connectionRef, spec, namespace) for source in spec.sources or ()}
    if spec.dataFrom:
        keys.add(connection_key(None, spec, namespace))
    return keys


def followed(spec: VaultSecretSpec, namespace: str) -> set[tuple[ConnKey, str]]:
    """The unpinned named sources: ``(connection, path)`` the version watchers list."""
    return {(connection_key(source.connectionRef, spec, namespace), source.path)
            for source in spec.sources or () if source.version is None}  # fmt: skip


def prefixes(spec: VaultSecretSpec, namespace: str) -> set[tuple[ConnKey, str]]:
    """The dataFrom prefixes: ``(connection, prefix)`` the version watchers list."""
    conn = connection_key(None, spec, namespace)
    return {(conn, entry.prefix) for entry in spec.dataFrom or ()}


def discover(spec: VaultSecretSpec, listings: Sequence[Mapping[str, Listed]]) -> dict[str, Found]:
    """The secrets ``spec.dataFrom`` finds: ``listings[i]`` is what the list shows under ``dataFrom[i].prefix``.
    A path under two prefixes belongs to the first. Raises ``TooManySecretsError`` beyond ``spec.maxDiscovered``."""
    found: dict[str, Found] = {}
    for index, (entry, listing) in enumerate(zip(spec.dataFrom or (), listings, strict=True)):
        wanted_tags = set(entry.tags or ())
        for path in sorted(listing):
            item = listing[path]
            if path.startswith(entry.prefix) and path not in found and wanted_tags <= item.tags:
                found[path] = Found(index, item.version)
    if len(found) > spec.max_discovered:
        where = ", ".join(entry.prefix for entry in spec.dataFrom or ())
        raise TooManySecretsError(
            f"spec.dataFrom finds {len(found)} secrets under {conditions.clip(where, 256)}; spec.maxDiscovered allows "
            f"{spec.max_discovered}: narrow the prefix or the tags, or raise maxDiscovered (at most 1000); the Secret "
            "keeps its last data"
        )
    return found


def needed(
    spec: VaultSecretSpec,
    namespace: str,
    latest: Callable[[ConnKey, str], int | None],
    found: Mapping[str, Found],
) -> list[Needed]:
    """The reads of a composite: each named source at its pinned version or at its latest known one (``latest``:
    None while no list has shown it), then each found secret at its listed version."""
    reads = []
    for source in spec.sources or ():
        conn = connection_key(source.connectionRef, spec, namespace)
        version = source.version if source.version is not None else latest(conn, source.path)
        reads.append(Needed((source.name, source.path), conn, source.path, version))
    conn = connection_key(None, spec, namespace)
    reads += [Needed((None, path), conn, path, item.version) for path, item in sorted(found.items())]
    return reads


def wanted(
    spec: VaultSecretSpec,
    namespace: str,
    latest: Callable[[ConnKey, str], int | None],
    listings: Sequence[Mapping[str, Listed] | None],
) -> dict[Slot, int] | None:
    """The versions the composite's Secret should hold, as far as the lists tell: None when one is unknown (an
    unpinned source no list has shown, a prefix not listed yet, or more secrets than allowed — the sync reports it)."""
    if any(listing is None for listing in listings):
        return None
    try:
        found = discover(spec, [listing or {} for listing in listings])
    except TooManySecretsError:
        return None
    versions: dict[Slot, int] = {}
    for read in needed(spec, namespace, latest, found):
        if read.version is None:
            return None
        versions[read.slot] = read.version
    return versions


def discovered_key(prefix: str, path: str, key: str, rewrite: Iterable[Rewrite] = ()) -> str:
    """The Secret key of ``key`` of the secret at ``path``, found under ``prefix``: the path below the prefix with
    '/' as '_', then '_' and the key (only the key when the path is the prefix), then the rewrites in order."""
    below = [part for part in path[len(prefix) :].split("/") if part]
    name = "_".join([*below, key])
    for rule in rewrite:
        name = compile_rewrite(rule.regexp.source).sub(_replacement(rule.regexp.target), name)
    return name


def _replacement(target: str) -> Callable[[Any], str]:
    """``$1``, ``${1}``, ``$name`` and ``${name}`` as groups, ``$$`` as ``$`` — External Secrets' Go syntax; a group
    that did not match, or does not exist, is ''."""

    def expand(match: Any) -> str:
        def group(ref: re.Match[str]) -> str:
            if ref.group(1):
                return "$"
            name = ref.group(2) or ref.group(3)
            try:
                value = match.group(int(name) if name.isdigit() else name)
            except IndexError:
                return ""
            return value or ""

        return _GROUP.sub(group, target)

    return expand


def compose(
    spec: VaultSecretSpec, fetched: Sequence[tuple[Needed, Mapping[str, Any]]], found: Mapping[str, Found]
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The Secret's data (base64) of a composite from each read's JSON data, and each named source's own data
    (after its ``keys``, for ``sources.<name>`` in templates). Raises ``SourceDataError``: a source's data cannot
    become a Secret's, a discovered key is no valid Secret key, a key comes from two sources, or over 1 MiB.

    A key in two sources is an error only when the union becomes the Secret: under a template with ``mergePolicy:
    Replace`` (only the template's keys are written) it is left out of ``data`` — the template reads it from
    ``sources.<name>.data`` — and only the sizes of the keys kept count."""
    named = {source.name: source for source in spec.sources or ()}
    replaced = spec.template is not None and spec.template.mergePolicy == "Replace"
    data: dict[str, str] = {}
    origin: dict[str, str] = {}
    ambiguous: set[str] = set()
    by_name: dict[str, dict[str, str]] = {}
    for read, raw in fetched:
        name, path = read.slot
        if name is not None:
            where = f"source {name} ({path})"
            try:
                part = secret_data(raw, named[name].keys)
            except SourceDataError as exc:
                raise SourceDataError(f"{where}: {exc.message}") from None
            by_name[name] = part
        else:
            where = path
            entry: DataFrom = (spec.dataFrom or [])[found[path].index]
            try:
                plain = secret_data(raw, None, check_keys=False)  # the names are checked once rewritten
            except SourceDataError as exc:
                raise SourceDataError(f"{path} (found under {entry.prefix}): {exc.message}") from None
            part = {}
            for key, value in plain.items():
                target = discovered_key(entry.prefix, path, key, entry.rewrite or ())
                problem = key_problem(target)
                if problem is not None:
                    place = f"{path} (found under {entry.prefix})"
                    rules = "the rewrite rules" if entry.rewrite else "a rewrite rule"
                    raise SourceDataError(f"key {key!r} of {place} becomes {target!r}, not a valid Secret key: "
                                          f"{problem}; change {rules} (spec.dataFrom[].rewrite)")  # fmt: skip
                if target in part:
                    raise SourceDataError(f"two keys of {path} become the Secret key {target!r}: change the rewrite "
                                          "rules")  # fmt: skip
                part[target] = value
        for key, value in part.items():
            if key in origin and replaced:
                ambiguous.add(key)
            elif key in origin:
                raise SourceDataError(f"the Secret key {key!r} comes from both {origin[key]} and {where}: rename it "
                                      "with keys (sources) or rewrite (dataFrom)")  # fmt: skip
            origin[key] = where
            data[key] = value
    for key in ambiguous:
        del data[key]
    total = sum(len(key.encode("utf-8")) + _decoded_size(value) for key, value in data.items())
    if total > MAX_SECRET_BYTES:
        raise SourceDataError(f"the Secret would hold about {total} bytes of data; Kubernetes allows at most "
                              f"{MAX_SECRET_BYTES} (1 MiB): select fewer keys or fewer secrets")  # fmt: skip
    return data, by_name


def _decoded_size(value: str) -> int:
    """The size of the bytes a base64 ``value`` holds (padding excluded), without decoding it."""
    return len(value) * 3 // 4 - (2 if value.endswith("==") else 1 if value.endswith("=") else 0)


def revision(versions: Mapping[Slot, int]) -> str:
    """A digest of the paths and versions a composite's Secret holds (hex): its ``scaivault.scailabs.ai/revision``."""
    text = "\n".join(f"{name or ''}\t{path}\t{version}" for (name, path), version in sorted(versions.items(),
                     key=lambda item: (item[0][0] or "", item[0][1])))  # fmt: skip
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _ordered(versions: Mapping[Slot, int]) -> list[tuple[Slot, int]]:
    """Named sources first (in name order), then found secrets (in path order)."""
    return sorted(versions.items(), key=lambda item: (item[0][0] is None, item[0][0] or "", item[0][1]))


def versions_from_status(status: Mapping[str, Any]) -> dict[Slot, int] | None:
    """The versions ``status.sources`` says the Secret holds (the operator's own record, read back after a restart);
    None when it has none or one is malformed."""
    listed = status.get("sources")
    if not isinstance(listed, list) or not listed:
        return None
    versions: dict[Slot, int] = {}
    for item in listed:
        if not isinstance(item, Mapping):
            return None
        name, path, version = item.get("name"), item.get("path"), item.get("version")
        if not isinstance(path, str) or not isinstance(version, int) or isinstance(version, bool):
            return None
        if name is not None and not isinstance(name, str):
            return None
        versions[(name, path)] = version
    return versions


def status_sources(versions: Mapping[Slot, int]) -> list[dict[str, Any]]:
    """``status.sources``: each secret in the Secret and its version."""
    return [({"name": name} if name is not None else {}) | {"path": path, "version": version}
            for (name, path), version in _ordered(versions)]  # fmt: skip


def sources_annotation(versions: Mapping[Slot, int]) -> str:
    """``scaivault.scailabs.ai/sources``: ``name=path@version`` (found secrets: ``path@version``), clipped."""
    text = ", ".join(f"{name}={path}@{version}" if name is not None else f"{path}@{version}"
                     for (name, path), version in _ordered(versions))  # fmt: skip
    return conditions.clip(text, _MAX_ANNOTATION)


def ready_message(spec: VaultSecretSpec, versions: Mapping[Slot, int], secret_name: str) -> str:
    """The Ready message of a synced composite: how many secrets, from where, in which Secret (no value)."""
    named = sum(1 for name, _ in versions if name is not None)
    found = len(versions) - named
    parts = []
    if spec.sources:
        parts.append(f"{named} source{'s' if named != 1 else ''}")
    if spec.dataFrom:
        where = ", ".join(entry.prefix for entry in spec.dataFrom)
        parts.append(f"{found} found under {conditions.clip(where, 256)}")
    total = len(versions)
    return f"{total} secret{'s' if total != 1 else ''} ({'; '.join(parts)}) in Secret {secret_name}"
