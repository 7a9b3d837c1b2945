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

``refresh`` sets the annotation ``scaivault.scailabs.ai/refresh`` to the current time (RFC 3339, microseconds, so
two refreshes never carry the same value) with a JSON merge patch; the operator re-reads the source once when that
annotation changes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from scaivault_operator._cogs import scaivault
from scaivault_operator._cogs.api import API_VERSION, VaultSecretSpec
from scaivault_operator._logic import conditions
from scaivault_operator._logic.manifests import (
    ANNOTATION_DATA_HASH,
    ANNOTATION_REFRESH,
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
from scaivault_operator._logic.policy import check_access
from scaivault_operator._logic.templating import apply_template, key_origins
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
    connection_key,
    get_connection,
    open_client,
    plain_http_note,
    vault_failure,
)

__all__ = ["HASH_CHARS", "key_rows", "live_comparison", "refresh", "refresh_value", "render", "render_report"]

#: How many hex digits of each value's SHA-256 are shown.
HASH_CHARS = 12


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
    version = text(mapping(mapping(live.get("metadata")).get("annotations")).get(ANNOTATION_VERSION)) or "?"
    want = mapping(mapping(desired.get("metadata")).get("annotations")).get(ANNOTATION_DATA_HASH)
    if read_data_hash(live) == want and data_intact(live):
        return True, f"the Secret already holds this data (its version annotation: {version})"
    return False, f"the next sync changes the Secret's data (its version annotation: {version})"


def render_report(
    manifest: Mapping[str, Any],
    *,
    path: str,
    version: int,
    connection: str,
    live: tuple[bool | None, str] | None,
    show_values: bool,
    notes: Sequence[str] = (),
    origins: Mapping[str, str] | None = None,
    merge_policy: str | None = None,
) -> Report:
    """The report of ``render`` for the desired Secret ``manifest``. Pure. Values appear only with
    ``show_values``. With a template, ``origins`` (``templating.key_origins``) says per key where it comes from
    (``template``, ``literal`` or ``source``) and ``merge_policy`` is the template's."""
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
    lines = [
        f"Secret {where} (type {manifest.get('type')}): {path} version {version} through {connection}",
        *(
            [f"Template: mergePolicy {merge_policy}; the values of rendered keys are masked as the others"]
            if origins is not None
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
        "source": {"path": path, "version": version, "connection": connection},
        "keys": keys,
        "live": None if live is None else {"same": live[0], "message": live[1]},
    }  # fmt: skip
    if origins is not None:
        data["template"] = {"mergePolicy": merge_policy, "keys": {k["key"]: k["from"] for k in keys}}
    return Report(data=data, text="\n".join(lines), notes=list(notes))


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
    kind, conn_namespace, conn_name = connection_key(spec, namespace)
    conn = await get_connection(cluster, kind, conn_namespace, conn_name)
    if conn is None:
        where = f"{conn_namespace}/{conn_name}" if conn_namespace else conn_name
        raise PluginError(f"InvalidSpec: {kind} {where} does not exist", ExitCode.NOT_READY)
    if conn.spec is None:
        raise PluginError(f"InvalidSpec: {conn.display} is invalid: {conn.error}", ExitCode.NOT_READY)
    notes: list[str] = []
    try:
        ns_body = await cluster.get("Namespace", namespace)
        labels: dict[str, str] | None = labels_of(ns_body) if ns_body is not None else None  # as the operator
    except PluginError as exc:
        labels = None
        notes.append(f"{exc.message}: namespaceSelector rules are judged without the namespace's labels")
    decision = check_access(connection_kind=conn.kind, connection_namespace=conn.namespace, connection_name=conn.name,
                            access=conn.spec.access, namespace=namespace, namespace_labels=labels,
                            path=spec.path)  # fmt: skip
    if not decision.allowed:
        raise PluginError(f"PolicyDenied: the operator would not read it: {decision.message}", ExitCode.NOT_READY)

    notes += plain_http_note(conn)
    client = await open_client(cluster, conn)
    try:
        async with client:
            source = await client.read(spec.path, spec.version)
    except scaivault.ScaiVaultError as exc:
        raise vault_failure(exc, via=conn.display) from None
    try:
        data = secret_data(source.data, spec.keys)
        data = apply_template(spec, data, version=source.version)
    except SourceDataError as exc:  # (and TemplateError)
        raise PluginError(f"{conditions.classify(exc).reason}: {exc.message}", ExitCode.NOT_READY) from None
    uid = str(meta.get("uid") or "")
    owner = Owner(api_version=API_VERSION, kind="VaultSecret", name=name, namespace=namespace, uid=uid)
    manifest = desired_secret(owner=owner, spec=spec, data=data, version=source.version, connection=conn.label)
    version = source.version
    del source, data  # the values live on only in the manifest, until the report is printed

    try:
        live_secret = await cluster.get("Secret", target, namespace)
        live = live_comparison(live_secret, manifest, owner_uid=uid, creation_policy=spec.target.creationPolicy)
        del live_secret
    except PluginError as exc:
        live = None
        notes.append(f"{exc.message}: not compared with the live Secret")
    origins = key_origins(spec, mapping(manifest.get("data"))) if spec.template is not None else None
    return render_report(manifest, path=spec.path, version=version, connection=conn.label, live=live,
                         show_values=show_values, notes=notes, origins=origins,
                         merge_policy=spec.template.mergePolicy if spec.template is not None else None)  # fmt: skip


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
    meta = mapping(patched.get("metadata"))
    text_ = (
        f"VaultSecret {namespace}/{name}: re-read requested ({ANNOTATION_REFRESH}={value}); the operator reads its "
        f"source once — `kubectl scaivault why {namespace}/{name}` shows the outcome"
    )
    data = {"vaultSecret": {"namespace": namespace, "name": name}, "annotation": ANNOTATION_REFRESH, "value": value,
            "generation": integer(meta.get("generation"))}  # fmt: skip
    return Report(data=data, text=text_)
