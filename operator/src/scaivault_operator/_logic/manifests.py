"""The Kubernetes Secret we want, and the smallest change that gets an existing Secret there.

Owns the shape of every Secret the operator writes: its data (from a ScaiVault secret's JSON data), labels,
annotations and owner reference; who owns an existing Secret and whether a VaultSecret may take it over
(``target_refusal``); whether a Secret may serve as a connection's credentials (``credentials_refusal``); the JSON
merge patch (RFC 7386) from an existing Secret to the desired one; and drift detection through the data-hash
annotation. Pure: no I/O. The operator's sync module calls it after reading a secret from ScaiVault
(``secret_data`` → ``desired_secret`` → ``target_refusal`` / ``needs_recreate`` / ``secret_patch``; with
``creationPolicy: Merge`` ``merge_refusal`` / ``merge_secret_patch``, and ``unmerge_patch`` when it stops merging)
and after a restart (``data_intact``); the connections module calls ``credentials_refusal`` on every read of a
token or client-credentials Secret.

``creationPolicy: Merge`` writes only the VaultSecret's keys into an existing Secret the operator does not own. The
Secret gets no ownerReference and no ``MANAGED_BY_LABEL``; it gets ``MERGE_LABEL`` (so the start-up list finds it)
and a record of what was merged, under ``ANNOTATION_PREFIX``: the key names (``ANNOTATION_MERGED_KEYS``), the
VaultSecret (``ANNOTATION_MERGED_BY``, ``ANNOTATION_MERGED_BY_UID``), path, version, connection and the data hash of
those keys only. The record is how a later write removes a key it no longer writes, how a second VaultSecret is
kept out, and how the keys are removed again (``unmerge_patch``).

How data becomes a Secret: every top-level key of the ScaiVault secret's JSON data is a Secret key (or only the
keys listed in ``spec.keys``, renamed by their ``to``). A string value is stored as its UTF-8 bytes, as-is. Any
other JSON value — number, boolean, null, object, array — is stored as compact JSON with sorted keys
(``json.dumps(v, separators=(",", ":"), ensure_ascii=False, sort_keys=True)``): ``3`` → ``3``, ``true`` →
``true``, ``null`` → ``null``, ``{"b":1,"a":2}`` → ``{"a":2,"b":1}``.

Secret values never leave ``secret_data`` other than in the returned ``data`` map: ``SourceDataError`` messages
name keys, never values, and are raised without a chained cause.

Patches are JSON merge patches: send them with ``Content-Type: application/merge-patch+json`` (a strategic merge
patch would merge ``ownerReferences`` by uid instead of replacing the list).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scaivault_operator._cogs.api import KeyMapping, VaultSecretSpec

__all__ = [
    "ADOPT_ANNOTATION",
    "ANNOTATION_CONNECTION",
    "ANNOTATION_DATA_HASH",
    "ANNOTATION_MERGED_BY",
    "ANNOTATION_MERGED_BY_UID",
    "ANNOTATION_MERGED_KEYS",
    "ANNOTATION_PATH",
    "ANNOTATION_PREFIX",
    "ANNOTATION_REFRESH",
    "ANNOTATION_REVISION",
    "ANNOTATION_SOURCES",
    "ANNOTATION_VERSION",
    "BOOTSTRAP_TOKEN_TYPE",
    "CREDENTIALS_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MAX_SECRET_BYTES",
    "MERGE_LABEL",
    "MERGE_LABEL_VALUE",
    "RETAIN_FINALIZER",
    "SERVICE_ACCOUNT_TOKEN_TYPE",
    "VAULTSECRET_LABEL",
    "Owner",
    "SourceDataError",
    "credentials_refusal",
    "data_hash",
    "data_intact",
    "desired_secret",
    "key_problem",
    "merge_patch",
    "merge_refusal",
    "merge_secret_patch",
    "merge_target_missing",
    "merged_by_uid",
    "needs_recreate",
    "overwritten_keys",
    "ownership",
    "read_data_hash",
    "release_patch",
    "secret_data",
    "secret_patch",
    "target_refusal",
    "unmerge_patch",
    "vaultsecret_label_value",
    "wants_finalizer",
    "with_finalizer",
    "written_keys",
]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "scaivault-operator"
#: Value: the VaultSecret's name (see ``vaultsecret_label_value`` for names longer than a label value may be).
VAULTSECRET_LABEL = "scaivault.scailabs.ai/vaultsecret"
#: Every annotation key under this prefix on a Secret we own is ours: the patch removes the ones we no longer set.
ANNOTATION_PREFIX = "scaivault.scailabs.ai/"
ANNOTATION_PATH = ANNOTATION_PREFIX + "path"
ANNOTATION_VERSION = ANNOTATION_PREFIX + "version"
#: On the Secret of a VaultSecret with sources or dataFrom, instead of path and version: each secret's path and
#: version (``composite.sources_annotation``), and a digest of them (``composite.revision``).
ANNOTATION_SOURCES = ANNOTATION_PREFIX + "sources"
ANNOTATION_REVISION = ANNOTATION_PREFIX + "revision"
#: Value: ``<kind>/<name>`` of the connection, e.g. ``ClusterVaultConnection/default``.
ANNOTATION_CONNECTION = ANNOTATION_PREFIX + "connection"
ANNOTATION_DATA_HASH = ANNOTATION_PREFIX + "data-hash"
#: On a VaultSecret: any new value asks for one re-read of its source now (``kubectl scaivault refresh``).
ANNOTATION_REFRESH = ANNOTATION_PREFIX + "refresh"
#: On a Secret: only a Secret labelled ``<this>=true`` may serve as a connection's token or client credentials — the
#: owner of a Secret opts in, so whoever may create a connection cannot send just any Secret to any URL.
CREDENTIALS_LABEL = "scaivault.scailabs.ai/credentials"
#: On an existing Secret: ``<this>: "true"`` consents to being taken over by a VaultSecret with
#: ``creationPolicy: Adopt``. Under ``ANNOTATION_PREFIX``, so the adoption removes it: the consent is used up.
ADOPT_ANNOTATION = ANNOTATION_PREFIX + "adopt"
#: On a VaultSecret whose ``spec.target.deletionPolicy`` is ``Retain`` or whose ``creationPolicy`` is ``Merge`` (and
#: only there): its deletion waits until the operator has released the Secret (``release_patch``) or removed its keys
#: from it (``unmerge_patch``) and removed this finalizer. Not Kopf's finalizer (unused).
RETAIN_FINALIZER = "scaivault.scailabs.ai/retain-secret"
#: Secrets of this type are never adopted (the token controller fills them; they are credentials of the cluster).
SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"
#: Nor merged into: a bootstrap token Secret lets nodes join the cluster.
BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"
#: On a Secret a VaultSecret merges its keys into (``creationPolicy: Merge``), value ``MERGE_LABEL_VALUE``: the
#: operator's start-up list selects it beside the Secrets it owns (``MANAGED_BY_LABEL``), so a warm restart needs no
#: ScaiVault GET for a Merge VaultSecret either. Not watched (the Secret watch selects ``MANAGED_BY_LABEL`` only).
MERGE_LABEL = "scaivault.scailabs.ai/merged"
MERGE_LABEL_VALUE = "true"
#: On a Secret merged into: the names of the keys the VaultSecret wrote, comma-separated and sorted (Secret keys
#: never contain a comma) — names only, never a value.
ANNOTATION_MERGED_KEYS = ANNOTATION_PREFIX + "merged-keys"
#: On a Secret merged into: the name of the VaultSecret that merges into it (for people; the uid decides).
ANNOTATION_MERGED_BY = ANNOTATION_PREFIX + "merged-by"
#: On a Secret merged into: the uid of the VaultSecret that merges into it. One VaultSecret per Secret.
ANNOTATION_MERGED_BY_UID = ANNOTATION_PREFIX + "merged-by-uid"
#: The annotations a merge puts on a Secret (beside ``spec.target.annotations``), all removed by ``unmerge_patch``.
_MERGE_ANNOTATIONS = (
    ANNOTATION_PATH,
    ANNOTATION_VERSION,
    ANNOTATION_SOURCES,
    ANNOTATION_REVISION,
    ANNOTATION_CONNECTION,
    ANNOTATION_DATA_HASH,
    ANNOTATION_MERGED_KEYS,
    ANNOTATION_MERGED_BY,
    ANNOTATION_MERGED_BY_UID,
)
#: Kubernetes' limit on a Secret's data: the sum of key lengths and decoded value lengths.
MAX_SECRET_BYTES = 1024 * 1024

_SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_MAX_SECRET_KEY = 253
_MAX_LABEL_VALUE = 63
_LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_MAX_NAMED_KEYS = 20
_MAX_SHOWN_KEY = 64
_MAX_SHOWN_NAME = 253


class SourceDataError(Exception):
    """The ScaiVault secret's data cannot become a Kubernetes Secret. ``message`` names keys, never values."""

    reason = "InvalidSourceData"  # conditions.INVALID_SOURCE_DATA (conditions imports this module)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- data ----------------------------------------------------------------------------------------------------


