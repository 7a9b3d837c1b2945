"""The operator's Kubernetes API: pydantic models of the custom resources, the single source of their schema.

``VaultSecret`` (namespaced), ``ClusterVaultConnection`` (cluster-scoped) and ``VaultConnection`` (namespaced),
group ``scaivault.scailabs.ai``, version ``v1alpha1``. ``crdgen`` renders the CRDs in ``crds/`` from these
models (descriptions, defaults, bounds and CEL rules included), and a test fails when the two disagree.

The sync code parses object bodies with ``VaultSecretSpec.model_validate`` etc.: a spec that the API server
accepted but that is still wrong (the CRD cannot say everything) surfaces as a ``pydantic.ValidationError``,
which the caller turns into an ``InvalidSpec`` condition.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "AccessRule",
    "ClientCredentialsAuth",
    "Condition",
    "ConnectionAuth",
    "ConnectionRef",
    "ConnectionSpec",
    "KeyMapping",
    "LabelSelector",
    "LabelSelectorRequirement",
    "SecretKeyRef",
    "SecretRef",
    "Target",
    "VaultSecretSpec",
    "VaultSecretStatus",
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


def parse_duration(text: str) -> timedelta:
    """Parse a Kubernetes-style duration (``30s``, ``1m30s``, ``500ms``) into a timedelta."""
    if not _DURATION_RE.match(text):
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
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels put on the Secret.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra annotations put on the Secret.")
    creationPolicy: Literal["Owner", "Adopt"] = Field(
        default="Owner",
        description="Owner: create the Secret and own it; an existing Secret that is not ours is left alone "
        "(TargetConflict). Adopt: also take over an existing Secret of that name, but only one that consents — "
        "annotated scaivault.scailabs.ai/adopt=true (the adoption removes the annotation) — never one controlled "
        "by another controller (an ownerReference with controller: true) and never a "
        "kubernetes.io/service-account-token Secret; otherwise TargetConflict says what is missing.",
    )

    @field_validator("type")
    @classmethod
    def _data_secret_type(cls, value: str) -> str:
        if value in DATA_SECRET_TYPES or (
            _CUSTOM_SECRET_TYPE_RE.match(value) and not value.startswith(_RESERVED_SECRET_TYPE_DOMAINS)
        ):
            return value
        raise ValueError(SECRET_TYPE_MESSAGE)


# Specs are frozen: the common sub-objects are shared between VaultSecrets instead of built once per object (the
# registry holds a spec per VaultSecret; docs/performance.md). Nothing mutates a spec's dicts.
_DEFAULT_TARGET = Target()
_SHARED_REFS: dict[tuple[ConnectionRef, frozenset[str]], ConnectionRef] = {}


def _default_target() -> Target:
    return _DEFAULT_TARGET


class VaultSecretSpec(_Spec):
    """Desired state of a VaultSecret: which ScaiVault secret to materialize, and as what."""

    path: str = Field(
        min_length=1,
        max_length=1024,
        description="Path of the secret in ScaiVault, e.g. environments/production/salesforce/api-credentials.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.startsWith('/') && !self.endsWith('/') && !self.contains('//')",
                    "message": "path must not start or end with '/' or contain '//'",
                },
                {
                    "rule": "!self.split('/').exists(s, s == '.' || s == '..')",
                    "message": "path must not contain '.' or '..' segments",
                },
            ]
        },
    )
    version: int | None = Field(
        default=None,
        ge=1,
        description="Pin to this version. Absent: follow the latest version (checked every pollInterval of the "
        "connection). A pinned VaultSecret never polls.",
    )
    connectionRef: ConnectionRef | None = Field(
        default=None, description="Connection to read through. Default: the ClusterVaultConnection named 'default'."
    )
    keys: list[KeyMapping] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Keys to copy (and rename). Absent: every top-level key of the secret's data.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(k, self.exists_one(o, "
                    "(has(o.to) ? o.to : o.from) == (has(k.to) ? k.to : k.from)))",
                    "message": "two keys map to the same Secret key",
                }
            ]
        },
    )
    target: Target = Field(default_factory=_default_target, description="The Kubernetes Secret to write.")

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

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        from .scaivault import validate_path

        return validate_path(value)

    @property
    def connection(self) -> ConnectionRef:
        return self.connectionRef or ConnectionRef(name="default")

    def target_name(self, vaultsecret_name: str) -> str:
        return self.target.name or vaultsecret_name


class Condition(BaseModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(description="Condition type; Ready is the one that summarizes the sync.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason: Synced, Unauthorized, Forbidden, SourceNotFound, ...")
    message: str = Field(default="", description="What happened and what to do about it.")
    lastTransitionTime: str | None = Field(default=None, description="When status last changed (RFC 3339).")
    observedGeneration: int | None = Field(default=None, description="Generation the condition was computed for.")


class VaultSecretStatus(BaseModel):
    """Observed state of a VaultSecret."""

    model_config = ConfigDict(frozen=True)

    conditions: list[Condition] = Field(default_factory=list, description="Ready and its reason.")
    observedGeneration: int | None = Field(default=None, description="The spec generation last acted on.")
    syncedVersion: int | None = Field(default=None, description="ScaiVault version now in the Secret.")
    syncedAt: str | None = Field(default=None, description="When that version was written to the Secret (RFC 3339).")
    secretName: str | None = Field(default=None, description="Name of the Kubernetes Secret written.")


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


class ConnectionSpec(_Spec):
    """Where ScaiVault is and how to reach it; shared by ClusterVaultConnection and VaultConnection."""

    url: str = _url_field("Base URL of ScaiVault, e.g. https://scaivault.scailabs.ai.")
    auth: ConnectionAuth = Field(description="How to authenticate.")
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

    @property
    def poll_seconds(self) -> float:
        return max(1.0, parse_duration(self.pollInterval).total_seconds())
