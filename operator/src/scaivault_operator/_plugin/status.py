"""``kubectl scaivault status [-n NS | -A]``: the VaultSecrets grouped by Ready reason, and the connections' health.

The VaultSecrets: how many there are, how many per Ready reason (``Pending`` when the operator has not written a
Ready condition yet), then the ones that are not Ready with their reason, the message clipped, and the version their
Secret holds (with several sources — ``spec.sources``, ``spec.dataFrom`` —: each secret's version, from
``status.sources``; in JSON ``sources`` and ``sourceCount``). The connections (every ClusterVaultConnection; the
VaultConnections of the namespace, or of all): their ``Ready`` condition (reasons Authenticated, Unauthorized,
MissingScope, Unreachable, InvalidSpec), ``identity``, ``watchedPaths`` and ``lastPollAt`` when the operator writes
them, and always ``status.breaker`` (state, reason, retryAt). An operator that writes only the breaker still gets an
answer: a connection is then not Ready when its spec does not parse (InvalidSpec, judged here with the operator's
model) or its breaker is open, and Unknown otherwise.

Exit code: 0 when every VaultSecret and every connection is Ready (or Unknown), 1 otherwise. A list the user may not
read is a note, except the VaultSecrets' (the question itself).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scaivault_operator._logic import composite
from scaivault_operator._logic.conditions import READY, SYNCED, find_condition
from scaivault_operator._logic.registry import ready_reason
from scaivault_operator._plugin.cluster import Cluster
from scaivault_operator._plugin.output import (
    ExitCode,
    PluginError,
    Report,
    integer,
    mapping,
    short,
    table,
    text,
)
from scaivault_operator._plugin.source import CLUSTER, NAMESPACED, Connection, parse_connection

__all__ = ["PENDING", "connection_health", "held_versions", "status", "status_report", "vaultsecret_summary"]

#: The reason shown for a VaultSecret without a Ready condition: the operator has not synced it yet.
PENDING = "Pending"
#: ``status.breaker.state`` of an open breaker.
_BREAKER_OPEN = "Open"
_CONNECTION_COLUMNS = ("kind", "namespace", "name", "ready", "reason", "breaker", "retry at", "identity", "paths",
                       "message")  # fmt: skip


def vaultsecret_summary(body: Mapping[str, Any]) -> dict[str, Any]:
    """One VaultSecret as ``status`` shows it (plain data)."""
    meta, spec, status = mapping(body.get("metadata")), mapping(body.get("spec")), mapping(body.get("status"))
    ready = find_condition(status, READY) or {}
    generation, observed = integer(meta.get("generation")), integer(status.get("observedGeneration"))
    several = "path" not in spec and ("sources" in spec or "dataFrom" in spec)
    held = composite.versions_from_status(status) if several else None
    return {
        "namespace": text(meta.get("namespace")),
        "name": text(meta.get("name")),
        "ready": ready.get("status") == "True",
        "reason": ready_reason(status) or PENDING,
        "message": text(ready.get("message")),
        "syncedVersion": integer(status.get("syncedVersion")),
        "path": text(spec.get("path")),
        "pinnedVersion": integer(spec.get("version")),
        # A VaultSecret with several sources (spec.sources, spec.dataFrom): each secret in its Secret and its
        # version, instead of syncedVersion (None for a single path).
        "sources": composite.status_sources(held) if held is not None else None,
        "sourceCount": _source_count(status, held) if several else None,
        # False while the operator has not acted on the latest spec: the condition may be about an older one.
        "current": generation is None or observed is None or observed >= generation,
    }


def _source_count(status: Mapping[str, Any], held: Mapping[Any, int] | None) -> int | None:
    count = integer(status.get("sourceCount"))
    return count if count is not None else len(held) if held is not None else None


def held_versions(summary: Mapping[str, Any]) -> str | None:
    """What a VaultSecret's Secret holds, for a table cell: ``syncedVersion``; for several sources each secret's
    version (``db@3, creds@1, teams/payments/stripe@2``: a source by name, a secret found by dataFrom by path), or
    ``N secrets`` when ``status.sources`` is missing."""
    if summary.get("syncedVersion") is not None:
        return str(summary["syncedVersion"])
    sources = summary.get("sources")
    if sources:
        return ", ".join(f"{item.get('name') or item.get('path')}@{item.get('version')}" for item in sources)
    count = summary.get("sourceCount")
    return f"{count} secret{'s' if count != 1 else ''}" if count is not None else None


def connection_health(conn: Connection) -> dict[str, Any]:
    """A connection's health (plain data) from whatever its status carries; see the module docstring."""
    status = conn.status
    ready = find_condition(status, READY)
    breaker = mapping(status.get("breaker"))
    identity = mapping(status.get("identity"))
    if ready is not None:
        state, reason, message = str(ready.get("status") or "Unknown"), text(ready.get("reason")), ready.get("message")
    elif conn.spec is None:
        state, reason, message = "False", "InvalidSpec", conn.error
    elif breaker.get("state") == _BREAKER_OPEN:
        state, reason, message = "False", text(breaker.get("reason")), breaker.get("message")
    else:
        state, reason, message = "Unknown", None, None
    scopes = identity.get("scopes")
    return {
        "kind": conn.kind,
        "namespace": conn.namespace,
        "name": conn.name,
        "ready": state,
        "reason": reason,
        "message": text(message),
        "breaker": {
            "state": text(breaker.get("state")),
            "reason": text(breaker.get("reason")),
            "retryAt": text(breaker.get("retryAt")),
        }
        if breaker
        else None,
        "identity": {
            "identityId": text(identity.get("identityId")),
            "identityType": text(identity.get("identityType")),
            "tenantId": text(identity.get("tenantId")),
            "scopes": [s for s in scopes if isinstance(s, str)] if isinstance(scopes, list) else [],
        }
        if identity
        else None,
        "watchedPaths": integer(status.get("watchedPaths")),
        "lastPollAt": text(status.get("lastPollAt")),
        "observedGeneration": integer(status.get("observedGeneration")),
        "generation": integer(mapping(conn.body.get("metadata")).get("generation")),
    }


