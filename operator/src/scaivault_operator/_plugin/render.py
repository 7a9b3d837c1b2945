"""``kubectl scaivault render NS/NAME [--show-values]``: the Secret the operator would write now, built by the
operator's own pure functions; and ``kubectl scaivault refresh NS/NAME``: ask the operator for one re-read.

``render`` reads the VaultSecret, judges its connection's access rules as the operator does
(``policy.check_access``: a path the operator would not read is not read here either), fetches the source with the
connection's credentials read as the user (``source.open_client``), and builds the Secret with
``manifests.secret_data``, ``templating.apply_template`` (``spec.template``: rendered keys are shown as the others,
masked, with where each key comes from — template, literal or source; a failing template exits 1 with its
``TemplateError``, naming no value) and ``manifests.desired_secret``. It prints the type, labels and annotations,
and per key its size and the first 12 hex digits of the SHA-256 of its value — never the value, unless
``--show-values`` is given *and* a SelfSubjectAccessReview says the user may ``get`` the target Secret (whoever may
read the Secret may read its values anyway); otherwise exit 4, before anything is fetched. It also says whether the
live Secret already holds that data (comparing the data-hash annotation, no values) and whether the operator may
write it (``manifests.target_refusal``).

A VaultSecret with several sources (``spec.sources``, ``spec.dataFrom``) is built as ``_core/sync`` builds it, with
``_logic.composite``: each ``dataFrom`` prefix listed through ``spec.connectionRef`` (metadata only),
``composite.discover`` (tags, ``maxDiscovered``: ``TooManySecrets``) and ``composite.needed`` (an unpinned source
at its latest version), the access rules on every path before anything is read (``PolicyDenied`` naming the
source or path), one read per (connection, path, version) through each connection's own client,
``composite.compose`` (a key from two sources: ``InvalidSourceData``), the template over the union and the named
sources, and ``desired_secret`` with the revision and sources annotations. The report lists each secret read — its
source name (none for one found by dataFrom), path, version and connection — instead of one path and version, and
per key which source it comes from.

``refresh`` sets the annotation ``scaivault.scailabs.ai/refresh`` to the current time (RFC 3339, microseconds, so
two refreshes never carry the same value) with a JSON merge patch; the operator re-reads the source (every source of
a VaultSecret with several) once when that annotation changes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from scaivault_operator._cogs import scaivault
from scaivault_operator._cogs.api import API_VERSION, VaultSecretSpec
from scaivault_operator._logic import composite, conditions
from scaivault_operator._logic.composite import ConnKey, Slot
from scaivault_operator._logic.manifests import (
    ANNOTATION_DATA_HASH,
    ANNOTATION_REFRESH,
    ANNOTATION_REVISION,
    ANNOTATION_VERSION,
    Owner,
    SourceDataError,
    data_intact,
    desired_secret,
    merge_refusal,
    merge_target_missing,
    read_data_hash,
    secret_data,
    target_refusal,
)
from scaivault_operator._logic.templating import SourceInput, apply_template, key_origins
from scaivault_operator._plugin.cluster import Cluster
from scaivault_operator._plugin.output import (
    ExitCode,
    PluginError,
    Report,
    integer,
    labels_of,
    mapping,
    table,
    text,
)
from scaivault_operator._plugin.source import (
    Connection,
    ConnectionKey,
    check_path,
    connection_key,
    connection_keys,
    get_connection,
    open_client,
    plain_http_note,
    vault_failure,
)

__all__ = [
    "HASH_CHARS",
    "LIST_PAGE_SIZE",
    "key_rows",
    "list_prefix",
    "live_comparison",
    "refresh",
    "refresh_value",
    "render",
    "render_report",
]

#: How many hex digits of each value's SHA-256 are shown.
HASH_CHARS = 12
#: Items per ScaiVault list page when ``render`` lists a ``dataFrom`` prefix: the operator's default ``pageSize``.
LIST_PAGE_SIZE = 500


def key_rows(data: Mapping[str, str], *, show_values: bool) -> list[dict[str, Any]]:
    """Per key of a Secret's (base64) ``data``: its decoded size and the first ``HASH_CHARS`` hex digits of the
    SHA-256 of the decoded value; the value itself (UTF-8 text, else ``base64:...``) only with ``show_values``."""
    rows: list[dict[str, Any]] = []
    for key in sorted(data):
        raw = base64.b64decode(data[key])
        row: dict[str, Any] = {"key": key, "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()[:HASH_CHARS]}
        if show_values:
            try:
                row["value"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                row["value"] = "base64:" + data[key]
        rows.append(row)
    return rows


def live_comparison(live: Mapping[str, Any] | None, desired: Mapping[str, Any], *, owner_uid: str,
                    creation_policy: str) -> tuple[bool | None, str]:  # fmt: skip
    """Whether the live Secret already holds ``desired``'s data (None: it does not exist), and a sentence on it.
    Compares the data-hash annotations and checks the live data against its own (no value is read out); with
    creationPolicy Merge, of the merged keys only."""
    merging = creation_policy == "Merge"
    if live is None:
        if merging:
            meta = mapping(desired.get("metadata"))
            missing = merge_target_missing(text(meta.get("namespace")) or "?", text(meta.get("name")) or "?")
            return None, f"the operator would not write it (TargetNotFound): {missing}"
        return None, "the Secret does not exist yet: the operator creates it"
    if merging:
        refusal = merge_refusal(live, owner_uid=owner_uid)
    else:
        refusal = target_refusal(live, owner_uid=owner_uid, creation_policy=creation_policy)
    if refusal is not None:
        return False, f"the operator would not write it (TargetConflict): {refusal}"
    annotations = mapping(mapping(live.get("metadata")).get("annotations"))
    wanted = mapping(mapping(desired.get("metadata")).get("annotations"))
    if ANNOTATION_REVISION in wanted:  # several sources: a revision (a digest of paths and versions), no version
        held = f"its revision annotation: {text(annotations.get(ANNOTATION_REVISION)) or '?'}"
        if annotations.get(ANNOTATION_REVISION) != wanted[ANNOTATION_REVISION]:
            held += f", this is revision {wanted[ANNOTATION_REVISION]}"
    else:
        held = f"its version annotation: {text(annotations.get(ANNOTATION_VERSION)) or '?'}"
    if read_data_hash(live) == wanted.get(ANNOTATION_DATA_HASH) and data_intact(live):
        return True, f"the Secret already holds this data ({held})"
    return False, f"the next sync changes the Secret's data ({held})"


def _sources_summary(sources: Sequence[Mapping[str, Any]]) -> str:
    """``3 secrets (2 sources, 1 found by dataFrom)``: how many secrets a composite's Secret is made of."""
    named = sum(1 for item in sources if item.get("name") is not None)
    parts = [f"{named} source{'s' if named != 1 else ''}"] if named else []
    if len(sources) - named:
        parts.append(f"{len(sources) - named} found by dataFrom")
    total = len(sources)
    return f"{total} secret{'s' if total != 1 else ''}" + (f" ({', '.join(parts)})" if parts else "")


