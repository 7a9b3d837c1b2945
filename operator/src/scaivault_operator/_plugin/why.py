"""``kubectl scaivault why NS/NAME``: the chain from one VaultSecret to the pods that use its Secret, checked link
by link.

1. **VaultSecret**: it exists; its Ready condition (reason, message, the version in the Secret); a spec the operator
   cannot parse (judged with the operator's model). With several sources: each named source (path, pin, own
   connection) and each ``dataFrom`` prefix, and how many secrets the Secret holds (``status.sourceCount``).
2. **Connection**: ``spec.connectionRef`` (default: the ClusterVaultConnection ``default``) exists and its spec parses
   — with several sources, each connection read through (``source.connection_keys``), one step each.
3. **Connection health**: its ``Ready`` condition, ``identity`` and ``watchedPaths`` when the operator writes them;
   ``status.breaker`` (open: no request before ``retryAt``).
4. **Access rules**: ``policy.check_access`` — the operator's own decision — with the namespace's labels (read as
   the user; when the user may not, the selector rules cannot be judged and the step says so); which rule matched.
   With several sources (``sources_access_step``): every named source's path through its connection, every secret
   dataFrom found at the last sync (``status.sources``: no list is made), and each prefix when a rule covers all of it.
5. **ScaiVault**: the last answer, from the Ready condition, and when the next request may go out; with several
   sources, the version of each secret the Secret holds (``status.sources``).
6. **Target Secret**: it exists; it is managed by the operator (label ``app.kubernetes.io/managed-by``) and
   controlled by this VaultSecret; its version annotation is ``status.syncedVersion`` (several sources: its revision
   annotation is ``composite.revision`` of ``status.sources``); its data still matches its data-hash annotation.
   Only names, counts and those comparisons are printed — never the data.
7. **Workloads**: the Deployments, StatefulSets and DaemonSets of the namespace whose pod template uses the Secret
   (``workloads.workloads_using``), and which of them need a restart to see a new version.

Each step is ✓ (fine), ✗ (this is where it breaks), ? (cannot tell: not readable, or not reached) or • (information).
Exit code: 0 when the VaultSecret is Ready and no step failed, 1 otherwise; 3/4 when the VaultSecret itself cannot be
read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from scaivault_operator._cogs.api import VaultSecretSpec
from scaivault_operator._logic import composite, conditions
from scaivault_operator._logic.composite import Slot
from scaivault_operator._logic.manifests import (
    ANNOTATION_DATA_HASH,
    ANNOTATION_MERGED_KEYS,
    ANNOTATION_PATH,
    ANNOTATION_REFRESH,
    ANNOTATION_REVISION,
    ANNOTATION_VERSION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    data_intact,
    merged_by_uid,
    ownership,
)
from scaivault_operator._logic.policy import check_access
from scaivault_operator._logic.workloads import WorkloadUse, summarize, workloads_using
from scaivault_operator._plugin.cluster import WORKLOAD_KINDS, Cluster
from scaivault_operator._plugin.output import (
    ExitCode,
    Marks,
    PluginError,
    Report,
    State,
    integer,
    labels_of,
    mapping,
    text,
)
from scaivault_operator._plugin.source import (
    Connection,
    ConnectionKey,
    check_path,
    connection_key,
    connection_keys,
    get_connection,
)
from scaivault_operator._plugin.status import connection_health

__all__ = [
    "Step",
    "access_step",
    "connection_step",
    "health_step",
    "scaivault_step",
    "sources_access_step",
    "target_step",
    "vaultsecret_step",
    "why",
    "why_report",
    "workloads_step",
]

T = TypeVar("T")

#: Ready reasons that are ScaiVault's own answer (or its absence).
_SCAIVAULT_REASONS = {
    conditions.UNAUTHORIZED: "retried once the connection's breaker lets a request out (10 s → 5 min)",
    conditions.FORBIDDEN: "retried after 5 minutes (a missing scope or policy is not retried hot)",
    conditions.SOURCE_NOT_FOUND: "retried slowly, and as soon as a poll lists the path again",
    conditions.BACKEND_UNAVAILABLE: "retried with backoff (2 s → 5 min, at least the server's Retry-After)",
}


@dataclass
class Step:
    """One link of the chain: its state, one line, and detail lines (each with a state of its own)."""

    name: str
    state: State
    summary: str
    details: list[tuple[State, str]] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {"step": self.name, "state": self.state, "summary": self.summary,
                "details": [{"state": s, "text": t} for s, t in self.details]}  # fmt: skip


def _parse_spec(body: Mapping[str, Any]) -> tuple[VaultSecretSpec | None, str | None]:
    try:
        return VaultSecretSpec.model_validate(body.get("spec") or {}), None
    except ValidationError as exc:
        return None, conditions.classify(exc).message


# -- the steps (pure) ---------------------------------------------------------------------------------------------


def vaultsecret_step(
    body: Mapping[str, Any], spec: VaultSecretSpec | None, spec_error: str | None, *, access_shown: bool = False
) -> Step:
    """The VaultSecret and its Ready condition. Its message is left to the step that explains it: ScaiVault's
    answers to the ScaiVault step, a PolicyDenied to the access-rules step when there is one (``access_shown``)."""
    meta, status = mapping(body.get("metadata")), mapping(body.get("status"))
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    ready = conditions.find_condition(status, conditions.READY)
    synced = integer(status.get("syncedVersion"))
    details: list[tuple[State, str]] = []
    several = spec.path is None if spec is not None else isinstance(status.get("sources"), list)
    if spec is not None and spec.path is not None:
        follows = f"pinned to version {spec.version}" if spec.version is not None else "follows the latest version"
        details.append(("info", f"path {spec.path}, {follows}"))
    elif spec is not None:
        details += _sources_details(spec)
    if spec_error is not None:
        details.append(("fail", f"the spec is invalid: {spec_error}"))
    generation, observed = integer(meta.get("generation")), integer(status.get("observedGeneration"))
    if generation is not None and observed is not None and observed < generation:
        details.append(("unknown", f"the operator has not acted on the latest spec yet (generation {generation}, "
                                   f"status for {observed})"))  # fmt: skip
    refresh = text(mapping(meta.get("annotations")).get(ANNOTATION_REFRESH))
    if refresh is not None:
        details.append(("info", f"re-read last requested at {refresh} ({ANNOTATION_REFRESH})"))
    if ready is None:
        return Step("VaultSecret", "fail" if spec_error else "unknown",
                    f"{where}: no Ready condition yet (the operator has not synced it)", details)  # fmt: skip
    reason = text(ready.get("reason")) or "?"
    if several:
        count = _held_count(status)
        plural = "s" if count != 1 else ""
        written = count or isinstance(status.get("sources"), list)  # a dataFrom that found nothing: 0 secrets
        version = f", {count} secret{plural} in the Secret" if written else ", nothing in the Secret yet"
    else:
        version = f", version {synced} in the Secret" if synced is not None else ", no version in the Secret yet"
    if ready.get("status") == "True":
        return Step("VaultSecret", "ok", f"{where}: Ready ({reason}){version}", details)
    message = text(ready.get("message"))
    elsewhere = reason in _SCAIVAULT_REASONS or (access_shown and reason == conditions.POLICY_DENIED)
    if message and not elsewhere:
        details.insert(0, ("fail", message))
    return Step("VaultSecret", "fail", f"{where}: not Ready ({reason}){version}", details)


def _sources_details(spec: VaultSecretSpec) -> list[tuple[State, str]]:
    """What a VaultSecret with several sources reads: each named source, each dataFrom prefix (names only)."""
    details: list[tuple[State, str]] = []
    for source in spec.sources or ():
        follows = f"pinned to version {source.version}" if source.version is not None else "follows the latest version"
        ref = source.connectionRef
        via = f", through {ref.kind} {ref.name}" if ref is not None else ""
        details.append(("info", f"source {source.name}: {source.path}, {follows}{via}"))
    for entry in spec.dataFrom or ():
        tags = f" tagged {', '.join(entry.tags)}" if entry.tags else ""
        rules = len(entry.rewrite or ())
        rewrite = f", {rules} rewrite rule{'s' if rules != 1 else ''}" if rules else ""
        details.append(("info", f"dataFrom: every secret under {entry.prefix}{tags}{rewrite}"))
    if spec.dataFrom:
        details.append(("info", f"at most {spec.max_discovered} secrets found by dataFrom (maxDiscovered)"))
    return details


def _held_count(status: Mapping[str, Any]) -> int:
    """How many ScaiVault secrets the Secret of a VaultSecret with several sources holds (``status.sourceCount``,
    else the length of ``status.sources``)."""
    count = integer(status.get("sourceCount"))
    if count is not None:
        return count
    sources = status.get("sources")
    return len(sources) if isinstance(sources, list) else 0


def connection_step(kind: str, namespace: str | None, name: str, conn: Connection | None, error: str | None) -> Step:
    display = f"{kind} {namespace + '/' if namespace else ''}{name}"
    if error is not None:
        return Step("Connection", "unknown", f"{display}: cannot read it", [("unknown", error)])
    if conn is None:
        hint = "create it, or set spec.connectionRef to an existing connection"
        if kind == "VaultConnection":
            hint += " (a VaultConnection must be in the VaultSecret's namespace)"
        return Step("Connection", "fail", f"{display} does not exist", [("info", hint)])
    if conn.spec is None:
        return Step("Connection", "fail", f"{display}: its spec is invalid", [("fail", conn.error or "?")])
    details: list[tuple[State, str]] = [("info", f"poll every {conn.spec.pollInterval}, "
                                                 f"{len(conn.spec.access or [])} access rule(s)")]  # fmt: skip
    if conn.spec.plain_http_fields:
        fields = ", ".join(f"spec.{f}" for f in conn.spec.plain_http_fields)
        details.append(("fail", f"plain HTTP to a host that is not loopback (insecureHTTP: true): {fields}"))
    return Step("Connection", "ok", f"{display} exists", details)


def health_step(conn: Connection, *, named: bool = False) -> Step:
    """The connection's health; ``named``: the summary names it (a VaultSecret reading through several)."""
    step = _health_step(conn)
    if named:
        step.summary = f"{conn.display}: {step.summary}"
    return step


