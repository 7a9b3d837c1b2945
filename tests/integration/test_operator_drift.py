"""Drift: a managed Secret deleted or edited by hand is restored within seconds; changes that are not ours to
own (another controller's annotation) are left alone and cost no write."""

from __future__ import annotations

import asyncio

from operator_helpers import b64, decoded, vaultsecret, wait_until


async def synced(cluster, name: str = "db") -> dict:
    cluster.vault.write(f"apps/d/{name}", {"password": "right", "user": "app"})
    await cluster.create(vaultsecret(name, f"apps/d/{name}"))
    _, secret = await cluster.wait_synced("team-a", name, 1)
    return secret


async def restored(cluster, name: str, before: dict) -> dict:
    async def check():
        secret = await cluster.secret("team-a", name)
        return secret if secret is not None and secret["data"] == before["data"] else None

    return await wait_until(check, 5, what=f"Secret {name} restored")


async def test_deleted_secret_is_restored(cluster):
    before = await synced(cluster)
    await cluster.cluster.delete("Secret", "team-a", "db")
    secret = await restored(cluster, "db", before)
    assert secret["metadata"]["ownerReferences"] == before["metadata"]["ownerReferences"]
    assert secret["metadata"]["annotations"] == before["metadata"]["annotations"]
    body = await cluster.vs("team-a", "db")
    assert body is not None
    assert body["status"]["syncedVersion"] == 1


async def test_edited_data_is_restored(cluster):
    before = await synced(cluster)
    await cluster.cluster.patch("Secret", "team-a", "db", {"data": {"password": b64("hacked"), "extra": b64("x")}})
    secret = await restored(cluster, "db", before)
    assert decoded(secret) == {"password": "right", "user": "app"}


async def test_removed_key_is_restored(cluster):
    before = await synced(cluster)
    await cluster.cluster.patch("Secret", "team-a", "db", {"data": {"user": None}})
    await restored(cluster, "db", before)


async def test_foreign_annotation_is_kept_and_costs_no_write(cluster):
    await synced(cluster)
    await asyncio.sleep(0.3)  # let the operator's own writes and their watch events settle
    await cluster.cluster.patch("Secret", "team-a", "db", {"metadata": {"annotations": {"other.io/note": "keep"}}})
    mark = cluster.mark()
    await asyncio.sleep(1.1)  # a negative: nothing should happen
    assert cluster.operator_writes(mark) == []
    secret = await cluster.secret("team-a", "db")
    assert secret is not None
    assert secret["metadata"]["annotations"]["other.io/note"] == "keep"