def _healthy(connection: Mapping[str, Any]) -> bool:
    breaker = connection.get("breaker") or {}
    return connection["ready"] != "False" and breaker.get("state") != _BREAKER_OPEN


def _reason_order(item: tuple[str, int]) -> tuple[int, int, str]:
    reason, count = item
    return (0 if reason == SYNCED else 1, -count, reason)


def status_report(
    vaultsecrets: Iterable[Mapping[str, Any]],
    connections: Iterable[Connection],
    *,
    scope: str,
    notes: Sequence[str] = (),
) -> Report:
    """The report of ``status`` for the objects read (``scope``: "namespace X" or "all namespaces"). Pure."""
    items = [vaultsecret_summary(b) for b in vaultsecrets]
    items.sort(key=lambda v: (v["namespace"] or "", v["name"] or ""))
    not_ready = [v for v in items if not v["ready"]]
    counts = dict(sorted(Counter(v["reason"] for v in items).items(), key=_reason_order))
    health = [connection_health(c) for c in connections]
    unhealthy = [c for c in health if not _healthy(c)]

    lines = [f"VaultSecrets in {scope}: {len(items)}, {len(items) - len(not_ready)} Ready"]
    if items:
        lines += ["", table(["reason", "count"], counts.items())]
    if not_ready:
        rows: list[Sequence[Any]] = [
            (v["namespace"], v["name"], v["reason"] + ("" if v["current"] else " (older spec)"),
             short(held_versions(v), 40), short(v["message"]))
            for v in not_ready
        ]  # fmt: skip
        lines += ["", "Not Ready:", table(["namespace", "name", "reason", "synced", "message"], rows)]
    lines += ["", f"Connections: {len(health)}, {len(health) - len(unhealthy)} without a problem"]
    if health:
        rows = [
            (
                c["kind"],
                c["namespace"],
                c["name"],
                c["ready"],
                c["reason"],
                (c["breaker"] or {}).get("state"),
                (c["breaker"] or {}).get("retryAt") if (c["breaker"] or {}).get("state") == _BREAKER_OPEN else None,
                (c["identity"] or {}).get("identityId"),
                c["watchedPaths"],
                short(c["message"], 60),
            )
            for c in health
        ]
        lines += [table(_CONNECTION_COLUMNS, rows)]
    code = ExitCode.NOT_READY if not_ready or unhealthy else ExitCode.OK
    data = {
        "scope": scope,
        "vaultSecrets": {
            "total": len(items),
            "ready": len(items) - len(not_ready),
            "byReason": counts,
            "notReady": not_ready,
        },
        "connections": health,
    }
    return Report(data=data, text="\n".join(lines), code=code, notes=list(notes))


async def status(cluster: Cluster, namespace: str | None) -> Report:
    """Read the VaultSecrets of ``namespace`` (None: all) and the connections, and report."""
    scope = f"namespace {namespace}" if namespace else "all namespaces"
    vaultsecrets = await cluster.list("VaultSecret", namespace)
    connections: list[Connection] = []
    notes: list[str] = []
    for kind in (CLUSTER, NAMESPACED):
        try:
            connections += [parse_connection(kind, body) for body in await cluster.list(kind, namespace)]
        except PluginError as exc:
            notes.append(f"{exc.message}: {kind}s are not shown")
    connections.sort(key=lambda c: (c.kind != CLUSTER, c.namespace or "", c.name))
    return status_report(vaultsecrets, connections, scope=scope, notes=notes)
