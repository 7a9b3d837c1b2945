"""Secret storage for the dev vault: the ``SecretStore`` protocol, an in-memory store and a SQLite store.

Owns the versioning rules (versions are immutable and numbered from 1; an update that omits ``secret_type``
or ``metadata`` inherits them from the previous version; ``truncate``, a development operation only, drops the
newest versions — all of them deletes the secret, and the next write starts again at version 1), the listing
order (paths ascending, plain string prefix) and the on-disk schema. ``open_store`` picks the implementation:
memory by default, SQLite when a data file is configured.

Called by the API handlers in ``_app`` and ``_admin`` (``truncate``) and by ``DevVault.write``, ``delete`` and
``roll_back`` (in-process). Both stores are
thread-safe, because a test thread may seed while the server thread serves. Values are kept as JSON text, so
every ``get`` hands out a fresh copy and nobody can mutate a stored version in place.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "MemoryStore",
    "SecretHead",
    "SecretNotFoundError",
    "SecretStore",
    "SqliteStore",
    "StoredVersion",
    "VersionNotFoundError",
    "open_store",
    "tags_of",
]

JsonObject = dict[str, Any]

DEFAULT_SECRET_TYPE = "json"


class SecretNotFoundError(LookupError):
    """No secret exists at the path."""


class VersionNotFoundError(LookupError):
    """The secret exists, the requested version does not."""


@dataclass(frozen=True)
class StoredVersion:
    """One immutable version of a secret. ``created_at`` is version 1's time, ``updated_at`` this one's."""

    path: str
    version: int
    secret_type: str
    data: JsonObject
    metadata: JsonObject
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class SecretHead:
    """A secret's current version as listed: no data, no metadata beyond its tags."""

    path: str
    secret_type: str
    version: int
    updated_at: int
    tags: tuple[str, ...]


class SecretStore(Protocol):
    """What the handlers need from a store. Implementations must be safe to call from several threads."""

    def put(
        self,
        path: str,
        data: JsonObject,
        *,
        secret_type: str | None,
        metadata: JsonObject | None,
        now: int,
    ) -> StoredVersion:
        """Write the next version of ``path`` and return it; ``None`` fields inherit from the previous one."""
        ...

    def get(self, path: str, version: int | None = None) -> StoredVersion:
        """Return one version (the current one by default) or raise a ``...NotFoundError``."""
        ...

    def list_after(self, prefix: str, after: str | None, limit: int) -> list[SecretHead]:
        """Return up to ``limit`` secrets whose path starts with ``prefix`` and sorts after ``after``."""
        ...

    def truncate(self, path: str, keep: int) -> int:
        """Drop every version of ``path`` after the first ``keep`` (0: delete the secret); return how many went.

        ``SecretNotFoundError`` when there is no secret at ``path``.
        """
        ...

    def close(self) -> None:
        """Release resources; the store is unusable afterwards."""
        ...


def tags_of(metadata: JsonObject) -> tuple[str, ...]:
    """``metadata["tags"]`` when it is a list of strings, else no tags."""
    tags = metadata.get("tags")
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        return tuple(tags)
    return ()


def _dump(value: JsonObject) -> str:
    # ASCII-only output escapes lone surrogates, so any parsed JSON round-trips through SQLite's UTF-8.
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _load(text: str) -> JsonObject:
    value: JsonObject = json.loads(text)
    return value


@dataclass(frozen=True)
class _Row:
    """A version as stored: the values are JSON text."""

    secret_type: str
    data: str
    metadata: str
    written_at: int


def _next_row(
    previous: _Row | None,
    data: JsonObject,
    secret_type: str | None,
    metadata: JsonObject | None,
    now: int,
) -> _Row:
    """Apply the versioning rules: explicit fields win, omitted ones come from ``previous`` or the defaults."""
    if secret_type is None:
        secret_type = previous.secret_type if previous else DEFAULT_SECRET_TYPE
    metadata_text = _dump(metadata) if metadata is not None else (previous.metadata if previous else "{}")
    return _Row(secret_type=secret_type, data=_dump(data), metadata=metadata_text, written_at=now)


def _version(path: str, number: int, row: _Row, created_at: int) -> StoredVersion:
    return StoredVersion(
        path=path,
        version=number,
        secret_type=row.secret_type,
        data=_load(row.data),
        metadata=_load(row.metadata),
        created_at=created_at,
        updated_at=row.written_at,
    )


def _head(path: str, number: int, secret_type: str, metadata: str, written_at: int) -> SecretHead:
    return SecretHead(
        path=path, secret_type=secret_type, version=number, updated_at=written_at, tags=tags_of(_load(metadata))
    )