def render_report(
    manifest: Mapping[str, Any],
    *,
    path: str | None = None,
    version: int | None = None,
    connection: str,
    live: tuple[bool | None, str] | None,
    show_values: bool,
    notes: Sequence[str] = (),
    origins: Mapping[str, str] | None = None,
    merge_policy: str | None = None,
    sources: Sequence[Mapping[str, Any]] | None = None,
) -> Report:
    """The report of ``render`` for the desired Secret ``manifest``. Pure. Values appear only with
    ``show_values``. ``origins`` says per key where it comes from: with a template (``templating.key_origins``)
    ``template``, ``literal`` or ``source``, and ``merge_policy`` is the template's. A VaultSecret with several
    sources passes ``sources`` — each secret read: ``name`` (None: found by dataFrom), ``path``, ``version``,
    ``read`` (how its version was chosen) and ``connection`` — instead of ``path`` and ``version``, and its
    ``origins`` name the source of each key (``source NAME``, or the path of a secret found by dataFrom)."""
    meta = mapping(manifest.get("metadata"))
    labels, annotations = dict(mapping(meta.get("labels"))), dict(mapping(meta.get("annotations")))
    keys = key_rows(mapping(manifest.get("data")), show_values=show_values)
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    if origins is not None:
        for row in keys:
            row["from"] = origins.get(row["key"], "source")
        rows = table(["key", "size", "sha256", "from"], [(k["key"], k["size"], k["sha256"], k["from"]) for k in keys])
    else:
        rows = table(["key", "size", "sha256"], [(k["key"], k["size"], k["sha256"]) for k in keys])
    if sources is not None:
        columns = ("name", "path", "version", "read", "connection")
        head = [
            f"Secret {where} (type {manifest.get('type')}): {_sources_summary(sources)} through {connection}",
            "",
            table(["source", *columns[1:]], [[s.get(column) for column in columns] for s in sources]),
        ]
    else:
        head = [f"Secret {where} (type {manifest.get('type')}): {path} version {version} through {connection}"]
    lines = [
        *head,
        *(
            [f"Template: mergePolicy {merge_policy}; the values of rendered keys are masked as the others"]
            if merge_policy is not None
            else []
        ),
        "",
        rows if keys else "no keys",
        "",
        "Labels:",
        *(f"  {k}={v}" for k, v in sorted(labels.items())),
        "Annotations:",
        *(f"  {k}={v}" for k, v in sorted(annotations.items())),
    ]
    if live is not None:
        lines += ["", f"Live: {live[1]}"]
    if show_values:
        lines += ["", f"Values (you may read Secret {where}):"]
        for k in keys:
            value = str(k["value"])
            if "\n" in value:
                lines += [f"  {k['key']}: |", *(f"    {line}" for line in value.splitlines())]
            else:
                lines.append(f"  {k['key']}: {value}")
    data: dict[str, Any] = {
        "secret": {"namespace": meta.get("namespace"), "name": meta.get("name"), "type": manifest.get("type"),
                   "labels": labels, "annotations": annotations},
        **({"sources": [dict(s) for s in sources]} if sources is not None
           else {"source": {"path": path, "version": version, "connection": connection}}),
        "keys": keys,
        "live": None if live is None else {"same": live[0], "message": live[1]},
    }  # fmt: skip
    if merge_policy is not None:
        data["template"] = {"mergePolicy": merge_policy, "keys": {k["key"]: k["from"] for k in keys}}
    return Report(data=data, text="\n".join(lines), notes=list(notes))


