"""The operator's Kubernetes API: pydantic models of the custom resources, the single source of their schema.

``VaultSecret`` (namespaced), ``ClusterVaultConnection`` (cluster-scoped) and ``VaultConnection`` (namespaced),
group ``scaivault.scailabs.ai``, version ``v1alpha1``. ``crdgen`` renders the CRDs in ``crds/`` from these
models (descriptions, defaults, bounds and CEL rules included), and a test fails when the two disagree.

The sync code parses object bodies with ``VaultSecretSpec.model_validate`` etc.: a spec that the API server
accepted but that is still wrong (the CRD cannot say everything) surfaces as a ``pydantic.ValidationError``,
which the caller turns into an ``InvalidSpec`` condition.
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

__all__ = [
    "ANNOTATION_KEYS_MESSAGE",
    "API_VERSION",
    "CLIENT_SECRET_NAMESPACE_MESSAGE",
    "CONNECTION_SPECS",
    "GROUP",
    "LABEL_KEYS_MESSAGE",
    "TEMPLATE_EMPTY_MESSAGE",
    "TEMPLATE_KEYS_MESSAGE",
    "TEMPLATE_OVERLAP_MESSAGE",
    "TEMPLATE_TYPE_MESSAGE",
    "TOKEN_SECRET_NAMESPACE_MESSAGE",
    "VERSION",
    "AccessRule",
    "BreakerStatus",
    "ClientCredentialsAuth",
    "ClusterConnectionSpec",
    "Condition",
    "ConnectionAuth",
    "ConnectionIdentity",
    "ConnectionRef",
    "ConnectionSpec",
    "ConnectionStatus",
    "DataFrom",
    "KeyMapping",
    "LabelSelector",
    "LabelSelectorRequirement",
    "RestartedWorkload",
    "Rewrite",
    "RewriteRegexp",
    "Rollout",
    "RolloutStatus",
    "RolloutTarget",
    "SecretKeyRef",
    "SecretRef",
    "Source",
    "SourceStatus",
    "SpecError",
    "Target",
    "Template",
    "VaultSecretSpec",
    "VaultSecretStatus",
    "compile_rewrite",
    "is_plain_http",
    "parse_duration",
]

GROUP = "scaivault.scailabs.ai"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
#: The Go/Kubernetes duration subset we accept: ``30s``, ``1m30s``, ``1.5h``, ``500ms``.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
INT64_MAX = 2**63 - 1
#: The API server's rules for label and annotation keys (a qualified name: an optional DNS-subdomain prefix and
#: '/', then a name of at most 63 characters) (label values: ``LabelValue``).
_QUALIFIED_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
#: Total size of a Secret's annotations (keys and values), as the API server counts it.
MAX_ANNOTATIONS_BYTES = 256 * 1024
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
#: Built-in Secret types that carry data the operator may write. Token types (kubernetes.io/service-account-token,
#: bootstrap.kubernetes.io/token) are never written: a VaultSecret must not mint credentials for the cluster.
DATA_SECRET_TYPES = (
    "Opaque",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/dockercfg",
)
#: A custom type is ``domain/name`` outside the Kubernetes-owned domains.
#: (``[.]``, not a backslash: the pattern is also a CEL string literal, where ``\.`` is no valid escape.)
_CUSTOM_SECRET_TYPE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)+/[-._a-zA-Z0-9]+$"
_CUSTOM_SECRET_TYPE_RE = re.compile(_CUSTOM_SECRET_TYPE)
_RESERVED_SECRET_TYPE_DOMAINS = ("kubernetes.io/", "bootstrap.kubernetes.io/")
SECRET_TYPE_RULE = (
    "self in [" + ", ".join(f"'{t}'" for t in DATA_SECRET_TYPES) + "] || "
    f"(self.matches('{_CUSTOM_SECRET_TYPE}') && !self.startsWith('kubernetes.io/') && "
    "!self.startsWith('bootstrap.kubernetes.io/'))"
)
SECRET_TYPE_MESSAGE = (
    "type must be Opaque, kubernetes.io/basic-auth, ssh-auth, tls, dockerconfigjson or dockercfg, or a custom "
    "domain/name type; token types (service-account, bootstrap) are never written"
)


#: A plain-HTTP URL whose host is a loopback host — ``localhost``, ``127.x.y.z`` or ``[::1]`` —, with an optional
#: port and path: the only http:// URLs a connection may use without ``insecureHTTP: true`` (nothing leaves the
#: machine). Anchored on both ends, so ``http://localhost.evil.com`` or ``http://127.0.0.1.evil.com`` do not match;
#: a user-info part (``http://localhost@evil.com``) does not either. One pattern for Python and for the CEL rules
#: (RE2): dots as ``[.]`` as elsewhere, but the brackets of ``[::1]`` need backslashes (``[[]`` draws a warning from
#: Python), which ``_cel_string`` doubles in the CEL literal.
LOOPBACK_HTTP_PATTERN = (
    r"^http://(localhost|127([.](25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}|\[::1\])"
    r"(:[0-9]{1,5})?([/?#].*)?$"
)
_LOOPBACK_HTTP_RE = re.compile(LOOPBACK_HTTP_PATTERN)
_PLAIN_HTTP_HINT = (
    "plain http:// is allowed only to localhost, 127.x.y.z or [::1]: use https://, or set insecureHTTP: true to "
    "allow plain HTTP (development and trusted networks only)"
)


def _https_message(*fields: str) -> str:
    return f"{' and '.join(fields)} must use https://; {_PLAIN_HTTP_HINT}"


URL_HTTPS_MESSAGE = _https_message("url")
TOKEN_URL_HTTPS_MESSAGE = _https_message("auth.clientCredentials.tokenUrl")


def _cel_string(text: str) -> str:
    """``text`` as a single-quoted CEL string literal (backslashes doubled: CEL unescapes them)."""
    if "'" in text:
        raise ValueError(f"no single quotes in a CEL literal here: {text!r}")
    return "'" + text.replace("\\", "\\\\") + "'"


def _https_rule(field: str) -> str:
    """CEL on ConnectionSpec: ``field`` is not http://, or goes to a loopback host, or plain HTTP is allowed."""
    return (
        f"!{field}.startsWith('http://') || (has(self.insecureHTTP) && self.insecureHTTP) || "
        f"{field}.matches({_cel_string(LOOPBACK_HTTP_PATTERN)})"
    )


URL_HTTPS_RULE = _https_rule("self.url")
TOKEN_URL_HTTPS_RULE = "!has(self.auth.clientCredentials) || " + _https_rule("self.auth.clientCredentials.tokenUrl")


