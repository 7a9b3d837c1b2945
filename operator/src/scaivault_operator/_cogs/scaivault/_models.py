"""Typed answers of the ScaiVault API.

Every model ignores fields it does not know (servers add fields; clients must not break), and requires only
what the quickstart shows on every answer. ``Secret.data`` holds plaintext: it is excluded from ``repr`` and
``str`` so that a logged model or a traceback's locals never show a value.

Used by ``_client`` to parse answers; re-exported by the package for callers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Identity", "Secret", "SecretPage", "SecretSummary", "WriteResult"]

#: Versions beyond int64 are refused as a malformed answer: Kubernetes could not store them in status.
_INT64_MAX = 2**63 - 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Identity(_Model):
    """``GET /v1/auth/whoami``: who the token belongs to and what it may do."""

    identity_id: str
    identity_type: str | None = None
    tenant_id: str | None = None
    partner_id: str | None = None
    scopes: tuple[str, ...] = ()


class Secret(_Model):
    """``GET /v1/secrets/{path}``: one version of a secret, with its plaintext ``data``."""

    path: str
    version: int = Field(ge=1, le=_INT64_MAX)  # Kubernetes stores it as int64 (status.syncedVersion)
    secret_type: str | None = None
    data: dict[str, Any] = Field(repr=False)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class SecretSummary(_Model):
    """One entry of ``GET /v1/secrets?prefix=``: a secret's current version, without data."""

    path: str
    version: int = Field(ge=1, le=_INT64_MAX)  # Kubernetes stores it as int64 (status.syncedVersion)
    secret_type: str | None = None
    updated_at: datetime | None = None
    tags: tuple[str, ...] = ()


class SecretPage(_Model):
    """One page of a list; ``cursor`` continues it while ``has_more`` is true."""

    secrets: tuple[SecretSummary, ...]
    cursor: str | None = None
    has_more: bool = False


class WriteResult(_Model):
    """``PUT /v1/secrets/{path}``: metadata of the version just written (never the data)."""

    path: str
    version: int = Field(ge=1, le=_INT64_MAX)  # Kubernetes stores it as int64 (status.syncedVersion)
    created: bool
    secret_type: str | None = None
    previous_version: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