class MemoryStore:
    """Versions in a dict, plus a sorted list of paths so that listing is a bisect and a slice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, list[_Row]] = {}
        self._paths: list[str] = []

    def put(
        self,
        path: str,
        data: JsonObject,
        *,
        secret_type: str | None,
        metadata: JsonObject | None,
        now: int,
    ) -> StoredVersion:
        with self._lock:
            rows = self._versions.get(path)
            row = _next_row(rows[-1] if rows else None, data, secret_type, metadata, now)
            if rows is None:
                rows = self._versions[path] = []
                insort(self._paths, path)
            rows.append(row)
            return _version(path, len(rows), row, rows[0].written_at)

    def get(self, path: str, version: int | None = None) -> StoredVersion:
        with self._lock:
            rows = self._versions.get(path)
            if rows is None:
                raise SecretNotFoundError(path)
            number = len(rows) if version is None else version
            if not 1 <= number <= len(rows):
                raise VersionNotFoundError(path)
            return _version(path, number, rows[number - 1], rows[0].written_at)

    def list_after(self, prefix: str, after: str | None, limit: int) -> list[SecretHead]:
        with self._lock:
            start = bisect_left(self._paths, prefix)
            if after is not None:
                start = max(start, bisect_right(self._paths, after))
            heads: list[SecretHead] = []
            for path in self._paths[start : start + limit]:
                if not path.startswith(prefix):
                    break
                rows = self._versions[path]
                heads.append(_head(path, len(rows), rows[-1].secret_type, rows[-1].metadata, rows[-1].written_at))
            return heads

    def truncate(self, path: str, keep: int) -> int:
        with self._lock:
            rows = self._versions.get(path)
            if rows is None:
                raise SecretNotFoundError(path)
            removed = max(0, len(rows) - max(0, keep))
            if keep <= 0:
                del self._versions[path]
                del self._paths[bisect_left(self._paths, path)]
            else:
                del rows[keep:]
            return removed

    def close(self) -> None:
        """Nothing to release; kept for the protocol."""


_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS secret_versions (
    path TEXT NOT NULL,
    version INTEGER NOT NULL,
    secret_type TEXT NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT NOT NULL,
    written_at INTEGER NOT NULL,
    PRIMARY KEY (path, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets (
    path TEXT NOT NULL PRIMARY KEY,
    current_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
"""

_LIST_QUERY = """
SELECT s.path, s.current_version, v.secret_type, v.metadata, v.written_at
FROM secrets AS s JOIN secret_versions AS v ON v.path = s.path AND v.version = s.current_version
WHERE s.path >= ? AND s.path > ?
ORDER BY s.path
LIMIT ?
"""


class SqliteStore:
    """Versions in SQLite (WAL mode): ``secret_versions`` keyed (path, version), ``secrets`` one row per path.

    Listing walks the primary-key index of ``secrets`` (``path > ? ORDER BY path LIMIT ?``). One connection is
    shared by all threads behind a lock; writes are one transaction each.
    """

    def __init__(self, data_file: Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(data_file), check_same_thread=False)
        try:
            self._initialize(data_file)
        except BaseException:
            self._conn.close()
            raise

    def _initialize(self, data_file: Path) -> None:
        found = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if found not in (0, _SCHEMA_VERSION):
            raise ValueError(f"{data_file}: unknown dev-vault schema version {found}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _row(self, path: str, number: int) -> _Row | None:
        found = self._conn.execute(
            "SELECT secret_type, data, metadata, written_at FROM secret_versions WHERE path = ? AND version = ?",
            (path, number),
        ).fetchone()
        return _Row(*found) if found else None

    def _current(self, path: str) -> tuple[int, int] | None:
        found = self._conn.execute("SELECT current_version, created_at FROM secrets WHERE path = ?", (path,)).fetchone()
        return (found[0], found[1]) if found else None

    def put(
        self,
        path: str,
        data: JsonObject,
        *,
        secret_type: str | None,
        metadata: JsonObject | None,
        now: int,
    ) -> StoredVersion:
        with self._lock, self._conn:
            current = self._current(path)
            previous = self._row(path, current[0]) if current else None
            row = _next_row(previous, data, secret_type, metadata, now)
            number, created_at = (current[0] + 1, current[1]) if current else (1, now)
            self._conn.execute(
                "INSERT INTO secret_versions (path, version, secret_type, data, metadata, written_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (path, number, row.secret_type, row.data, row.metadata, row.written_at),
            )
            self._conn.execute(
                "INSERT INTO secrets (path, current_version, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET current_version = excluded.current_version",
                (path, number, created_at),
            )
            return _version(path, number, row, created_at)

    def get(self, path: str, version: int | None = None) -> StoredVersion:
        with self._lock:
            current = self._current(path)
            if current is None:
                raise SecretNotFoundError(path)
            number = current[0] if version is None else version
            row = self._row(path, number) if 1 <= number <= current[0] else None
            if row is None:
                raise VersionNotFoundError(path)
            return _version(path, number, row, current[1])

    def list_after(self, prefix: str, after: str | None, limit: int) -> list[SecretHead]:
        # Both bounds are range conditions on the primary key: one index seek, then a sorted scan.
        with self._lock:
            found = self._conn.execute(_LIST_QUERY, (prefix, after or "", limit)).fetchall()
        heads: list[SecretHead] = []
        for path, number, secret_type, metadata, written_at in found:
            if not path.startswith(prefix):
                break
            heads.append(_head(path, number, secret_type, metadata, written_at))
        return heads

    def truncate(self, path: str, keep: int) -> int:
        with self._lock, self._conn:
            current = self._current(path)
            if current is None:
                raise SecretNotFoundError(path)
            keep = max(0, keep)
            self._conn.execute("DELETE FROM secret_versions WHERE path = ? AND version > ?", (path, keep))
            if keep == 0:
                self._conn.execute("DELETE FROM secrets WHERE path = ?", (path,))
            elif keep < current[0]:
                self._conn.execute("UPDATE secrets SET current_version = ? WHERE path = ?", (keep, path))
            return max(0, current[0] - keep)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_store(data_file: Path | None) -> SecretStore:
    """A ``SqliteStore`` on ``data_file``, or a fresh ``MemoryStore`` when it is None."""
    if data_file is None:
        return MemoryStore()
    return SqliteStore(data_file)