def is_plain_http(url: str) -> bool:
    """Whether ``url`` is plain HTTP to a host that is not a loopback host (the scheme compared case-insensitively,
    as the HTTP client does): what a connection may use only with ``insecureHTTP: true``."""
    return url[:7].lower() == "http://" and _LOOPBACK_HTTP_RE.fullmatch(url) is None


class SpecError(ValueError):
    """A spec refused by a model validator. Its message names fields and never quotes their values, so
    ``conditions`` may show it in status."""


def parse_duration(text: str) -> timedelta:
    """Parse a Kubernetes-style duration (``30s``, ``1m30s``, ``500ms``) into a timedelta."""
    if not _DURATION_RE.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m, 500ms")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART_RE.findall(text))
    return timedelta(seconds=seconds)


class _Spec(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields rejected (the CRD prunes them anyway)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


DnsSubdomain = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]


# -- VaultSecret -----------------------------------------------------------------------------------------------


class ConnectionRef(_Spec):
    """Which connection a VaultSecret reads through."""

    kind: Literal["ClusterVaultConnection", "VaultConnection"] = Field(
        default="ClusterVaultConnection",
        json_schema_extra={"maxLength": 22},  # bounds crdcheck's cost estimate of the CEL rules over spec.sources
        description="ClusterVaultConnection (cluster-wide, shared by namespaces its access rules allow) or "
        "VaultConnection (in the VaultSecret's own namespace).",
    )
    name: DnsSubdomain = Field(description="Name of the connection object.")


class KeyMapping(_Spec):
    """One key to copy from the ScaiVault secret's data into the Kubernetes Secret."""

    from_: str = Field(
        alias="from",
        min_length=1,
        max_length=253,
        description="Top-level key of the ScaiVault secret's JSON data.",
    )
    to: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY_PATTERN,
        description="Key in the Kubernetes Secret (letters, digits, '-', '_', '.'). Defaults to the 'from' key.",
    )

    @property
    def target_key(self) -> str:
        return self.to if self.to is not None else self.from_


