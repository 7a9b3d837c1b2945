"""``kubectl scaivault versions PATH --connection KIND/NAME|NAME [-n NS | -A]``: which version of PATH ScaiVault has,
and which VaultSecrets hold which version of it.

ScaiVault is asked with the connection's own credentials, read as the user (``source.open_client``: a user who may
not read the credentials Secret gets exit 4 and nothing is sent), with one list of the path as prefix — metadata
only, no secret data crosses the wire. Versions are immutable and numbered 1..current.

The VaultSecrets shown are those on that connection with that ``spec.path``: for a VaultConnection, those of its
namespace; for a ClusterVaultConnection, those of ``-n NS``, else of every namespace. Each with its pin
(``spec.version``), the version in its Secret (``status.syncedVersion``) and whether that is the current one.
A VaultSecret with several sources is shown once per source that reads the path — a named source of
``spec.sources`` on that connection (its own ``version`` pin), or a ``dataFrom`` prefix that finds it (its tags
those the list gives, or ``status.sources`` holds it) — with the version ``status.sources`` gives that source, and
the table gets a ``SOURCE`` column.

Exit code: 0 when ScaiVault has the path, 1 when it does not (or the connection does not exist or is invalid), 3 when
ScaiVault or the API server cannot be reached, 4 when the credentials may not be read or ScaiVault refuses them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from scaivault_operator._cogs import scaivault
from scaivault_operator._cogs.api import VaultSecretSpec
from scaivault_operator._logic import composite
from scaivault_operator._plugin.cluster import Cluster
from scaivault_operator._plugin.output import ExitCode, PluginError, Report, UsageError, mapping, table
from scaivault_operator._plugin.source import (
    NAMESPACED,
    Connection,
    connection_key,
    get_connection,
    open_client,
    plain_http_note,
    vault_failure,
)
from scaivault_operator._plugin.status import vaultsecret_summary

__all__ = ["current_version", "users_of", "versions", "versions_report"]


async def current_version(client: scaivault.ScaiVaultClient, path: str) -> scaivault.SecretSummary | None:
    """The list entry of ``path`` (its current version), or None when ScaiVault has no secret there."""
    async for page in client.list_secrets(path):
        for item in page.secrets:
            if item.path == path:
                return item
    return None


def users_of(
    vaultsecrets: Iterable[Mapping[str, Any]],
    conn: Connection,
    path: str,
    current: scaivault.SecretSummary | None = None,
) -> list[dict[str, Any]]:
    """The VaultSecrets that read ``path`` through ``conn`` (their spec parsed as the operator parses it): with
    ``spec.path``, and — one row each, ``source`` saying which — a named source of ``spec.sources`` with that path,
    or a ``dataFrom`` prefix that finds it (the first prefix it is under, its tags those of ``current``, the list
    entry; or ``status.sources`` holds it). Their ``pinnedVersion`` and ``syncedVersion`` are the source's."""
    found: list[dict[str, Any]] = []
    for body in vaultsecrets:
        namespace = mapping(body.get("metadata")).get("namespace")
        try:
            spec = VaultSecretSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            continue  # the operator reads nothing for it either
        if not isinstance(namespace, str):
            continue
        if spec.path is not None:
            if spec.path == path and connection_key(spec, namespace) == conn.key:
                found.append({**vaultsecret_summary(body), "source": None})
            continue
        found += _composite_uses(body, spec, namespace, conn, path, current)
    return sorted(found, key=lambda v: (v["namespace"] or "", v["name"] or "", v["source"] or ""))


def _composite_uses(
    body: Mapping[str, Any],
    spec: VaultSecretSpec,
    namespace: str,
    conn: Connection,
    path: str,
    current: scaivault.SecretSummary | None,
) -> list[dict[str, Any]]:
    """The rows of ``users_of`` for a VaultSecret with several sources."""
    summary = vaultsecret_summary(body)
    held = composite.versions_from_status(mapping(body.get("status"))) or {}
    rows = [{**summary, "source": f"source {source.name}", "pinnedVersion": source.version,
             "syncedVersion": held.get((source.name, path))}
            for source in spec.sources or ()
            if source.path == path and connection_key(spec, namespace, source.connectionRef) == conn.key]  # fmt: skip
    if spec.dataFrom and connection_key(spec, namespace) == conn.key:
        listed = {path: composite.Listed(current.version, frozenset(current.tags))} if current is not None else {}
        finds = composite.discover(spec, [listed for _ in spec.dataFrom]).get(path)  # one path: never too many
        under = [entry.prefix for entry in spec.dataFrom if path.startswith(entry.prefix)]
        if finds is not None or ((None, path) in held and under):
            prefix = spec.dataFrom[finds.index].prefix if finds is not None else under[0]
            rows.append({**summary, "source": f"dataFrom {prefix}", "pinnedVersion": None,
                         "syncedVersion": held.get((None, path))})  # fmt: skip
    return rows


