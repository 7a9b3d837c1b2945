"""Versions: an unpinned VaultSecret follows the latest version within a few poll intervals; a pinned one never
moves (and is never listed); changing the pin moves it."""

from __future__ import annotations

import asyncio

from operator_helpers import CONN, POLL_SECONDS, decoded, vaultsecret

from scaivault_operator._logic.manifests import ANNOTATION_VERSION
from scaivault_operator._logic.registry import ConnKey

DEFAULT_CONN: ConnKey = ("ClusterVaultConnection", "", CONN)


async def test_new_version_updates_secret(cluster):
    cluster.vault.write("apps/ver/db", {"password": "one"})
    await cluster.create(vaultsecret("db", "apps/ver/db"))
    await cluster.wait_synced("team-a", "db", 1)

    cluster.vault.write("apps/ver/db", {"password": "two", "added": "yes"})
    body, secret = await cluster.wait_synced("team-a", "db", 2, within=5 * POLL_SECONDS)

    assert decoded(secret) == {"password": "two", "added": "yes"}
    assert secret["metadata"]["annotations"][ANNOTATION_VERSION] == "2"
    assert body["status"]["syncedVersion"] == 2
    assert cluster.vault.stats.count_reads("apps/ver/db", 2) == 1


async def test_pinned_version_is_not_updated(cluster):
    path = "apps/pin/db"
    cluster.vault.write(path, {"password": "one"})
    cluster.vault.write("apps/ver/other", {"x": "1"})
    await cluster.create(vaultsecret("pinned", path, version=1))
    await cluster.create(vaultsecret("follower", "apps/ver/other"))
    await cluster.wait_synced("team-a", "pinned", 1)
    await cluster.wait_synced("team-a", "follower", 1)
    assert cluster.runtime is not None
    assert path not in cluster.runtime.registry.followed_paths(DEFAULT_CONN)  # never listed

    written = asyncio.get_running_loop().time()
    cluster.vault.write(path, {"password": "two"})
    cluster.vault.write("apps/ver/other", {"x": "2"})
    await cluster.wait_synced("team-a", "follower", 2, within=5 * POLL_SECONDS)  # polls do happen
    # A negative: give the operator three poll intervals to (wrongly) move it.
    await asyncio.sleep(max(0.0, written + 3 * POLL_SECONDS - asyncio.get_running_loop().time()))

    body = await cluster.vs("team-a", "pinned")
    assert body is not None
    assert body["status"]["syncedVersion"] == 1
    secret = await cluster.secret("team-a", "pinned")
    assert secret is not None
    assert decoded(secret) == {"password": "one"}
    assert secret["metadata"]["annotations"][ANNOTATION_VERSION] == "1"
    assert cluster.vault.stats.count_reads(path, 2) == 0
    assert cluster.vault.stats.count_reads(path, 1) == 1


async def test_changing_the_pin_moves_the_secret(cluster):
    path = "apps/pin/api"
    cluster.vault.write(path, {"key": "one"})
    cluster.vault.write(path, {"key": "two"})
    cluster.vault.write(path, {"key": "three"})
    await cluster.create(vaultsecret("api", path, version=1))
    _, secret = await cluster.wait_synced("team-a", "api", 1)
    assert decoded(secret) == {"key": "one"}

    await cluster.cluster.patch("VaultSecret", "team-a", "api", {"spec": {"version": 2}})
    body, secret = await cluster.wait_synced("team-a", "api", 2)
    assert decoded(secret) == {"key": "two"}
    assert body["status"]["observedGeneration"] == 2

    await cluster.cluster.patch("VaultSecret", "team-a", "api", {"spec": {"version": None}})  # unpin: latest
    _, secret = await cluster.wait_synced("team-a", "api", 3)
    assert decoded(secret) == {"key": "three"}