#: A label or annotation key as CEL checks it in the CRD: an optional DNS-subdomain prefix and '/', then a name of
#: at most 63 characters (the model also checks the prefix's 253).
_KEY_PREFIX_PATTERN = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
_QUALIFIED_KEY_PATTERN = "^" + _KEY_PREFIX_PATTERN + r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LabelValue = Annotated[str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")]


def _metadata_keys_message(what: str) -> str:
    return (
        f"{what} keys must be qualified names: an optional DNS-subdomain prefix and '/', then at most 63 "
        "characters (letters, digits, '-', '_', '.'), starting and ending with a letter or digit"
    )


LABEL_KEYS_MESSAGE = _metadata_keys_message("label")
ANNOTATION_KEYS_MESSAGE = _metadata_keys_message("annotation")


def _metadata_keys_rule(message: str) -> dict[str, JsonValue]:
    return {"rule": f"self.all(k, k.size() <= 317 && k.matches('{_QUALIFIED_KEY_PATTERN}'))", "message": message}


#: With ``target.immutable``: ``<name>-v<version>`` must stay a valid Secret name (253), for any int64 version.
MAX_VERSIONED_BASE = 253 - len("-v") - 19
IMMUTABLE_POLICY_RULE = (
    "!has(self.immutable) || !self.immutable || !has(self.creationPolicy) || self.creationPolicy == 'Owner'"
)
IMMUTABLE_POLICY_MESSAGE = (
    "immutable: true needs creationPolicy Owner (each version is a new Secret the operator creates)"
)
IMMUTABLE_NAME_RULE = (
    f"!has(self.immutable) || !self.immutable || !has(self.name) || self.name.size() <= {MAX_VERSIONED_BASE}"
)
IMMUTABLE_NAME_MESSAGE = (
    f"with immutable: true, name must be at most {MAX_VERSIONED_BASE} characters (<name>-v<version>)"
)


class Target(_Spec):
    """The Kubernetes Secret the operator writes."""

    name: DnsSubdomain | None = Field(
        default=None,
        description="Name of the Secret, in the VaultSecret's namespace. Defaults to the VaultSecret's name.",
    )
    type: str = Field(
        default="Opaque",
        min_length=1,
        max_length=253,
        description="Secret type: Opaque, kubernetes.io/basic-auth, kubernetes.io/ssh-auth, kubernetes.io/tls, "
        "kubernetes.io/dockerconfigjson, kubernetes.io/dockercfg, or a custom type named domain/name (e.g. "
        "example.com/config). Never a service-account or bootstrap token. Immutable on an existing Secret.",
        json_schema_extra={"x-kubernetes-validations": [{"rule": SECRET_TYPE_RULE, "message": SECRET_TYPE_MESSAGE}]},
    )
    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        description="Extra labels put on the Secret (at most 64; keys and values as Kubernetes requires).",
        json_schema_extra={"x-kubernetes-validations": [_metadata_keys_rule(LABEL_KEYS_MESSAGE)]},
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        max_length=128,
        description="Extra annotations put on the Secret (at most 128, 256 KiB in all).",
        json_schema_extra={"x-kubernetes-validations": [_metadata_keys_rule(ANNOTATION_KEYS_MESSAGE)]},
    )
    creationPolicy: Literal["Owner", "Adopt", "Merge"] = Field(
        default="Owner",
        description="Owner: create the Secret and own it; an existing Secret that is not ours is left alone "
        "(TargetConflict). Adopt: also take over an existing Secret of that name, but only one that consents — "
        "annotated scaivault.scailabs.ai/adopt=true (the adoption removes the annotation) — never one controlled "
        "by another controller (an ownerReference with controller: true) and never a "
        "kubernetes.io/service-account-token Secret; otherwise TargetConflict says what is missing. Merge: write "
        "only this VaultSecret's keys into an existing Secret that is not ours, and leave its other keys, type, "
        "labels, annotations and ownerReferences alone: no ownerReference is added, a key written before and no "
        "longer wanted is removed, a key that was there before is overwritten, type is not applied, labels and "
        "annotations are added. The Secret is never created (absent: TargetNotFound) and never one of type "
        "kubernetes.io/service-account-token or bootstrap.kubernetes.io/token, labelled "
        "scaivault.scailabs.ai/credentials=true, immutable, owned by another VaultSecret or merged into by one "
        "(TargetConflict). The operator records what it merged in scaivault.scailabs.ai/* annotations and the "
        "label scaivault.scailabs.ai/merged=true, and puts its finalizer on the VaultSecret: deleting it removes "
        "the keys (deletionPolicy Delete) or only the annotations (Retain); the Secret stays. Edits of merged keys "
        "are repaired at the next version or spec change, not at once.",
    )
    deletionPolicy: Literal["Delete", "Retain"] = Field(
        default="Delete",
        description="What happens to the Secret when the VaultSecret is deleted. Delete: the Secret goes with it "
        "(garbage collection through its ownerReference). Retain: the Secret stays, unmanaged — the operator "
        "removes its ownerReference and its app.kubernetes.io/managed-by and scaivault.scailabs.ai/* labels and "
        "annotations and keeps data, type and the other labels. Retain (and creationPolicy Merge) puts the "
        "finalizer scaivault.scailabs.ai/retain-secret on the VaultSecret, so its deletion waits for the operator: "
        "while the operator is down, a deleted VaultSecret stays Terminating until it is back. With creationPolicy "
        "Merge the Secret always stays: Delete removes the merged keys from it, Retain keeps them.",
    )
    immutable: bool = Field(
        default=False,
        strict=True,  # a real boolean, as the CRD demands: no "true" string turns it on
        description="Write each version to its own immutable Secret named <name>-v<version> (Kubernetes stops "
        "watching immutable Secrets: less load on kubelets and the API server) instead of updating one Secret. The "
        "workloads of spec.rollout (targets, auto, or opted in with scaivault.scailabs.ai/reload) are patched to "
        "reference the new name when a key they use changed; status.secretName names the current one. Versions "
        "beyond keepVersions that no workload references any more are deleted. creationPolicy must be Owner; "
        "spec.target.name (or the VaultSecret's name) at most 232 characters.",
    )
    keepVersions: int = Field(
        default=2,
        ge=1,
        le=20,
        strict=True,  # as the API server: no "3"
        description="With immutable: how many of the newest versioned Secrets are kept (the current one included), "
        "so that pods of the previous ReplicaSet still start during a rollout. Older ones are deleted once no "
        "workload of the namespace references them.",
    )

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": IMMUTABLE_POLICY_RULE, "message": IMMUTABLE_POLICY_MESSAGE},
        {"rule": IMMUTABLE_NAME_RULE, "message": IMMUTABLE_NAME_MESSAGE},
    ]})  # fmt: skip

    @model_validator(mode="after")
    def _immutable_rules(self) -> Self:
        if self.immutable and self.creationPolicy != "Owner":
            raise SpecError(IMMUTABLE_POLICY_MESSAGE)
        if self.immutable and self.name is not None and len(self.name) > MAX_VERSIONED_BASE:
            raise SpecError(IMMUTABLE_NAME_MESSAGE)
        return self

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:  # (the values: LabelValue)
            _check_qualified_name(key, "label")
        return value

    @field_validator("annotations")
    @classmethod
    def _valid_annotations(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            _check_qualified_name(key, "annotation")
        if sum(len(k.encode()) + len(v.encode()) for k, v in value.items()) > MAX_ANNOTATIONS_BYTES:
            raise SpecError(f"annotations must not exceed {MAX_ANNOTATIONS_BYTES} bytes in total (keys and values)")
        return value

    @field_validator("type")
    @classmethod
    def _data_secret_type(cls, value: str) -> str:
        if value in DATA_SECRET_TYPES or (
            _CUSTOM_SECRET_TYPE_RE.fullmatch(value) and not value.startswith(_RESERVED_SECRET_TYPE_DOMAINS)
        ):
            return value
        raise ValueError(SECRET_TYPE_MESSAGE)


def _check_qualified_name(key: str, what: str) -> None:
    """Refuse a label or annotation key the API server would refuse (``prefix/name`` or ``name``)."""
    prefix, _, name = key.rpartition("/")
    valid_prefix = not prefix or (len(prefix) <= 253 and re.fullmatch(DNS_SUBDOMAIN_PATTERN, prefix) is not None)
    if not (valid_prefix and 0 < len(name) <= 63 and _QUALIFIED_NAME_RE.fullmatch(name) and key.count("/") <= 1):
        shown = repr(key) if len(key) <= 80 and key.isprintable() else "a key"
        raise SpecError(
            f"{shown} is not a valid {what} key: an optional DNS-subdomain prefix and '/', then at most 63 "
            "characters (letters, digits, '-', '_', '.'), starting and ending with a letter or digit"
        )


class RolloutTarget(_Spec):
    """A workload of the VaultSecret's namespace to restart when the Secret's data changes."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = Field(
        description="Deployment, StatefulSet or DaemonSet.",
        json_schema_extra={"maxLength": 11},  # bounds the cost of the targets' uniqueness rule
    )
    name: DnsSubdomain = Field(description="Name of the workload, in the VaultSecret's namespace.")


class Rollout(_Spec):
    """Which workloads restart when a new version or spec changes the data of the Secret."""

    targets: list[RolloutTarget] = Field(
        default_factory=list,
        max_length=64,
        description="Workloads to restart (same namespace). Restarted only when a key they use changed: the keys "
        "their pod template references (env secretKeyRef, or every key for envFrom and volumes), every key when "
        "the template does not reference the Secret.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(t, self.exists_one(o, o.kind == t.kind && o.name == t.name))",
                    "message": "a workload is listed twice in targets",
                }
            ]
        },
    )
    auto: bool = Field(
        default=False,
        strict=True,  # a real boolean, as the CRD demands
        description="Also restart every Deployment, StatefulSet and DaemonSet of the namespace whose pod template "
        "uses the Secret (env, envFrom, volumes, projected volumes) in a key that changed.",
    )
    debounce: str = Field(
        default="10s",
        pattern=DURATION_PATTERN,
        max_length=32,
        description="Changes within this window (from the first) cause one restart per workload, not one per "
        "change: e.g. several VaultSecrets used by one Deployment that change together. 0s: at once.",
    )

    @field_validator("targets")
    @classmethod
    def _distinct(cls, value: list[RolloutTarget]) -> list[RolloutTarget]:
        if len({(t.kind, t.name) for t in value}) != len(value):
            raise SpecError("a workload is listed twice in targets")
        return value

    @property
    def debounce_seconds(self) -> float:
        return parse_duration(self.debounce).total_seconds()


#: ``spec.template``: at most this many keys in ``data`` and in ``literals``, each value at most this long.
MAX_TEMPLATE_KEYS = 64
MAX_TEMPLATE_LENGTH = 32 * 1024
#: Kubernetes' rule for Secret keys (``IsConfigMapKey``), as CEL: the pattern, at most 253 characters, not ``.`` or
#: ``..`` and not starting with ``..``.
TEMPLATE_KEYS_RULE = (
    f"self.all(k, k.size() <= 253 && k.matches('{SECRET_KEY_PATTERN}') && k != '.' && !k.startsWith('..'))"
)
TEMPLATE_KEYS_MESSAGE = (
    "keys must be valid Secret keys: 1-253 letters, digits, '-', '_' or '.', not '.' and not starting with '..'"
)
_TEMPLATE_KEYS_VALIDATION: dict[str, JsonValue] = {"rule": TEMPLATE_KEYS_RULE, "message": TEMPLATE_KEYS_MESSAGE}
TEMPLATE_OVERLAP_MESSAGE = "a key is in both template.data and template.literals"
TEMPLATE_EMPTY_MESSAGE = (
    "mergePolicy Replace needs at least one key in template.data or template.literals (use mergePolicy Merge to keep "
    "the synced keys and only set type, labels or annotations)"
)
TEMPLATE_TYPE_MESSAGE = (
    "target.type and template.type differ: set the Secret's type in template.type only (target.type may stay "
    "Opaque, its default)"
)
TEMPLATE_TYPE_RULE = (
    "!has(self.template) || !has(self.template.type) || !has(self.target) || !has(self.target.type) || "
    "self.target.type == 'Opaque' || self.target.type == self.template.type"
)
TemplateText = Annotated[str, Field(max_length=MAX_TEMPLATE_LENGTH)]


def _secret_key_problem(key: str) -> str | None:
    """Why ``key`` is no valid Secret key (``TEMPLATE_KEYS_RULE``), or None."""
    if not 0 < len(key) <= 253 or re.fullmatch(SECRET_KEY_PATTERN, key) is None:
        return "1-253 letters, digits, '-', '_' or '.'"
    if key == "." or key.startswith(".."):
        return "not '.' and not starting with '..'"
    return None


class Template(_Spec):
    """Shapes the Secret: keys rendered from Jinja2 templates over the synced keys, plain values, and the Secret's
    type, labels and annotations (docs/templates.md)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!has(self.data) || !has(self.literals) || !self.data.exists(k, k in self.literals)",
         "message": TEMPLATE_OVERLAP_MESSAGE},
        {"rule": "(has(self.mergePolicy) && self.mergePolicy == 'Merge') || (has(self.data) && self.data.size() > 0) "
                 "|| (has(self.literals) && self.literals.size() > 0)",
         "message": TEMPLATE_EMPTY_MESSAGE},
    ]})  # fmt: skip

    data: dict[str, TemplateText] = Field(
        default_factory=dict,
        max_length=MAX_TEMPLATE_KEYS,
        description="Secret key -> Jinja2 template, rendered in a sandbox with the synced keys as `data` (text "
        "values after spec.keys, e.g. {{ data.password }}) and `sources.main.data` (the same keys, with "
        "sources.main.path and sources.main.version). Filters: b64enc, b64dec, tojson, fromjson, toyaml, fromyaml, "
        "pem_certificates, pem_first_certificate, pem_chain, pem_private_key, htpasswd, dockerconfigjson, sha256, "
        "urlquote, and a safe subset of Jinja2's. An undefined name, a filter error or a template over its limits "
        "(1 MiB of output, 100000 steps, 0.5s) is a TemplateError: the Secret keeps its last data. At most 64 keys, "
        "each template at most 32 KiB.",
        json_schema_extra={"x-kubernetes-validations": [_TEMPLATE_KEYS_VALIDATION]},
    )
    literals: dict[str, TemplateText] = Field(
        default_factory=dict,
        max_length=MAX_TEMPLATE_KEYS,
        description="Secret key -> plain text, written as it is (never rendered). At most 64 keys, each value at "
        "most 32 KiB; no key may also be in data.",
        json_schema_extra={"x-kubernetes-validations": [_TEMPLATE_KEYS_VALIDATION]},
    )
    mergePolicy: Literal["Replace", "Merge"] = Field(
        default="Replace",
        description="Replace: the Secret holds only the keys of data and literals. Merge: the synced keys, with the "
        "keys of data and literals on top (they win on a collision).",
    )
    type: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Secret type, as target.type (which must then stay Opaque, its default, or say the same); wins "
        "over target.type. Not applied with creationPolicy Merge.",
        json_schema_extra={"x-kubernetes-validations": [{"rule": SECRET_TYPE_RULE, "message": SECRET_TYPE_MESSAGE}]},
    )
    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        description="Labels put on the Secret, over target.labels (the operator's own labels win over both).",
        json_schema_extra={"x-kubernetes-validations": [_metadata_keys_rule(LABEL_KEYS_MESSAGE)]},
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        max_length=128,
        description="Annotations put on the Secret, over target.annotations (the operator's own win over both; "
        "256 KiB in all).",
        json_schema_extra={"x-kubernetes-validations": [_metadata_keys_rule(ANNOTATION_KEYS_MESSAGE)]},
    )

    @field_validator("data", "literals")
    @classmethod
    def _valid_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if _secret_key_problem(key) is not None:
                shown = repr(key) if len(key) <= 80 and key.isprintable() else "a key"
                raise SpecError(f"{shown}: {TEMPLATE_KEYS_MESSAGE}")
        return value

    @field_validator("type")
    @classmethod
    def _valid_type(cls, value: str | None) -> str | None:
        return None if value is None else Target._data_secret_type(value)

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        return Target._valid_labels(value)

    @field_validator("annotations")
    @classmethod
    def _valid_annotations(cls, value: dict[str, str]) -> dict[str, str]:
        return Target._valid_annotations(value)

    @model_validator(mode="after")
    def _keys_rules(self) -> Self:
        if set(self.data) & set(self.literals):
            raise SpecError(TEMPLATE_OVERLAP_MESSAGE)
        if self.mergePolicy == "Replace" and not self.data and not self.literals:
            raise SpecError(TEMPLATE_EMPTY_MESSAGE)
        return self