def _health_step(conn: Connection) -> Step:
    health = connection_health(conn)
    details: list[tuple[State, str]] = []
    breaker = health["breaker"] or {}
    if breaker.get("state") == "Open":
        retry = f": no request before {breaker['retryAt']}" if breaker.get("retryAt") else ""
        details.append(("fail", f"breaker open ({breaker.get('reason') or '?'}){retry}"))
    elif breaker.get("state"):
        details.append(("ok", f"breaker {breaker['state']}"))
    identity = health["identity"]
    if identity:
        scopes = ", ".join(identity["scopes"]) or "none"
        details.append(("info", f"identity {identity['identityId'] or '?'} ({identity['identityType'] or '?'}), "
                                f"tenant {identity['tenantId'] or '?'}, scopes: {scopes}"))  # fmt: skip
    if health["watchedPaths"] is not None:
        polled = f", last poll {health['lastPollAt']}" if health["lastPollAt"] else ""
        details.append(("info", f"{health['watchedPaths']} path(s) watched for new versions{polled}"))
    if health["message"]:
        details.insert(0, ("fail" if health["ready"] == "False" else "info", health["message"]))
    ready, reason = health["ready"], health["reason"]
    if ready == "True":
        return Step("Connection health", "ok", f"Ready ({reason or '?'})", details)
    if ready == "False" or breaker.get("state") == "Open":
        return Step("Connection health", "fail", f"not Ready ({reason or '?'})", details)
    if health["breaker"] is None:
        summary = "no failure recorded (no Ready condition; status.breaker absent: it never opened)"
        return Step("Connection health", "ok", summary, details)
    return Step("Connection health", "ok", f"no Ready condition; breaker {breaker.get('state') or '?'}", details)