def secret_data(
    source: Mapping[str, Any], keys: Sequence[KeyMapping] | None, *, check_keys: bool = True
) -> dict[str, str]:
    """The Secret's ``data`` map (base64 strings) for the ScaiVault secret's JSON ``source`` data.

    ``keys`` (``spec.keys``) selects and renames; ``None`` takes every top-level key. Raises ``SourceDataError``
    — and nothing else — when a listed key is missing, a resulting key is not a valid Secret key, a value cannot
    be encoded, two keys map to the same Secret key, or the Secret would exceed ``MAX_SECRET_BYTES``.
    ``check_keys`` False: the key names are not checked (``composite`` renames them first, then checks).
    """
    if not isinstance(source, Mapping):
        raise SourceDataError("the ScaiVault secret's data is not a JSON object: it has no keys to copy")
    for name in source:
        if not isinstance(name, str):
            raise SourceDataError("the ScaiVault secret's data has a key that is not a string")

    pairs: list[tuple[str, str]]  # (source key, Secret key)
    if keys is None:
        pairs = [(name, name) for name in source]
    else:
        missing = [m.from_ for m in keys if m.from_ not in source]
        if missing:
            raise SourceDataError(
                f"spec.keys lists {_plural(len(missing), 'key')} missing from the ScaiVault secret's data: "
                f"{_names(missing)}; it has {_names(list(source)) if source else 'no keys'}"
            )
        pairs = [(m.from_, m.target_key) for m in keys]
        seen: set[str] = set()
        for _, target in pairs:
            if target in seen:
                raise SourceDataError(
                    f"spec.keys maps two keys to the same Secret key {_show(target)}; give each a distinct 'to'"
                )
            seen.add(target)

    data: dict[str, str] = {}
    total = 0
    for name, target in pairs:
        problem = key_problem(target) if check_keys else None
        if problem is not None:
            raise SourceDataError(_bad_key_message(name, target, problem))
        raw = _encode_value(name, source[name])
        total += len(target.encode("utf-8")) + len(raw)
        data[target] = base64.b64encode(raw).decode("ascii")
    if total > MAX_SECRET_BYTES:
        raise SourceDataError(
            f"the Secret would hold {total} bytes of data; Kubernetes allows at most {MAX_SECRET_BYTES} "
            f"(1 MiB): select fewer keys with spec.keys, or split the secret in ScaiVault"
        )
    return data