# Specs are frozen: the common sub-objects are shared between VaultSecrets instead of built once per object (the
# registry holds a spec per VaultSecret; docs/performance.md). Nothing mutates a spec's dicts.
_DEFAULT_TARGET = Target()
_SHARED_REFS: dict[tuple[ConnectionRef, frozenset[str]], ConnectionRef] = {}


#: The CRD's rules for a secret path (``spec.path``, ``sources[].path``); the model checks them with ``validate_path``.
_PATH_RULES: list[JsonValue] = [
    {
        "rule": "!self.startsWith('/') && !self.endsWith('/') && !self.contains('//')",
        "message": "path must not start or end with '/' or contain '//'",
    },
    {
        "rule": "!self.split('/').exists(s, s == '.' || s == '..')",
        "message": "path must not contain '.' or '..' segments",
    },
]
#: ``spec.sources`` and ``spec.dataFrom``: at most this many entries; ``spec.maxDiscovered`` and its bounds.
MAX_SOURCES = 16
MAX_DATA_FROM = 8
DEFAULT_MAX_DISCOVERED = 100
MAX_DISCOVERED = 1000
#: A source's name: what templates write after ``sources.`` (a Jinja2 attribute name).
SOURCE_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
_KEYS_DISTINCT_RULE: dict[str, JsonValue] = {
    "rule": "self.all(k, self.exists_one(o, (has(o.to) ? o.to : o.from) == (has(k.to) ? k.to : k.from)))",
    "message": "two keys map to the same Secret key",
}