def _matching_rule(conn: Connection, namespace: str, labels: Mapping[str, str] | None, path: str) -> int | None:
    assert conn.spec is not None
    for index, rule in enumerate(conn.spec.access or ()):
        decision = check_access(connection_kind=conn.kind, connection_namespace=conn.namespace,
                                connection_name=conn.name, access=[rule], namespace=namespace,
                                namespace_labels=labels, path=path)  # fmt: skip
        if decision.allowed:
            return index
    return None


def access_step(
    conn: Connection, namespace: str, labels: Mapping[str, str] | None, labels_error: str | None, path: str
) -> Step:
    """``policy.check_access``, as the operator applies it before every read."""
    assert conn.spec is not None
    access = conn.spec.access
    decision = check_access(connection_kind=conn.kind, connection_namespace=conn.namespace, connection_name=conn.name,
                            access=access, namespace=namespace, namespace_labels=labels, path=path)  # fmt: skip
    details: list[tuple[State, str]] = []
    selectors = any(rule.namespaceSelector is not None and (rule.namespaceSelector.matchLabels
                                                            or rule.namespaceSelector.matchExpressions)
                    for rule in access or ())  # fmt: skip
    if labels_error is not None and selectors:  # only selectors that look at labels need them
        details.append(("unknown", f"cannot read the labels of namespace {namespace} ({labels_error}): "
                                   "namespaceSelector rules are judged without them"))  # fmt: skip
    if decision.allowed:
        index = _matching_rule(conn, namespace, labels, path) if access else None
        if index is not None:
            rule = access[index] if access else None
            who = (f"namespaces {', '.join(rule.namespaces)}" if rule and rule.namespaces is not None
                   else "a namespaceSelector")  # fmt: skip
            details.insert(0, ("ok", f"rule #{index + 1} of spec.access ({who}) matches"))
        return Step("Access rules", "ok", decision.message, details)
    state: State = "unknown" if labels is None and selectors else "fail"
    return Step("Access rules", state, decision.message, details)


