"""Operator settings: one pydantic-settings model, read from ``SCAIVAULT_OPERATOR_*`` environment variables.

Owned here: every tunable of the running operator and its default. ``cli run`` builds one ``OperatorSettings``
(flags override the environment) and hands it to ``runtime``; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scaivault_operator._cogs.kubeconfig import SERVICE_ACCOUNT_DIR

__all__ = ["OperatorSettings"]


class OperatorSettings(BaseSettings):
    """Tunables of a running operator. Defaults suit a cluster with thousands of VaultSecrets."""

    model_config = SettingsConfigDict(env_prefix="SCAIVAULT_OPERATOR_", frozen=True)

    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces to serve; empty means every namespace (cluster-wide)."
    )
    workers: int = Field(default=8, ge=1, le=256, description="Sync jobs that run at once.")
    rollout_enabled: bool = Field(
        default=True,
        description="Restart workloads whose keys changed (spec.rollout, the reload annotation). Needs get/list/"
        "patch on Deployments, StatefulSets and DaemonSets (the chart's rollout.enabled grants them).",
    )
    page_size: int = Field(default=500, ge=1, le=1000, description="Items per ScaiVault list page.")
    max_list_prefixes: int = Field(
        default=16, ge=1, description="Most list prefixes per poll and connection; siblings merge into a parent."
    )
    source_cache_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="Bytes (JSON) of secret data kept in memory for VaultSecrets with several sources, so that a new "
        "version of one source costs one GET, not one per source (docs/crds.md); 0 keeps nothing beyond a read.",
    )
    max_concurrency: int = Field(default=16, ge=1, description="In-flight ScaiVault requests per connection.")
    retry_base: float = Field(default=2.0, gt=0, description="First retry delay (s) after a failed sync.")
    retry_max: float = Field(default=300.0, gt=0, description="Longest retry delay (s) after repeated failures.")
    forbidden_retry: float = Field(default=300.0, gt=0, description="Retry delay (s) after a 403: not hot.")
    poll_jitter: float = Field(default=0.1, ge=0, le=0.5, description="Poll interval jitter, as a share (±).")
    liveness_endpoint: str | None = Field(
        default="http://0.0.0.0:8080/healthz", description="Kopf liveness probe URL; empty disables it."
    )
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="Port of /metrics; 0 disables it.")
    metrics_host: str = Field(default="0.0.0.0", description="Address /metrics binds to (all: it runs in a pod).")  # noqa: S104
    peering: str | None = Field(
        default=None,
        description="Kopf peering name: with several replicas exactly one is active. None: standalone (one replica).",
    )
    peering_priority: int | None = Field(
        default=None,
        description="Kopf peering priority; the live replica with the highest one is active, the others wait. None: "
        "by seniority (the replica that started first stays active). Equal priorities freeze every replica (Kopf).",
    )
    shard: str | None = Field(
        default=None,
        description="i/n: serve only the VaultSecrets of the namespaces that hash to shard i of n (docs/sharding.md); "
        "each shard is its own Deployment with its own peering. None: every namespace.",
    )
    selector: str | None = Field(
        default=None,
        description="Serve only the VaultSecrets matching this label selector (e.g. shard=a); the watch asks the API "
        "server for them only. None: every VaultSecret.",
    )
    connection_status: bool | None = Field(
        default=None,
        description="Write the connections' status (Ready, identity, breaker, watchedPaths). One shard should: None "
        "means shard 0 (or no --shard) does; with several --selector shards, set it false on all but one.",
    )
    relist_quiet: float = Field(
        default=2.0,
        ge=0,
        description="After Kopf lists the VaultSecrets again (410 Gone), how long its listing must be quiet before "
        "the operator lists them once itself to forget the ones deleted meanwhile.",
    )
    watch_server_timeout: int = Field(default=300, ge=10, description="Server-side watch timeout (kopf#585).")
    watch_client_timeout: int = Field(default=330, ge=10, description="Client-side watch timeout (kopf#957).")
    service_account_dir: Path = Field(
        default=SERVICE_ACCOUNT_DIR,
        description="Where the pod's service account token, ca.crt and namespace are mounted (client-go's path).",
    )
    log_format: str = Field(default="plain", description="plain or json.")
    verbose: bool = Field(default=False, description="Debug logging.")