def _distinct_keys(value: list[KeyMapping]) -> list[KeyMapping]:
    targets = [mapping.target_key for mapping in value]
    if len(set(targets)) != len(targets):
        raise SpecError("two keys map to the same Secret key")
    return value


def _int64(value: int) -> int:
    # Not ``le=`` in the schema: the API server keeps a CRD's maximum as a float64, so 2**63 - 1 would come back as
    # 2**63; ``format: int64`` already bounds it there.
    if value > INT64_MAX:
        raise SpecError("must be at most 9223372036854775807 (int64)")
    return value


def _secret_path(value: str) -> str:
    from scaivault_operator._cogs.scaivault import validate_path  # (it imports this module)

    return validate_path(value)


#: A version (int64), a secret path (``validate_path``: what the CRD's rules cannot say) and a list of key mappings
#: (distinct Secret keys), for ``spec`` and for each of ``spec.sources``.
Version = Annotated[int, Field(ge=1, strict=True), AfterValidator(_int64)]
SecretPath = Annotated[str, AfterValidator(_secret_path)]
KeyMappings = Annotated[list[KeyMapping], AfterValidator(_distinct_keys)]


class Source(_Spec):
    """One named ScaiVault secret of ``spec.sources``."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=SOURCE_NAME_PATTERN,
        description="Name of the source: templates read it as sources.<name>.data (letters, digits, '_').",
    )
    path: SecretPath = Field(
        min_length=1,
        max_length=1024,
        description="Path of the secret in ScaiVault.",
        json_schema_extra={"x-kubernetes-validations": _PATH_RULES},
    )
    version: Version | None = Field(default=None, description="Pin to this version. Absent: follow the latest version.")
    keys: KeyMappings | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Keys to copy (and rename). Absent: every top-level key of the secret's data.",
        json_schema_extra={"x-kubernetes-validations": [_KEYS_DISTINCT_RULE]},
    )
    connectionRef: ConnectionRef | None = Field(
        default=None, description="Connection to read this source through. Default: spec.connectionRef's."
    )


@functools.lru_cache(maxsize=256)
def compile_rewrite(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (google-re2, imported on the first rewrite): the syntax of External Secrets' Go
    regexps, matched in linear time — a namespace's pattern over its own key names cannot stall the operator, as a
    backtracking engine could. ``SpecError`` when it is no RE2 expression."""
    import re2  # type: ignore[import-untyped]

    options = re2.Options()
    options.log_errors = False  # no line on stderr per refused pattern (the condition says it)
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        # RE2 quotes the offending part of the pattern after a colon: only its kind of error is said, never the
        # pattern (a message does not quote input).
        kind = detail.split(":", 1)[0].strip()[:80]
        raise SpecError(f"not an RE2 regular expression ({kind}); RE2 has no lookaround or backreferences") from None


class RewriteRegexp(_Spec):
    """A regular expression (RE2, as External Secrets' Go regexps) and its replacement (``$1``, ``${1}``,
    ``${name}`` refer to groups)."""

    source: str = Field(
        min_length=1, max_length=256, description="Regular expression (RE2 syntax) matched in each key name."
    )
    target: str = Field(max_length=256, description="Replacement of every match ($1 or ${name}: a group).")

    @field_validator("source")
    @classmethod
    def _compiles(cls, value: str) -> str:
        compile_rewrite(value)
        return value


class Rewrite(_Spec):
    """One rewrite of the key names ``dataFrom`` makes (as External Secrets' ``rewrite``)."""

    regexp: RewriteRegexp = Field(description="Replace every match of source in a key name with target.")


