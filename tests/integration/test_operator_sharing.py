"""Cost: many VaultSecrets on one path share one GET per version; an idle operator writes nothing to
Kubernetes and reads no secret data; a warm restart costs no reads and no writes."""

from __future__ import annotations

import asyncio

from operator_helpers import POLL_SECONDS, decoded, vaultsecret

PATH = "shared/common/db"
USERS = [(f"ns-{i % 5}", f"copy-{i}") for i in range(10)]


async def all_synced(cluster, users, version: int) -> None:
    await cluster.wait_all_synced(users, version)


async def test_one_get_per_version_for_many_users(cluster):
    cluster.vault.write(PATH, {"password": "one"})
    for namespace, name in USERS:
        await cluster.create(vaultsecret(name, PATH, namespace=namespace))
    await all_synced(cluster, USERS, 1)

    cluster.vault.stats.reset()
    cluster.vault.write(PATH, {"password": "two"})
    await all_synced(cluster, USERS, 2)

    stats = cluster.vault.stats.snapshot()
    assert stats.reads_of(PATH) == {2: 1}, stats.to_json()
    assert stats.calls["read"] == 1, stats.to_json()
    for namespace, name in USERS:
        secret = await cluster.secret(namespace, name)
        assert secret is not None
        assert decoded(secret) == {"password": "two"}


async def test_idle_operator_writes_nothing_and_reads_no_data(cluster):
    cluster.vault.write(PATH, {"password": "one"})
    cluster.vault.write("apps/idle/other", {"x": "1"})
    users = [*USERS[:4], ("team-a", "other")]
    for namespace, name in users[:4]:
        await cluster.create(vaultsecret(name, PATH, namespace=namespace))
    await cluster.create(vaultsecret("other", "apps/idle/other"))
    await all_synced(cluster, users, 1)
    assert cluster.operator_writes(0), "the request log sees the operator's writes"
    await asyncio.sleep(0.3)  # the watch events of the operator's own writes
    mark = cluster.mark()
    cluster.vault.stats.reset()

    await asyncio.sleep(3.05 * POLL_SECONDS)

    assert cluster.operator_writes(mark) == []
    stats = cluster.vault.stats.snapshot()
    assert stats.calls["read"] == 0, stats.to_json()
    assert stats.calls["list"] >= 2, stats.to_json()  # it does keep polling
    # One list per poll per covering prefix (shared/common/ and apps/idle/), never one per VaultSecret.
    assert stats.calls["list"] <= 2 * 5, stats.to_json()


async def test_warm_restart_costs_no_reads_and_no_writes(cluster):
    users = [(f"ns-{i}", f"app-{i}") for i in range(5)]
    for i, (namespace, name) in enumerate(users):
        cluster.vault.write(f"apps/r{i}/db", {"password": f"pw-{i}"})
        await cluster.create(vaultsecret(name, f"apps/r{i}/db", namespace=namespace))
    await all_synced(cluster, users, 1)
    await asyncio.sleep(0.3)  # the watch events of the operator's own writes
    statuses = {user: (await cluster.vs(*user))["status"] for user in users}

    await cluster.stop_operator()
    cluster.vault.stats.reset()
    mark = cluster.mark()
    runtime = await cluster.start_operator()
    await asyncio.sleep(2.1 * POLL_SECONDS)

    stats = cluster.vault.stats.snapshot()
    assert stats.calls["read"] == 0, stats.to_json()
    assert cluster.operator_writes(mark) == []
    assert runtime.syncs == 0
    for user in users:
        assert (await cluster.vs(*user))["status"] == statuses[user]

    cluster.vault.write("apps/r0/db", {"password": "new"})  # and it still follows versions
    _, secret = await cluster.wait_synced(*users[0], 2, within=5 * POLL_SECONDS)
    assert decoded(secret) == {"password": "new"}
