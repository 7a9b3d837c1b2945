"""SQLite persistence of the dev vault: secrets, versions and timestamps survive a restart."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from scaivault_operator.devvault import DevVault, run_in_thread

RW = {"Authorization": "Bearer rw-token"}


@pytest.fixture
def data_file(tmp_path):
    return tmp_path / "vault.sqlite3"


def test_secrets_survive_a_restart(make_dev_vault_config, data_file, fake_clock):
    config = make_dev_vault_config(data_file=data_file)
    with run_in_thread(config, clock=fake_clock) as first, httpx.Client(base_url=first.url, headers=RW) as http:
        http.put("/v1/secrets/apps/db", json={"data": {"v": 1}, "metadata": {"tags": ["db"]}})
        fake_clock.advance(60)
        http.put("/v1/secrets/apps/db", json={"data": {"v": 2}})
        http.put("/v1/secrets/apps/web", json={"data": {"w": 1}, "secret_type": "env"})
        before = http.get("/v1/secrets", params={"prefix": "apps/"}).json()

    fake_clock.advance(60)
    config = make_dev_vault_config(data_file=data_file)
    with run_in_thread(config, clock=fake_clock) as second, httpx.Client(base_url=second.url, headers=RW) as http:
        v1 = http.get("/v1/secrets/apps/db", params={"version": 1}).json()
        v2 = http.get("/v1/secrets/apps/db", params={"version": 2}).json()
        after = http.get("/v1/secrets", params={"prefix": "apps/"}).json()
        http.put("/v1/secrets/apps/db", json={"data": {"v": 3}})
        v3 = http.get("/v1/secrets/apps/db").json()

    assert (v1["data"], v1["metadata"], v1["updated_at"]) == ({"v": 1}, {"tags": ["db"]}, "2026-04-23T14:00:00Z")
    assert (v2["data"], v2["metadata"], v2["created_at"]) == ({"v": 2}, {"tags": ["db"]}, "2026-04-23T14:00:00Z")
    assert v2["updated_at"] == "2026-04-23T14:01:00Z"
    assert after == before
    assert [(s["path"], s["version"], s["secret_type"], s["tags"]) for s in after["secrets"]] == [
        ("apps/db", 2, "json", ["db"]),
        ("apps/web", 1, "env", []),
    ]
    assert (v3["version"], v3["metadata"], v3["created_at"]) == (3, {"tags": ["db"]}, "2026-04-23T14:00:00Z")
    assert v3["updated_at"] == "2026-04-23T14:02:00Z"


def test_sqlite_file_layout(make_dev_vault_config, data_file):
    vault = DevVault(make_dev_vault_config(data_file=data_file))
    vault.write("a", {"k": 1})
    vault.write("a", {"k": 2})
    vault.store.close()

    db = sqlite3.connect(data_file)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = db.execute("SELECT path, version FROM secret_versions ORDER BY version").fetchall()
        assert versions == [("a", 1), ("a", 2)]
        assert db.execute("SELECT path, current_version FROM secrets").fetchall() == [("a", 2)]
    finally:
        db.close()


def test_unknown_schema_version_is_refused(make_dev_vault_config, data_file):
    db = sqlite3.connect(data_file)
    db.execute("PRAGMA user_version=99")
    db.close()

    with pytest.raises(ValueError, match="schema version 99"):
        DevVault(make_dev_vault_config(data_file=data_file))