#: At most this many allowed paths found by dataFrom are listed one by one in the access-rules step (denied ones: all).
_MAX_FOUND_SHOWN = 10


def sources_access_step(
    spec: VaultSecretSpec,
    conns: Mapping[ConnectionKey, Connection],
    namespace: str,
    labels: Mapping[str, str] | None,
    labels_error: str | None,
    status: Mapping[str, Any],
) -> Step:
    """``policy.check_access`` on every path of a VaultSecret with several sources, as the operator applies it
    before its reads: each named source through its own connection, each secret ``status.sources`` says dataFrom
    found at the last sync (the operator checks each secret it finds; listing the prefixes again would need the
    connection's credentials), and each dataFrom prefix — shown as allowed as a whole when the prefix itself (without
    its trailing '/') starts with a rule's path prefix, so that every path under it does. ``conns``: the connections
    read (and valid)."""
    details: list[tuple[State, str]] = []
    rules = [rule for conn in conns.values() if conn.spec is not None for rule in conn.spec.access or ()]
    selectors = any(rule.namespaceSelector is not None and (rule.namespaceSelector.matchLabels
                                                            or rule.namespaceSelector.matchExpressions)
                    for rule in rules)  # fmt: skip
    if labels_error is not None and selectors:
        details.append(("unknown", f"cannot read the labels of namespace {namespace} ({labels_error}): "
                                   "namespaceSelector rules are judged without them"))  # fmt: skip
    denied: list[tuple[State, str]] = []
    allowed = hidden = unreadable = 0

    def check(conn: Connection, path: str, label: str, *, shown: bool = True, field: str = "spec.sources") -> None:
        nonlocal allowed, hidden
        decision = check_path(conn, namespace, labels, path, field=field)
        if decision.allowed:
            allowed += 1
            if shown:
                details.append(("ok", f"{label}: {decision.message}"))
            else:
                hidden += 1
            return
        state: State = "unknown" if labels is None and selectors else "fail"
        denied.append((state, decision.message))
        details.append((state, f"{label}: {decision.message}"))

    for source in spec.sources or ():
        conn = conns.get(connection_key(spec, namespace, source.connectionRef))
        if conn is None:
            unreadable += 1
            details.append(("unknown", f"source {source.name} ({source.path}): its connection could not be read"))
        else:
            check(conn, source.path, f"source {source.name}")
    lister = conns.get(connection_key(spec, namespace))
    for entry in spec.dataFrom or ():
        if lister is None:
            unreadable += 1
            details.append(("unknown", f"dataFrom {entry.prefix}: its connection could not be read"))
            continue
        # As the operator: a prefix is listed only when the rules allow all of it (nothing outside them is listed).
        decision = check_path(lister, namespace, labels, entry.prefix, prefix=True, field="spec.dataFrom")
        if decision.allowed:
            index = _matching_rule(lister, namespace, labels, entry.prefix.rstrip("/") or entry.prefix)
            rule = f"rule #{index + 1} of spec.access" if index is not None else "the connection has no access rules"
            details.append(("ok", f"dataFrom {entry.prefix}: every secret under it may be read ({rule})"))
        else:
            state: State = "unknown" if labels is None and selectors else "fail"
            denied.append((state, decision.message))
            details.append((state, f"dataFrom {entry.prefix}: not listed — {decision.message}"))
    found = sorted(path for name, path in composite.versions_from_status(status) or {} if name is None)
    if lister is not None:
        for number, path in enumerate(found):
            check(lister, path, f"{path} (found by dataFrom at the last sync)", shown=number < _MAX_FOUND_SHOWN)
    if hidden:
        details.append(("ok", f"{hidden} more secret(s) found by dataFrom at the last sync may be read"))
    if denied:
        return Step("Access rules", denied[0][0], denied[0][1], details)
    if unreadable:
        return Step("Access rules", "unknown", f"{allowed} path(s) may be read; {unreadable} could not be checked",
                    details)  # fmt: skip
    return Step("Access rules", "ok", f"every path checked may be read ({allowed})", details)