@dataclass
class _Built:
    """The desired Secret and what it was built from (names, paths and versions: no value outside ``manifest``)."""

    manifest: dict[str, Any]
    connection: str  # the connection's label (a single path) or every connection read through (several sources)
    path: str | None = None
    version: int | None = None
    sources: list[dict[str, Any]] | None = None  # several sources: each secret read, as ``render_report`` takes them
    origins: dict[str, str] | None = None  # several sources: where each key comes from


async def render(cluster: Cluster, namespace: str, name: str, *, show_values: bool) -> Report:
    body = await cluster.get("VaultSecret", name, namespace)
    if body is None:
        raise PluginError(f"VaultSecret {namespace}/{name} does not exist", ExitCode.NOT_READY)
    meta = mapping(body.get("metadata"))
    try:
        spec = VaultSecretSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        raise PluginError(f"InvalidSpec: {conditions.classify(exc).message}", ExitCode.NOT_READY) from None
    status = mapping(body.get("status"))
    secret_name = status.get("secretName")
    target = secret_name if spec.target.immutable and isinstance(secret_name, str) else spec.target_name(name)
    if show_values and not await cluster.can_i("get", "secrets", namespace, target):
        raise PluginError(
            f"--show-values: the API server does not confirm that you may read Secret {namespace}/{target} "
            f"(kubectl auth can-i get secret/{target} -n {namespace}), so its values are not shown here either; "
            "without --show-values render prints keys, sizes and hashes",
            ExitCode.FORBIDDEN,
        )
    conns = {key: await _usable_connection(cluster, key) for key in connection_keys(spec, namespace)}
    notes: list[str] = []
    try:
        ns_body = await cluster.get("Namespace", namespace)
        labels: dict[str, str] | None = labels_of(ns_body) if ns_body is not None else None  # as the operator
    except PluginError as exc:
        labels = None
        notes.append(f"{exc.message}: namespaceSelector rules are judged without the namespace's labels")
    uid = str(meta.get("uid") or "")
    owner = Owner(api_version=API_VERSION, kind="VaultSecret", name=name, namespace=namespace, uid=uid)
    if spec.path is None:
        built = await _build_composite(cluster, spec, owner, conns, labels, notes)
    else:
        built = await _build_single(cluster, spec, spec.path, owner, conns[connection_key(spec, namespace)], labels,
                                    notes)  # fmt: skip
    manifest = built.manifest

    try:
        live_secret = await cluster.get("Secret", target, namespace)
        live = live_comparison(live_secret, manifest, owner_uid=uid, creation_policy=spec.target.creationPolicy)
        del live_secret
    except PluginError as exc:
        live = None
        notes.append(f"{exc.message}: not compared with the live Secret")
    origins = built.origins
    if origins is None and spec.template is not None:
        origins = key_origins(spec, mapping(manifest.get("data")))
    return render_report(manifest, path=built.path, version=built.version, connection=built.connection, live=live,
                         show_values=show_values, notes=notes, origins=origins, sources=built.sources,
                         merge_policy=spec.template.mergePolicy if spec.template is not None else None)  # fmt: skip