class DataFrom(_Spec):
    """Every secret under a prefix, optionally only those carrying some tags."""

    prefix: str = Field(
        min_length=1,
        max_length=1024,
        description="List prefix, e.g. teams/payments/ (a plain string prefix of the path).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.startsWith('/') && !self.contains('//')",
                    "message": "prefix must not start with '/' or contain '//'",
                },
                {
                    "rule": "!self.split('/').exists(s, s == '.' || s == '..')",
                    "message": "prefix must not contain '.' or '..' segments",
                },
            ]
        },
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Only secrets whose tags include every one of these.",
    )
    rewrite: list[Rewrite] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="Rewrites of each key name, in order (e.g. source '^db_' target '' strips a prefix).",
    )

    @field_validator("prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        from scaivault_operator._cogs.scaivault import validate_prefix

        return validate_prefix(value)


#: Rules on VaultSecretSpec about which fields go with a single path and which with several sources.
SOURCES_RULES: list[JsonValue] = [
    {"rule": "has(self.path) != (has(self.sources) || has(self.dataFrom))",
     "message": "set exactly one of path, or sources and/or dataFrom"},
    {"rule": "has(self.path) || (!has(self.version) && !has(self.keys))",
     "message": "version and keys go with path; with sources, set them on each source"},
    {"rule": "has(self.path) || !has(self.target) || !has(self.target.immutable) || !self.target.immutable",
     "message": "target.immutable needs path (the Secret of several sources has no single version)"},
    {"rule": "has(self.path) || !has(self.onSourceDeleted) || self.onSourceDeleted == 'Retain'",
     "message": "onSourceDeleted: Delete needs path"},
]  # fmt: skip


def _default_target() -> Target:
    return _DEFAULT_TARGET


class VaultSecretSpec(_Spec):
    """Desired state of a VaultSecret: which ScaiVault secret to materialize, and as what."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": TEMPLATE_TYPE_RULE, "message": TEMPLATE_TYPE_MESSAGE}, *SOURCES_RULES]
        }
    )

    path: SecretPath | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Path of the secret in ScaiVault, e.g. environments/production/salesforce/api-credentials. Set "
        "exactly one of path, or sources and/or dataFrom.",
        json_schema_extra={"x-kubernetes-validations": _PATH_RULES},
    )
    sources: list[Source] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SOURCES,
        description="Several ScaiVault secrets into one Secret, each by name: the Secret holds their union (a key "
        "in two sources is an error), or what spec.template makes of them (sources.<name>.data). Each source keeps "
        "its own version and following.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.all(s, self.exists_one(o, o.name == s.name))", "message": "two sources have one name"}
            ]
        },
    )
    dataFrom: list[DataFrom] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_DATA_FROM,
        description="Every secret under a prefix (and carrying the tags) into this Secret, each key named by the "
        "secret's path below the prefix and its key ('/' becomes '_'), rewritten by the rewrite rules. Followed by "
        "the connection's list poll: new, changed and deleted secrets show within a pollInterval.",
    )
    maxDiscovered: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DISCOVERED,
        strict=True,
        description=f"At most this many secrets found by dataFrom (absent: {DEFAULT_MAX_DISCOVERED}); more is an "
        "error (reason TooManySecrets), and the Secret keeps its last data.",
    )
    version: Version | None = Field(  # strict, as the API server: no "3" or true
        default=None,
        description="Pin to this version. Absent: follow the latest version (checked every pollInterval of the "
        "connection). A pinned VaultSecret never polls.",
    )
    connectionRef: ConnectionRef | None = Field(
        default=None, description="Connection to read through. Default: the ClusterVaultConnection named 'default'."
    )
    keys: KeyMappings | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Keys to copy (and rename). Absent: every top-level key of the secret's data.",
        json_schema_extra={"x-kubernetes-validations": [_KEYS_DISTINCT_RULE]},
    )
    target: Target = Field(default_factory=_default_target, description="The Kubernetes Secret to write.")
    rollout: Rollout | None = Field(
        default=None,
        description="Restart workloads when a new version changes keys they use: a patch of the pod-template "
        "annotation scaivault.scailabs.ai/rollout (a keyed digest of the keys each workload uses, never a value). "
        'A workload may also opt in itself with the annotation scaivault.scailabs.ai/reload: "true". Absent: '
        "only workloads that opt in are restarted.",
    )
    template: Template | None = Field(
        default=None,
        description="Shape the Secret: keys rendered from Jinja2 templates over the synced keys (e.g. a "
        "DATABASE_URL, a .dockerconfigjson, a TLS pair split from a PEM bundle), plain values, and the Secret's "
        "type, labels and annotations. Absent: the synced keys as they are.",
    )
    onSourceDeleted: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="What happens to the Secret when the secret at an unpinned spec.path is deleted from ScaiVault "
        "(the connection's list no longer has it and a read answers 404). Retain: the Secret keeps its last data. "
        "Delete: the operator deletes the Secret it wrote (never one it does not own). Either way Ready is False "
        "with reason SourceNotFound, and the Secret is written again when the path comes back. A pinned version "
        "that is gone only reports SourceNotFound.",
    )

    @field_validator("connectionRef")
    @classmethod
    def _shared_ref(cls, value: ConnectionRef | None) -> ConnectionRef | None:
        if value is None:
            return None
        key = (value, frozenset(value.model_fields_set))  # equal and also set the same fields (round trips)
        shared = _SHARED_REFS.get(key)
        if shared is None and len(_SHARED_REFS) < 1024:
            shared = _SHARED_REFS[key] = value
        return shared or value

    @field_validator("sources")
    @classmethod
    def _distinct_names(cls, value: list[Source] | None) -> list[Source] | None:
        names = [source.name for source in value or ()]
        if len(set(names)) != len(names):
            raise SpecError("two sources have one name")
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        """The CEL rules of ``SOURCES_RULES`` again, for objects stored before them."""
        several = self.sources is not None or self.dataFrom is not None
        if (self.path is not None) == several:
            raise SpecError("set exactly one of path, or sources and/or dataFrom")
        if several and (self.version is not None or self.keys is not None):
            raise SpecError("version and keys go with path; with sources, set them on each source")
        if several and self.target.immutable:
            raise SpecError("target.immutable needs path (the Secret of several sources has no single version)")
        if several and self.onSourceDeleted != "Retain":
            raise SpecError("onSourceDeleted: Delete needs path")
        return self

    @model_validator(mode="after")
    def _one_type(self) -> Self:
        template_type = self.template.type if self.template is not None else None
        if template_type is not None and self.target.type not in ("Opaque", template_type):
            raise SpecError(TEMPLATE_TYPE_MESSAGE)
        return self

    @property
    def secret_type(self) -> str:
        """The Secret's type: ``template.type`` when set, else ``target.type``."""
        template_type = self.template.type if self.template is not None else None
        return template_type or self.target.type

    @property
    def connection(self) -> ConnectionRef:
        return self.connectionRef or ConnectionRef(name="default")

    @property
    def max_discovered(self) -> int:
        return self.maxDiscovered if self.maxDiscovered is not None else DEFAULT_MAX_DISCOVERED

    @property
    def composite(self) -> bool:
        """Several sources (``sources`` and/or ``dataFrom``) rather than one ``path``."""
        return self.path is None

    @property
    def source_path(self) -> str:
        """``path`` — for a composite VaultSecret (no path), a short description of its sources for messages."""
        if self.path is not None:
            return self.path
        parts = [source.path for source in self.sources or ()]
        parts += [entry.prefix + "*" for entry in self.dataFrom or ()]
        return ", ".join(parts)

    def target_name(self, vaultsecret_name: str) -> str:
        """The Secret's name — with ``target.immutable``, the base of the versioned names (``secret_name``)."""
        return self.target.name or vaultsecret_name

    def secret_name(self, vaultsecret_name: str, version: int | None) -> str:
        """The Secret holding ``version``: ``<target name>-v<version>`` with ``target.immutable``, else the target
        name (whatever the version)."""
        base = self.target_name(vaultsecret_name)
        return f"{base}-v{version}" if self.target.immutable and version is not None else base


class Condition(BaseModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(description="Condition type; Ready is the one that summarizes the sync.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason: Synced, Unauthorized, Forbidden, SourceNotFound, ...")
    message: str = Field(default="", description="What happened and what to do about it.")
    lastTransitionTime: str | None = Field(default=None, description="When status last changed (RFC 3339).")
    observedGeneration: int | None = Field(default=None, description="Generation the condition was computed for.")


class RestartedWorkload(BaseModel):
    """A workload restarted because keys it uses changed."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(description="Deployment, StatefulSet or DaemonSet.")
    name: str = Field(description="Name of the workload.")
    keys: list[str] = Field(default_factory=list, description="The changed keys it uses (names only).")


class RolloutStatus(BaseModel):
    """The last restart of workloads caused by this VaultSecret."""

    model_config = ConfigDict(frozen=True)

    lastRolloutAt: str | None = Field(default=None, description="When workloads were last restarted (RFC 3339).")
    version: int | None = Field(default=None, description="The ScaiVault version that caused it.")
    workloads: list[RestartedWorkload] = Field(default_factory=list, description="The workloads restarted then.")


class SourceStatus(BaseModel):
    """One ScaiVault secret in the Secret of a VaultSecret with sources or dataFrom."""

    model_config = ConfigDict(frozen=True)

    name: str | None = Field(default=None, description="The source's name (spec.sources); absent for dataFrom.")
    path: str = Field(description="Path of the secret in ScaiVault.")
    version: int = Field(description="Its version now in the Secret.")


class VaultSecretStatus(BaseModel):
    """Observed state of a VaultSecret."""

    model_config = ConfigDict(frozen=True)

    conditions: list[Condition] = Field(default_factory=list, description="Ready and its reason.")
    observedGeneration: int | None = Field(default=None, description="The spec generation last acted on.")
    syncedVersion: int | None = Field(default=None, description="ScaiVault version now in the Secret.")
    syncedAt: str | None = Field(default=None, description="When that version was written to the Secret (RFC 3339).")
    secretName: str | None = Field(default=None, description="Name of the Kubernetes Secret written.")
    sources: list[SourceStatus] | None = Field(
        default=None, description="With spec.sources or spec.dataFrom: each secret now in the Secret, and its version."
    )
    sourceCount: int | None = Field(
        default=None, description="With spec.sources or spec.dataFrom: how many ScaiVault secrets the Secret holds."
    )
    rollout: RolloutStatus | None = Field(default=None, description="The last restart of workloads.")


# -- connections ---------------------------------------------------------------------------------------------


class SecretRef(_Spec):
    """A Kubernetes Secret by name (and namespace, for cluster-scoped connections)."""

    namespace: DnsLabel | None = Field(
        default=None,
        description="Namespace of the Secret. Required for a ClusterVaultConnection; for a VaultConnection it "
        "must be absent or the connection's own namespace.",
    )
    name: DnsSubdomain = Field(description="Name of the Secret.")


class SecretKeyRef(SecretRef):
    """A key of a Kubernetes Secret."""

    key: str = Field(default="token", min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN,
                     description="Key in the Secret's data. Default: token.")  # fmt: skip


def _http_url(value: str) -> str:
    """The CRD's "must be a URL" rule, for specs that bypassed it (the URL itself is never quoted: it may hold a
    credential in its query)."""
    if not value.startswith(("https://", "http://")):
        raise SpecError("must be a URL starting with https:// (or http:// to a loopback host)")
    return value


def _url_field(description: str) -> Any:
    """An http(s) URL field, checked by CEL at apply time."""
    rule: dict[str, JsonValue] = {
        "rule": "self.startsWith('https://') || self.startsWith('http://')",
        "message": "must be a URL",
    }
    return Field(min_length=1, max_length=2048, description=description,
                 json_schema_extra={"x-kubernetes-validations": [rule]})  # fmt: skip


class ClientCredentialsAuth(_Spec):
    """OAuth2 client credentials: the operator obtains and renews short-lived tokens from ScaiKey."""

    tokenUrl: str = _url_field("Token endpoint, e.g. https://scaikey.scailabs.ai/oauth/token.")
    secretRef: SecretRef = Field(
        description="Secret holding the client id and client secret. The Secret must be labelled "
        "scaivault.scailabs.ai/credentials=true."
    )
    clientIdKey: str = Field(
        default="client_id", min_length=1, max_length=253, description="Key of the client id in the Secret."
    )
    clientSecretKey: str = Field(
        default="client_secret", min_length=1, max_length=253, description="Key of the client secret in the Secret."
    )
    scope: str | None = Field(
        default=None, max_length=1024, description="Space-separated scopes to request, e.g. secrets:read."
    )

    @field_validator("tokenUrl")
    @classmethod
    def _is_url(cls, value: str) -> str:
        return _http_url(value)


class ConnectionAuth(_Spec):
    """How the operator authenticates to ScaiVault: exactly one method."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.tokenSecretRef) != has(self.clientCredentials)",
                    "message": "set exactly one of tokenSecretRef or clientCredentials",
                }
            ]
        }
    )

    tokenSecretRef: SecretKeyRef | None = Field(
        default=None,
        description="A static bearer token (e.g. skt_...) in a Secret; re-read when refused. The Secret must be "
        "labelled scaivault.scailabs.ai/credentials=true.",
    )
    clientCredentials: ClientCredentialsAuth | None = Field(default=None, description="OAuth2 client credentials.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.tokenSecretRef is None) == (self.clientCredentials is None):
            raise SpecError("auth: set exactly one of tokenSecretRef or clientCredentials")
        return self


class LabelSelectorRequirement(_Spec):
    """A label selector requirement (as in metav1.LabelSelector)."""

    key: str = Field(min_length=1, max_length=317, description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="In, NotIn, Exists, DoesNotExist.")
    values: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list, max_length=64, description="Values for In and NotIn."
    )