#: At most this many secrets of ``status.sources`` are listed one by one in the ScaiVault step.
_MAX_SOURCES_SHOWN = 20


def _held_lines(held: Mapping[Slot, int]) -> list[tuple[State, str]]:
    """``status.sources``, one line per secret (named sources first), at most ``_MAX_SOURCES_SHOWN``."""
    items = composite.status_sources(held)
    lines: list[tuple[State, str]] = [
        ("info", f"source {item['name']}: {item['path']} version {item['version']}" if "name" in item
         else f"{item['path']} version {item['version']} (found by dataFrom)")
        for item in items[:_MAX_SOURCES_SHOWN]
    ]  # fmt: skip
    if len(items) > _MAX_SOURCES_SHOWN:
        lines.append(("info", f"and {len(items) - _MAX_SOURCES_SHOWN} more (kubectl get vaultsecret -o yaml: "
                              "status.sources)"))  # fmt: skip
    return lines


def scaivault_step(status: Mapping[str, Any], conn: Connection | Sequence[Connection] | None) -> Step:
    """The last ScaiVault answer, from the Ready condition, and when the next request may go out (``conn``: the
    connection, or each connection a VaultSecret with several sources reads through). A VaultSecret with several
    sources: the version of each secret its Secret holds, from ``status.sources``."""
    ready = conditions.find_condition(status, conditions.READY)
    conns = [conn] if isinstance(conn, Connection) else list(conn or ())
    details: list[tuple[State, str]] = []
    open_breakers = [c for c in conns if mapping(c.status.get("breaker")).get("state") == "Open"]
    for each in open_breakers:
        breaker = mapping(each.status.get("breaker"))
        when = f"not before {breaker['retryAt']}" if text(breaker.get("retryAt")) else "after its backoff"
        whose = "the connection's" if len(conns) == 1 else f"{each.display}'s"
        details.append(("fail", f"next request {when}: {whose} breaker is open"))
    held = composite.versions_from_status(status)
    if ready is None:
        return Step("ScaiVault", "unknown", "no answer recorded yet", details)
    reason, message = text(ready.get("reason")) or "?", text(ready.get("message")) or ""
    at = text(status.get("syncedAt"))
    if ready.get("status") == "True":
        synced = integer(status.get("syncedVersion"))
        if synced is None and held is not None:
            count = len(held)
            return Step("ScaiVault", "ok", f"last sync read {count} secret{'s' if count != 1 else ''}"
                        + (f" (written {at})" if at else ""), details + _held_lines(held))  # fmt: skip
        return Step("ScaiVault", "ok",
                    f"last read gave version {synced if synced is not None else '?'}"
                    + (f" (written {at})" if at else ""), details)  # fmt: skip
    if held is not None:  # the Secret keeps the data of the last sync that worked
        details.append(("info", f"the Secret still holds the {len(held)} secret(s) of the last successful sync"))
    if reason in _SCAIVAULT_REASONS:
        if not open_breakers:
            details.append(("info", f"next request: {_SCAIVAULT_REASONS[reason]}"))
        return Step("ScaiVault", "fail", f"last answer: {reason} — {message}", details)
    stopped_after = (conditions.INVALID_SOURCE_DATA, conditions.TEMPLATE_ERROR, conditions.TARGET_CONFLICT,
                     conditions.TARGET_NOT_FOUND, conditions.TOO_MANY_SECRETS)  # fmt: skip
    if reason in stopped_after:
        return Step("ScaiVault", "ok", f"answered; the sync stopped after it ({reason})", details)
    return Step("ScaiVault", "unknown", f"not asked: the sync stops before ScaiVault ({reason})", details)