async def _usable_connection(cluster: Cluster, key: ConnectionKey) -> Connection:
    """The connection of ``key``, parsed; ``InvalidSpec`` (exit 1) when it does not exist or is invalid, as the
    operator reports it — nothing is read then."""
    kind, conn_namespace, conn_name = key
    conn = await get_connection(cluster, kind, conn_namespace, conn_name)
    if conn is None:
        where = f"{conn_namespace}/{conn_name}" if conn_namespace else conn_name
        raise PluginError(f"InvalidSpec: {kind} {where} does not exist", ExitCode.NOT_READY)
    if conn.spec is None:
        raise PluginError(f"InvalidSpec: {conn.display} is invalid: {conn.error}", ExitCode.NOT_READY)
    return conn


async def _build_single(
    cluster: Cluster,
    spec: VaultSecretSpec,
    path: str,
    owner: Owner,
    conn: Connection,
    labels: Mapping[str, str] | None,
    notes: list[str],
) -> _Built:
    """The Secret of a VaultSecret with ``spec.path``: one read of ``path`` (at ``spec.version``, else the latest)."""
    decision = check_path(conn, owner.namespace, labels, path)
    if not decision.allowed:
        raise PluginError(f"PolicyDenied: the operator would not read it: {decision.message}", ExitCode.NOT_READY)
    notes += plain_http_note(conn)
    client = await open_client(cluster, conn)
    try:
        async with client:
            source = await client.read(path, spec.version)
    except scaivault.ScaiVaultError as exc:
        raise vault_failure(exc, via=conn.display) from None
    try:
        data = secret_data(source.data, spec.keys)
        data = apply_template(spec, data, version=source.version)
    except SourceDataError as exc:  # (and TemplateError)
        raise PluginError(f"{conditions.classify(exc).reason}: {exc.message}", ExitCode.NOT_READY) from None
    manifest = desired_secret(owner=owner, spec=spec, data=data, version=source.version, connection=conn.annotation)
    version = source.version
    del source, data  # the values live on only in the manifest, until the report is printed
    return _Built(manifest, conn.label, path=path, version=version)


async def list_prefix(client: scaivault.ScaiVaultClient, prefix: str) -> dict[str, composite.Listed]:
    """Every secret under ``prefix`` with its current version and tags, as the operator's list of a ``dataFrom``
    prefix gives them to ``composite.discover`` (metadata only: no secret data crosses the wire)."""
    listing: dict[str, composite.Listed] = {}
    async for page in client.list_secrets(prefix, page_size=LIST_PAGE_SIZE):
        for item in page.secrets:
            if item.path.startswith(prefix):
                listing[item.path] = composite.Listed.of(item)
    return listing