class LabelSelector(_Spec):
    """Selects namespaces by their labels."""

    matchLabels: dict[str, str] = Field(default_factory=dict, description="Labels that must all match.")
    matchExpressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=32, description="Requirements that must all hold."
    )


class AccessRule(_Spec):
    """Which namespaces may read which ScaiVault paths through this connection."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.namespaces) != has(self.namespaceSelector)",
                    "message": "set exactly one of namespaces or namespaceSelector",
                }
            ]
        }
    )

    namespaces: list[DnsLabel] | None = Field(
        default=None, min_length=1, max_length=256, description="Namespaces this rule applies to, by name."
    )
    namespaceSelector: LabelSelector | None = Field(
        default=None, description="Namespaces this rule applies to, by label ({} selects every namespace)."
    )
    pathPrefixes: list[Annotated[str, Field(max_length=1024)]] = Field(
        min_length=1,
        max_length=64,
        description="Path prefixes these namespaces may read; '{namespace}' is replaced by the VaultSecret's "
        "namespace, e.g. tenants/{namespace}/. A prefix matches as a plain string prefix.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.namespaces is None) == (self.namespaceSelector is None):
            raise SpecError("access rule: set exactly one of namespaces or namespaceSelector")
        return self


#: CEL rules on ConnectionSpec, not on the fields: they need insecureHTTP too.
_CONNECTION_RULES: tuple[dict[str, JsonValue], ...] = (
    {"rule": URL_HTTPS_RULE, "message": URL_HTTPS_MESSAGE},
    {"rule": TOKEN_URL_HTTPS_RULE, "message": TOKEN_URL_HTTPS_MESSAGE},
)
TOKEN_SECRET_NAMESPACE_MESSAGE = "auth.tokenSecretRef.namespace is required on a ClusterVaultConnection"
CLIENT_SECRET_NAMESPACE_MESSAGE = "auth.clientCredentials.secretRef.namespace is required on a ClusterVaultConnection"
#: CEL rules a ClusterVaultConnection adds: a cluster-scoped object has no namespace its credentials Secret could
#: default to. ``namespace`` is a reserved word in CEL: API servers before 1.32 know the field only by its escaped
#: name.
_CLUSTER_CONNECTION_RULES: tuple[dict[str, JsonValue], ...] = (
    {
        "rule": "!has(self.auth.tokenSecretRef) || has(self.auth.tokenSecretRef.__namespace__)",
        "message": TOKEN_SECRET_NAMESPACE_MESSAGE,
    },
    {
        "rule": "!has(self.auth.clientCredentials) || has(self.auth.clientCredentials.secretRef.__namespace__)",
        "message": CLIENT_SECRET_NAMESPACE_MESSAGE,
    },
)


class ConnectionSpec(_Spec):
    """Where ScaiVault is and how to reach it; shared by ClusterVaultConnection and VaultConnection."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": list(_CONNECTION_RULES)})

    url: str = _url_field(
        "Base URL of ScaiVault, e.g. https://scaivault.scailabs.ai. https:// unless the host is localhost, "
        "127.x.y.z or [::1], or insecureHTTP is true."
    )
    auth: ConnectionAuth = Field(description="How to authenticate.")
    insecureHTTP: bool = Field(
        default=False,
        strict=True,  # a real boolean, as the CRD demands: no "yes" or "1" turns it on
        description="Allow plain http:// for url and auth.clientCredentials.tokenUrl to hosts that are not "
        "loopback: the ScaiVault token, the client secret and the secret data then travel unencrypted. For "
        "development and trusted networks only; the operator flags it with an Insecure condition on every "
        "VaultSecret synced through this connection and a Warning Event (reason InsecureHTTP) on the connection. "
        "Default false.",
    )
    caBundle: str | None = Field(
        default=None, description="PEM CA certificates to trust for TLS instead of the system roots (private CAs)."
    )
    pollInterval: str = Field(
        default="30s",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="How often to check for new versions of the secrets in use (one paged list per prefix). "
        "At least 1s. Default 30s.",
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "duration(self) >= duration('1s')", "message": "must be at least 1s"}]
        },
    )
    access: list[AccessRule] | None = Field(
        default=None,
        max_length=64,
        description="Who may use this connection. A ClusterVaultConnection without rules serves no namespace. "
        "On a VaultConnection the rules may only narrow the paths (namespaces are always its own).",
    )

    @field_validator("url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("pollInterval")
    @classmethod
    def _at_least_a_second(cls, value: str) -> str:
        if parse_duration(value) < timedelta(seconds=1):
            raise SpecError("must be at least 1s")
        return value

    @model_validator(mode="after")
    def _https_unless_allowed(self) -> Self:
        """The CEL rules again, for objects stored before them or by API servers that do not run CEL."""
        fields = self.plain_http_fields
        if fields and not self.insecureHTTP:
            raise SpecError(_https_message(*fields))
        return self

    @property
    def plain_http_fields(self) -> tuple[str, ...]:
        """The URL fields (``url``, ``auth.clientCredentials.tokenUrl``) that use plain HTTP to a host that is not
        loopback; on a valid spec only when ``insecureHTTP`` is true."""
        credentials = self.auth.clientCredentials
        urls = (("url", self.url), ("auth.clientCredentials.tokenUrl", credentials.tokenUrl if credentials else ""))
        return tuple(name for name, url in urls if is_plain_http(url))

    @property
    def poll_seconds(self) -> float:
        return max(1.0, parse_duration(self.pollInterval).total_seconds())


class ClusterConnectionSpec(ConnectionSpec):
    """Where ScaiVault is and how to reach it; the credentials Secret must be named with its namespace."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [*_CONNECTION_RULES, *_CLUSTER_CONNECTION_RULES]}
    )

    @model_validator(mode="after")
    def _secret_namespace_given(self) -> Self:
        """The CEL rules again, for objects stored before them or by API servers that do not run CEL."""
        credentials = self.auth.clientCredentials
        if self.auth.tokenSecretRef is not None and self.auth.tokenSecretRef.namespace is None:
            raise SpecError(TOKEN_SECRET_NAMESPACE_MESSAGE)
        if credentials is not None and credentials.secretRef.namespace is None:
            raise SpecError(CLIENT_SECRET_NAMESPACE_MESSAGE)
        return self


#: The spec model of each connection kind.
CONNECTION_SPECS: dict[str, type[ConnectionSpec]] = {
    "ClusterVaultConnection": ClusterConnectionSpec,
    "VaultConnection": ConnectionSpec,
}


class ConnectionIdentity(BaseModel):
    """Who ScaiVault says the connection's credentials are (``GET /v1/auth/whoami``): names and ids only."""

    model_config = ConfigDict(frozen=True)

    identityId: str | None = Field(default=None, description="The identity's id.")
    identityType: str | None = Field(default=None, description="The kind of identity (e.g. a service account).")
    tenantId: str | None = Field(default=None, description="The tenant the identity belongs to.")
    scopes: list[str] = Field(default_factory=list, description="The token's scopes; reading needs secrets:read.")


class BreakerStatus(BaseModel):
    """The connection's circuit breaker: Open while no request may go out (an outage, a refused token)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["Open", "Closed"] | None = Field(default=None, description="Open or Closed.")
    reason: str | None = Field(default=None, description="Why it opened: Unauthorized, Forbidden, BackendUnavailable.")
    message: str | None = Field(default=None, description="What failed.")
    failures: int | None = Field(default=None, description="Consecutive failed requests when it opened.")
    retryAt: str | None = Field(default=None, description="When its first probe may go out (RFC 3339).")
    lastTransitionTime: str | None = Field(default=None, description="When state last changed (RFC 3339).")


class ConnectionStatus(BaseModel):
    """Observed state of a connection, written by the operator only when something changed."""

    model_config = ConfigDict(frozen=True)

    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: Authenticated, or why not (Unauthorized, MissingScope, Unreachable, InvalidSpec).",
    )
    observedGeneration: int | None = Field(default=None, description="The spec generation last acted on.")
    identity: ConnectionIdentity | None = Field(default=None, description="Who ScaiVault takes the connection for.")
    watchedPaths: int | None = Field(
        default=None, description="Paths (unpinned ones) and dataFrom prefixes its version watcher follows."
    )
    lastPollAt: str | None = Field(
        default=None,
        description="When a poll last succeeded (RFC 3339); refreshed with every other status change and at most "
        "every few minutes otherwise.",
    )
    breaker: BreakerStatus | None = Field(default=None, description="The connection's circuit breaker.")