def _encode_value(name: str, value: Any) -> bytes:
    try:
        if isinstance(value, str):
            return value.encode("utf-8")
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        problem = "a string that is not valid Unicode (a lone surrogate)"
    except RecursionError:
        problem = "a value nested too deeply"
    except (TypeError, ValueError):
        problem = "a value that cannot be written as JSON (e.g. NaN, Infinity or a huge number)"
    raise SourceDataError(f"key {_show(name)} of the ScaiVault secret's data holds {problem}") from None


def key_problem(key: str) -> str | None:
    """Kubernetes' rule for Secret and ConfigMap keys (``IsConfigMapKey``)."""
    if not key:
        return "it is empty"
    if len(key) > _MAX_SECRET_KEY:
        return f"it is longer than {_MAX_SECRET_KEY} characters"
    if not _SECRET_KEY_RE.fullmatch(key):
        return "only letters, digits, '-', '_' and '.' are allowed"
    if key in (".", "..") or key.startswith(".."):
        return "it must not be '.' or '..' or start with '..'"
    return None


def _bad_key_message(source_key: str, target: str, problem: str) -> str:
    if source_key != target:
        return f"spec.keys renames {_show(source_key)} to {_show(target)}, which is not a valid Secret key: {problem}"
    suggestion = re.sub(r"[^-._a-zA-Z0-9]", "_", source_key)[:_MAX_SECRET_KEY].lstrip(".") or "value"
    return (
        f"key {_show(source_key)} of the ScaiVault secret's data is not a valid Secret key: {problem}; "
        f"rename it with spec.keys (e.g. from: {_show(source_key)}, to: {_show(suggestion)})"
    )