def _where(spec: VaultSecretSpec, slot: Slot, found: Mapping[str, composite.Found]) -> str:
    """A secret of a composite in messages: ``source NAME (PATH)``, or ``PATH (found under PREFIX)``."""
    name, path = slot
    if name is not None:
        return f"source {name} ({path})"
    return f"{path} (found under {(spec.dataFrom or [])[found[path].index].prefix})"


async def _build_composite(
    cluster: Cluster,
    spec: VaultSecretSpec,
    owner: Owner,
    conns: Mapping[ConnectionKey, Connection],
    labels: Mapping[str, str] | None,
    notes: list[str],
) -> _Built:
    """The Secret of a VaultSecret with ``spec.sources`` and/or ``spec.dataFrom``, as ``_core/sync`` builds it: list
    each prefix (``dataFrom``, through ``spec.connectionRef``), ``composite.discover`` and ``composite.needed`` (an
    unpinned source at its latest version), the access rules on every path before any read, one read per (connection,
    path, version), then ``composite.compose``, the template over the union and the named sources, and the Secret
    with the revision annotations."""
    namespace = owner.namespace
    lister = conns.get(connection_key(spec, namespace)) if spec.dataFrom else None
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[ConnectionKey, scaivault.ScaiVaultClient] = {}

        async def client_of(conn: Connection) -> scaivault.ScaiVaultClient:
            if conn.key not in clients:  # opened once, when first needed; closed on the way out
                notes.extend(plain_http_note(conn))
                clients[conn.key] = await stack.enter_async_context(await open_client(cluster, conn))
            return clients[conn.key]

        listed: dict[str, dict[str, composite.Listed]] = {}
        for entry in spec.dataFrom or ():
            if lister is None or entry.prefix in listed:
                continue
            decision = check_path(lister, namespace, labels, entry.prefix, prefix=True, field="spec.dataFrom")
            if not decision.allowed:  # as the operator: nothing outside the rules is listed
                raise PluginError(f"PolicyDenied: the operator would not list {entry.prefix}: {decision.message}",
                                  ExitCode.NOT_READY)  # fmt: skip
            try:
                listed[entry.prefix] = await list_prefix(await client_of(lister), entry.prefix)
            except scaivault.ScaiVaultError as exc:
                failure = vault_failure(exc, via=lister.display)
                raise PluginError(f"dataFrom prefix {entry.prefix}: {failure.message}", failure.code) from None
        try:
            found = composite.discover(spec, [listed.get(entry.prefix, {}) for entry in spec.dataFrom or ()])
        except SourceDataError as exc:  # TooManySecrets
            raise PluginError(f"{conditions.classify(exc).reason}: {exc.message}", ExitCode.NOT_READY) from None
        reads = composite.needed(spec, namespace, lambda _conn, _path: None, found)  # the latest: read it
        for read in reads:
            conn = conns[_plugin_key(read.conn)]
            field = "spec.sources" if read.slot[0] is not None else "spec.dataFrom"
            decision = check_path(conn, namespace, labels, read.path, field=field)
            if not decision.allowed:
                raise PluginError(f"PolicyDenied: the operator would not read {_where(spec, read.slot, found)}: "
                                  f"{decision.message}", ExitCode.NOT_READY)  # fmt: skip

        answers: dict[tuple[ConnKey, str, int | None], scaivault.Secret] = {}
        fetched: list[tuple[composite.Needed, Mapping[str, Any]]] = []
        versions: dict[Slot, int] = {}
        for read in reads:
            conn = conns[_plugin_key(read.conn)]
            shared = (read.conn, read.path, read.version)  # one read per (connection, path, version), as the operator
            if shared not in answers:
                try:
                    answers[shared] = await (await client_of(conn)).read(read.path, read.version)
                except scaivault.ScaiVaultError as exc:
                    failure = vault_failure(exc, via=conn.display)
                    raise PluginError(f"{_where(spec, read.slot, found)}: {failure.message}", failure.code) from None
            answer = answers[shared]
            fetched.append((read, answer.data))
            versions[read.slot] = answer.version
    try:
        data, named = composite.compose(spec, fetched, found)
        inputs = {name: SourceInput(path, versions[(name, path)], named[name]) for name, path in versions
                  if name is not None}  # fmt: skip
        origins = _composite_origins(spec, fetched, found, named)
        data = apply_template(spec, data, version=None, sources=inputs)
    except SourceDataError as exc:  # (and TemplateError)
        raise PluginError(f"{conditions.classify(exc).reason}: {exc.message}", ExitCode.NOT_READY) from None
    ref = spec.connection  # the operator annotates spec.connectionRef's, whichever the sources read through
    revision = composite.revision(versions), composite.sources_annotation(versions)
    manifest = desired_secret(owner=owner, spec=spec, data=data, version=None, connection=f"{ref.kind}/{ref.name}",
                              revision=revision)  # fmt: skip
    del answers, fetched, data, named, inputs  # the values live on only in the manifest, until the report is printed

    by_name = {source.name: source for source in spec.sources or ()}
    rows: list[dict[str, Any]] = []
    for item in composite.status_sources(versions):
        name, path = item.get("name"), item["path"]
        if name is not None:
            source = by_name[name]
            conn = conns[connection_key(spec, namespace, source.connectionRef)]
            how = f"pinned to {source.version}" if source.version is not None else "latest"
        else:
            conn = lister if lister is not None else conns[connection_key(spec, namespace)]
            how = f"found under {(spec.dataFrom or [])[found[path].index].prefix}"
        rows.append({"name": name, "path": path, "version": item["version"], "read": how, "connection": conn.label})
    used = {row["connection"] for row in rows}
    through = ", ".join(conn.label for conn in conns.values() if conn.label in used) or f"{ref.kind}/{ref.name}"
    keys = mapping(manifest.get("data"))
    template = key_origins(spec, keys)
    shown = {key: origins.get(key, "source") if template[key] == "source" else template[key] for key in keys}
    return _Built(manifest, through, sources=rows, origins=shown)