def target_step(
    secret: Mapping[str, Any] | None,
    *,
    namespace: str,
    name: str,
    vaultsecret_uid: str | None,
    synced_version: int | None,
    path: str | None,
    error: str | None,
    sources: Mapping[Slot, int] | None = None,
    several: bool = False,
) -> Step:
    """The Secret the VaultSecret writes: exists, ours, at the synced version, intact. Reads metadata only (and the
    data only through ``manifests.data_intact``, which compares hashes). A VaultSecret with several sources
    (``several``): its revision annotation is ``composite.revision`` of ``sources`` (``status.sources``) instead."""
    where = f"{namespace}/{name}"
    if error is not None:
        return Step("Target Secret", "unknown", f"{where}: cannot read it", [("unknown", error)])
    if secret is None:
        return Step("Target Secret", "fail", f"{where} does not exist",
                    [("info", "the operator creates it at the first successful sync")])  # fmt: skip
    meta = mapping(secret.get("metadata"))
    labels, annotations = mapping(meta.get("labels")), mapping(meta.get("annotations"))
    data = mapping(secret.get("data"))
    details: list[tuple[State, str]] = []
    managed = labels.get(MANAGED_BY_LABEL) == MANAGED_BY
    owner = ownership(secret, vaultsecret_uid or "") if vaultsecret_uid else "foreign"
    if vaultsecret_uid and merged_by_uid(secret) == vaultsecret_uid:  # creationPolicy Merge: not ours, merged into
        managed, owner = True, "ours"
        keys = text(annotations.get(ANNOTATION_MERGED_KEYS)) or "no keys"
        details.append(("ok", f"merged into by this VaultSecret (creationPolicy Merge; not watched): {keys}"))
    else:
        details.append(
            (
                "ok" if managed else "fail",
                f"label {MANAGED_BY_LABEL}={MANAGED_BY}" + ("" if managed else " missing: not managed by the operator"),
            )
        )
        details.append(("ok" if owner == "ours" else "fail",
                        "controlled by this VaultSecret" if owner == "ours"
                        else "not controlled by this VaultSecret (TargetConflict unless it is adopted)"))  # fmt: skip
    stored_path = text(annotations.get(ANNOTATION_PATH))
    if several:
        revision = text(annotations.get(ANNOTATION_REVISION))
        want = composite.revision(sources) if sources else None
        same = revision is not None and revision == want
        held = f"{len(sources)} secret(s), revision {want}" if sources else "unset"
        details.append(("ok" if same else "fail",
                        f"revision annotation {revision or 'missing'}, status.sources {held}"))  # fmt: skip
        other_path = stored_path is not None
        if other_path:
            details.append(("fail", f"holds path {stored_path} alone, the spec has several sources (the next sync "
                                    "rewrites it)"))  # fmt: skip
    else:
        version = text(annotations.get(ANNOTATION_VERSION))
        same = version is not None and synced_version is not None and version == str(synced_version)
        details.append(("ok" if same else "fail",
                        f"version annotation {version or 'missing'}, status.syncedVersion "
                        f"{synced_version if synced_version is not None else 'unset'}"))  # fmt: skip
        other_path = path is not None and stored_path is not None and stored_path != path
        if other_path:
            details.append(("fail", f"holds path {stored_path}, the spec says {path} (the next sync rewrites it)"))
    intact: bool | None = data_intact(secret) if text(annotations.get(ANNOTATION_DATA_HASH)) else None
    if intact is None:
        details.append(("fail", f"no {ANNOTATION_DATA_HASH} annotation"))
    else:
        details.append(
            (
                "ok" if intact else "fail",
                "data matches its data-hash annotation"
                if intact
                else "data changed since the operator wrote it (edited by hand: the operator restores it)",
            )
        )
    details.append(("info", f"type {secret.get('type') or 'Opaque'}, {len(data)} key(s)"))
    ok = managed and owner == "ours" and same and bool(intact) and not other_path
    return Step("Target Secret", "ok" if ok else "fail", f"{where} exists", details)