def _show(name: str) -> str:
    """A key name for a message: quoted, non-printables escaped, clipped."""
    shown = repr(name)
    if len(shown) > _MAX_SHOWN_KEY:
        shown = shown[: _MAX_SHOWN_KEY - 1] + "…"
    return shown


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(_show(n) for n in names[:_MAX_NAMED_KEYS])
    if len(names) > _MAX_NAMED_KEYS:
        shown += f" and {len(names) - _MAX_NAMED_KEYS} more"
    return shown


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def data_hash(data: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a canonical encoding of a Secret's (base64) ``data`` map.

    Canonical: compact JSON with sorted keys, so equal maps hash equally and no two maps share an encoding.
    The hash is stored only on the Secret itself (``ANNOTATION_DATA_HASH``), where whoever can read it can read
    the data anyway; it must never go to status, logs or events (a low-entropy value could be guessed from it).
    """
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def read_data_hash(existing: Mapping[str, Any]) -> str | None:
    """The data-hash annotation of an existing Secret, or None."""
    value = _annotations(existing).get(ANNOTATION_DATA_HASH)
    return value if isinstance(value, str) else None


def data_intact(existing: Mapping[str, Any]) -> bool:
    """True when the data the operator wrote into the Secret still hashes to its data-hash annotation (no edit by
    hand since): all of its data, or on a Secret merged into (``ANNOTATION_MERGED_KEYS``) the merged keys only."""
    recorded = read_data_hash(existing)
    if recorded is None:
        return False
    data = existing.get("data") or {}
    if not isinstance(data, Mapping):
        return False
    merged = _annotations(existing).get(ANNOTATION_MERGED_KEYS)
    if isinstance(merged, str):
        data = {key: data[key] for key in _split_keys(merged) if key in data}
    return hmac.compare_digest(data_hash(data).encode("ascii"), recorded.encode("ascii", "replace"))


# -- the desired Secret --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """The VaultSecret that owns the Secret."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str


def vaultsecret_label_value(name: str) -> str:
    """The ``VAULTSECRET_LABEL`` value for a VaultSecret name.

    The name itself when it is a valid label value (at most 63 characters, the common case); a longer name is
    cut to 52 characters plus ``-`` and 10 hex digits of its SHA-256, so the label stays valid and distinct.
    """
    if len(name) <= _MAX_LABEL_VALUE and _LABEL_VALUE_RE.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    head = name[: _MAX_LABEL_VALUE - 11].rstrip("-_.")
    return f"{head}-{digest}" if head else digest


def desired_secret(
    *,
    owner: Owner,
    spec: VaultSecretSpec,
    data: Mapping[str, str],
    version: int | None,
    connection: str,
    revision: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The full v1 Secret manifest for ``owner``'s spec, holding ``data`` (from ``secret_data``).

    ``connection`` is ``<kind>/<name>`` of the connection read through. A VaultSecret with sources or dataFrom has
    no single path and version: ``revision`` (its digest and its sources, ``composite.revision`` and
    ``sources_annotation``) is annotated instead. Our labels and annotations win over
    ``spec.template.labels`` / ``annotations``, which win over ``spec.target.labels`` / ``annotations`` on a
    collision; the type is ``spec.template.type`` when set, else ``spec.target.type``. With ``target.immutable`` the
    Secret is ``<name>-v<version>`` and ``immutable: true``.
    """
    target, template = spec.target, spec.template
    labels = {
        **target.labels,
        **(template.labels if template is not None else {}),
        MANAGED_BY_LABEL: MANAGED_BY,
        VAULTSECRET_LABEL: vaultsecret_label_value(owner.name),
    }
    annotations = {
        **target.annotations,
        **(template.annotations if template is not None else {}),
        **({ANNOTATION_PATH: spec.path, ANNOTATION_VERSION: str(version)} if revision is None
           else {ANNOTATION_SOURCES: revision[1], ANNOTATION_REVISION: revision[0]}),
        ANNOTATION_CONNECTION: connection,
        ANNOTATION_DATA_HASH: data_hash(data),
    }  # fmt: skip
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": spec.secret_name(owner.name, version),
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": owner.api_version,
                    "kind": owner.kind,
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "type": spec.secret_type,
        "data": dict(data),
    }
    if target.immutable:
        manifest["immutable"] = True
    return manifest


# -- an existing Secret --------------------------------------------------------------------------------------


def ownership(existing: Mapping[str, Any] | None, owner_uid: str) -> Literal["absent", "ours", "foreign"]:
    """``absent`` (no Secret), ``ours`` (its controller reference has ``owner_uid``) or ``foreign``.

    A Secret controlled by anything else — another VaultSecret, another controller — or by nothing is foreign.
    """
    if existing is None:
        return "absent"
    controller = _controller_ref(existing)
    if controller is not None and controller.get("uid") == owner_uid:
        return "ours"
    return "foreign"


def target_refusal(existing: Mapping[str, Any] | None, *, owner_uid: str, creation_policy: str) -> str | None:
    """Why the VaultSecret ``owner_uid`` may not write the existing Secret, or None when it may.

    It may when there is no Secret, when the Secret is ours, or — ``creation_policy`` ``Adopt`` — when the Secret
    consents (``ADOPT_ANNOTATION: "true"``). Never when another controller's ownerReference (``controller: true``,
    another uid) is on it, and never a ``SERVICE_ACCOUNT_TOKEN_TYPE`` Secret, whatever the policy and annotation.
    The message names the Secret and what is missing; it quotes no data, label or annotation value.
    """
    if existing is None or ownership(existing, owner_uid) == "ours":
        return None
    meta = _mapping(existing.get("metadata"))
    namespace, name = _shown_name(meta.get("namespace")), _shown_name(meta.get("name"))
    secret = f"Secret {namespace}/{name}"
    if existing.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE:
        return (
            f"{secret} exists and is of type {SERVICE_ACCOUNT_TOKEN_TYPE}: service-account-token Secrets are never "
            "adopted; set spec.target.name to another name"
        )
    controller = _controller_ref(existing)
    if controller is not None:
        owner = f"{_shown_name(controller.get('kind'))}/{_shown_name(controller.get('name'))}"
        return (
            f"{secret} exists and is controlled by {owner}, so no VaultSecret takes it over (not even with "
            "creationPolicy: Adopt); set spec.target.name to another name"
        )
    annotate = f"kubectl annotate secret -n {namespace} {name} {ADOPT_ANNOTATION}=true"
    consents = _annotations(existing).get(ADOPT_ANNOTATION) == "true"
    if creation_policy != "Adopt":
        take_over = (
            "set spec.target.creationPolicy: Adopt (the Secret already consents)"
            if consents
            else f"set spec.target.creationPolicy: Adopt and annotate the Secret: {annotate}"
        )
        return (
            f"{secret} exists and is not managed by this VaultSecret; delete or rename it, or set spec.target.name "
            f"to another name; or, to let this VaultSecret take it over, {take_over}"
        )
    if not consents:
        return f"{secret} exists and is not ours; to let this VaultSecret take it over, annotate it: {annotate}"
    return None


def release_patch(existing: Mapping[str, Any], owner_uid: str) -> dict[str, Any] | None:
    """The JSON merge patch that leaves the Secret ``existing`` of VaultSecret ``owner_uid`` unmanaged (deletionPolicy
    ``Retain``), or None when there is nothing of ours on it.

    It removes the ownerReferences with ``owner_uid`` (so the garbage collector does not delete the Secret with its
    VaultSecret), ``MANAGED_BY_LABEL`` (when it is ours), ``VAULTSECRET_LABEL`` and every annotation under
    ``ANNOTATION_PREFIX``; data, type, other labels (``spec.target.labels`` included), other annotations and other
    ownerReferences stay. The patch carries the Secret's ``resourceVersion`` when it has one: a Secret changed since
    it was read fails the patch with 409 and is read again.
    """
    meta = _mapping(existing.get("metadata"))
    metadata: dict[str, Any] = {}
    refs = _refs(existing)
    kept = [dict(ref) for ref in refs if ref.get("uid") != owner_uid]
    if len(kept) != len(refs):
        metadata["ownerReferences"] = kept or None
    labels = _mapping(meta.get("labels"))
    dropped = {key: None for key in (MANAGED_BY_LABEL, VAULTSECRET_LABEL) if key in labels}
    if labels.get(MANAGED_BY_LABEL) not in (None, MANAGED_BY):
        dropped.pop(MANAGED_BY_LABEL)  # another manager's label: not ours to remove
    if dropped:
        metadata["labels"] = dropped
    annotations = {key: None for key in _annotations(existing) if key.startswith(ANNOTATION_PREFIX)}
    if annotations:
        metadata["annotations"] = annotations
    if not metadata:
        return None
    resource_version = meta.get("resourceVersion")
    if isinstance(resource_version, str) and resource_version:
        metadata["resourceVersion"] = resource_version
    return {"metadata": metadata}


# -- creationPolicy: Merge --------------------------------------------------------------------------------------


def merged_by_uid(existing: Mapping[str, Any]) -> str | None:
    """The uid of the VaultSecret that merges its keys into the Secret ``existing`` (``ANNOTATION_MERGED_BY_UID``),
    or None when none does."""
    uid = _annotations(existing).get(ANNOTATION_MERGED_BY_UID)
    return uid if isinstance(uid, str) and uid else None


def merge_target_missing(namespace: str, name: str) -> str:
    """The message of ``TargetNotFound``: creationPolicy Merge and the Secret ``namespace/name`` does not exist."""
    return (
        f"Secret {namespace}/{name} does not exist: creationPolicy Merge writes keys only into an existing Secret "
        f"and never creates one; create it (e.g. kubectl create secret generic -n {namespace} {name}), or set "
        "spec.target.creationPolicy: Owner to have the operator create and own the Secret"
    )


def merge_refusal(existing: Mapping[str, Any], *, owner_uid: str) -> str | None:
    """Why the VaultSecret ``owner_uid`` (creationPolicy Merge) may not merge its keys into the existing Secret, or
    None when it may.

    Never into a token Secret (``SERVICE_ACCOUNT_TOKEN_TYPE``, ``BOOTSTRAP_TOKEN_TYPE``), nor a connection's
    credentials (``CREDENTIALS_LABEL=true``: the operator's own ScaiVault token must not be replaced through a
    VaultSecret), nor an ``immutable`` Secret (its data cannot change), nor a Secret a VaultSecret controls (its
    owner rewrites all of its data; this VaultSecret's own Secret — creationPolicy Owner before — is given up and
    merged into), nor one another VaultSecret merges into. A foreign controller (another operator) does not stand
    in the way. The message names the Secret and what is wrong; it quotes no data, label or annotation value.
    """
    meta = _mapping(existing.get("metadata"))
    namespace, name = _shown_name(meta.get("namespace")), _shown_name(meta.get("name"))
    secret = f"Secret {namespace}/{name}"
    elsewhere = "set spec.target.name to another Secret"
    type_ = existing.get("type")
    if type_ in (SERVICE_ACCOUNT_TOKEN_TYPE, BOOTSTRAP_TOKEN_TYPE):
        return f"{secret} is of type {type_}: creationPolicy Merge never writes into a token Secret; {elsewhere}"
    if _mapping(meta.get("labels")).get(CREDENTIALS_LABEL) == "true":
        return (
            f"{secret} is labelled {CREDENTIALS_LABEL}=true (a connection's credentials): creationPolicy Merge never "
            f"writes into it; {elsewhere}"
        )
    if existing.get("immutable") is True:
        return f"{secret} is immutable (immutable: true): creationPolicy Merge cannot change its keys; {elsewhere}"
    controller = _controller_ref(existing)
    if controller is not None and controller.get("kind") == "VaultSecret" and controller.get("uid") != owner_uid:
        return (
            f"{secret} is controlled by VaultSecret/{_shown_name(controller.get('name'))}, which writes all of its "
            f"data: creationPolicy Merge writes only into a Secret no other VaultSecret owns; {elsewhere}"
        )
    other = merged_by_uid(existing)
    if other is not None and other != owner_uid:
        return (
            f"{secret} already receives keys from another VaultSecret with creationPolicy Merge (its annotation "
            f"{ANNOTATION_MERGED_BY} names it): two VaultSecrets never merge into one Secret; {elsewhere}, or let "
            "one VaultSecret write every key. If that VaultSecret no longer exists, remove its claim: kubectl "
            f"annotate secret -n {namespace} {name} {ANNOTATION_MERGED_BY_UID}- {ANNOTATION_MERGED_BY}-"
        )
    return None


def merge_secret_patch(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch that merges ``desired`` (``desired_secret``'s manifest) into the existing Secret, or None
    when it already holds it. The caller has checked ``merge_refusal``.

    * ``data``: the keys of ``desired`` that differ are set; a key the VaultSecret wrote before (``written_keys``)
      and no longer writes is removed; every other key stays.
    * labels and annotations of ``desired`` are set — except its ownership marks (``MANAGED_BY_LABEL``,
      ``VAULTSECRET_LABEL``) —, plus ``MERGE_LABEL`` and the merge record (``ANNOTATION_MERGED_KEYS``,
      ``ANNOTATION_MERGED_BY``, ``ANNOTATION_MERGED_BY_UID``; path, version, connection and data hash come from
      ``desired``); other labels and annotations stay.
    * ``type``, ``immutable`` and ownerReferences are left alone — unless the Secret is this VaultSecret's own
      (creationPolicy Owner before): then our ownerReference and ownership labels are removed, so the garbage
      collector no longer deletes it with the VaultSecret, and all of its data counts as written by us.

    When the Secret is not yet merged into by this VaultSecret, the patch carries its ``resourceVersion``: a
    Secret changed since it was checked (another VaultSecret's claim) fails the patch with 409 and is checked again.
    """
    owner = _controller_ref(desired) or {}
    uid, owner_name = owner.get("uid"), owner.get("name")
    if not isinstance(uid, str) or not isinstance(owner_name, str):
        raise ValueError("desired names no VaultSecret (a controller ownerReference): not desired_secret's manifest")
    meta = _mapping(existing.get("metadata"))
    desired_meta = _mapping(desired.get("metadata"))
    want = _mapping(desired.get("data"))
    have = _mapping(existing.get("data"))
    patch: dict[str, Any] = {}
    metadata: dict[str, Any] = {}

    data: dict[str, Any] = {key: value for key, value in want.items() if have.get(key) != value}
    data.update({key: None for key in written_keys(existing, uid) if key not in want and key in have})
    if data:
        patch["data"] = data

    have_labels = _mapping(meta.get("labels"))
    want_labels = {key: value for key, value in _mapping(desired_meta.get("labels")).items()
                   if key not in (MANAGED_BY_LABEL, VAULTSECRET_LABEL)}  # fmt: skip
    want_labels[MERGE_LABEL] = MERGE_LABEL_VALUE
    labels = _map_patch(have_labels, want_labels, ours=None)
    ours = ownership(existing, uid) == "ours"
    if ours:  # given up: no longer ours, only merged into
        labels.update({key: None for key in (VAULTSECRET_LABEL,) if key in have_labels})
        if have_labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
            labels[MANAGED_BY_LABEL] = None
        metadata["ownerReferences"] = [dict(ref) for ref in _refs(existing) if ref.get("uid") != uid] or None
    if labels:
        metadata["labels"] = labels

    want_annotations = {
        **_mapping(desired_meta.get("annotations")),
        ANNOTATION_MERGED_KEYS: ",".join(sorted(want)),
        ANNOTATION_MERGED_BY: owner_name,
        ANNOTATION_MERGED_BY_UID: uid,
    }
    annotations = _map_patch(_mapping(meta.get("annotations")), want_annotations, ours=None)
    if annotations:
        metadata["annotations"] = annotations

    if metadata:
        patch["metadata"] = metadata
    if not patch:
        return None
    resource_version = meta.get("resourceVersion")
    if (ours or merged_by_uid(existing) != uid) and isinstance(resource_version, str) and resource_version:
        patch.setdefault("metadata", {})["resourceVersion"] = resource_version
    return patch


def written_keys(existing: Mapping[str, Any], owner_uid: str) -> list[str]:
    """The keys of the Secret that the VaultSecret ``owner_uid`` wrote: every key of a Secret it owns, the recorded
    ``ANNOTATION_MERGED_KEYS`` of one it merges into, none otherwise."""
    if ownership(existing, owner_uid) == "ours":
        return sorted(_mapping(existing.get("data")))
    if merged_by_uid(existing) != owner_uid:
        return []
    recorded = _annotations(existing).get(ANNOTATION_MERGED_KEYS)
    return _split_keys(recorded) if isinstance(recorded, str) else []


def overwritten_keys(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """The keys of ``desired`` that the existing Secret already has and that its VaultSecret did not write: a merge
    takes them over (their earlier value is not kept). Names only, sorted."""
    uid = (_controller_ref(desired) or {}).get("uid")
    if not isinstance(uid, str):
        uid = ""
    have = _mapping(existing.get("data"))
    mine = set(written_keys(existing, uid))
    return sorted(key for key in _mapping(desired.get("data")) if key in have and key not in mine)


def unmerge_patch(existing: Mapping[str, Any], owner_uid: str, *, keep_keys: bool) -> dict[str, Any] | None:
    """The JSON merge patch that takes the merge of VaultSecret ``owner_uid`` out of the Secret ``existing``, or None
    when it does not merge into it (or nothing of it is left).

    It removes ``MERGE_LABEL`` and the merge's annotations (``ANNOTATION_MERGED_KEYS`` and the others: path,
    version, connection, data hash, merged-by) and — unless ``keep_keys`` (deletionPolicy Retain) — the recorded
    keys still in the Secret. Everything else stays: other keys, type, ownerReferences, other labels and
    annotations (``spec.target.labels`` and ``annotations`` included). An ``immutable`` Secret keeps its keys (its
    data cannot change). The patch carries the Secret's ``resourceVersion``: a Secret changed since it was read
    fails the patch with 409 and is read again.
    """
    if merged_by_uid(existing) != owner_uid:
        return None
    meta = _mapping(existing.get("metadata"))
    patch: dict[str, Any] = {}
    if not keep_keys and existing.get("immutable") is not True:
        have = _mapping(existing.get("data"))
        data = {key: None for key in written_keys(existing, owner_uid) if key in have}
        if data:
            patch["data"] = data
    metadata: dict[str, Any] = {}
    if MERGE_LABEL in _mapping(meta.get("labels")):
        metadata["labels"] = {MERGE_LABEL: None}
    annotations = {key: None for key in _MERGE_ANNOTATIONS if key in _annotations(existing)}
    if annotations:
        metadata["annotations"] = annotations
    if metadata:
        patch["metadata"] = metadata
    if not patch:
        return None
    resource_version = meta.get("resourceVersion")
    if isinstance(resource_version, str) and resource_version:
        patch.setdefault("metadata", {})["resourceVersion"] = resource_version
    return patch


def _split_keys(recorded: str) -> list[str]:
    return sorted({key for key in recorded.split(",") if key})


def wants_finalizer(spec: VaultSecretSpec) -> bool:
    """Whether a VaultSecret with ``spec`` should carry ``RETAIN_FINALIZER``: only with deletionPolicy ``Retain``, or
    with creationPolicy ``Merge`` (no ownerReference: the garbage collector would never remove the merged keys), so
    that the default (``Owner``, ``Delete``) never waits for the operator to be deleted."""
    return spec.target.deletionPolicy == "Retain" or spec.target.creationPolicy == "Merge"


def with_finalizer(finalizers: Any, *, present: bool) -> list[str] | None:
    """``finalizers`` (``metadata.finalizers``, any shape) with ``RETAIN_FINALIZER`` added (``present``) or removed,
    other finalizers kept in order; None when it already is as wanted."""
    current = [item for item in finalizers if isinstance(item, str)] if isinstance(finalizers, list) else []
    if (RETAIN_FINALIZER in current) == present:
        return None
    if present:
        return [*current, RETAIN_FINALIZER]
    return [item for item in current if item != RETAIN_FINALIZER]


def credentials_refusal(secret: Mapping[str, Any], namespace: str, name: str) -> str | None:
    """Why the Secret ``namespace/name`` may not serve as a connection's credentials, or None when it may.

    It may only when labelled ``CREDENTIALS_LABEL=true``: the Secret's owner opts in, so that whoever may create a
    connection (but not read Secrets) cannot have the operator send any Secret of a namespace to a URL of their
    choosing. The message names the Secret and ends with the command that labels it; it quotes no value.
    """
    labels = _mapping(_mapping(secret.get("metadata")).get("labels"))
    if labels.get(CREDENTIALS_LABEL) == "true":
        return None
    return (
        f"Secret {namespace}/{name} is not labelled {CREDENTIALS_LABEL}=true, so the operator does not send it to "
        f"ScaiVault as credentials (a Secret must opt in); if it holds this connection's ScaiVault token or client "
        f"credentials, label it: kubectl label secret -n {namespace} {name} {CREDENTIALS_LABEL}=true"
    )


def _shown_name(value: Any) -> str:
    """An object name or kind from metadata for a message: a string, clipped; anything else as ``?``."""
    if not isinstance(value, str) or not value:
        return "?"
    return value if len(value) <= _MAX_SHOWN_NAME else value[: _MAX_SHOWN_NAME - 1] + "…"


def needs_recreate(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True when a patch cannot bring ``existing`` to ``desired``: delete and create the Secret instead.

    That is when the type differs (immutable on a Secret; absent means ``Opaque``), or when the existing Secret
    is ``immutable: true`` and its data differs.
    """
    if (existing.get("type") or "Opaque") != (desired.get("type") or "Opaque"):
        return True
    return existing.get("immutable") is True and _data_patch(existing, desired) is not None


def secret_patch(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch (RFC 7386) from ``existing`` to ``desired``, or None when nothing differs.

    * ``data`` is ours entirely: changed keys are set, keys not in ``desired`` are removed (``null``).
      ``stringData`` on ``existing`` is ignored (API servers never return it).
    * Labels and annotations of ``desired`` are set when they differ; other labels and annotations (added by
      other controllers or by hand) are kept — except annotations under ``ANNOTATION_PREFIX``, which are ours
      and are removed when ``desired`` no longer has them.
    * ``ownerReferences``: left alone when the Secret is already ours. Otherwise this is an adoption — the
      caller has decided it is allowed (``target_refusal`` is None) — and the patch replaces the list by the
      existing references minus any controller reference (and any reference with our uid), plus ours.
    * ``type`` is never patched (immutable): check ``needs_recreate`` first.

    Only changed fields appear, so an up-to-date Secret yields None and costs no write. To guard an adoption
    against a concurrent change, the caller may add ``metadata.resourceVersion`` of ``existing`` to the patch.
    """
    patch: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    existing_meta = _mapping(existing.get("metadata"))
    desired_meta = _mapping(desired.get("metadata"))

    data = _data_patch(existing, desired)
    if data is not None:
        patch["data"] = data

    labels = _map_patch(_mapping(existing_meta.get("labels")), _mapping(desired_meta.get("labels")), ours=None)
    if labels:
        metadata["labels"] = labels
    annotations = _map_patch(
        _mapping(existing_meta.get("annotations")),
        _mapping(desired_meta.get("annotations")),
        ours=ANNOTATION_PREFIX,
    )
    if annotations:
        metadata["annotations"] = annotations

    owner_refs = _owner_refs_patch(existing, desired)
    if owner_refs is not None:
        metadata["ownerReferences"] = owner_refs

    if desired.get("immutable") is True and existing.get("immutable") is not True:
        patch["immutable"] = True  # (the reverse is refused by the API server: never asked)
    if metadata:
        patch["metadata"] = metadata
    return patch or None


def _data_patch(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    want = _mapping(desired.get("data"))
    have_raw = existing.get("data")
    if have_raw is not None and not isinstance(have_raw, Mapping):
        return dict(want)  # malformed: replace wholesale
    have = _mapping(have_raw)
    changes: dict[str, Any] = {key: value for key, value in want.items() if have.get(key) != value}
    changes.update({key: None for key in have if key not in want})
    return changes or None


def _map_patch(have: Mapping[str, Any], want: Mapping[str, Any], *, ours: str | None) -> dict[str, Any]:
    changes: dict[str, Any] = {key: value for key, value in want.items() if have.get(key) != value}
    if ours is not None:
        changes.update({key: None for key in have if key.startswith(ours) and key not in want})
    return changes


def _owner_refs_patch(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    ours = _controller_ref(desired)
    if ours is None:
        return None
    uid = ours.get("uid")
    if isinstance(uid, str) and ownership(existing, uid) == "ours":
        return None
    kept = [
        dict(ref)
        for ref in _refs(existing)
        if ref.get("controller") is not True and (uid is None or ref.get("uid") != uid)
    ]
    return [*kept, dict(ours)]


def _controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in _refs(obj):
        if ref.get("controller") is True:
            return ref
    return None


def _refs(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    refs = _mapping(obj.get("metadata")).get("ownerReferences")
    if not isinstance(refs, list):
        return []
    return [ref for ref in refs if isinstance(ref, Mapping)]


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_mapping(obj.get("metadata")).get("annotations"))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies ``application/merge-patch+json``: objects merge
    recursively, ``null`` removes a key, anything else replaces. The inputs are never modified."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