def _state(user: Mapping[str, Any], current: int | None) -> str:
    pinned, synced = user["pinnedVersion"], user["syncedVersion"]
    if pinned is not None:
        if current is not None and pinned > current:
            return f"pinned to {pinned}, which does not exist"
        return f"pinned to {pinned}" + ("" if synced == pinned else f", holds {synced if synced is not None else '-'}")
    if synced is None:
        return "not synced"
    if current is not None and synced < current:
        return f"behind (current is {current})"
    return "current"


def versions_report(
    path: str,
    conn: Connection,
    current: scaivault.SecretSummary | None,
    users: Sequence[Mapping[str, Any]],
    *,
    scope: str,
    notes: Sequence[str] = (),
) -> Report:
    """The report of ``versions``. Pure."""
    number = current.version if current is not None else None
    if current is None:
        head = f"ScaiVault has no secret at {path} (as the credentials of {conn.display} see it)"
    else:
        updated = f", updated {current.updated_at.isoformat()}" if current.updated_at else ""
        head = f"{path} through {conn.display}: version {current.version} is current{updated}; versions 1..{number}"
    several = any(u.get("source") for u in users)  # a SOURCE column only when a VaultSecret has several sources
    headers = ["namespace", "name", *(["source"] if several else []), "pinned", "synced", "ready", "state"]
    rows = [(u["namespace"], u["name"], *([u.get("source")] if several else []), u["pinnedVersion"],
             u["syncedVersion"], u["ready"], _state(u, number)) for u in users]  # fmt: skip
    lines = [head, ""]
    if rows:
        lines += [f"VaultSecrets using it ({scope}):", table(headers, rows)]
    else:
        lines += [f"No VaultSecret in {scope} reads it through {conn.display}."]
    by_version: dict[str, list[str]] = {}
    for u in users:
        if u["syncedVersion"] is not None:
            who = f"{u['namespace']}/{u['name']}" + (f" ({u['source']})" if u.get("source") else "")
            by_version.setdefault(str(u["syncedVersion"]), []).append(who)
    data = {
        "path": path,
        "connection": conn.label,
        "current": None
        if current is None
        else {
            "version": current.version,
            "updatedAt": current.updated_at.isoformat() if current.updated_at else None,
            "secretType": current.secret_type,
        },
        "versions": None if number is None else {"first": 1, "last": number},
        "scope": scope,
        "usedBy": [{**u, "state": _state(u, number)} for u in users],
        "byVersion": dict(sorted(by_version.items(), key=lambda item: -int(item[0]))),
    }
    return Report(data=data, text="\n".join(lines), code=ExitCode.OK if current else ExitCode.NOT_READY,
                  notes=list(notes))  # fmt: skip


async def versions(
    cluster: Cluster, path: str, connection: tuple[str, str], namespace: str | None, all_namespaces: bool
) -> Report:
    try:
        scaivault.validate_path(path)
    except scaivault.InvalidPathError as exc:
        raise UsageError(f"PATH: {exc}") from None
    kind, name = connection
    conn_namespace = (namespace or cluster.namespace) if kind == NAMESPACED else None
    if kind == NAMESPACED and all_namespaces:
        raise UsageError("-A: a VaultConnection serves only its own namespace; use -n NS")
    conn = await get_connection(cluster, kind, conn_namespace, name)
    if conn is None:
        where = f"{conn_namespace}/{name}" if conn_namespace else name
        raise PluginError(f"{kind} {where} does not exist", ExitCode.NOT_READY)
    notes = plain_http_note(conn)
    client = await open_client(cluster, conn)
    try:
        async with client:
            current = await current_version(client, path)
    except scaivault.ScaiVaultError as exc:
        raise vault_failure(exc, via=conn.display) from None

    users_namespace = conn_namespace if kind == NAMESPACED else namespace
    scope = f"namespace {users_namespace}" if users_namespace else "all namespaces"
    try:
        users = users_of(await cluster.list("VaultSecret", users_namespace), conn, path, current)
    except PluginError as exc:
        users, notes = [], [*notes, f"{exc.message}: the VaultSecrets using the path are not shown"]
    return versions_report(path, conn, current, users, scope=scope, notes=notes)