def workloads_step(namespace: str, secret: str, uses: Sequence[WorkloadUse], errors: Sequence[str]) -> Step:
    details: list[tuple[State, str]] = [("unknown", e) for e in errors]
    for use in uses:
        details.append(("info", f"{use.kind}/{use.name}: " + "; ".join(u.describe() for u in use.uses)))
        if use.needs_restart:
            details.append(("info", f"  its pods see a new version only after a restart: kubectl -n {namespace} "
                                    f"rollout restart {use.kind.lower()}/{use.name}"))  # fmt: skip
    kinds = ", ".join(f"{k}s" for k in WORKLOAD_KINDS)
    summary = (f"{len(uses)} workload(s) use Secret {secret}" if uses
               else f"none of the {kinds} of namespace {namespace} uses Secret {secret}")  # fmt: skip
    return Step("Workloads", "unknown" if errors and not uses else "info", summary, details)


def why_report(namespace: str, name: str, steps: Sequence[Step], ready: bool, marks: Marks,
               uses: Sequence[WorkloadUse] = ()) -> Report:  # fmt: skip
    """The report of ``why``; the text marks each step with ``marks``. Pure."""
    lines: list[str] = []
    for step in steps:
        lines.append(f"{marks.of(step.state)} {step.name}: {step.summary}")
        lines += [f"    {marks.of(state)} {line}" for state, line in step.details]
    failed = any(step.state == "fail" for step in steps)
    data = {
        "vaultSecret": {"namespace": namespace, "name": name},
        "ready": ready,
        "steps": [step.as_data() for step in steps],
        "workloads": summarize(uses),
    }
    return Report(data=data, text="\n".join(lines), code=ExitCode.OK if ready and not failed else ExitCode.NOT_READY)