def _plugin_key(conn: ConnKey) -> ConnectionKey:
    """``composite``'s connection key (namespace ``""`` for a ClusterVaultConnection) as ``source``'s."""
    kind, namespace, name = conn
    return kind, namespace or None, name


def _composite_origins(
    spec: VaultSecretSpec,
    fetched: Sequence[tuple[composite.Needed, Mapping[str, Any]]],
    found: Mapping[str, composite.Found],
    named: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """Which secret each key of a composite's union comes from: ``source NAME``, or the path of a secret found by
    dataFrom (the key names ``composite.compose`` gave them). Names only."""
    origins: dict[str, str] = {}
    for source, part in named.items():
        origins.update(dict.fromkeys(part, f"source {source}"))
    for read, raw in fetched:
        name, path = read.slot
        if name is None:
            entry = (spec.dataFrom or [])[found[path].index]
            for key in raw:
                origins[composite.discovered_key(entry.prefix, path, key, entry.rewrite or ())] = path
    return origins


def refresh_value(clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    """Now as RFC 3339 in UTC with microseconds, e.g. ``2026-04-23T14:00:00.123456Z``."""
    moment = clock()
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def refresh(cluster: Cluster, namespace: str, name: str, *, value: str | None = None) -> Report:
    value = value or refresh_value()
    patched = await cluster.merge_patch("VaultSecret", name, namespace,
                                        {"metadata": {"annotations": {ANNOTATION_REFRESH: value}}})  # fmt: skip
    if patched is None:
        raise PluginError(f"VaultSecret {namespace}/{name} does not exist", ExitCode.NOT_READY)
    meta, spec = mapping(patched.get("metadata")), mapping(patched.get("spec"))
    several = "path" not in spec and ("sources" in spec or "dataFrom" in spec)
    what = "each of its secrets (sources and those dataFrom found)" if several else "its source"
    text_ = (
        f"VaultSecret {namespace}/{name}: re-read requested ({ANNOTATION_REFRESH}={value}); the operator reads "
        f"{what} once — `kubectl scaivault why {namespace}/{name}` shows the outcome"
    )
    data = {"vaultSecret": {"namespace": namespace, "name": name}, "annotation": ANNOTATION_REFRESH, "value": value,
            "generation": integer(meta.get("generation"))}  # fmt: skip
    return Report(data=data, text=text_)