# -- reading (I/O) ------------------------------------------------------------------------------------------------


async def _readable(call: Any) -> tuple[Any, str | None]:
    """``(await call, None)``, or ``(None, why)`` when it fails (forbidden, or an error of the API server): a step
    that cannot be checked is shown as such; the VaultSecret itself was read, so the server does answer."""
    try:
        return await call, None
    except PluginError as exc:
        return None, exc.message


async def why(cluster: Cluster, namespace: str, name: str, marks: Marks) -> Report:
    body = await cluster.get("VaultSecret", name, namespace)
    if body is None:
        step = Step("VaultSecret", "fail", f"{namespace}/{name} does not exist",
                    [("info", f"kubectl get vaultsecrets -n {namespace} lists those that do")])  # fmt: skip
        return why_report(namespace, name, [step], False, marks)
    meta, status = mapping(body.get("metadata")), mapping(body.get("status"))
    spec, spec_error = _parse_spec(body)
    steps: list[Step] = []
    ready = (conditions.find_condition(status, conditions.READY) or {}).get("status") == "True"

    conns: dict[ConnectionKey, Connection] = {}
    if spec is not None:
        keys = connection_keys(spec, namespace)
        for key in keys:
            kind, conn_namespace, conn_name = key
            conn, error = await _readable(get_connection(cluster, kind, conn_namespace, conn_name))
            steps.append(connection_step(kind, conn_namespace, conn_name, conn, error))
            if conn is not None:
                steps.append(health_step(conn, named=len(keys) > 1))
                conns[key] = conn
        usable = {key: conn for key, conn in conns.items() if conn.spec is not None}
        if usable:
            ns_body, labels_error = await _readable(cluster.get("Namespace", namespace))
            if ns_body is None and labels_error is None:  # as the operator: no Namespace, no labels
                labels_error = f"Namespace {namespace} was not found"
            labels = None if labels_error else labels_of(ns_body)
            if spec.path is not None:
                steps.append(access_step(usable[keys[0]], namespace, labels, labels_error, spec.path))
            else:
                steps.append(sources_access_step(spec, usable, namespace, labels, labels_error, status))
    access_shown = any(step.name == "Access rules" for step in steps)
    steps.insert(0, vaultsecret_step(body, spec, spec_error, access_shown=access_shown))
    steps.append(scaivault_step(status, list(conns.values())))

    if spec is not None and spec.target.immutable:  # <name>-v<version>: the one status names, else the synced one
        synced = integer(status.get("syncedVersion"))
        target = text(status.get("secretName")) or spec.secret_name(name, synced)
    else:
        target = spec.target_name(name) if spec is not None else text(status.get("secretName")) or name
    secret, secret_error = await _readable(cluster.get("Secret", target, namespace))
    several = spec.path is None if spec is not None else isinstance(status.get("sources"), list)
    steps.append(target_step(secret, namespace=namespace, name=target, vaultsecret_uid=text(meta.get("uid")),
                             synced_version=integer(status.get("syncedVersion")),
                             path=spec.path if spec is not None else None, error=secret_error,
                             sources=composite.versions_from_status(status), several=several))  # fmt: skip
    del secret  # the data is never kept beyond the hash comparison

    listed = await asyncio.gather(*(_readable(cluster.list(kind, namespace)) for kind in WORKLOAD_KINDS))
    workloads = [item for items, _ in listed for item in items or ()]
    errors = [error for _, error in listed if error]
    uses = workloads_using(workloads, target, namespace=namespace)
    steps.append(workloads_step(namespace, target, uses, errors))
    return why_report(namespace, name, steps, ready, marks, uses)
